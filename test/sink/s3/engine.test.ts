/**
 * The S3 output sink through the real `EpochEngine` (memory commit store, or DynamoDB Local with the
 * S3 snapshot store), against the local S3 server: crashes before and after the manifest, after the
 * commit before any delivery, lost responses, redelivery after a restore, zombies. After each, the
 * reader and a plain ListObjects/GetObject reader must both hold exactly what a reference fold of
 * the input expects: nothing lost, nothing twice, nothing from an attempt that did not commit.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { depositAmount } from '../../../examples/balances.ts';
import { deposit, mskEvent, type TestRecord } from '../../../harness/esm/mskEvent.ts';
import { ContainerStores, gate, HookedCommitStore } from '../../../harness/faultyStores.ts';
import { EpochEngine } from '../../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../../lib/checkpoint/processor.ts';
import type { CommitStore, SnapshotStore } from '../../../lib/checkpoint/stores.ts';
import { loadConfig } from '../../../lib/config/config.ts';
import { BatchFailedError } from '../../../lib/errors.ts';
import { outputRoot, readS3Outputs, s3Output } from '../../../lib/sink/s3/index.ts';
import { S3OutputSink } from '../../../lib/sink/s3/S3OutputSink.ts';
import { valueState } from '../../../lib/state/descriptors.ts';
import { createDynamoDBClient } from '../../../lib/store/clients.ts';
import { DynamoCommitStore } from '../../../lib/store/dynamodb/DynamoCommitStore.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../../lib/store/memory/memoryStores.ts';
import { S3SnapshotStore } from '../../../lib/store/s3/S3SnapshotStore.ts';
import { FaultyS3, isData, isManifest, plainRead, snapshotPrefix } from './helpers.ts';

const bucket = process.env.TIDEMARK_BUCKET!;
const table = process.env.TIDEMARK_TABLE!;
const s3 = new FaultyS3();
const ddb = createDynamoDBClient();
const clients = [s3];
afterAll(() => {
  for (const c of clients) c.destroy();
  ddb.destroy();
});

interface Total {
  account: string;
  balance: number;
  /** Which container computed it (only the committed attempt's may ever be visible). */
  by?: string;
}

/** Running balance per account; each record emits the account's new total. */
function balancesWithTotals(tag?: string) {
  return defineProcessor({
    state: { balance: valueState<number>() },
    outputs: { totals: s3Output<Total>({ gzip: true, maxObjectBytes: 120 }) },
    process(record, { state, outputs, key }) {
      const balance = (state.balance.get() ?? 0) + depositAmount(record.value!);
      state.balance.set(balance);
      outputs.totals.emit(tag ? { account: key!, balance, by: tag } : { account: key!, balance });
    },
  });
}

/** The reference fold: every record's total, per task in offset order. */
function fold(records: readonly TestRecord[]): Map<string, Total[]> {
  const balances = new Map<string, number>();
  const out = new Map<string, Total[]>();
  for (const r of records) {
    const task = `${r.topic}-${r.partition}`;
    const account = `${task}/${r.key as string}`;
    const b = (balances.get(account) ?? 0) + (r.value as { amount: number }).amount;
    balances.set(account, b);
    out.set(task, [...(out.get(task) ?? []), { account: r.key as string, balance: b }]);
  }
  return out;
}

const stream = (n: number, partition = 0, start = 0): TestRecord[] =>
  Array.from({ length: n }, (_, i) =>
    deposit('orders', partition, start + i, `acct-${(start + i) % 4}`, ((start + i) % 9) - 3),
  );

function pipeline(stores?: { snapshots: SnapshotStore; commits: CommitStore }) {
  const id = `s3e-${randomUUID().slice(0, 8)}`;
  const base = stores ?? { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() };
  const config = loadConfig({}, { bucket, table, pipeline: id, epochMaxRecords: 8 });
  const root = outputRoot({ prefix: 'tidemark-outputs', pipeline: id, output: 'totals' });
  /** A new container: its own engine (empty warm cache), S3 client and fault points. */
  const container = (options: { tag?: string; commits?: CommitStore } = {}) => {
    const faulty = new FaultyS3();
    clients.push(faulty);
    const stores = new ContainerStores({
      snapshots: base.snapshots,
      commits: options.commits ?? base.commits,
    });
    const engine = new EpochEngine({
      processor: balancesWithTotals(options.tag),
      config,
      snapshots: stores.snapshots,
      commits: stores.commits,
      sinks: (_descriptor, env) => new S3OutputSink(env, { client: faulty.client }),
    });
    return { engine, faulty, stores, run: (records: TestRecord[]) => engine.processEvent(mskEvent(records)) };
  };
  /** What the reader helper and the plain reader see, per task. */
  const visible = async () => {
    const viaReader = new Map<string, Total[]>();
    for await (const r of readS3Outputs<Total>({
      bucket,
      pipeline: id,
      output: 'totals',
      client: s3.client,
    })) {
      const task = `${r.topic}-${r.partition}`;
      viaReader.set(task, [...(viaReader.get(task) ?? []), r.value]);
    }
    const plain = new Map<string, Total[]>();
    for (const r of await plainRead(s3.client, bucket, root)) {
      const task = `${r.topic}-${r.partition}`;
      plain.set(task, [...(plain.get(task) ?? []), r.value as Total]);
    }
    expect(plain).toEqual(viaReader);
    return viaReader;
  };
  return { id, base, container, visible, root };
}

describe('S3 outputs through the epoch engine', () => {
  it('delivers every committed epoch once, in order, across batches, partitions and duplicate deliveries', async () => {
    const p = pipeline();
    const c = p.container();
    const input = [...stream(30, 0), ...stream(11, 1)];
    await c.run([...stream(20, 0), ...stream(11, 1)]);
    await c.run([...stream(30, 0)]); // overlaps: the first 20 are duplicates
    await p.container().run(stream(30, 0)); // a cold container: restores, redelivers the last outbox
    expect(await p.visible()).toEqual(fold(input));
    // One manifest per committed epoch (all emit): partition 0 had epochs of 8, 8, 4, then 8, 2.
    const manifests = [...(await snapshotPrefix(s3.client, bucket, `${p.root}manifests/`)).keys()];
    expect(manifests.filter((k) => k.includes('/orders/0/'))).toHaveLength(5);
    expect(manifests.filter((k) => k.includes('/orders/1/'))).toHaveLength(2);
  });

  it('crash after the data objects, before the manifest: nothing visible; the retry on another container completes it', async () => {
    const p = pipeline();
    const input = stream(20);
    const a = p.container();
    const crashed = a.faulty.arm('crash-before', isManifest);
    void a.run(input);
    await crashed;
    // The epoch committed and its objects are there, but without a manifest they are not output.
    expect([...(await snapshotPrefix(s3.client, bucket, p.root)).keys()].some(isData)).toBe(true);
    expect(await p.visible()).toEqual(new Map());
    const summary = await p.container().run(input);
    expect(summary.duplicatesSkipped).toBe(8);
    expect(await p.visible()).toEqual(fold(input));
  });

  it('crash after the manifest: the redelivery meets its own objects and changes no byte', async () => {
    const p = pipeline();
    const input = stream(20);
    const a = p.container();
    const crashed = a.faulty.arm('crash-after', isManifest);
    void a.run(input);
    await crashed;
    const before = await snapshotPrefix(s3.client, bucket, p.root);
    const b = p.container();
    await b.run(input);
    const after = await snapshotPrefix(s3.client, bucket, p.root);
    for (const [key, body] of before) expect(after.get(key)).toEqual(body);
    expect(await p.visible()).toEqual(fold(input));
  });

  it('crash after the commit, before any delivery: the next container delivers the committed outbox', async () => {
    const p = pipeline();
    const input = stream(6);
    const a = p.container();
    const crashed = a.stores.armCrash('after-commit');
    void a.run(input);
    await crashed;
    expect(await p.visible()).toEqual(new Map());
    await p.container().run([...input, ...stream(3, 0, 6)]);
    expect(await p.visible()).toEqual(fold([...input, ...stream(3, 0, 6)]));
  });

  it('lost responses: the commit applied but reported failed, S3 PUTs applied but answered with errors', async () => {
    const p = pipeline();
    const input = stream(24);
    const a = p.container();
    // 1. The commit of epoch 1 is applied, its answer lost: the invocation fails (retriably).
    const lostAck = a.stores.armError('commit-lost-ack');
    expect(await a.run(input).catch((e: unknown) => e)).toBeInstanceOf(BatchFailedError);
    await lostAck;
    // 2. The ESM retries on the same container: epoch 1's outbox is delivered; a data PUT is
    //    applied but its answer lost (after the SDK's retries): the invocation fails again.
    const lostPut = a.faulty.arm('fail-after', isData);
    expect(await a.run(input).catch((e: unknown) => e)).toBeInstanceOf(BatchFailedError);
    await lostPut;
    // 3. The next retry: the manifest PUTs are applied and time out; the SDK retries them (412).
    const lostSdk = a.faulty.arm('lose-response', isManifest, { times: 3 });
    await a.run(input);
    await lostSdk;
    await a.run(stream(5, 0, 24));
    expect(await p.visible()).toEqual(fold([...input, ...stream(5, 0, 24)]));
  });

  it('a zombie paused mid-delivery resumes after another container delivered and moved on: same bytes, nothing new', async () => {
    const p = pipeline();
    const input = stream(10);
    const a = p.container();
    const pause = gate();
    const paused = a.faulty.arm('gate-before', isManifest, { wait: pause.wait });
    const zombie = a.run(input).catch((e: unknown) => e);
    await paused;
    const b = p.container();
    await b.run(input);
    await b.run(stream(10, 0, 10));
    const before = await snapshotPrefix(s3.client, bucket, p.root);
    pause.open();
    await zombie;
    expect(await snapshotPrefix(s3.client, bucket, p.root)).toEqual(before);
    expect(await p.visible()).toEqual(fold(stream(20)));
  });

  it('an attempt that loses its commit race never delivers (its outputs differ: only the winner is visible)', async () => {
    const p = pipeline();
    const input = stream(5);
    const hold = gate();
    const reached = gate();
    const slow = new HookedCommitStore(p.base.commits);
    slow.beforeCommit = async () => {
      reached.open();
      await hold.wait;
    };
    const a = p.container({ tag: 'A', commits: slow });
    const loser = a.run(input).catch((e: unknown) => e);
    await reached.wait;
    await p.container({ tag: 'B' }).run(input);
    hold.open();
    await loser;
    const seen = await p.visible();
    expect([...seen.values()].flat().map((t) => t.by)).toEqual(Array(5).fill('B'));
    expect([...seen.values()].flat().map(({ by: _, ...t }) => t)).toEqual(fold(input).get('orders-0'));
  });

  it('on DynamoDB Local and the S3 snapshot store: a crash before the manifest, a retry, a restore', async () => {
    const p = pipeline({
      snapshots: new S3SnapshotStore({ client: s3.client, bucket }),
      commits: new DynamoCommitStore({ client: ddb, table }),
    });
    const input = stream(20);
    const a = p.container();
    const crashed = a.faulty.arm('crash-before', isManifest);
    void a.run(input);
    await crashed;
    await p.container().run(input);
    await p.container().run([...input, ...stream(4, 0, 20)]);
    expect(await p.visible()).toEqual(fold([...input, ...stream(4, 0, 20)]));
  });
});
