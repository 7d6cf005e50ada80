/**
 * `icebergOutput` as a processor declares it: rows encoded at emit time (a bad row fails its record),
 * what `TestDriver` shows (the canonical rows, once per committed epoch), where the table lives from
 * the options and the environment, and the committer's configuration errors. No server involved.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { defineProcessor } from '../../../lib/checkpoint/processor.ts';
import { ConfigurationError } from '../../../lib/errors.ts';
import { createIcebergCommitter } from '../../../lib/sink/iceberg/committerHandler.ts';
import { icebergOptionsOf, icebergOutput, icebergTarget } from '../../../lib/sink/iceberg/icebergOutput.ts';
import { defineIcebergTable } from '../../../lib/sink/iceberg/schema.ts';
import { valueState } from '../../../lib/state/descriptors.ts';
import { TestDriver } from '../../../lib/testing/testDriver.ts';

const schema = defineIcebergTable({
  columns: [
    { name: 'account', type: 'string', required: true },
    { name: 'offset', type: 'long', required: true },
    { name: 'amount', type: 'decimal(12,2)', required: true },
    { name: 'balance', type: 'decimal(14,2)', required: true },
    { name: 'ts', type: 'timestamptz', required: true },
  ],
  partitionBy: [{ column: 'ts', transform: 'day' }],
});

interface Movement {
  account: string;
  offset: bigint;
  amount: string;
  balance: string;
  ts: Date;
}

/** Balances in cents per account; every applied deposit becomes one row. */
const processor = defineProcessor({
  state: { cents: valueState<number>() },
  outputs: { movements: icebergOutput<Movement>({ table: 'ledger.movements', schema }) },
  poisonPolicy: 'quarantine',
  process(record, { state, outputs, key }) {
    const { amount } = JSON.parse(record.value!.toString('utf8')) as { amount: string };
    const cents = Math.round(Number(amount) * 100);
    const balance = (state.cents.get() ?? 0) + cents;
    // An amount with more than 2 decimals does not fit decimal(12,2): the emit throws, the record is quarantined.
    outputs.movements.emit({
      account: key!,
      offset: record.offset,
      amount,
      balance: (balance / 100).toFixed(2),
      ts: new Date(record.timestamp),
    });
    state.cents.set(balance);
  },
});

const T0 = Date.UTC(2026, 5, 1, 12);

describe('icebergOutput through TestDriver', () => {
  it('emits one canonical row per applied record, once per committed epoch; a row that does not fit fails its record', async () => {
    const driver = new TestDriver(processor, { topic: 'deposits', partitions: 2, now: () => T0 });
    const input = [
      { key: 'alice', amount: '5.25' },
      { key: 'bob', amount: '1' },
      { key: 'alice', amount: '0.001' }, // too many decimals: poison
      { key: 'alice', amount: '-2.5' },
    ];
    await driver.send(input.map((r) => ({ key: r.key, value: JSON.stringify({ amount: r.amount }) })));
    await driver.redeliver();
    await driver.restart();
    await driver.redeliver();
    // Reference fold: balances per account over the records that fit.
    const balances = new Map<string, bigint>();
    const expected = input
      .filter((r) => !/\.\d{3,}/.test(r.amount))
      .map((r) => {
        const cents = BigInt(Math.round(Number(r.amount) * 100));
        const b = (balances.get(r.key) ?? 0n) + cents;
        balances.set(r.key, b);
        return { account: r.key, amount: cents, balance: b };
      });
    const rows = driver.outputs('movements').map((o) => o.value);
    expect(
      rows
        .map((r) => ({ account: r.account, amount: r.amount, balance: r.balance }))
        .sort((a, b) => String(a.account).localeCompare(String(b.account))),
    ).toEqual([...expected].sort((a, b) => a.account.localeCompare(b.account)));
    // Canonical values: bigints (offset, unscaled decimals, µs timestamps), exactly what the data files get.
    expect(rows[0]).toMatchObject({ ts: BigInt(T0) * 1000n });
    expect(typeof rows[0]!.offset).toBe('bigint');
    expect(driver.quarantined()).toHaveLength(1);
    expect(driver.quarantined()[0]!.error.message).toMatch(
      /output 'movements': the value cannot be encoded \(column amount \(decimal\(12,2\)\): expected a decimal with at most 2 digits/,
    );
    expect(driver.duplicateDeliveries).toBeGreaterThan(0);
  });

  it('checks its options when declared', () => {
    expect(() => icebergOutput({ table: 'orders', schema })).toThrow(/namespace\.name/);
    expect(() => icebergOutput({ table: 'db.orders', schema, warehouse: 'bucket/prefix' })).toThrow(
      /s3:\/\/bucket\/prefix/,
    );
    expect(() => icebergOutput({ table: 'db.orders', schema, catalog: 'glue' as 'rest' })).toThrow(
      /one of dynamodb, s3, rest/,
    );
    expect(() => icebergOutput({ table: 'db.orders', schema, maxRowsPerFile: 0 })).toThrow(
      ConfigurationError,
    );
    expect(() =>
      icebergOutput({ table: 'db.orders', schema: { columns: [{ name: 'x', type: 'uuid' as 'string' }] } }),
    ).toThrow(/unsupported type/);
    // Same table, same catalog settings: one sink; another table: another sink.
    const a = icebergOutput({ table: 'db.orders', schema });
    expect(a.sinkId).toBe(icebergOutput({ table: 'db.orders', schema }).sinkId);
    expect(a.sinkId).not.toBe(icebergOutput({ table: 'db.refunds', schema }).sinkId);
  });

  it('finds its catalog in the options, else the environment, else the defaults', () => {
    const plain = icebergOptionsOf(icebergOutput({ table: 'db.orders', schema }));
    expect(icebergTarget(plain, { TIDEMARK_BUCKET: 'pipeline-bucket' })).toEqual({
      kind: 'dynamodb',
      warehouse: 's3://pipeline-bucket/iceberg',
      catalogTable: 'iceberg',
    });
    expect(
      icebergTarget(plain, {
        TIDEMARK_ICEBERG_CATALOG: 's3',
        TIDEMARK_ICEBERG_WAREHOUSE: 's3://lake/warehouse/',
      }),
    ).toEqual({ kind: 's3', warehouse: 's3://lake/warehouse' });
    expect(
      icebergTarget(plain, {
        TIDEMARK_ICEBERG_CATALOG: 'rest',
        TIDEMARK_ICEBERG_REST_URI: 'https://glue.eu-west-1.amazonaws.com/iceberg/',
        TIDEMARK_ICEBERG_WAREHOUSE: '123456789012',
        TIDEMARK_ICEBERG_REST_SIGNING: 'glue',
      }),
    ).toEqual({
      kind: 'rest',
      uri: 'https://glue.eu-west-1.amazonaws.com/iceberg',
      warehouse: '123456789012',
      signing: 'glue',
    });
    const own = icebergOptionsOf(
      icebergOutput({ table: 'db.orders', schema, warehouse: 's3://own/w', catalogTable: 'cat' }),
    );
    expect(icebergTarget(own, { TIDEMARK_ICEBERG_WAREHOUSE: 's3://env/w' })).toEqual({
      kind: 'dynamodb',
      warehouse: 's3://own/w',
      catalogTable: 'cat',
    });
    expect(() => icebergTarget(plain, {})).toThrow(/TIDEMARK_ICEBERG_WAREHOUSE or TIDEMARK_BUCKET/);
    expect(() => icebergTarget(plain, { TIDEMARK_ICEBERG_CATALOG: 'rest' })).toThrow(
      /TIDEMARK_ICEBERG_REST_URI/,
    );
    expect(() =>
      icebergTarget(plain, {
        TIDEMARK_ICEBERG_CATALOG: 'rest',
        TIDEMARK_ICEBERG_REST_URI: 'https://x',
        TIDEMARK_ICEBERG_REST_SIGNING: 'lambda',
      }),
    ).toThrow(/TIDEMARK_ICEBERG_REST_SIGNING must be one of none, glue, s3tables/);
  });

  it('builds a committer only for a processor with Iceberg outputs and a pipeline', async () => {
    expect(() => createIcebergCommitter({ outputs: {} })).toThrow(/no Iceberg output/);
    const commit = createIcebergCommitter(processor, { env: {} });
    await expect(commit()).rejects.toThrow(/missing required setting TIDEMARK_PIPELINE/);
    expect(() => createIcebergCommitter(processor, { maxEpochsPerRun: -1 })).toThrow(/non-negative integer/);
  });

  it('loads no Parquet or Avro writer, catalog or SDK client until the sink is built', () => {
    // A fresh Node process records every module it resolves (the declaration runs at a cold start).
    const script = (extra: string) => `
      import { registerHooks } from 'node:module';
      const seen = new Set();
      registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.add(r.url); return r; } });
      const { icebergOutput } = await import('./lib/sink/iceberg/icebergOutput.ts');
      const { defineIcebergTable } = await import('./lib/sink/iceberg/schema.ts');
      const out = icebergOutput({ table: 'db.t', schema: defineIcebergTable({ columns: [{ name: 'a', type: 'long' }] }) });
      out.encode({ a: 1 });
      ${extra}
      console.log(JSON.stringify([...seen].filter((u) => u.includes('/node_modules/')).map((u) => u.split('/node_modules/').pop().split('/').slice(0, 2).join('/'))));`;
    const loaded = (extra = '') =>
      new Set(
        JSON.parse(
          execFileSync(process.execPath, ['--input-type=module', '-e', script(extra)], {
            cwd: new URL('../../..', import.meta.url),
            encoding: 'utf8',
          }),
        ) as string[],
      );
    expect([...loaded()]).toEqual([]);
    // The control: building the sink's module graph loads them.
    const sink = loaded("await import('./lib/sink/iceberg/IcebergOutputSink.ts');");
    expect([...sink].some((m) => m.startsWith('hyparquet-writer'))).toBe(true);
    expect([...sink].some((m) => m.startsWith('avsc'))).toBe(true);
  });
});
