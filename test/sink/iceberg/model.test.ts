import { describe, expect, it } from 'vitest';
import { IcebergSchemaError } from '../../../lib/errors.ts';
import { findProgress, newTableMetadata, type TableMetadata } from '../../../lib/sink/iceberg/metadata.ts';
import { defineIcebergTable, type PrimitiveType } from '../../../lib/sink/iceberg/schema.ts';
import {
  applyTransform,
  murmur3,
  parseTransform,
  partitionPath,
} from '../../../lib/sink/iceberg/transforms.ts';
import { columnMetrics, compareValues, fromBinary, toBinary } from '../../../lib/sink/iceberg/values.ts';

const t = (name: PrimitiveType['name'], extra: Partial<PrimitiveType> = {}): PrimitiveType => ({
  name,
  ...extra,
});
const bucket = (type: PrimitiveType, v: Parameters<typeof applyTransform>[2]) => {
  // The spec's test vectors are hashes; bucket[2^31-1] exposes the hash's low 31 bits.
  const h = murmur3(
    type.name === 'string'
      ? new TextEncoder().encode(v as string)
      : type.name === 'binary'
        ? (v as Uint8Array)
        : (() => {
            const b = new Uint8Array(8);
            new DataView(b.buffer).setBigInt64(0, BigInt(v as number | bigint), true);
            return b;
          })(),
  );
  return h;
};

describe('Iceberg transforms', () => {
  it('murmur3 matches the test vectors of the spec (Appendix B)', () => {
    expect(bucket(t('int'), 34)).toBe(2017239379);
    expect(bucket(t('long'), 34n)).toBe(2017239379);
    expect(bucket(t('date'), 17486)).toBe(-653330422); // 2017-11-16
    expect(bucket(t('timestamp'), 1510871468000000n)).toBe(-2047944441); // 2017-11-16T22:31:08
    expect(bucket(t('timestamp'), 1510871468000001n)).toBe(-1207196810);
    expect(bucket(t('string'), 'iceberg')).toBe(1210000089);
    expect(bucket(t('binary'), Uint8Array.of(0, 1, 2, 3))).toBe(-188683207);
  });

  it('bucket[N] of a decimal hashes its minimal big-endian unscaled bytes', () => {
    // 14.20 → unscaled 1420 → hash -500754589 (spec); bucket = (hash & MAX_INT) % N.
    const n = 1000;
    expect(
      applyTransform(parseTransform(`bucket[${n}]`)!, t('decimal', { precision: 9, scale: 2 }), 1420n),
    ).toBe((-500754589 & 0x7fffffff) % n);
    expect(applyTransform(parseTransform('bucket[16]')!, t('long'), 34n)).toBe(
      (2017239379 & 0x7fffffff) % 16,
    );
  });

  it('year, month, day and hour count from 1970, flooring before it', () => {
    const ts = 1510871468000000n; // 2017-11-16T22:31:08Z
    const tz = t('timestamptz');
    expect(applyTransform(parseTransform('year')!, tz, ts)).toBe(47);
    expect(applyTransform(parseTransform('month')!, tz, ts)).toBe(47 * 12 + 10);
    expect(applyTransform(parseTransform('day')!, tz, ts)).toBe(17486);
    expect(applyTransform(parseTransform('hour')!, tz, ts)).toBe(17486 * 24 + 22);
    expect(applyTransform(parseTransform('day')!, tz, -1n)).toBe(-1);
    expect(applyTransform(parseTransform('hour')!, tz, -1n)).toBe(-1);
    expect(applyTransform(parseTransform('month')!, t('date'), -1)).toBe(-1);
    expect(applyTransform(parseTransform('year')!, t('date'), -1)).toBe(-1);
  });

  it('truncate keeps remainders positive; strings by code points', () => {
    expect(applyTransform(parseTransform('truncate[10]')!, t('int'), -1)).toBe(-10);
    expect(applyTransform(parseTransform('truncate[10]')!, t('long'), 1n)).toBe(0n);
    expect(
      applyTransform(parseTransform('truncate[50]')!, t('decimal', { precision: 9, scale: 2 }), 1065n),
    ).toBe(1050n);
    expect(applyTransform(parseTransform('truncate[3]')!, t('string'), 'ic😀berg')).toBe('ic😀');
  });

  it('names partition paths as the reference implementation does', () => {
    const schema = defineIcebergTable({
      columns: [
        { name: 'ts', type: 'timestamptz', required: true },
        { name: 'region', type: 'string' },
      ],
      partitionBy: [
        { column: 'ts', transform: 'day' },
        { column: 'ts', transform: 'hour' },
        { column: 'region', transform: 'identity' },
      ],
    });
    expect(schema.specJson().fields.map((f) => f.name)).toEqual(['ts_day', 'ts_hour', 'region']);
    expect(partitionPath(schema.partitionFields, [17486, 17486 * 24 + 22, 'eu west/1'])).toBe(
      'ts_day=2017-11-16/ts_hour=2017-11-16-22/region=eu%20west%2F1',
    );
    expect(partitionPath(schema.partitionFields, [null, null, null])).toBe(
      'ts_day=null/ts_hour=null/region=null',
    );
  });
});

describe('Iceberg values and metrics', () => {
  it('single-value serialization round-trips (Appendix D)', () => {
    const cases: [PrimitiveType, Parameters<typeof toBinary>[1], string][] = [
      [t('int'), -2, 'feffffff'],
      [t('long'), 34n, '2200000000000000'],
      [t('date'), 17486, '4e440000'],
      [t('boolean'), true, '01'],
      [t('string'), 'iceberg', Buffer.from('iceberg').toString('hex')],
      [t('decimal', { precision: 9, scale: 2 }), -1420n, 'fa74'],
      [t('decimal', { precision: 9, scale: 2 }), 128n, '0080'],
      [t('double'), 1.5, '000000000000f83f'],
    ];
    for (const [type, v, hex] of cases) {
      expect(Buffer.from(toBinary(type, v)).toString('hex')).toBe(hex);
      expect(fromBinary(type, toBinary(type, v))).toEqual(v);
    }
  });

  it('orders strings by code point (UTF-8 byte order), not by UTF-16 unit', () => {
    const cmp = (a: string, b: string) => Math.sign(compareValues(t('string'), a, b));
    expect(cmp('\uffff', '😀')).toBe(-1); // U+FFFF < U+1F600, though '\uffff' > '\ud83d' in UTF-16
    expect(cmp('😀', '\ue000')).toBe(1);
    expect(cmp('ab', 'abc')).toBe(-1);
    expect(cmp('b', 'abc')).toBe(1);
    const words = ['z', '😀', '\uffff', 'é', 'a', '\ue000', '𝔸', 'aa'];
    const byBytes = [...words].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect([...words].sort((a, b) => compareValues(t('string'), a, b))).toEqual(byBytes);
  });

  it('counts values, nulls and NaNs; bounds skip nulls and NaNs; long strings get truncated bounds', () => {
    const schema = defineIcebergTable({
      columns: [
        { name: 'x', type: 'double' },
        { name: 's', type: 'string' },
      ],
    });
    const long = 'a'.repeat(20);
    const rows = [
      [1.5, 'b'],
      [Number.NaN, long],
      [null, null],
      [-0, 'ab'],
    ];
    const m = columnMetrics(schema.columns, rows);
    expect(m.valueCounts).toEqual([
      [1, 4],
      [2, 4],
    ]);
    expect(m.nullValueCounts).toEqual([
      [1, 1],
      [2, 1],
    ]);
    expect(m.nanValueCounts).toEqual([[1, 1]]);
    const [[, lo1], [, lo2]] = m.lowerBounds as [[number, Uint8Array], [number, Uint8Array]];
    const [[, hi1], [, hi2]] = m.upperBounds as [[number, Uint8Array], [number, Uint8Array]];
    expect(Object.is(fromBinary(t('double'), lo1), -0)).toBe(true);
    expect(fromBinary(t('double'), hi1)).toBe(1.5);
    expect(fromBinary(t('string'), lo2)).toBe('a'.repeat(16));
    expect(fromBinary(t('string'), hi2)).toBe('b');
  });
});

describe('IcebergTableSchema', () => {
  const schema = defineIcebergTable({
    columns: [
      { name: 'id', type: 'long', required: true },
      { name: 'amount', type: 'decimal(10,2)' },
      { name: 'day', type: 'date' },
      { name: 'ts', type: 'timestamp' },
      { name: 'raw', type: 'binary' },
    ],
  });

  it('normalizes rows to canonical values, and canonical rows to themselves', () => {
    const row = schema.normalizeRow({
      id: 7,
      amount: '-12.5',
      day: '2017-11-16',
      ts: '2017-11-16T22:31:08.000001',
      raw: Buffer.from([1]),
    });
    expect(row).toEqual([7n, -1250n, 17486, 1510871468000001n, Uint8Array.of(1)]);
    expect(
      schema.normalizeRow(schema.encodeRow({ id: 7, amount: '-12.5', day: 17486, ts: 1510871468000001n })),
    ).toEqual([7n, -1250n, 17486, 1510871468000001n, null]);
    expect(
      schema.normalizeRow({ id: '9007199254740993', ts: new Date(Date.UTC(2017, 10, 16, 14, 31, 8)) }),
    ).toEqual([9007199254740993n, null, null, 1510842668000000n, null]);
  });

  it('refuses what does not fit, naming the column', () => {
    expect(() => schema.normalizeRow({})).toThrow(/column id is required/);
    expect(() => schema.normalizeRow({ id: 1.5 })).toThrow(IcebergSchemaError);
    expect(() => schema.normalizeRow({ id: 1, amount: '1.234' })).toThrow(
      /amount .* at most 2 digits after the point/,
    );
    expect(() => schema.normalizeRow({ id: 1, amount: '123456789.00' })).toThrow(/at most 10 digits/);
    expect(() => schema.normalizeRow({ id: 1, ts: 5 })).toThrow(/column ts \(timestamp\)/);
    expect(() => schema.normalizeRow({ id: 1, extra: 1 })).toThrow(/not a column/);
  });

  it('refuses bad declarations', () => {
    expect(() => defineIcebergTable({ columns: [{ name: 'a-b', type: 'int' }] })).toThrow(IcebergSchemaError);
    expect(() => defineIcebergTable({ columns: [{ name: 'a', type: 'decimal(39,2)' as 'int' }] })).toThrow(
      /unsupported type/,
    );
    expect(() =>
      defineIcebergTable({
        columns: [{ name: 's', type: 'string' }],
        partitionBy: [{ column: 's', transform: 'day' }],
      }),
    ).toThrow(/does not apply to string/);
  });
});

describe('Progress in snapshot summaries', () => {
  const base = newTableMetadata({
    location: 's3://b/t',
    schema: defineIcebergTable({ columns: [{ name: 'a', type: 'int' }] }).schemaJson(),
    spec: { 'spec-id': 0, fields: [] },
    lastColumnId: 1,
    lastPartitionId: 999,
  });
  const snapshot = (
    id: number | bigint,
    parent: number | bigint | undefined,
    summary: Record<string, string>,
  ) => ({
    'snapshot-id': id,
    ...(parent !== undefined ? { 'parent-snapshot-id': parent } : {}),
    'sequence-number': 1,
    'timestamp-ms': 0,
    'manifest-list': 'x',
    summary: { operation: 'append', ...summary },
  });

  it("takes the nearest ancestor of the pipeline's own, past other writers' snapshots", () => {
    const m: TableMetadata = {
      ...base,
      'current-snapshot-id': 3n ** 39n,
      snapshots: [
        snapshot(1, undefined, {
          'tidemark.pipeline': 'p',
          'tidemark.p.orders.v1.0.epoch': '4',
          'tidemark.p.x.2.epoch': '1',
        }),
        snapshot(2, 1, { 'tidemark.pipeline': 'p.q', 'tidemark.p.q.orders.0.epoch': '9' }),
        snapshot(3n ** 39n, 2, { operation: 'replace' }),
      ],
    };
    const found = findProgress(m, 'p');
    expect(found.source).toBe('snapshot');
    expect(found.progress.get('orders.v1/0')?.epoch).toBe(4);
    expect(found.progress.get('x/2')?.epoch).toBe(1);
    expect(findProgress(m, 'p.q').progress.get('orders/0')?.epoch).toBe(9);
  });

  it('falls back to the table property when no snapshot of the pipeline is left', () => {
    const m: TableMetadata = {
      ...base,
      properties: { 'tidemark.progress.p': JSON.stringify({ 'orders/0': { epoch: 12 } }) },
      'current-snapshot-id': 5,
      snapshots: [snapshot(5, 4, { operation: 'replace' })],
    };
    expect(findProgress(m, 'p')).toMatchObject({ source: 'property' });
    expect(findProgress(m, 'p').progress.get('orders/0')?.epoch).toBe(12);
    expect(findProgress(m, 'other').source).toBe('none');
  });
});
