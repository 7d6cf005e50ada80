import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { ConfigurationError } from '../../lib/errors.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createAwsStores } from '../../lib/store/stores.ts';

describe('createKafkaHandler', () => {
  it('fails at cold start naming a missing setting', () => {
    const env = { ...process.env };
    delete env.TIDEMARK_BUCKET;
    expect(() => createKafkaHandler(balances, { env })).toThrow(ConfigurationError);
    expect(() => createKafkaHandler(balances, { env })).toThrow(/TIDEMARK_BUCKET/);
  });

  it('uses the processor defaults unless the environment says otherwise', () => {
    const h = createKafkaHandler(balances, { telemetry: false });
    expect(h.runtime.config).toMatchObject({
      pipeline: 'balances',
      poisonPolicy: 'quarantine',
      bucket: process.env.TIDEMARK_BUCKET,
    });
    const other = createKafkaHandler(balances, {
      env: { ...process.env, TIDEMARK_PIPELINE: 'x', TIDEMARK_POISON_POLICY: 'fail' },
      telemetry: false,
    });
    expect(other.runtime.config).toMatchObject({ pipeline: 'x', poisonPolicy: 'fail' });
  });

  it('functions/balances.ts is a working Lambda handler configured from the environment', async () => {
    const pipeline = `fn-${randomUUID().slice(0, 8)}`;
    process.env.TIDEMARK_PIPELINE = pipeline;
    try {
      const { handler } = await import('../../functions/balances.ts');
      const summary = await handler(mskEvent([deposit('orders', 0, 0, 'acct', 4)], 'SelfManagedKafka'), {
        ...lambdaContext(),
        functionName: 'balances',
      });
      expect(summary).toMatchObject({ applied: 1, epochsCommitted: 1 });
      const r = await inspectTask(
        createAwsStores({ bucket: process.env.TIDEMARK_BUCKET!, table: process.env.TIDEMARK_TABLE! }),
        {
          pipeline,
          topic: 'orders',
          partition: 0,
        },
      );
      expect(r.state).toEqual({ account: { acct: { balance: 4, count: 1 } } });
    } finally {
      delete process.env.TIDEMARK_PIPELINE;
    }
  });
});
