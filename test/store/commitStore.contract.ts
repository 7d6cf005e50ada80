/**
 * The one contract every `CommitStore` and `SavepointStore` meets (run by commitStores.test.ts against
 * memory, DynamoDB Local, PostgreSQL, MariaDB and Redis): compare-and-set on the epoch, the winner
 * returned on a conflict, exactly one winner among racers, history and int64 offsets kept exactly,
 * listing, savepoints, the operator commands on top (rollback, savepoint, export/bootstrap, status),
 * and, for the database stores, probes and reconnection after the server drops the connection.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import type { SavepointMeta, SavepointStore, SavepointTask } from '../../lib/checkpoint/savepoints.ts';
import type { CommitRecord, CommitStore } from '../../lib/checkpoint/stores.ts';
import { CommitConflictError, OperationError, StoreError, StoreMissingError } from '../../lib/errors.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { bootstrapState } from '../../lib/ops/bootstrap.ts';
import { listCheckpoints, rollbackTask } from '../../lib/ops/checkpoints.ts';
import { exportState } from '../../lib/ops/exportState.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createSavepoint, deleteSavepoint, listSavepoints } from '../../lib/ops/savepoints.ts';
import { pipelineStatus } from '../../lib/ops/status.ts';
import { MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

export interface ContractBackend {
  readonly commits: CommitStore;
  readonly savepoints: SavepointStore;
  /** The stores keep the record as a JSON document: fields added to `CommitRecord` later go through. */
  readonly document?: boolean;
  /** Stores on the same server whose tables do not exist (`StoreMissingError`). */
  missing?(): { commits: CommitStore; close(): Promise<void> };
  /** Stores pointed at a port nobody listens on (retriable `StoreError`). */
  unreachable?(): { commits: CommitStore; close(): Promise<void> };
  /** Makes the server drop every connection of `commits` (as after a restart, or a frozen container's idle reaping). */
  dropConnections?(): Promise<void>;
  /**
   * Makes the commit that `start` starts hang on the server (a row lock, a paused client), drops its
   * connection while it waits, then lets the server go on: the outcome of that commit is unknown to
   * the store when its connection dies. Returns what the commit returned.
   */
  interruptCommit?<T>(start: () => Promise<T>): Promise<T>;
}

const TOPIC = 'orders.v1-eu';

export function record(
  pipeline: string,
  epoch: number,
  offset: bigint,
  extra: Partial<CommitRecord> = {},
): CommitRecord {
  const ref = {
    key: `k/${epoch}`,
    bytes: 100 + epoch,
    checksum: 'deadbeef',
    kind: 'full' as const,
    epoch,
    entries: 3,
  };
  return {
    pipeline,
    topic: TOPIC,
    partition: 7,
    epoch,
    committedOffset: offset,
    chain: [ref],
    updatedAt: new Date(epoch * 1000).toISOString(),
    quarantined: 1,
    applied: epoch * 10,
    attempt: `a${epoch}`,
    history:
      epoch > 1
        ? [
            {
              epoch: epoch - 1,
              committedOffset: offset - 1n,
              chain: [{ ...ref, key: `k/${epoch - 1}`, epoch: epoch - 1, kind: 'delta' as const }, ref],
              updatedAt: 'x',
            },
          ]
        : [],
    ...extra,
  };
}

function conflictOf(err: unknown): CommitConflictError {
  expect(err).toBeInstanceOf(CommitConflictError);
  return err as CommitConflictError;
}

function savepointMeta(pipeline: string, name: string, extra: Partial<SavepointMeta> = {}): SavepointMeta {
  return {
    pipeline,
    name,
    status: 'creating',
    createdAt: '2026-01-02T03:04:05.000Z',
    completedAt: null,
    topics: { [TOPIC]: 12, payments: 1 },
    layoutSource: 'kafka',
    tasks: 0,
    bytes: 0,
    ...extra,
  };
}

function savepointTask(
  pipeline: string,
  name: string,
  topic: string,
  partition: number,
  offset: bigint | null,
): SavepointTask {
  return {
    pipeline,
    name,
    topic,
    partition,
    status: offset === null ? 'not-started' : 'committed',
    epoch: offset === null ? 0 : 41,
    committedOffset: offset,
    chain:
      offset === null
        ? []
        : [
            {
              key: `sp/${partition}/a.snap`,
              bytes: 10,
              checksum: '0badf00d',
              kind: 'full',
              epoch: 40,
              entries: 3,
            },
          ],
    sourceUpdatedAt: offset === null ? null : '2026-01-02T03:00:00.000Z',
    applied: 7,
    quarantined: 1,
  };
}

/** A Kafka ESM event of deposits to the balances example (offsets as given). */
function depositEvent(topic: string, partition: number, deposits: Array<[bigint, string, number]>) {
  return {
    eventSource: 'aws:kafka',
    eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/test/abc',
    bootstrapServers: 'b-1:9092',
    records: {
      [`${topic}-${partition}`]: deposits.map(([offset, account, amount]) => ({
        topic,
        partition,
        offset: offset.toString(),
        timestamp: 1_700_000_000_000,
        timestampType: 'CREATE_TIME',
        key: Buffer.from(account).toString('base64'),
        value: Buffer.from(JSON.stringify({ amount })).toString('base64'),
        headers: [],
      })),
    },
  };
}

const context = () => ({ awsRequestId: randomUUID(), getRemainingTimeInMillis: () => 60_000 });

export function commitStoreContract(name: string, make: () => ContractBackend): void {
  describe(`${name}: commit store contract`, () => {
    const backend = () => make();

    it('creates epoch 1 only when no item exists, then advances only from the expected epoch, returning the winner', async () => {
      const { commits } = backend();
      const p = `p-${randomUUID()}`;
      const task = { pipeline: p, topic: TOPIC, partition: 7 };
      expect(await commits.read(task)).toBeUndefined();
      const max = 2n ** 63n - 1n;
      await commits.commit(record(p, 1, max - 10n), 0);
      expect(await commits.read(task)).toEqual(record(p, 1, max - 10n));
      const again = conflictOf(
        await commits.commit(record(p, 1, 5n, { attempt: 'other' }), 0).catch((e: unknown) => e),
      );
      expect(again.current).toEqual(record(p, 1, max - 10n));
      await commits.commit(record(p, 2, max), 1);
      const stale = conflictOf(await commits.commit(record(p, 2, 9n), 1).catch((e: unknown) => e));
      expect(stale.current).toEqual(record(p, 2, max));
      const ahead = conflictOf(await commits.commit(record(p, 4, 9n), 3).catch((e: unknown) => e));
      expect(ahead.current).toEqual(record(p, 2, max));
      // Offsets above 2^53 come back exact, as bigints.
      const stored = (await commits.read(task))!;
      expect(stored.committedOffset).toBe(max);
      expect(stored.history[0]!.committedOffset).toBe(max - 1n);
    });

    it('keeps inline links exactly: their bytes, and one link shared by the current and retained chains', async () => {
      const { commits } = backend();
      const p = `p-${randomUUID()}`;
      const base = record(p, 3, 30n);
      const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
      const link = (epoch: number, fill: number) => ({
        key: `tidemark/${p}/tasks/${TOPIC}/7/${String(epoch).padStart(12, '0')}-a${epoch}.delta`,
        bytes: 700,
        checksum: '0badf00d',
        kind: 'delta' as const,
        epoch,
        entries: 2,
        inline: bytes(700, fill),
      });
      const [l2, l3] = [link(2, 0xa5), link(3, 0)];
      const item: CommitRecord = {
        ...base,
        chain: [base.chain[0]!, l2, l3],
        history: [{ epoch: 2, committedOffset: 20n, chain: [base.chain[0]!, l2], updatedAt: 'y' }],
      };
      await commits.commit(item, 0);
      const stored = (await commits.read(item))!;
      expect(stored).toEqual(item);
      expect(Buffer.from(stored.chain[1]!.inline!).equals(Buffer.from(l2.inline))).toBe(true);
      expect(stored.history[0]!.chain[1]!.inline).toEqual(l2.inline);
      expect(stored.chain[0]!.inline).toBeUndefined();
    });

    it('rewrites an item in place when the expected epoch is its own (same epoch, a changed field)', async () => {
      const { commits } = backend();
      const p = `p-${randomUUID()}`;
      await commits.commit(record(p, 1, 10n), 0);
      await commits.commit(record(p, 1, 10n, { applied: 99 }), 1);
      expect((await commits.read({ pipeline: p, topic: TOPIC, partition: 7 }))!.applied).toBe(99);
      conflictOf(await commits.commit(record(p, 1, 10n, { applied: 100 }), 0).catch((e: unknown) => e));
    });

    it('lets exactly one of 16 racing writers win each epoch; every loser gets the winner', async () => {
      const { commits } = backend();
      const p = `p-${randomUUID()}`;
      let current: CommitRecord | undefined;
      for (let epoch = 1; epoch <= 4; epoch++) {
        const candidates = Array.from({ length: 16 }, (_, w) =>
          record(p, epoch, BigInt(epoch * 100 + w), { attempt: `e${epoch}w${w}` }),
        );
        const results = await Promise.allSettled(candidates.map((c) => commits.commit(c, epoch - 1)));
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [candidates[i]!] : []));
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(conflictOf(r.reason).current).toEqual(won[0]);
        }
        current = await commits.read({ pipeline: p, topic: TOPIC, partition: 7 });
        expect(current).toEqual(won[0]);
      }
      expect(current?.epoch).toBe(4);
    });

    it('lists the commit items of one pipeline only', async () => {
      const { commits } = backend();
      const p = `p-${randomUUID()}`;
      await commits.commit({ ...record(p, 1, 1n), partition: 0 }, 0);
      await commits.commit({ ...record(p, 1, 1n), partition: 1 }, 0);
      await commits.commit({ ...record(p, 1, 1n), topic: 'payments' }, 0);
      await commits.commit(record(`${p}-other`, 1, 1n), 0);
      await commits.commit(record(`${p.slice(0, -1)}`, 1, 1n), 0);
      const items: CommitRecord[] = [];
      for await (const c of commits.list(p)) items.push(c);
      expect(items.map((c) => `${c.topic}-${c.partition}`).sort()).toEqual([
        `${TOPIC}-0`,
        `${TOPIC}-1`,
        'payments-7',
      ]);
      expect(items.find((c) => c.topic === 'payments')).toEqual({ ...record(p, 1, 1n), topic: 'payments' });
    });

    it('stores savepoints: a name once per pipeline, tasks ordered, delete', async () => {
      const { savepoints: store } = backend();
      const pipeline = `p-${randomUUID().slice(0, 8)}`;
      await store.create(savepointMeta(pipeline, 'sp'));
      await expect(store.create(savepointMeta(pipeline, 'sp'))).rejects.toBeInstanceOf(OperationError);
      await store.create(savepointMeta(`${pipeline}x`, 'sp'));
      await store.create(savepointMeta(pipeline, 'sp2'));
      const big = 2n ** 63n - 1n;
      await store.putTask(savepointTask(pipeline, 'sp', 'payments', 0, null));
      await store.putTask(savepointTask(pipeline, 'sp', TOPIC, 10, big));
      await store.putTask(savepointTask(pipeline, 'sp', TOPIC, 2, 5n));
      await store.putTask(savepointTask(pipeline, 'sp', TOPIC, 2, 6n)); // replaces
      const complete = savepointMeta(pipeline, 'sp', {
        status: 'complete',
        completedAt: '2026-01-02T03:05:00.000Z',
        tasks: 3,
        bytes: 30,
      });
      await store.updateMeta(complete);
      const sp = (await store.read(pipeline, 'sp'))!;
      expect(sp.meta).toEqual(complete);
      expect(sp.tasks).toEqual([
        savepointTask(pipeline, 'sp', TOPIC, 2, 6n),
        savepointTask(pipeline, 'sp', TOPIC, 10, big),
        savepointTask(pipeline, 'sp', 'payments', 0, null),
      ]);
      expect(await store.read(pipeline, 'nope')).toBeUndefined();
      const names: string[] = [];
      for await (const m of store.list(pipeline)) names.push(m.name);
      expect(names.sort()).toEqual(['sp', 'sp2']);
      await store.delete(pipeline, 'sp');
      expect(await store.read(pipeline, 'sp')).toBeUndefined();
      expect((await store.read(pipeline, 'sp2'))?.meta.name).toBe('sp2');
      expect((await store.read(`${pipeline}x`, 'sp'))?.meta.name).toBe('sp');
      await store.create(savepointMeta(pipeline, 'sp')); // the name is free again
    });

    it('carries the engine and the operator commands: checkpoints, rollback, savepoint, export, bootstrap, status', async () => {
      const { commits, savepoints } = backend();
      const snapshots = new MemorySnapshotStore();
      const pipeline = `ops-${randomUUID().slice(0, 8)}`;
      const env = { ...process.env, TIDEMARK_PIPELINE: pipeline, TIDEMARK_RETAINED_CHECKPOINTS: '3' };
      const handler = createKafkaHandler(balances, { env, stores: { snapshots, commits }, telemetry: false });
      const base = 2n ** 62n;
      await handler(
        depositEvent('orders', 0, [
          [base, 'alice', 5],
          [base + 1n, 'bob', 1],
        ]),
        context(),
      );
      await handler(depositEvent('orders', 0, [[base + 2n, 'alice', 7]]), context());
      await handler(
        depositEvent('orders', 0, [
          [base + 1n, 'bob', 1],
          [base + 3n, 'alice', 1],
        ]),
        context(),
      );
      const task = { pipeline, topic: 'orders', partition: 0 };
      const stores = { snapshots, commits, savepoints };
      expect((await inspectTask(stores, task)).state).toEqual({
        account: { alice: { balance: 13, count: 3 }, bob: { balance: 1, count: 1 } },
      });
      const listed = await listCheckpoints(commits, task);
      expect(listed.map((c) => [c.epoch, c.committedOffset])).toEqual([
        [3, String(base + 4n)],
        [2, String(base + 3n)],
        [1, String(base + 2n)],
      ]);

      await rollbackTask(stores, task, 2);
      const rolled = await inspectTask(stores, task);
      expect(rolled.epoch).toBe(4);
      expect(rolled.committedOffset).toBe(String(base + 3n));
      expect(rolled.state).toEqual({
        account: { alice: { balance: 12, count: 2 }, bob: { balance: 1, count: 1 } },
      });

      const meta = await createSavepoint(stores, { prefix: 'tidemark', pipeline, name: 'before' });
      expect(meta).toMatchObject({ status: 'complete', tasks: 1 });
      expect((await listSavepoints(savepoints, pipeline)).map((m) => m.name)).toEqual(['before']);

      const lines: string[] = [];
      const sink = new Writable({
        write(chunk, _enc, done) {
          lines.push(...String(chunk).split('\n').filter(Boolean));
          done();
        },
      });
      await exportState(stores, { pipeline, savepoint: 'before' }, sink);
      const copy = `${pipeline}-copy`;
      const fromExport = lines.map((l) => {
        const o = JSON.parse(l) as Record<string, unknown>;
        return JSON.stringify(o.pipeline === pipeline ? { ...o, pipeline: copy } : o);
      });
      async function* open() {
        yield* fromExport;
      }
      await bootstrapState(stores, open, { prefix: 'tidemark', pipeline: copy });
      const copied = await inspectTask(stores, { ...task, pipeline: copy });
      expect(copied).toMatchObject({ epoch: 1, committedOffset: String(base + 3n), state: rolled.state });

      const status = await pipelineStatus(stores, { pipeline });
      expect(status.tasks).toEqual([expect.objectContaining({ topic: 'orders', partition: 0, epoch: 4 })]);
      await deleteSavepoint(stores, { prefix: 'tidemark', pipeline, name: 'before' });
      expect(await listSavepoints(savepoints, pipeline)).toEqual([]);
    });

    it('keeps fields added to the commit item later (document stores), bytes and bigints included', async (ctx) => {
      const b = backend();
      if (!b.document) ctx.skip();
      const p = `p-${randomUUID()}`;
      const future = {
        ...record(p, 1, 3n),
        watermark: 2n ** 63n - 2n,
        outbox: { epoch: 1, count: 2, bytes: 3, checksum: '00000000', inline: new Uint8Array([0, 1, 255]) },
      } as CommitRecord;
      await b.commits.commit(future, 0);
      expect(await b.commits.read(future)).toEqual(future);
    });

    it('reports a missing schema as StoreMissingError (not retriable) and an unreachable server as a retriable StoreError', async (ctx) => {
      const b = backend();
      if (!b.missing || !b.unreachable) ctx.skip();
      const missing = b.missing!();
      try {
        const err = await missing.commits
          .read({ pipeline: 'p', topic: 't', partition: 0 })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StoreMissingError);
        expect((err as StoreError).retriable).toBe(false);
        await expect(missing.commits.probe()).rejects.toBeInstanceOf(StoreMissingError);
      } finally {
        await missing.close();
      }
      const dead = b.unreachable!();
      try {
        const err = await dead.commits
          .read({ pipeline: 'p', topic: 't', partition: 0 })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StoreError);
        expect(err).not.toBeInstanceOf(StoreMissingError);
        expect((err as StoreError).retriable).toBe(true);
        await expect(dead.commits.probe()).rejects.toBeInstanceOf(StoreError);
      } finally {
        await dead.close();
      }
    });

    it('reconnects after the server drops its connections (reads, commits, lists)', async (ctx) => {
      const b = backend();
      if (!b.dropConnections) ctx.skip();
      const p = `p-${randomUUID()}`;
      const task = { pipeline: p, topic: TOPIC, partition: 7 };
      await b.commits.commit(record(p, 1, 1n), 0);
      await b.dropConnections!();
      expect((await b.commits.read(task))?.epoch).toBe(1);
      await b.dropConnections!();
      await b.commits.commit(record(p, 2, 2n), 1);
      await b.dropConnections!();
      const all: CommitRecord[] = [];
      for await (const c of b.commits.list(p)) all.push(c);
      expect(all.map((c) => c.epoch)).toEqual([2]);
      await b.dropConnections!();
      await b.commits.probe();
    });

    it('resolves a commit whose connection died mid-flight by reading the item: applied once, never twice', async (ctx) => {
      const b = backend();
      if (!b.interruptCommit) ctx.skip();
      const p = `p-${randomUUID()}`;
      const task = { pipeline: p, topic: TOPIC, partition: 7 };
      await b.commits.commit(record(p, 1, 1n), 0);
      const mine = record(p, 2, 2n);
      await b.interruptCommit!(() => b.commits.commit(mine, 1));
      expect(await b.commits.read(task)).toEqual(mine);
      // The next epoch still needs epoch 2: nothing was applied twice.
      conflictOf(await b.commits.commit(record(p, 3, 3n), 1).catch((e: unknown) => e));
      await b.commits.commit(record(p, 3, 3n), 2);
    });
  });
}
