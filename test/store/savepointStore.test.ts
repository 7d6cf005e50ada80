import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { SavepointMeta, SavepointStore, SavepointTask } from '../../lib/checkpoint/savepoints.ts';
import type { SnapshotStore } from '../../lib/checkpoint/stores.ts';
import { OperationError } from '../../lib/errors.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { DynamoSavepointStore } from '../../lib/store/dynamodb/DynamoSavepointStore.ts';
import { MemorySavepointStore } from '../../lib/store/memory/MemorySavepointStore.ts';
import { MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';
import { S3SnapshotStore } from '../../lib/store/s3/S3SnapshotStore.ts';

const ddb = createDynamoDBClient();
const s3 = createS3Client();
afterAll(() => {
  ddb.destroy();
  s3.destroy();
});

function meta(pipeline: string, name: string, extra: Partial<SavepointMeta> = {}): SavepointMeta {
  return {
    pipeline,
    name,
    status: 'creating',
    createdAt: '2026-01-02T03:04:05.000Z',
    completedAt: null,
    topics: { 'orders.v1-eu': 12, payments: 1 },
    layoutSource: 'kafka',
    tasks: 0,
    bytes: 0,
    ...extra,
  };
}

function task(
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
            {
              key: `sp/${partition}/b.delta`,
              bytes: 5,
              checksum: 'deadbeef',
              kind: 'delta',
              epoch: 41,
              entries: 1,
            },
          ],
    sourceUpdatedAt: offset === null ? null : '2026-01-02T03:00:00.000Z',
    applied: 7,
    quarantined: 1,
  };
}

const stores: Array<[string, () => SavepointStore]> = [
  [
    'DynamoSavepointStore (DynamoDB Local)',
    () => new DynamoSavepointStore({ client: ddb, table: process.env.TIDEMARK_TABLE! }),
  ],
  ['MemorySavepointStore', () => new MemorySavepointStore()],
];

describe.each(stores)('%s', (_name, make) => {
  it('creates a savepoint once per name, stores its tasks and reads them back ordered', async () => {
    const store = make();
    const pipeline = `p-${randomUUID().slice(0, 8)}`;
    await store.create(meta(pipeline, 'sp'));
    await expect(store.create(meta(pipeline, 'sp'))).rejects.toBeInstanceOf(OperationError);
    // Same name in another pipeline, and a name that extends this one, are different savepoints.
    await store.create(meta(`${pipeline}x`, 'sp'));
    await store.create(meta(pipeline, 'sp2'));
    const big = 2n ** 63n - 1n;
    await store.putTask(task(pipeline, 'sp', 'payments', 0, null));
    await store.putTask(task(pipeline, 'sp', 'orders.v1-eu', 10, big));
    await store.putTask(task(pipeline, 'sp', 'orders.v1-eu', 2, 5n));
    const complete = meta(pipeline, 'sp', {
      status: 'complete',
      completedAt: '2026-01-02T03:05:00.000Z',
      tasks: 3,
      bytes: 30,
    });
    await store.updateMeta(complete);
    const sp = (await store.read(pipeline, 'sp'))!;
    expect(sp.meta).toEqual(complete);
    expect(sp.tasks).toEqual([
      task(pipeline, 'sp', 'orders.v1-eu', 2, 5n),
      task(pipeline, 'sp', 'orders.v1-eu', 10, big),
      task(pipeline, 'sp', 'payments', 0, null),
    ]);
    expect(await store.read(pipeline, 'nope')).toBeUndefined();
    const names = [];
    for await (const m of store.list(pipeline)) names.push(m.name);
    expect(names.sort()).toEqual(['sp', 'sp2']);

    await store.delete(pipeline, 'sp');
    expect(await store.read(pipeline, 'sp')).toBeUndefined();
    expect((await store.read(pipeline, 'sp2'))?.meta.name).toBe('sp2');
    expect((await store.read(`${pipeline}x`, 'sp'))?.meta.name).toBe('sp');
  });

  it('deletes savepoints with more tasks than one batch write holds', async () => {
    const store = make();
    const pipeline = `p-${randomUUID().slice(0, 8)}`;
    await store.create(meta(pipeline, 'many'));
    for (let p = 0; p < 60; p++) await store.putTask(task(pipeline, 'many', 't', p, BigInt(p)));
    expect((await store.read(pipeline, 'many'))!.tasks).toHaveLength(60);
    await store.delete(pipeline, 'many');
    expect(await store.read(pipeline, 'many')).toBeUndefined();
  });
});

const snapshotStores: Array<[string, () => SnapshotStore]> = [
  [
    'S3SnapshotStore (S3 server)',
    () => new S3SnapshotStore({ client: s3, bucket: process.env.TIDEMARK_BUCKET! }),
  ],
  ['MemorySnapshotStore', () => new MemorySnapshotStore()],
];

describe.each(snapshotStores)('%s copy', (_name, make) => {
  it('copies an object byte for byte, and reports a missing source', async () => {
    const store = make();
    const p = `test/${randomUUID()}/`;
    const body = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
    await store.put(`${p}tasks/a.snap`, body);
    expect(await store.copy!(`${p}tasks/a.snap`, `${p}savepoints/x/a.snap`)).toBe(true);
    expect(Buffer.from((await store.get(`${p}savepoints/x/a.snap`))!)).toEqual(body);
    expect(await store.copy!(`${p}tasks/missing.snap`, `${p}savepoints/x/b.snap`)).toBe(false);
    expect(await store.get(`${p}savepoints/x/b.snap`)).toBeUndefined();
  });
});
