import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { tidemark } from '../helpers/cli.ts';

describe('npx tidemark', () => {
  it('init creates the bucket and the table, and succeeds again when they exist', async () => {
    const name = `init-${randomUUID().slice(0, 8)}`;
    const env = { TIDEMARK_BUCKET: name, TIDEMARK_TABLE: name };
    const first = await tidemark(['init'], env);
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toContain(`bucket ${name}: created`);
    expect(first.stdout).toContain(`table ${name}: created`);
    const second = await tidemark(['init'], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`table ${name}: exists`);
    expect(second.stdout).toContain(`bucket ${name}: exists`);
  });

  it('inspect --json prints the contract shape for a committed task', async () => {
    const pipeline = `cli-${randomUUID().slice(0, 8)}`;
    const h = createKafkaHandler(balances, {
      env: { ...process.env, TIDEMARK_PIPELINE: pipeline },
      telemetry: false,
    });
    await h(
      mskEvent([
        deposit('orders-eu', 3, 2n ** 53n + 10n, 'alice', 5),
        deposit('orders-eu', 3, 2n ** 53n + 11n, 'bob', -2),
        { topic: 'orders-eu', partition: 3, offset: 2n ** 53n + 12n, key: null, value: 'x' },
      ]),
      lambdaContext(),
    );
    const r = await tidemark([
      'inspect',
      '--pipeline',
      pipeline,
      '--topic',
      'orders-eu',
      '--partition',
      '3',
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      pipeline,
      topic: 'orders-eu',
      partition: 3,
      epoch: 1,
      committedOffset: (2n ** 53n + 13n).toString(),
      quarantined: 1,
      state: { account: { alice: { balance: 5, count: 1 }, bob: { balance: -2, count: 1 } } },
    });
    const human = await tidemark([
      'inspect',
      '--pipeline',
      pipeline,
      '--topic',
      'orders-eu',
      '--partition',
      '3',
    ]);
    expect(human.stdout).toContain('committedOffset 9007199254741005');
  });

  it('inspect --json prints epoch 0 and a null offset for a task never committed', async () => {
    const r = await tidemark([
      'inspect',
      '--pipeline',
      'never',
      '--topic',
      't',
      '--partition',
      '0',
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      pipeline: 'never',
      topic: 't',
      partition: 0,
      epoch: 0,
      committedOffset: null,
      quarantined: 0,
      state: {},
    });
  });

  it('inspect fails with a clear message when the table or bucket is missing or unreachable', async () => {
    const args = ['inspect', '--pipeline', 'p', '--topic', 't', '--partition', '0', '--json'];
    const noTable = await tidemark(args, { TIDEMARK_TABLE: 'missing-table' });
    expect(noTable.code).not.toBe(0);
    expect(noTable.stderr).toMatch(/table missing-table does not exist/);
    const noBucket = await tidemark(args, { TIDEMARK_BUCKET: 'missing-bucket' });
    expect(noBucket.code).not.toBe(0);
    expect(noBucket.stderr).toMatch(/bucket missing-bucket does not exist/);
    const unreachable = await tidemark(args, { AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:9' });
    expect(unreachable.code).not.toBe(0);
    expect(unreachable.stderr).toMatch(/cannot reach/);
    const noSetting = await tidemark(args, { TIDEMARK_TABLE: '' });
    expect(noSetting.code).toBe(2);
    expect(noSetting.stderr).toMatch(/TIDEMARK_TABLE/);
    expect(
      (await tidemark(['inspect', '--pipeline', 'p', '--topic', 't', '--partition', 'x'])).code,
    ).not.toBe(0);
  });
});
