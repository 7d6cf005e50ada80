import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommitRecord } from '../../lib/checkpoint/stores.ts';
import { CommitConflictError, StoreError, StoreMissingError } from '../../lib/errors.ts';
import { createDynamoDBClient } from '../../lib/store/clients.ts';
import { DynamoCommitStore } from '../../lib/store/dynamodb/DynamoCommitStore.ts';
import { dynamoLite } from '../helpers/liteClients.ts';

const client = createDynamoDBClient();

afterAll(() => client.destroy());

function record(
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
    topic: 'orders.v1-eu',
    partition: 7,
    epoch,
    committedOffset: offset,
    chain: [ref],
    updatedAt: new Date(0).toISOString(),
    quarantined: 1,
    applied: epoch * 10,
    attempt: `a${epoch}`,
    history:
      epoch > 1
        ? [
            {
              epoch: epoch - 1,
              committedOffset: offset - 1n,
              chain: [{ ...ref, key: `k/${epoch - 1}`, epoch: epoch - 1 }],
              updatedAt: 'x',
            },
          ]
        : [],
    ...extra,
  };
}

/** The store on both of its clients: the AWS SDK, and the lightweight transport the handler uses. */
const CLIENTS = [
  ['SDK', () => client, (env: Record<string, string | undefined>) => createDynamoDBClient(env)],
  ['lightweight client', () => dynamoLite(), (env: Record<string, string | undefined>) => dynamoLite(env)],
] as const;

describe.each(CLIENTS)('DynamoCommitStore (DynamoDB Local, %s)', (_name, current, at) => {
  const store = new DynamoCommitStore({ client: current(), table: process.env.TIDEMARK_TABLE! });

  it('creates epoch 1 only when no item exists, then advances only from the expected epoch', async () => {
    const p = `p-${randomUUID()}`;
    const task = { pipeline: p, topic: 'orders.v1-eu', partition: 7 };
    expect(await store.read(task)).toBeUndefined();
    const big = 2n ** 62n + 3n;
    await store.commit(record(p, 1, big), 0);
    expect(await store.read(task)).toEqual(record(p, 1, big));
    const again = await store.commit(record(p, 1, big), 0).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(CommitConflictError);
    expect((again as CommitConflictError).current).toEqual(record(p, 1, big));
    await store.commit(record(p, 2, big + 5n), 1);
    const stale = await store.commit(record(p, 2, big + 9n), 1).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(CommitConflictError);
    // The winner comes back with the failed write (ALL_OLD): no extra read needed.
    expect((stale as CommitConflictError).current).toEqual(record(p, 2, big + 5n));
    expect((await store.read(task))!.committedOffset).toBe(big + 5n);
  });

  it('lets exactly one of 16 racing writers win each epoch', async () => {
    const p = `p-${randomUUID()}`;
    let wins = 0;
    let conflicts = 0;
    for (let epoch = 1; epoch <= 5; epoch++) {
      const results = await Promise.allSettled(
        Array.from({ length: 16 }, (_, w) =>
          store.commit(record(p, epoch, BigInt(epoch * 100 + w)), epoch - 1),
        ),
      );
      wins += results.filter((r) => r.status === 'fulfilled').length;
      conflicts += results.filter(
        (r) => r.status === 'rejected' && r.reason instanceof CommitConflictError,
      ).length;
    }
    expect(wins).toBe(5);
    expect(conflicts).toBe(75);
  });

  it('lists the commit items of one pipeline only', async () => {
    const p = `p-${randomUUID()}`;
    await store.commit({ ...record(p, 1, 1n), partition: 0 }, 0);
    await store.commit({ ...record(p, 1, 1n), partition: 1 }, 0);
    await store.commit(record(`${p}-other`, 1, 1n), 0);
    const items: CommitRecord[] = [];
    for await (const c of store.list(p)) items.push(c);
    expect(items.map((c) => c.partition).sort()).toEqual([0, 1]);
  });

  it('reports a missing table as StoreMissingError, not retriable', async () => {
    const missing = new DynamoCommitStore({ client: current(), table: `no-such-table-${Date.now()}` });
    const err = await missing.read({ pipeline: 'p', topic: 't', partition: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreMissingError);
    expect((err as StoreError).retriable).toBe(false);
    await expect(missing.probe()).rejects.toBeInstanceOf(StoreMissingError);
  });

  it('reports an unreachable server as a retriable StoreError', async () => {
    const dead = new DynamoCommitStore({
      client: at({ ...process.env, AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:9' }),
      table: 't',
    });
    const err = await dead.read({ pipeline: 'p', topic: 't', partition: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).retriable).toBe(true);
  });

  it('round-trips binary attributes: inline snapshots and an inline outbox', async () => {
    const p = `p-${randomUUID()}`;
    const bytes = new Uint8Array(2048).map((_, i) => (i * 31) & 0xff);
    const base = record(p, 1, 10n);
    const inline: CommitRecord = {
      ...base,
      chain: [{ ...base.chain[0]!, inline: bytes }],
      outbox: { epoch: 1, count: 2, bytes: 3, checksum: 'c0ffee', inline: bytes.subarray(5, 9) },
    };
    await store.commit(inline, 0);
    const back = await store.read({ pipeline: p, topic: 'orders.v1-eu', partition: 7 });
    expect(back).toEqual(inline);
    expect(back!.chain[0]!.inline).toBeInstanceOf(Uint8Array);
  });

  it('commits with attached writes in one transaction, and names a conflict or a failed output', async () => {
    const p = `p-${randomUUID()}`;
    const table = process.env.TIDEMARK_TABLE!;
    const output = (sk: string, condition?: string) => ({
      Put: {
        TableName: table,
        Item: { pk: { S: `${p}#out` }, sk: { S: sk }, v: { B: new Uint8Array([1, 2, 3]) } },
        ...(condition ? { ConditionExpression: condition } : {}),
      },
    });
    await store.commit(record(p, 1, 1n), 0, { store: 'dynamodb', writes: [output('a')] });
    const conflict = await store
      // another attempt (the transaction's token is derived from task, epoch and attempt)
      .commit({ ...record(p, 1, 2n), attempt: 'other' }, 0, { store: 'dynamodb', writes: [output('b')] })
      .catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(CommitConflictError);
    expect((conflict as CommitConflictError).current).toEqual(record(p, 1, 1n));
    const failed = await store
      .commit(record(p, 2, 3n), 1, {
        store: 'dynamodb',
        writes: [output('a', 'attribute_not_exists(pk)')],
      })
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(StoreError);
    expect(failed).not.toBeInstanceOf(CommitConflictError);
    expect((failed as StoreError).retriable).toBe(false);
    expect((failed as Error).message).toMatch(/action 1: ConditionalCheckFailed/);
    expect((await store.read({ pipeline: p, topic: 'orders.v1-eu', partition: 7 }))!.epoch).toBe(1);
  });
});

describe('commit item encoding', () => {
  it('round-trips references shared between chains and keeps a typical item within one write unit', async () => {
    const { commitToItem, itemToCommit } = await import('../../lib/store/dynamodb/DynamoCommitStore.ts');
    const { itemSize } = await import('../../bench/itemSize.ts');
    const dir = 'tidemark/balances/tasks/orders.eu-west/12/';
    const ref = (epoch: number, kind: 'full' | 'delta') => ({
      key: `${dir}${String(epoch).padStart(12, '0')}-${'ab12cd34ef56'}.${kind === 'full' ? 'snap' : 'delta'}`,
      bytes: 1000 + epoch,
      checksum: 'deadbeef',
      kind,
      epoch,
      entries: 100 + epoch,
    });
    const chain = [ref(10, 'full'), ...[11, 12, 13, 14, 15].map((e) => ref(e, 'delta'))];
    const commit: CommitRecord = {
      pipeline: 'balances',
      topic: 'orders.eu-west',
      partition: 12,
      epoch: 15,
      committedOffset: 2n ** 62n,
      chain,
      updatedAt: '2026-11-23T21:00:00.000Z',
      quarantined: 3,
      applied: 1_234_567,
      attempt: 'ab12cd34ef56',
      history: [
        { epoch: 14, committedOffset: 2n ** 62n - 10n, chain: chain.slice(0, 5), updatedAt: 'a' },
        { epoch: 13, committedOffset: 2n ** 62n - 20n, chain: chain.slice(0, 4), updatedAt: 'b' },
      ],
    };
    const item = commitToItem(commit);
    expect(itemToCommit(item)).toEqual(commit);
    expect(item.refs!.L).toHaveLength(6); // each object once
    expect(itemSize(item)).toBeLessThan(1024);
    // A reference outside the task's directory (never written by the engine) survives too.
    const odd = {
      ...commit,
      history: [{ ...commit.history[0]!, chain: [{ ...chain[0]!, key: 'elsewhere/x.snap' }] }],
    };
    expect(itemToCommit(commitToItem(odd))).toEqual(odd);
  });
});
