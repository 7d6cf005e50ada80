/**
 * The DynamoDB output sink on DynamoDB Local, driven directly: what it attaches to a commit, and its
 * post-commit delivery under crashes between chunks, lost responses, redeliveries, zombies and
 * racing containers. (The end-to-end contract through the epoch engine: dynamoOutputEngine.test.ts.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import { OutputDeliveryError } from '../../../lib/errors.ts';
import type { Delivery, OutputDescriptor, SinkEnvironment } from '../../../lib/output/types.ts';
import { DynamoOutputSink } from '../../../lib/sink/dynamodb/DynamoOutputSink.ts';
import { type DynamoWrite, dynamoOutput } from '../../../lib/sink/dynamodb/index.ts';
import { createDynamoDBClient } from '../../../lib/store/clients.ts';
import {
  crash,
  createOutputTable,
  deleteFence,
  type HookedClient,
  hookedClient,
  readTable,
  userAttributes,
} from './helpers.ts';

const ddb = createDynamoDBClient();
const clients: HookedClient[] = [];
afterAll(() => {
  ddb.destroy();
  for (const c of clients) c.client.destroy();
});

function container(hooks: HookedClient['hooks'] = {}): HookedClient {
  const c = hookedClient(hooks);
  clients.push(c);
  return c;
}

const newTask = (): TaskId => ({ pipeline: `p-${randomUUID().slice(0, 8)}`, topic: 'orders', partition: 2 });

/** An output of raw writes to `table` through `client`'s container. */
function output(
  table: string,
  c: HookedClient,
  extra: { inCommit?: boolean } = {},
): OutputDescriptor<DynamoWrite> {
  return dynamoOutput<DynamoWrite>({
    table,
    partitionKey: 'pk',
    write: (w) => w,
    client: c.client,
    ...extra,
  });
}

function sinkOf(c: HookedClient, task: TaskId, commitStore = 'memory'): DynamoOutputSink {
  const env: SinkEnvironment = { pipeline: task.pipeline, env: process.env, commitStore };
  return new DynamoOutputSink(env, { client: c.client });
}

/** A delivery of these writes (one output per entry of `parts`, sequence numbers in order). */
function deliveryOf(
  task: TaskId,
  epoch: number,
  parts: Array<{ out: OutputDescriptor<DynamoWrite>; writes: DynamoWrite[] }>,
): Delivery {
  let seq = 0;
  return {
    task,
    epoch,
    committedOffset: BigInt(epoch * 1000),
    parts: parts.map((p, i) => ({
      name: `out${i}`,
      descriptor: p.out as OutputDescriptor,
      entries: p.writes.map((w) => ({
        seq: seq++,
        entry: p.out.encode(w, { ...task, offset: 0n, key: null }),
      })),
    })),
  };
}

const puts = (n: number, value: (i: number) => number = (i) => i, prefix = 'k'): DynamoWrite[] =>
  Array.from({ length: n }, (_, i) => ({ put: { pk: `${prefix}${i}`, v: value(i) } }));

describe('attach: what commits with the epoch', () => {
  it('attaches an epoch that fits to a DynamoDB commit, merged one write per item, and nothing otherwise', async () => {
    const table = await createOutputTable(ddb);
    const c = container();
    const task = newTask();
    const out = output(table, c);
    const onDynamo = sinkOf(c, task, 'dynamodb');
    const fits = onDynamo.attach(deliveryOf(task, 1, [{ out, writes: puts(99) }]));
    expect(fits?.store).toBe('dynamodb');
    expect(fits?.writes).toHaveLength(99);
    // 150 writes of 10 items merge into 10.
    const merged = onDynamo.attach(
      deliveryOf(task, 1, [
        {
          out,
          writes: [
            ...puts(10),
            ...Array.from({ length: 140 }, (_, i) => ({ update: { pk: `k${i % 10}` }, set: { v: i } })),
          ],
        },
      ]),
    );
    expect(merged?.writes).toHaveLength(10);
    // Too many items, too many bytes, another commit store, or an output that opts out: after the commit.
    expect(onDynamo.attach(deliveryOf(task, 1, [{ out, writes: puts(100) }]))).toBeUndefined();
    const big = Array.from({ length: 9 }, (_, i) => ({ put: { pk: `b${i}`, v: 'x'.repeat(400_000) } }));
    expect(onDynamo.attach(deliveryOf(task, 1, [{ out, writes: big.slice(0, 8) }]))).toBeDefined();
    expect(onDynamo.attach(deliveryOf(task, 1, [{ out, writes: big }]))).toBeUndefined();
    expect(sinkOf(c, task, 'memory').attach(deliveryOf(task, 1, [{ out, writes: puts(3) }]))).toBeUndefined();
    const optOut = output(table, c, { inCommit: false });
    expect(onDynamo.attach(deliveryOf(task, 1, [{ out: optOut, writes: puts(3) }]))).toBeUndefined();
  });
});

describe('deliver: after the commit, in fenced transactions', () => {
  it('delivers an epoch in chunks of 100 actions, each chunk once across a crash between chunks and redeliveries', async () => {
    const table = await createOutputTable(ddb);
    const task = newTask();
    // Container A crashes right after its second transaction is applied.
    const a = container({ after: (n) => (n === 2 ? crash('after chunk 1') : undefined) });
    const writes = puts(250);
    await expect(
      sinkOf(a, task).deliver(deliveryOf(task, 1, [{ out: output(table, a), writes }])),
    ).rejects.toThrow(/simulated crash/);
    let t = await readTable(ddb, table);
    expect(t.items.size).toBe(198);
    expect(t.fences).toEqual([
      expect.objectContaining({ tidemarkEpoch: 1, tidemarkChunk: 1, tidemarkChunks: 3 }),
    ]);
    // Container B redelivers (after DynamoDB forgot the tokens): chunk 0 is refused by the fence
    // (already there), it skips to chunk 2.
    const b = container({ forgetTokens: true });
    await sinkOf(b, task).deliver(deliveryOf(task, 1, [{ out: output(table, b), writes }]));
    expect([b.transactions, b.refused]).toEqual([2, 1]);
    t = await readTable(ddb, table);
    expect(t.items.size).toBe(250);
    expect(t.items.get('k249')).toEqual({
      pk: 'k249',
      v: 249,
      tidemarkPipeline: task.pipeline,
      tidemarkTopic: 'orders',
      tidemarkPartition: 2,
      tidemarkEpoch: 1,
      tidemarkSeq: 249,
    });
    expect(t.fences).toEqual([
      expect.objectContaining({
        tidemarkEpoch: 1,
        tidemarkChunk: 2,
        tidemarkChunks: 3,
        tidemarkOffset: 1000,
      }),
    ]);
    // Once more, after the end: one refused transaction, nothing written.
    const again = container({ forgetTokens: true });
    await sinkOf(again, task).deliver(deliveryOf(task, 1, [{ out: output(table, again), writes }]));
    expect([again.transactions, again.refused]).toEqual([1, 1]);
    expect(await readTable(ddb, table)).toEqual(t);
    // Within the tokens' window, chunks already applied are answered by their token: nothing written either.
    const early = container();
    await sinkOf(early, task).deliver(deliveryOf(task, 1, [{ out: output(table, early), writes }]));
    expect(await readTable(ddb, table)).toEqual(t);
  });

  it('meets a lost response with the same request: the SDK retry (same token) and a redelivery both apply it once', async () => {
    const table = await createOutputTable(ddb);
    const task = newTask();
    // The SDK's first attempt is applied, its response lost; the SDK retries with the same token.
    const a = container({ loseFirstResponseOf: 1 });
    await sinkOf(a, task).deliver(deliveryOf(task, 1, [{ out: output(table, a), writes: puts(5) }]));
    expect([a.transactions, a.attempts, a.refused]).toEqual([1, 2, 0]);
    // A response lost for good: the delivery fails (retriable) and the retry finds it done.
    const b = container({
      after: () => Promise.reject(Object.assign(new Error('connection reset'), { name: 'ECONNRESET' })),
    });
    const failed = await sinkOf(b, task)
      .deliver(deliveryOf(task, 2, [{ out: output(table, b), writes: puts(5, (i) => i + 10) }]))
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(OutputDeliveryError);
    expect((failed as OutputDeliveryError).retriable).toBe(true);
    b.hooks.after = undefined;
    await sinkOf(b, task).deliver(
      deliveryOf(task, 2, [{ out: output(table, b), writes: puts(5, (i) => i + 10) }]),
    );
    const t = await readTable(ddb, table);
    expect([...t.items.values()].map(userAttributes)).toEqual(
      expect.arrayContaining(puts(5, (i) => i + 10).map((w) => (w as { put: object }).put)),
    );
    expect(t.fences[0]).toMatchObject({ tidemarkEpoch: 2, tidemarkChunk: 0 });
  });

  it('lets a zombie redelivering an older epoch write nothing: a put then a delete of one key stays deleted', async () => {
    const table = await createOutputTable(ddb);
    const task = newTask();
    const c = container();
    const out = output(table, c);
    const sink = sinkOf(c, task);
    const epoch1 = deliveryOf(task, 1, [
      { out, writes: [{ put: { pk: 'gone', v: 1 } }, { put: { pk: 'kept', v: 1 } }] },
    ]);
    await sink.deliver(epoch1);
    await sink.deliver(
      deliveryOf(task, 2, [
        { out, writes: [{ delete: { pk: 'gone' } }, { update: { pk: 'kept' }, set: { v: 2 } }] },
      ]),
    );
    const before = await readTable(ddb, table);
    expect([...before.items.keys()]).toEqual(['kept']);
    // The zombie (a container paused since epoch 1's delivery) wakes up and delivers epoch 1 again.
    const zombie = container({ forgetTokens: true });
    await sinkOf(zombie, task).deliver(
      deliveryOf(task, 1, [
        {
          out: output(table, zombie),
          writes: [{ put: { pk: 'gone', v: 1 } }, { put: { pk: 'kept', v: 1 } }],
        },
      ]),
    );
    expect([zombie.transactions, zombie.refused]).toEqual([1, 1]);
    expect(await readTable(ddb, table)).toEqual(before);
    // Without its fence (deleted by hand), the task's item versions still refuse the stale write,
    // atomically with the rest of the chunk: the deleted key is not resurrected either.
    await deleteFence(ddb, table, task);
    const error = await sinkOf(zombie, task)
      .deliver(
        deliveryOf(task, 1, [
          {
            out: output(table, zombie),
            writes: [{ put: { pk: 'gone', v: 1 } }, { put: { pk: 'kept', v: 1 } }],
          },
        ]),
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutputDeliveryError);
    expect((error as OutputDeliveryError).retriable).toBe(false);
    expect((error as Error).message).toMatch(/newer write of this task/);
    expect((await readTable(ddb, table)).items).toEqual(before.items);
  });

  it('lets a zombie paused mid-epoch resume after others delivered it: its remaining chunks write nothing', async () => {
    const table = await createOutputTable(ddb);
    const task = newTask();
    let resume = () => {};
    const paused = new Promise<void>((r) => (resume = r));
    let reachedChunk1 = () => {};
    const reached = new Promise<void>((r) => (reachedChunk1 = r));
    const zombie = container({
      forgetTokens: true,
      before: async (n) => {
        if (n === 2) {
          reachedChunk1();
          await paused;
        }
      },
    });
    const writes = puts(300, (i) => i);
    const zombieDelivery = sinkOf(zombie, task).deliver(
      deliveryOf(task, 1, [{ out: output(table, zombie), writes }]),
    );
    await reached;
    // Meanwhile another container delivers epoch 1, then epoch 2 overwrites every item.
    const live = container();
    await sinkOf(live, task).deliver(deliveryOf(task, 1, [{ out: output(table, live), writes }]));
    await sinkOf(live, task).deliver(
      deliveryOf(task, 2, [{ out: output(table, live), writes: puts(300, (i) => -i) }]),
    );
    const before = await readTable(ddb, table);
    resume();
    await zombieDelivery;
    // Its chunk 1 met a fence at epoch 2: it stopped there.
    expect([zombie.transactions, zombie.refused]).toEqual([2, 1]);
    expect(await readTable(ddb, table)).toEqual(before);
    expect(before.items.get('k299')).toMatchObject({ v: -299, tidemarkEpoch: 2 });
  });

  it('lets two containers racing on the same epochs apply each chunk once', async () => {
    const table = await createOutputTable(ddb);
    const task = newTask();
    const [x, y] = [container(), container()];
    for (let epoch = 1; epoch <= 3; epoch++) {
      const writes = puts(350, (i) => i * epoch);
      await Promise.all(
        [x, y].map((c) =>
          sinkOf(c, task).deliver(deliveryOf(task, epoch, [{ out: output(table, c), writes }])),
        ),
      );
      const t = await readTable(ddb, table);
      expect(t.items.size).toBe(350);
      expect([...t.items.values()].every((item) => item.v === Number(String(item.pk).slice(1)) * epoch)).toBe(
        true,
      );
      expect(t.fences).toEqual([expect.objectContaining({ tidemarkEpoch: epoch, tidemarkChunk: 3 })]);
    }
  });

  it('delivers to several tables in one transaction, with a fence in each', async () => {
    const [t1, t2] = await Promise.all([createOutputTable(ddb), createOutputTable(ddb)]);
    const task = newTask();
    const a = container({ after: (n) => (n === 1 ? crash('after chunk 0') : undefined) });
    const parts = (c: HookedClient) => [
      { out: output(t1, c), writes: puts(120, (i) => i, 'a') },
      { out: output(t2, c), writes: puts(120, (i) => i, 'b') },
    ];
    await expect(sinkOf(a, task).deliver(deliveryOf(task, 1, parts(a)))).rejects.toThrow(/simulated crash/);
    const b = container({ forgetTokens: true });
    await sinkOf(b, task).deliver(deliveryOf(task, 1, parts(b)));
    const [r1, r2] = await Promise.all([readTable(ddb, t1), readTable(ddb, t2)]);
    expect([r1.items.size, r2.items.size]).toEqual([120, 120]);
    // 240 writes and a fence per table touched: chunk 0 holds table 1 only, then both.
    expect(r1.fences[0]).toMatchObject({ tidemarkEpoch: 1, tidemarkChunks: 3 });
    expect(r2.fences[0]).toMatchObject({ tidemarkEpoch: 1, tidemarkChunk: 2, tidemarkChunks: 3 });
    expect([b.transactions, b.refused]).toEqual([3, 1]);
  });

  it('keeps its fence where the table has other key types', async () => {
    const numeric = await createOutputTable(ddb, {
      partition: { name: 'id', type: 'N' },
      sort: { name: 'at', type: 'B' },
    });
    const task = newTask();
    const c = container();
    const out = dynamoOutput<DynamoWrite>({
      table: numeric,
      partitionKey: { name: 'id', type: 'N' },
      sortKey: { name: 'at', type: 'B' },
      fenceKey: (t) => ({ id: -1 - t.partition, at: Buffer.from(t.pipeline) }),
      write: (w) => w,
      client: c.client,
    });
    const writes: DynamoWrite[] = Array.from({ length: 150 }, (_, i) => ({
      put: { id: i, at: Buffer.from([i % 3]), n: i },
    }));
    await sinkOf(c, task).deliver(deliveryOf(task, 1, [{ out, writes }]));
    await sinkOf(c, task).deliver(deliveryOf(task, 1, [{ out, writes }]));
    const t = await readTable(ddb, numeric, 'id');
    expect(t.items.size).toBe(151);
    expect(t.items.get('-3')).toMatchObject({ tidemarkEpoch: 1, tidemarkChunk: 1, tidemarkChunks: 2 });
  });

  it('fails without a table before the commit, whichever the commit store', async () => {
    const task = newTask();
    const c = container();
    const out = dynamoOutput<DynamoWrite>({
      table: { env: 'NO_SUCH_TABLE_VARIABLE' },
      partitionKey: 'pk',
      write: (w) => w,
      client: c.client,
    });
    for (const store of ['dynamodb', 'memory']) {
      const sink = sinkOf(c, task, store);
      expect(() => sink.attach(deliveryOf(task, 1, [{ out, writes: puts(1) }]))).toThrow(
        /NO_SUCH_TABLE_VARIABLE/,
      );
    }
    expect(c.transactions).toBe(0);
  });
});
