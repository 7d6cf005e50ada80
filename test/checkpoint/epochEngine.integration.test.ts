/**
 * The commit protocol against the real local servers: DynamoDB Local (conditional writes with
 * ALL_OLD) and the S3 server (conditional creates). Each test uses its own pipeline id.
 */
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { deposit, mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { gate, HookedCommitStore, HookedSnapshotStore, SimulatedCrash } from '../../harness/faultyStores.ts';
import { foldBalances } from '../../harness/oracle.ts';
import type { CommitStore, SnapshotStore } from '../../lib/checkpoint/stores.ts';
import {
  BatchFailedError,
  MalformedEventError,
  PoisonRecordError,
  SnapshotCorruptError,
  SnapshotIdentityError,
  TimeBudgetExceededError,
} from '../../lib/errors.ts';
import { createKafkaHandler, type KafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { DynamoCommitStore } from '../../lib/store/dynamodb/DynamoCommitStore.ts';
import { countRequests, type RequestCounts } from '../../lib/store/requestCounter.ts';
import { S3SnapshotStore } from '../../lib/store/s3/S3SnapshotStore.ts';

const bucket = process.env.TIDEMARK_BUCKET!;
const table = process.env.TIDEMARK_TABLE!;
const s3 = createS3Client();
const ddb = createDynamoDBClient();
afterAll(() => {
  s3.destroy();
  ddb.destroy();
});

interface Pipeline {
  id: string;
  snapshots: HookedSnapshotStore;
  commits: HookedCommitStore;
  /** A new container: a handler with an empty warm cache. */
  container(extra?: { config?: Record<string, unknown> }): KafkaHandler<typeof balances.state>;
  inspect(topic?: string, partition?: number): ReturnType<typeof inspectTask>;
}

function pipeline(counts?: { s3: RequestCounts; ddb: RequestCounts }): Pipeline {
  const id = `it-${randomUUID().slice(0, 8)}`;
  const s3c = counts ? createS3Client() : s3;
  const ddbc = counts ? createDynamoDBClient() : ddb;
  if (counts) {
    countRequests(s3c, counts.s3);
    countRequests(ddbc, counts.ddb);
  }
  const snapshots = new HookedSnapshotStore(new S3SnapshotStore({ client: s3c, bucket }));
  const commits = new HookedCommitStore(new DynamoCommitStore({ client: ddbc, table }));
  return {
    id,
    snapshots,
    commits,
    container: (extra = {}) =>
      createKafkaHandler(balances, {
        env: { ...process.env, TIDEMARK_PIPELINE: id },
        stores: { snapshots, commits },
        telemetry: false,
        config: extra.config,
      }),
    inspect: (topic = 'orders', partition = 0) =>
      inspectTask(
        { snapshots: snapshots.inner as SnapshotStore, commits: commits.inner as CommitStore },
        { pipeline: id, topic, partition },
      ),
  };
}

/** Every snapshot as an S3 object (the tests of the object protocol: PUT, orphans, corrupt objects). */
const S3_ONLY = { snapshotInlineMaxBytes: 0 };

const stream = (n: number, topic = 'orders', partition = 0, start = 0): TestRecord[] =>
  Array.from({ length: n }, (_, i) =>
    deposit(topic, partition, start + i, `acct-${(start + i) % 5}`, (start + i) % 9),
  );

function expectBalances(state: Record<string, Record<string, unknown>>, records: TestRecord[]) {
  expect(state.account ?? {}).toEqual(Object.fromEntries(foldBalances(records)));
}

async function failure(p: Promise<unknown>): Promise<BatchFailedError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BatchFailedError);
  return err as BatchFailedError;
}

describe('commit protocol on DynamoDB Local and the S3 server', () => {
  it('skips a duplicate delivery', async () => {
    const p = pipeline();
    const records = stream(30);
    const c = p.container();
    expect(await c(mskEvent(records), lambdaContext())).toMatchObject({ applied: 30, epochsCommitted: 1 });
    expect(await c(mskEvent(records), lambdaContext())).toMatchObject({ applied: 0, duplicatesSkipped: 30 });
    expect(await p.container()(mskEvent(records), lambdaContext())).toMatchObject({
      applied: 0,
      duplicatesSkipped: 30,
    });
    const r = await p.inspect();
    expect(r).toMatchObject({ epoch: 1, committedOffset: '30' });
    expectBalances(r.state, records);
  });

  it('handles a retried batch with a different composition: starts earlier, ends later, other partitions mixed in', async () => {
    const p = pipeline();
    const p0 = stream(40, 'orders', 0);
    const p1 = stream(15, 'orders', 1);
    const p2 = stream(5, 'payments-eu', 2);
    await p.container()(mskEvent([...p0.slice(10, 25), ...p1.slice(0, 5)]), lambdaContext());
    const retry = await p.container()(mskEvent([...p0.slice(0, 40), ...p2, ...p1.slice(3)]), lambdaContext());
    expect(retry).toMatchObject({ duplicatesSkipped: 25 + 2 });
    expectBalances((await p.inspect('orders', 0)).state, p0.slice(10, 40));
    expectBalances((await p.inspect('orders', 1)).state, p1);
    expectBalances((await p.inspect('payments-eu', 2)).state, p2);
  });

  it('lets exactly one of two concurrent invocations of the same batch commit each epoch', async () => {
    const p = pipeline();
    const records = [...stream(200, 'orders', 0), ...stream(200, 'orders', 1)];
    const config = { epochMaxRecords: 50 };
    const [a, b] = await Promise.all([
      p.container({ config })(mskEvent(records), lambdaContext()),
      p.container({ config })(mskEvent(records), lambdaContext()),
    ]);
    // 2 tasks x 4 epochs: every epoch committed exactly once, by one container or the other.
    expect(a.epochsCommitted + b.epochsCommitted).toBe(8);
    for (const part of [0, 1]) {
      const r = await p.inspect('orders', part);
      expect(r).toMatchObject({ epoch: 4, committedOffset: '200' });
      expectBalances(r.state, stream(200, 'orders', part));
    }
  });

  it('recovers from a crash after the snapshot PUT and before the commit', async () => {
    const p = pipeline();
    const records = stream(20);
    p.commits.beforeCommit = () => {
      throw new SimulatedCrash('after snapshot PUT, before commit');
    };
    await failure(p.container()(mskEvent(records), lambdaContext()));
    p.commits.beforeCommit = undefined;
    expect((await p.inspect()).epoch).toBe(0);
    expect(await p.container()(mskEvent(records), lambdaContext())).toMatchObject({
      applied: 20,
      epochsCommitted: 1,
    });
    expectBalances((await p.inspect()).state, records);
  });

  it('recovers from a crash after the commit and before the handler returns', async () => {
    const p = pipeline();
    const records = stream(20);
    const c = p.container();
    p.commits.afterCommit = () => {
      throw new SimulatedCrash('after commit, before return');
    };
    await failure(c(mskEvent(records), lambdaContext()));
    p.commits.afterCommit = undefined;
    expect(await c(mskEvent(records), lambdaContext())).toMatchObject({ applied: 0, duplicatesSkipped: 20 });
    expectBalances((await p.inspect()).state, records);
  });

  it('makes a zombie lose and never loads its orphan snapshot', async () => {
    const p = pipeline();
    const records = stream(12);
    const pause = gate();
    const reached = gate();
    let zombieKey: string | undefined;
    p.snapshots.afterPut = async (key) => {
      if (!zombieKey && key.endsWith('.snap')) {
        zombieKey = key;
        reached.open();
        await pause.wait;
      }
    };
    const zombie = p.container({ config: S3_ONLY })(mskEvent(records), lambdaContext());
    await reached.wait;
    await p.container({ config: S3_ONLY })(mskEvent(records), lambdaContext());
    pause.open();
    expect((await zombie).commitConflicts).toBe(1);
    const r = await p.inspect();
    expect(r.snapshot!.keys).not.toContain(zombieKey);
    expectBalances(r.state, records);
  });

  it('commits what fits the time budget, fails with a typed retriable error, and the retry completes', async () => {
    const p = pipeline();
    const records = stream(60);
    let remaining = 1500;
    const context = { awsRequestId: 'r', getRemainingTimeInMillis: () => (remaining -= 60) };
    const f = await failure(
      p.container({ config: { timeReserveMs: 1000, epochMaxRecords: 5 } })(mskEvent(records), context),
    );
    expect(f.failures[0]!.error).toBeInstanceOf(TimeBudgetExceededError);
    expect(f.retriable).toBe(true);
    const partial = await p.inspect();
    expect(partial.epoch).toBeGreaterThan(0);
    expect(Number(partial.committedOffset)).toBeLessThan(60);
    const retry = await p.container()(mskEvent(records), lambdaContext());
    expect(retry.duplicatesSkipped).toBe(Number(partial.committedOffset));
    const r = await p.inspect();
    expect(r.committedOffset).toBe('60');
    expectBalances(r.state, records);
  });

  it('refuses a corrupted snapshot and a snapshot of another identity', async () => {
    const p = pipeline();
    await p.container({ config: S3_ONLY })(
      mskEvent([...stream(10, 'orders', 0), ...stream(12, 'orders', 1)]),
      lambdaContext(),
    );
    const [r0, r1] = [await p.inspect('orders', 0), await p.inspect('orders', 1)];
    const key0 = r0.snapshot!.keys[0]!;
    const key1 = r1.snapshot!.keys[0]!;
    const get = async (key: string) =>
      Buffer.from(
        await (
          await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
        ).Body!.transformToByteArray(),
      );
    const put = (key: string, body: Buffer) =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    const original = await get(key0);
    const flipped = Buffer.from(original);
    flipped[flipped.length >> 1]! ^= 0x10;
    await put(key0, flipped);
    let f = await failure(p.container()(mskEvent(stream(11, 'orders', 0)), lambdaContext()));
    expect(f.failures[0]!.error).toBeInstanceOf(SnapshotCorruptError);
    await put(key0, original.subarray(0, original.length - 7));
    f = await failure(p.container()(mskEvent(stream(11, 'orders', 0)), lambdaContext()));
    expect(f.failures[0]!.error).toBeInstanceOf(SnapshotCorruptError);
    // Partition 1's (valid) snapshot under partition 0's key: not the committed object.
    await put(key0, await get(key1));
    f = await failure(p.container()(mskEvent(stream(11, 'orders', 0)), lambdaContext()));
    expect(f.failures[0]!.error).toBeInstanceOf(SnapshotIdentityError);
    expect(f.retriable).toBe(false);
    // Nothing was applied or committed while the snapshot could not be trusted.
    await put(key0, original);
    expect((await p.inspect('orders', 0)).epoch).toBe(1);
    expect(await p.container()(mskEvent(stream(11, 'orders', 0)), lambdaContext())).toMatchObject({
      applied: 1,
    });
    expectBalances((await p.inspect('orders', 0)).state, stream(11, 'orders', 0));
  });

  it('rejects malformed events with typed errors', async () => {
    const c = pipeline().container();
    await expect(c({ eventSource: 'aws:sqs', Records: [] }, lambdaContext())).rejects.toBeInstanceOf(
      MalformedEventError,
    );
    const broken = mskEvent(stream(2));
    (broken.records['orders-0']![1] as unknown as Record<string, unknown>).offset = 'soon';
    await expect(c(broken, lambdaContext())).rejects.toThrow(/\$\.records\["orders-0"\]\[1\]\.offset/);
  });

  it('quarantines poison records to S3 and counts them in the commit item', async () => {
    const p = pipeline();
    const records: TestRecord[] = [
      deposit('orders', 0, 0, 'a', 1),
      { topic: 'orders', partition: 0, offset: 1, key: null, value: { amount: 1 } },
      { topic: 'orders', partition: 0, offset: 2, key: 'a', value: '{"amount": "1"}' },
      deposit('orders', 0, 3, 'a', 2),
    ];
    expect(await p.container()(mskEvent(records), lambdaContext())).toMatchObject({
      applied: 2,
      quarantined: 2,
    });
    const r = await p.inspect();
    expect(r).toMatchObject({
      quarantined: 2,
      committedOffset: '4',
      state: { account: { a: { balance: 3, count: 2 } } },
    });
    const keys: string[] = [];
    for await (const o of p.snapshots.list(`tidemark/${p.id}/quarantine/`)) keys.push(o.key);
    expect(keys).toHaveLength(2);
    const doc = JSON.parse(Buffer.from((await p.snapshots.get(keys[0]!))!).toString());
    expect(doc).toMatchObject({ offset: '1', key: null, error: { name: PoisonRecordError.name } });
  });

  it('does zero reads on a warm container: one snapshot PUT and one conditional write per task-epoch', async () => {
    const counts = { s3: new Map<string, number>(), ddb: new Map<string, number>() };
    const p = pipeline(counts);
    const c = p.container({ config: S3_ONLY });
    await c(mskEvent([...stream(10, 'orders', 0), ...stream(10, 'orders', 1)]), lambdaContext());
    counts.s3.clear();
    counts.ddb.clear();
    for (let i = 1; i <= 3; i++) {
      await c(
        mskEvent([...stream(10, 'orders', 0, i * 10), ...stream(10, 'orders', 1, i * 10)]),
        lambdaContext(),
      );
    }
    // Older snapshots leaving the retention window are deleted after the commits: one DeleteObjects
    // for all tasks of the invocation (here only the last invocation drops a checkpoint).
    expect(Object.fromEntries(counts.s3)).toEqual({ PutObjectCommand: 6, DeleteObjectsCommand: 1 });
    expect(Object.fromEntries(counts.ddb)).toEqual({ PutItemCommand: 6 });
  });

  it('does one request per task-epoch with inline snapshots: the conditional write, nothing in S3', async () => {
    const counts = { s3: new Map<string, number>(), ddb: new Map<string, number>() };
    const p = pipeline(counts);
    const c = p.container();
    for (let i = 0; i <= 3; i++) {
      await c(
        mskEvent([...stream(10, 'orders', 0, i * 10), ...stream(10, 'orders', 1, i * 10)]),
        lambdaContext(),
      );
    }
    expect(Object.fromEntries(counts.s3)).toEqual({});
    // The first invocation reads each task's (absent) commit item.
    expect(Object.fromEntries(counts.ddb)).toEqual({ GetItemCommand: 2, PutItemCommand: 8 });
    // The inline links come back from DynamoDB: a cold container restores and goes on exactly.
    expect(await p.container()(mskEvent(stream(50, 'orders', 0)), lambdaContext())).toMatchObject({
      applied: 10,
      duplicatesSkipped: 40,
    });
    const r = await p.inspect();
    expect(r.epoch).toBe(5);
    expectBalances(r.state, stream(50, 'orders', 0));
    expectBalances((await p.inspect('orders', 1)).state, stream(40, 'orders', 1));
  });

  it('makes a zombie lose before its commit with inline snapshots, leaving nothing behind', async () => {
    const p = pipeline();
    const records = stream(12);
    const pause = gate();
    const reached = gate();
    let paused = false;
    p.commits.beforeCommit = async () => {
      if (paused) return;
      paused = true;
      reached.open();
      await pause.wait;
    };
    const zombie = p.container()(mskEvent(records), lambdaContext());
    await reached.wait;
    await p.container()(mskEvent(records), lambdaContext());
    pause.open();
    expect((await zombie).commitConflicts).toBe(1);
    const keys: string[] = [];
    for await (const o of p.snapshots.list(`tidemark/${p.id}/`)) keys.push(o.key);
    expect(keys).toEqual([]);
    const r = await p.inspect();
    expect(r.epoch).toBe(1);
    expectBalances(r.state, records);
  });

  it('applies tombstones as deletions', async () => {
    const p = pipeline();
    await p.container()(
      mskEvent([
        deposit('orders', 0, 0, 'a', 1),
        deposit('orders', 0, 1, 'b', 1),
        { topic: 'orders', partition: 0, offset: 2, key: 'a', value: null },
      ]),
      lambdaContext(),
    );
    expect((await p.inspect()).state).toEqual({ account: { b: { balance: 1, count: 1 } } });
  });

  it('keeps offsets beyond 2^53 exact end to end', async () => {
    const p = pipeline();
    const base = 2n ** 53n + 1n;
    const records = [0n, 2n, 3n].map((d) => deposit('orders', 0, base + d, 'a', 1));
    await p.container()(mskEvent(records), lambdaContext());
    expect((await p.inspect()).committedOffset).toBe((base + 4n).toString());
    expect(await p.container()(mskEvent(records), lambdaContext())).toMatchObject({ duplicatesSkipped: 3 });
  });
});
