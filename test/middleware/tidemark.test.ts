import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { BatchFailedError, MalformedEventError } from '../../lib/errors.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { tidemark } from '../../lib/middleware/tidemark.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

const options = () => ({
  stores: { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() },
  telemetry: false,
});

describe('tidemark middy middleware', () => {
  it('gives the same results as the plain wrapper, and every other after middleware still runs', async () => {
    const events = [
      mskEvent([deposit('orders', 0, 0, 'a', 1), deposit('orders', 1, 0, 'b', 2)]),
      mskEvent([deposit('orders', 0, 0, 'a', 1), deposit('orders', 0, 1, 'a', 3)]),
      mskEvent([{ topic: 'orders', partition: 0, offset: 2, key: null, value: 'x' }]),
    ];
    const plain = createKafkaHandler(balances, options());
    const seen: string[] = [];
    const viaMiddy = middy<unknown, unknown, Error, Context>()
      .use({ after: async () => void seen.push('outer after') })
      .use(tidemark(balances, options()));
    for (const e of events) {
      const context = { ...lambdaContext(), functionName: 'f' } as unknown as Context;
      expect(await viaMiddy(e, context)).toEqual(await plain(e, context));
    }
    expect(seen).toHaveLength(3);
  });

  it('lets errors reach the onError chain with their types', async () => {
    const errors: unknown[] = [];
    const store = options();
    store.stores.commits.commit = async () => {
      throw new Error('boom');
    };
    const h = middy<unknown, unknown, Error, Context>()
      .use({ onError: async (req) => void errors.push(req.error) })
      .use(tidemark(balances, store));
    const context = lambdaContext() as unknown as Context;
    await expect(h({ nope: true }, context)).rejects.toBeInstanceOf(MalformedEventError);
    await expect(h(mskEvent([deposit('orders', 0, 0, 'a', 1)]), context)).rejects.toBeInstanceOf(
      BatchFailedError,
    );
    expect(errors.map((e) => (e as Error).name)).toEqual(['MalformedEventError', 'BatchFailedError']);
  });

  it('adds a partial batch response to what the base handler returns, and fails when it cannot', async () => {
    const failing = () => {
      const o = { ...options(), config: { reportBatchItemFailures: true } };
      const commit = o.stores.commits.commit.bind(o.stores.commits);
      o.stores.commits.commit = async (next, expected, attached) => {
        if (next.partition === 1) throw new Error('boom');
        return commit(next, expected, attached);
      };
      return o;
    };
    const event = mskEvent([deposit('orders', 0, 0, 'a', 1), deposit('orders', 1, 7, 'b', 2)]);
    const context = lambdaContext() as unknown as Context;
    const items = [{ itemIdentifier: { partition: 'orders-1', offset: 7 } }];
    const own = middy<unknown, unknown, Error, Context>()
      .use(tidemark(balances, failing()))
      .handler(async () => ({ mine: true, batchItemFailures: [] }));
    expect(await own(event, context)).toEqual({ mine: true, batchItemFailures: items });
    const none = middy<unknown, unknown, Error, Context>().use(tidemark(balances, failing()));
    expect(await none(event, context)).toMatchObject({ batchItemFailures: items });
    const text = middy<unknown, unknown, Error, Context>()
      .use(tidemark(balances, failing()))
      .handler(async () => 'done');
    await expect(text(event, context)).rejects.toBeInstanceOf(BatchFailedError);
  });
});
