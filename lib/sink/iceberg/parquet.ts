/**
 * Parquet encoding of data files with hyparquet-writer: one flat schema whose elements carry the
 * Iceberg field ids (`field_id`), the Iceberg type mapping of the spec (Appendix A, Parquet), and the
 * table schema as the `iceberg.schema` key-value entry, as Iceberg's own writers add it. The bytes
 * depend only on the rows: a retry of the same epoch writes the same file.
 */
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { CanonicalValue, ResolvedColumn, SchemaJson } from './schema.ts';

/** Rows per Parquet row group. */
export const DEFAULT_ROW_GROUP_ROWS = 100_000;

type SchemaElement = NonNullable<Parameters<typeof parquetWriteBuffer>[0]['schema']>[number];

/** Bytes of the smallest two's-complement integer that holds every decimal of `precision` digits. */
export function decimalBytes(precision: number): number {
  let bytes = 1;
  while (2n ** BigInt(8 * bytes - 1) - 1n < 10n ** BigInt(precision) - 1n) bytes++;
  return bytes;
}

function element(c: ResolvedColumn): SchemaElement {
  const base = {
    name: c.name,
    repetition_type: c.required ? 'REQUIRED' : 'OPTIONAL',
    field_id: c.id,
  } as const;
  const t = c.type;
  switch (t.name) {
    case 'boolean':
      return { ...base, type: 'BOOLEAN' };
    case 'int':
      return { ...base, type: 'INT32' };
    case 'long':
      return { ...base, type: 'INT64' };
    case 'float':
      return { ...base, type: 'FLOAT' };
    case 'double':
      return { ...base, type: 'DOUBLE' };
    case 'string':
      return { ...base, type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' } };
    case 'binary':
      return { ...base, type: 'BYTE_ARRAY' };
    case 'date':
      return { ...base, type: 'INT32', converted_type: 'DATE', logical_type: { type: 'DATE' } };
    case 'timestamp':
      return {
        ...base,
        type: 'INT64',
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: false, unit: 'MICROS' },
      };
    case 'timestamptz':
      return {
        ...base,
        type: 'INT64',
        converted_type: 'TIMESTAMP_MICROS',
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
      };
    case 'decimal': {
      const precision = t.precision as number;
      const scale = t.scale as number;
      const decimal = {
        converted_type: 'DECIMAL',
        scale,
        precision,
        logical_type: { type: 'DECIMAL', scale, precision },
      } as const;
      if (precision <= 9) return { ...base, ...decimal, type: 'INT32' };
      if (precision <= 18) return { ...base, ...decimal, type: 'INT64' };
      return { ...base, ...decimal, type: 'FIXED_LEN_BYTE_ARRAY', type_length: decimalBytes(precision) };
    }
  }
}

/** One Parquet file of rows (canonical values in column order). */
export function encodeParquet(
  columns: readonly ResolvedColumn[],
  schemaJson: SchemaJson,
  rows: readonly (readonly CanonicalValue[])[],
  options: { rowGroupRows?: number } = {},
): Uint8Array {
  const schema: SchemaElement[] = [{ name: 'table', num_children: columns.length }, ...columns.map(element)];
  const buffer = parquetWriteBuffer({
    schema,
    columnData: columns.map((c, i) => ({ name: c.name, data: rows.map((r) => r[i] ?? null) })),
    codec: 'SNAPPY',
    rowGroupSize: options.rowGroupRows ?? DEFAULT_ROW_GROUP_ROWS,
    kvMetadata: [{ key: 'iceberg.schema', value: JSON.stringify(schemaJson) }],
    createdBy: 'tidemark',
  });
  return new Uint8Array(buffer);
}
