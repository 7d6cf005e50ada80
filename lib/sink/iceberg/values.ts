/**
 * Canonical values (schema.ts) as Iceberg's binary single-value serialization (spec, Appendix D),
 * their order, and the column metrics of a data file (value, null and NaN counts, lower and upper
 * bounds) that manifests carry for scan planning.
 */
import type { CanonicalValue, PrimitiveType, ResolvedColumn } from './schema.ts';
import { minBigEndian } from './transforms.ts';

/** Binary single-value serialization of a non-null canonical value. */
export function toBinary(type: PrimitiveType, v: Exclude<CanonicalValue, null>): Uint8Array {
  switch (type.name) {
    case 'boolean':
      return Uint8Array.of(v ? 1 : 0);
    case 'int':
    case 'date': {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, v as number, true);
      return b;
    }
    case 'long':
    case 'timestamp':
    case 'timestamptz': {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigInt64(0, v as bigint, true);
      return b;
    }
    case 'float': {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setFloat32(0, v as number, true);
      return b;
    }
    case 'double': {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v as number, true);
      return b;
    }
    case 'string':
      return new TextEncoder().encode(v as string);
    case 'binary':
      return v as Uint8Array;
    case 'decimal':
      return minBigEndian(v as bigint);
  }
}

/** The inverse of `toBinary` (used by tests and by readers of bounds). */
export function fromBinary(type: PrimitiveType, b: Uint8Array): Exclude<CanonicalValue, null> {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (type.name) {
    case 'boolean':
      return b[0] !== 0;
    case 'int':
    case 'date':
      return view.getInt32(0, true);
    case 'long':
    case 'timestamp':
    case 'timestamptz':
      return view.getBigInt64(0, true);
    case 'float':
      return view.getFloat32(0, true);
    case 'double':
      return view.getFloat64(0, true);
    case 'string':
      return new TextDecoder().decode(b);
    case 'binary':
      return b;
    case 'decimal': {
      let n = 0n;
      for (const byte of b) n = (n << 8n) | BigInt(byte);
      return b.length && (b[0] as number) & 0x80 ? n - (1n << BigInt(b.length * 8)) : n;
    }
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/**
 * Strings in code point order, which is UTF-8 byte order, without encoding them: at the first
 * differing UTF-16 unit, surrogates (code points above U+FFFF) must sort after U+E000–U+FFFF.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Iceberg's order of two non-null, non-NaN values of one type (-0.0 before +0.0; strings by UTF-8 bytes). */
export function compareValues(type: PrimitiveType, a: CanonicalValue, b: CanonicalValue): number {
  switch (type.name) {
    case 'string':
      return compareCodePoints(a as string, b as string);
    case 'binary':
      return compareBytes(a as Uint8Array, b as Uint8Array);
    case 'boolean':
      return Number(a) - Number(b);
    case 'float':
    case 'double': {
      const x = a as number;
      const y = b as number;
      if (x === y)
        return Object.is(x, -0) && Object.is(y, 0) ? -1 : Object.is(x, 0) && Object.is(y, -0) ? 1 : 0;
      return x < y ? -1 : 1;
    }
    default:
      return a === b ? 0 : (a as number | bigint) < (b as number | bigint) ? -1 : 1;
  }
}

/** Bounds of strings and binaries are cut to this many characters or bytes (Iceberg's default `truncate(16)`). */
export const BOUND_TRUNCATE_LENGTH = 16;

function truncateLower(type: PrimitiveType, v: CanonicalValue): CanonicalValue {
  if (type.name === 'string')
    return Array.from(v as string)
      .slice(0, BOUND_TRUNCATE_LENGTH)
      .join('');
  if (type.name === 'binary') return (v as Uint8Array).subarray(0, BOUND_TRUNCATE_LENGTH);
  return v;
}

/** An upper bound no longer than the truncation length, or undefined when none exists that short. */
function truncateUpper(type: PrimitiveType, v: CanonicalValue): CanonicalValue | undefined {
  if (type.name === 'string') {
    const points = Array.from(v as string);
    if (points.length <= BOUND_TRUNCATE_LENGTH) return v;
    const cut = points.slice(0, BOUND_TRUNCATE_LENGTH);
    for (let i = cut.length - 1; i >= 0; i--) {
      let next = (cut[i] as string).codePointAt(0) as number;
      do next++;
      while (next >= 0xd800 && next <= 0xdfff);
      if (next <= 0x10ffff) return [...cut.slice(0, i), String.fromCodePoint(next)].join('');
    }
    return undefined;
  }
  if (type.name === 'binary') {
    const bytes = v as Uint8Array;
    if (bytes.length <= BOUND_TRUNCATE_LENGTH) return v;
    const cut = Uint8Array.from(bytes.subarray(0, BOUND_TRUNCATE_LENGTH));
    for (let i = cut.length - 1; i >= 0; i--) {
      if ((cut[i] as number) < 0xff) {
        cut[i] = (cut[i] as number) + 1;
        return cut.subarray(0, i + 1);
      }
    }
    return undefined;
  }
  return v;
}

export type FieldMetric<T> = readonly (readonly [fieldId: number, value: T])[];

export interface ColumnMetrics {
  readonly valueCounts: FieldMetric<number>;
  readonly nullValueCounts: FieldMetric<number>;
  readonly nanValueCounts: FieldMetric<number>;
  readonly lowerBounds: FieldMetric<Uint8Array>;
  readonly upperBounds: FieldMetric<Uint8Array>;
}

/** Metrics of rows (canonical values in column order) for every column. */
export function columnMetrics(
  columns: readonly ResolvedColumn[],
  rows: readonly (readonly CanonicalValue[])[],
): ColumnMetrics {
  const valueCounts: [number, number][] = [];
  const nullValueCounts: [number, number][] = [];
  const nanValueCounts: [number, number][] = [];
  const lowerBounds: [number, Uint8Array][] = [];
  const upperBounds: [number, Uint8Array][] = [];
  columns.forEach((c, i) => {
    let nulls = 0;
    let nans = 0;
    let min: CanonicalValue = null;
    let max: CanonicalValue = null;
    for (const row of rows) {
      const v = row[i] ?? null;
      if (v === null) {
        nulls++;
        continue;
      }
      if (typeof v === 'number' && Number.isNaN(v)) {
        nans++;
        continue;
      }
      if (min === null || compareValues(c.type, v, min) < 0) min = v;
      if (max === null || compareValues(c.type, v, max) > 0) max = v;
    }
    valueCounts.push([c.id, rows.length]);
    nullValueCounts.push([c.id, nulls]);
    if (c.type.name === 'float' || c.type.name === 'double') nanValueCounts.push([c.id, nans]);
    if (min !== null && max !== null) {
      const lower = truncateLower(c.type, min);
      const upper = truncateUpper(c.type, max);
      lowerBounds.push([c.id, toBinary(c.type, lower as Exclude<CanonicalValue, null>)]);
      if (upper !== undefined && upper !== null) upperBounds.push([c.id, toBinary(c.type, upper)]);
    }
  });
  return { valueCounts, nullValueCounts, nanValueCounts, lowerBounds, upperBounds };
}
