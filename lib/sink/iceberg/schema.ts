/**
 * The table model of the Iceberg sink: the user declares flat columns of Iceberg primitive types
 * (with field ids, nullable or required) and optionally a partition spec; this module checks the
 * declaration, serializes it as Iceberg JSON (spec, Appendix C) and turns rows (plain objects) into
 * canonical values:
 *
 *   boolean → boolean      int → number (int32)     long → bigint         float, double → number
 *   string → string        binary → Uint8Array      date → number (days since 1970-01-01)
 *   timestamp, timestamptz → bigint (microseconds since 1970-01-01 00:00:00 UTC)
 *   decimal(P,S) → bigint (the unscaled value)      a missing optional value → null
 *
 * Canonical rows are plain data (they survive an outbox codec unchanged) and normalizing a
 * canonical row again returns it unchanged, so rows can be encoded when emitted and written later.
 * Nested types (struct, list, map), time, uuid and fixed are not supported.
 */
import { IcebergSchemaError } from '../../errors.ts';
import { parseTransform, type Transform, transformResultType } from './transforms.ts';

export const PRIMITIVE_NAMES = [
  'boolean',
  'int',
  'long',
  'float',
  'double',
  'string',
  'binary',
  'date',
  'timestamp',
  'timestamptz',
] as const;

export type IcebergPrimitiveName = (typeof PRIMITIVE_NAMES)[number];
/** An Iceberg primitive type as written in schema JSON: `long`, `timestamptz`, `decimal(10,2)`, … */
export type IcebergTypeText = IcebergPrimitiveName | `decimal(${number},${number})`;

/** A parsed primitive type. */
export interface PrimitiveType {
  readonly name: IcebergPrimitiveName | 'decimal';
  readonly precision?: number;
  readonly scale?: number;
}

export function parseType(text: string): PrimitiveType | undefined {
  if ((PRIMITIVE_NAMES as readonly string[]).includes(text)) return { name: text as IcebergPrimitiveName };
  const m = /^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$/.exec(text);
  if (!m) return undefined;
  const precision = Number(m[1]);
  const scale = Number(m[2]);
  if (precision < 1 || precision > 38 || scale > precision) return undefined;
  return { name: 'decimal', precision, scale };
}

export function typeText(type: PrimitiveType): string {
  return type.name === 'decimal' ? `decimal(${type.precision},${type.scale})` : type.name;
}

/** A declared column. `id` defaults to its position (1-based); `required` to false. */
export interface IcebergColumn {
  readonly name: string;
  readonly type: IcebergTypeText;
  readonly id?: number;
  readonly required?: boolean;
  readonly doc?: string;
}

export type PartitionTransformText =
  | 'identity'
  | 'year'
  | 'month'
  | 'day'
  | 'hour'
  | `bucket[${number}]`
  | `truncate[${number}]`;

/** A declared partition field: a transform of one column. */
export interface PartitionColumn {
  readonly column: string;
  readonly transform: PartitionTransformText;
  /** Partition field name; default `<column>` for identity, else `<column>_<transform name>` (as Spark names them). */
  readonly name?: string;
}

export interface IcebergTableDeclaration {
  readonly columns: readonly IcebergColumn[];
  readonly partitionBy?: readonly PartitionColumn[];
}

/** Schema JSON (Appendix C). */
export interface SchemaFieldJson {
  id: number;
  name: string;
  required: boolean;
  type: string;
  doc?: string;
}
export interface SchemaJson {
  type: 'struct';
  'schema-id': number;
  fields: SchemaFieldJson[];
  [extra: string]: unknown;
}
export interface PartitionFieldJson {
  'source-id': number;
  'field-id': number;
  name: string;
  transform: string;
}
export interface PartitionSpecJson {
  'spec-id': number;
  fields: PartitionFieldJson[];
}

export interface ResolvedColumn {
  readonly id: number;
  readonly name: string;
  readonly type: PrimitiveType;
  readonly required: boolean;
  readonly doc?: string;
}

export interface ResolvedPartitionField {
  readonly fieldId: number;
  readonly name: string;
  readonly source: ResolvedColumn;
  readonly sourceIndex: number;
  readonly transform: Transform;
  readonly resultType: PrimitiveType;
}

/** Partition field ids start here (as in Iceberg's reference implementation). */
export const FIRST_PARTITION_FIELD_ID = 1000;

// Avro-valid names keep manifests and Parquet column names identical to the Iceberg names.
const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A checked table declaration: columns, partition fields, and row normalization. */
export class IcebergTableSchema {
  readonly columns: readonly ResolvedColumn[];
  readonly partitionFields: readonly ResolvedPartitionField[];
  private readonly byName: ReadonlyMap<string, number>;

  constructor(declaration: IcebergTableDeclaration) {
    const columns: ResolvedColumn[] = [];
    const names = new Map<string, number>();
    const ids = new Set<number>();
    if (declaration.columns.length === 0) throw new IcebergSchemaError('a table needs at least one column');
    declaration.columns.forEach((c, i) => {
      if (!NAME_PATTERN.test(c.name)) {
        throw new IcebergSchemaError(`column name ${JSON.stringify(c.name)} must match ${NAME_PATTERN}`);
      }
      if (names.has(c.name)) throw new IcebergSchemaError(`column ${c.name} is declared twice`);
      const id = c.id ?? i + 1;
      if (!Number.isSafeInteger(id) || id < 1 || id >= FIRST_PARTITION_FIELD_ID) {
        throw new IcebergSchemaError(
          `column ${c.name}: field id ${id} must be an integer from 1 to ${FIRST_PARTITION_FIELD_ID - 1}`,
        );
      }
      if (ids.has(id)) throw new IcebergSchemaError(`column ${c.name}: field id ${id} is used twice`);
      const type = parseType(c.type);
      if (!type) {
        throw new IcebergSchemaError(
          `column ${c.name}: unsupported type ${JSON.stringify(c.type)} (one of ${PRIMITIVE_NAMES.join(', ')}, decimal(P,S) with P ≤ 38)`,
        );
      }
      names.set(c.name, i);
      ids.add(id);
      columns.push({
        id,
        name: c.name,
        type,
        required: c.required ?? false,
        ...(c.doc ? { doc: c.doc } : {}),
      });
    });
    const partitionFields: ResolvedPartitionField[] = [];
    const partitionNames = new Set<string>();
    (declaration.partitionBy ?? []).forEach((p, i) => {
      const sourceIndex = names.get(p.column);
      if (sourceIndex === undefined) {
        throw new IcebergSchemaError(`partition field on ${p.column}: no such column`);
      }
      const source = columns[sourceIndex] as ResolvedColumn;
      const transform = parseTransform(p.transform);
      if (!transform)
        throw new IcebergSchemaError(`partition field on ${p.column}: unknown transform ${p.transform}`);
      const resultType = transformResultType(transform, source.type);
      if (!resultType) {
        throw new IcebergSchemaError(
          `partition field on ${p.column}: transform ${p.transform} does not apply to ${typeText(source.type)}`,
        );
      }
      const name = p.name ?? defaultPartitionName(p.column, transform);
      if (!NAME_PATTERN.test(name))
        throw new IcebergSchemaError(`partition field name ${name} must match ${NAME_PATTERN}`);
      if (
        partitionNames.has(name) ||
        (names.has(name) && !(transform.name === 'identity' && name === p.column))
      ) {
        throw new IcebergSchemaError(`partition field name ${name} is already used`);
      }
      partitionNames.add(name);
      partitionFields.push({
        fieldId: FIRST_PARTITION_FIELD_ID + i,
        name,
        source,
        sourceIndex,
        transform,
        resultType,
      });
    });
    this.columns = columns;
    this.partitionFields = partitionFields;
    this.byName = names;
  }

  get lastColumnId(): number {
    return Math.max(...this.columns.map((c) => c.id));
  }

  get lastPartitionId(): number {
    return FIRST_PARTITION_FIELD_ID - 1 + this.partitionFields.length;
  }

  schemaJson(schemaId = 0): SchemaJson {
    return {
      type: 'struct',
      'schema-id': schemaId,
      fields: this.columns.map((c) => ({
        id: c.id,
        name: c.name,
        required: c.required,
        type: typeText(c.type),
        ...(c.doc ? { doc: c.doc } : {}),
      })),
    };
  }

  specJson(specId = 0): PartitionSpecJson {
    return {
      'spec-id': specId,
      fields: this.partitionFields.map((p) => ({
        'source-id': p.source.id,
        'field-id': p.fieldId,
        name: p.name,
        transform: p.transform.text,
      })),
    };
  }

  /**
   * Why an existing table's schema and spec differ from this declaration, or undefined when they
   * match (same field ids, names, types and nullability; same partition fields). Schema and
   * partition evolution are not supported: a changed declaration needs a new table.
   */
  mismatch(schema: SchemaJson, spec: PartitionSpecJson): string | undefined {
    const want = this.schemaJson(schema['schema-id']);
    const describe = (fields: SchemaFieldJson[]) =>
      fields
        .map(
          (f) =>
            `${f.id}:${f.name}:${String(f.type).replace(/\s/g, '')}:${f.required ? 'required' : 'optional'}`,
        )
        .join(', ');
    if (describe(want.fields) !== describe(schema.fields)) {
      return `the table's schema is [${describe(schema.fields)}], the declaration's is [${describe(want.fields)}]`;
    }
    const specText = (s: PartitionSpecJson) =>
      s.fields.map((f) => `${f['field-id']}:${f.name}:${f['source-id']}:${f.transform}`).join(', ');
    const wantSpec = this.specJson(spec['spec-id']);
    if (specText(wantSpec) !== specText(spec)) {
      return `the table's partition spec is [${specText(spec)}], the declaration's is [${specText(wantSpec)}]`;
    }
    return undefined;
  }

  /**
   * A row as canonical values in column order. Throws `IcebergSchemaError` naming the column for
   * a missing required value, a value of the wrong type or range, or a property that is not a column.
   */
  normalizeRow(row: Readonly<Record<string, unknown>>): CanonicalValue[] {
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      throw new IcebergSchemaError(`a row must be a plain object, got ${describeValue(row)}`);
    }
    for (const key of Object.keys(row)) {
      if (!this.byName.has(key) && row[key] !== undefined) {
        throw new IcebergSchemaError(
          `row has property ${JSON.stringify(key)}, which is not a column of the table`,
        );
      }
    }
    return this.columns.map((c) => normalizeValue(c, row[c.name]));
  }

  /** `normalizeRow` as an object keyed by column name: what an output's `encode` can return. */
  encodeRow(row: Readonly<Record<string, unknown>>): Record<string, CanonicalValue> {
    const values = this.normalizeRow(row);
    const out: Record<string, CanonicalValue> = {};
    this.columns.forEach((c, i) => {
      out[c.name] = values[i] as CanonicalValue;
    });
    return out;
  }
}

export function defineIcebergTable(declaration: IcebergTableDeclaration): IcebergTableSchema {
  return new IcebergTableSchema(declaration);
}

function defaultPartitionName(column: string, transform: Transform): string {
  switch (transform.name) {
    case 'identity':
      return column;
    case 'bucket':
      return `${column}_bucket`;
    case 'truncate':
      return `${column}_trunc`;
    default:
      return `${column}_${transform.name}`;
  }
}

/** Reads a schema JSON's fields back into resolved columns (types of an existing table). */
export function columnsOfSchema(schema: SchemaJson): ResolvedColumn[] {
  return schema.fields.map((f) => {
    const type = typeof f.type === 'string' ? parseType(f.type.replace(/\s/g, '')) : undefined;
    if (!type)
      throw new IcebergSchemaError(`field ${f.name}: type ${JSON.stringify(f.type)} is not supported`);
    return { id: f.id, name: f.name, type, required: f.required };
  });
}

export type CanonicalValue = boolean | number | bigint | string | Uint8Array | null;

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const DAY_MS = 86_400_000;

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (v instanceof Date) return `Date(${Number.isNaN(v.getTime()) ? 'invalid' : v.toISOString()})`;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return typeof v === 'object' ? (Array.isArray(v) ? 'an array' : 'an object') : `${typeof v} ${String(v)}`;
}

function bad(column: ResolvedColumn, value: unknown, expected: string): IcebergSchemaError {
  return new IcebergSchemaError(
    `column ${column.name} (${typeText(column.type)}): expected ${expected}, got ${describeValue(value)}`,
  );
}

export function normalizeValue(column: ResolvedColumn, value: unknown): CanonicalValue {
  if (value === null || value === undefined) {
    if (column.required)
      throw new IcebergSchemaError(`column ${column.name} is required, the row has no value for it`);
    return null;
  }
  const type = column.type;
  switch (type.name) {
    case 'boolean':
      if (typeof value !== 'boolean') throw bad(column, value, 'a boolean');
      return value;
    case 'int': {
      const n = typeof value === 'bigint' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < INT32_MIN || n > INT32_MAX) {
        throw bad(column, value, 'a 32-bit integer');
      }
      return n;
    }
    case 'long': {
      const n = toBigInt(value);
      if (n === undefined || n < INT64_MIN || n > INT64_MAX) {
        throw bad(column, value, 'a 64-bit integer (bigint, safe integer or decimal string)');
      }
      return n;
    }
    case 'float':
    case 'double':
      if (typeof value !== 'number') throw bad(column, value, 'a number');
      return type.name === 'float' ? Math.fround(value) : value;
    case 'string':
      if (typeof value !== 'string') throw bad(column, value, 'a string');
      return value;
    case 'binary':
      if (!(value instanceof Uint8Array)) throw bad(column, value, 'a Uint8Array');
      return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    case 'date':
      return normalizeDate(column, value);
    case 'timestamp':
    case 'timestamptz':
      return normalizeTimestamp(column, value);
    case 'decimal':
      return normalizeDecimal(column, value, type.precision as number, type.scale as number);
  }
}

function toBigInt(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : undefined;
  if (typeof value === 'string' && /^-?\d{1,19}$/.test(value)) return BigInt(value);
  return undefined;
}

function normalizeDate(column: ResolvedColumn, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX)
    return value;
  if (value instanceof Date && !Number.isNaN(value.getTime())) return Math.floor(value.getTime() / DAY_MS);
  if (typeof value === 'string') {
    const m = /^(-?\d{4,})-(\d{2})-(\d{2})$/.exec(value);
    if (m) {
      const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
      const d = new Date(ms);
      if (d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]))
        return Math.floor(ms / DAY_MS);
    }
  }
  throw bad(column, value, "a Date, a 'YYYY-MM-DD' string or an integer number of days since 1970-01-01");
}

const ISO_TIMESTAMP =
  /^(-?\d{4,})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$/;

function normalizeTimestamp(column: ResolvedColumn, value: unknown): bigint {
  if (typeof value === 'bigint' && value >= INT64_MIN && value <= INT64_MAX) return value;
  if (value instanceof Date && !Number.isNaN(value.getTime())) return BigInt(value.getTime()) * 1000n;
  if (typeof value === 'string') {
    const m = ISO_TIMESTAMP.exec(value);
    if (m) {
      const [, y, mo, d, h, mi, s, frac = '', zone] = m;
      const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
      let offsetMinutes = 0;
      if (zone && zone !== 'Z') {
        const sign = zone.startsWith('-') ? -1 : 1;
        offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
      }
      if (!Number.isNaN(ms)) {
        const micros = BigInt(frac.padEnd(6, '0').slice(0, 6));
        return (BigInt(ms) - BigInt(offsetMinutes) * 60_000n) * 1000n + micros;
      }
    }
  }
  throw bad(
    column,
    value,
    'a Date, an ISO-8601 string or a bigint of microseconds since 1970-01-01T00:00:00Z',
  );
}

function normalizeDecimal(column: ResolvedColumn, value: unknown, precision: number, scale: number): bigint {
  let unscaled: bigint | undefined;
  if (typeof value === 'bigint') unscaled = value;
  else if (typeof value === 'string' || typeof value === 'number') {
    const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
    const m = typeof text === 'string' ? /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(text) : null;
    if (m && (m[2] || m[3])) {
      const fraction = m[3] ?? '';
      if (fraction.replace(/0+$/, '').length > scale) {
        throw bad(column, value, `a decimal with at most ${scale} digits after the point`);
      }
      const digits = `${m[2] || '0'}${fraction.padEnd(scale, '0').slice(0, scale)}`;
      unscaled = BigInt(digits) * (m[1] === '-' ? -1n : 1n);
    }
  }
  if (unscaled === undefined) {
    throw bad(column, value, 'a decimal string such as "12.34", a number, or a bigint of the unscaled value');
  }
  const limit = 10n ** BigInt(precision);
  if (unscaled <= -limit || unscaled >= limit) throw bad(column, value, `at most ${precision} digits`);
  return unscaled;
}
