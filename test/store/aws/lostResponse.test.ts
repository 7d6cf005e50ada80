/**
 * The lightweight DynamoDB client through the fault proxy in front of DynamoDB Local: a commit whose
 * response is lost (the write happened, the connection resets) is sent again by the transport's
 * retry, which meets its own commit; the store reports the winner, and the winner's attempt id is the
 * writer's own, which is how the engine recognises a commit it made itself (docs/reliability.md).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  FAULT_HEADER,
  type FaultProxy,
  type NetFault,
  startFaultProxy,
} from '../../../harness/campaign/proxy.ts';
import type { CommitRecord } from '../../../lib/checkpoint/stores.ts';
import { CommitConflictError, StoreError } from '../../../lib/errors.ts';
import { DynamoCommitStore } from '../../../lib/store/dynamodb/DynamoCommitStore.ts';
import { dynamoLite } from '../../helpers/liteClients.ts';

let proxy: FaultProxy;
beforeAll(async () => {
  const target = new URL(process.env.AWS_ENDPOINT_URL_DYNAMODB ?? process.env.AWS_ENDPOINT_URL!);
  proxy = await startFaultProxy({ host: target.hostname, port: Number(target.port) });
});
afterAll(() => proxy.close());

/** A store whose first attempt of each listed operation gets the given fault. */
function faultyStore(faults: Partial<Record<string, NetFault>>, timeouts = {}) {
  const client = dynamoLite(
    { ...process.env, AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint },
    {
      onRequest: (operation, attempt) => {
        const fault = attempt === 1 ? faults[operation] : undefined;
        return fault ? { [FAULT_HEADER]: fault } : undefined;
      },
      timeouts,
    },
  );
  return new DynamoCommitStore({ client, table: process.env.TIDEMARK_TABLE! });
}

function commit(pipeline: string, epoch: number, attempt: string): CommitRecord {
  return {
    pipeline,
    topic: 'orders',
    partition: 0,
    epoch,
    committedOffset: BigInt(epoch * 10),
    chain: [{ key: `k/${epoch}`, bytes: 1, checksum: 'c', kind: 'full', epoch, entries: 1 }],
    updatedAt: new Date(0).toISOString(),
    quarantined: 0,
    applied: epoch,
    attempt,
    history: [],
  };
}

it('recognises its own commit after a lost response', async () => {
  const p = `lost-${randomUUID()}`;
  const before = proxy.broken['reset-response'];
  const err = await faultyStore({ PutItem: 'reset-response' })
    .commit(commit(p, 1, 'mine'), 0)
    .catch((e: unknown) => e);
  expect(proxy.broken['reset-response']).toBe(before + 1);
  expect(err).toBeInstanceOf(CommitConflictError);
  expect((err as CommitConflictError).current).toEqual(commit(p, 1, 'mine'));
});

it('commits once when the request was reset before the server saw it', async () => {
  const p = `lost-${randomUUID()}`;
  const store = faultyStore({ PutItem: 'reset-request' });
  await store.commit(commit(p, 1, 'mine'), 0);
  expect(await store.read({ pipeline: p, topic: 'orders', partition: 0 })).toEqual(commit(p, 1, 'mine'));
});

it('times out a stalled read and succeeds on the retry', async () => {
  const p = `lost-${randomUUID()}`;
  await faultyStore({}).commit(commit(p, 1, 'mine'), 0);
  const store = faultyStore({ GetItem: 'stall' }, { requestTimeout: 300, socketTimeout: 300 });
  expect(await store.read({ pipeline: p, topic: 'orders', partition: 0 })).toEqual(commit(p, 1, 'mine'));
  expect(proxy.broken.stall).toBeGreaterThan(0);
});

it('reports a read stalled on every attempt as a retriable StoreError', async () => {
  const always = new DynamoCommitStore({
    client: dynamoLite(
      { ...process.env, AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint },
      {
        onRequest: () => ({ [FAULT_HEADER]: 'stall' }),
        timeouts: { requestTimeout: 200, socketTimeout: 200 },
      },
    ),
    table: process.env.TIDEMARK_TABLE!,
  });
  const err = await always.read({ pipeline: 'p', topic: 'orders', partition: 0 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(StoreError);
  expect((err as StoreError).retriable).toBe(true);
});
