/**
 * Partition transforms (Iceberg spec, "Partition Transforms", "Bucket Transform Details",
 * "Truncate Transform Details", Appendix B) on canonical values (see schema.ts), and the
 * partition path of a data file (`name=value/…`, as the reference implementation names it).
 */
import type { CanonicalValue, PrimitiveType } from './schema.ts';

export type Transform =
  | { readonly name: 'identity' | 'year' | 'month' | 'day' | 'hour'; readonly text: string }
  | { readonly name: 'bucket' | 'truncate'; readonly width: number; readonly text: string };

export function parseTransform(text: string): Transform | undefined {
  if (text === 'identity' || text === 'year' || text === 'month' || text === 'day' || text === 'hour') {
    return { name: text, text };
  }
  const m = /^(bucket|truncate)\[\s*(\d+)\s*\]$/.exec(text);
  if (!m) return undefined;
  const width = Number(m[2]);
  if (!Number.isSafeInteger(width) || width < 1 || width > 2 ** 31 - 1) return undefined;
  const name = m[1] as 'bucket' | 'truncate';
  return { name, width, text: `${name}[${width}]` };
}

/** The type a transform produces from a source type, or undefined when it does not apply. */
export function transformResultType(t: Transform, source: PrimitiveType): PrimitiveType | undefined {
  const s = source.name;
  const temporal = s === 'date' || s === 'timestamp' || s === 'timestamptz';
  switch (t.name) {
    case 'identity':
      return source;
    case 'year':
    case 'month':
      return temporal ? { name: 'int' } : undefined;
    case 'day':
      return temporal ? { name: 'date' } : undefined;
    case 'hour':
      return s === 'timestamp' || s === 'timestamptz' ? { name: 'int' } : undefined;
    case 'bucket':
      return ['int', 'long', 'decimal', 'date', 'timestamp', 'timestamptz', 'string', 'binary'].includes(s)
        ? { name: 'int' }
        : undefined;
    case 'truncate':
      return ['int', 'long', 'decimal', 'string', 'binary'].includes(s) ? source : undefined;
  }
}

const DAY_US = 86_400_000_000n;
const HOUR_US = 3_600_000_000n;
const DAY_MS = 86_400_000;

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

/** Days since 1970-01-01 of a date (days) or timestamp (microseconds). */
function daysOf(source: PrimitiveType, v: number | bigint): number {
  return source.name === 'date' ? Number(v) : Number(floorDiv(v as bigint, DAY_US));
}

function utcDate(days: number): Date {
  return new Date(days * DAY_MS);
}

/** Applies a transform to a canonical value (null stays null). */
export function applyTransform(t: Transform, source: PrimitiveType, v: CanonicalValue): CanonicalValue {
  if (v === null) return null;
  switch (t.name) {
    case 'identity':
      return v;
    case 'day':
      return daysOf(source, v as number | bigint);
    case 'year':
      return utcDate(daysOf(source, v as number | bigint)).getUTCFullYear() - 1970;
    case 'month': {
      const d = utcDate(daysOf(source, v as number | bigint));
      return (d.getUTCFullYear() - 1970) * 12 + d.getUTCMonth();
    }
    case 'hour':
      return Number(floorDiv(v as bigint, HOUR_US));
    case 'bucket':
      return (murmur3(hashBytes(source, v)) & 0x7fffffff) % t.width;
    case 'truncate':
      return truncate(source, t.width, v);
  }
}

function truncate(source: PrimitiveType, width: number, v: CanonicalValue): CanonicalValue {
  switch (source.name) {
    case 'int': {
      const n = v as number;
      return n - (((n % width) + width) % width);
    }
    case 'long':
    case 'decimal': {
      const n = v as bigint;
      const w = BigInt(width);
      return n - (((n % w) + w) % w);
    }
    case 'string':
      return Array.from(v as string)
        .slice(0, width)
        .join('');
    case 'binary':
      return (v as Uint8Array).subarray(0, width);
    default:
      return v;
  }
}

function longBytes(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt.asIntN(64, n), true);
  return b;
}

/** Minimal two's-complement big-endian bytes of an integer (Iceberg's decimal encoding). */
export function minBigEndian(n: bigint): Uint8Array {
  const bytes: number[] = [];
  let v = n;
  for (;;) {
    const byte = Number(BigInt.asUintN(8, v));
    bytes.unshift(byte);
    v >>= 8n;
    if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
  }
  return Uint8Array.from(bytes);
}

/** The bytes Iceberg hashes for a value (Appendix B): ints, dates and timestamps hash as longs. */
function hashBytes(source: PrimitiveType, v: CanonicalValue): Uint8Array {
  switch (source.name) {
    case 'int':
    case 'date':
      return longBytes(BigInt(v as number));
    case 'long':
    case 'timestamp':
    case 'timestamptz':
      return longBytes(v as bigint);
    case 'decimal':
      return minBigEndian(v as bigint);
    case 'string':
      return new TextEncoder().encode(v as string);
    case 'binary':
      return v as Uint8Array;
    default:
      throw new Error(`bucket does not apply to ${source.name}`);
  }
}

/**
 * 32-bit Murmur3, x86 variant, seed 0, as a signed int. Written here rather than taken from a
 * package: it is 30 lines, the npm ports are unmaintained, and the spec's test vectors check it.
 */
export function murmur3(data: Uint8Array): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = 0;
  const blocks = data.length >> 2;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < blocks; i++) {
    let k = view.getUint32(i * 4, true);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = data.length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= (data[tail + 2] as number) << 16;
    if (rest >= 2) k ^= (data[tail + 1] as number) << 8;
    k ^= data[tail] as number;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= data.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

function pad(n: number, width: number): string {
  const s = String(Math.abs(n)).padStart(width, '0');
  return n < 0 ? `-${s}` : s;
}

function isoDate(days: number): string {
  const d = utcDate(days);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
}

function isoTimestamp(micros: bigint, zone: boolean): string {
  const seconds = floorDiv(micros, 1_000_000n);
  const frac = String(micros - seconds * 1_000_000n).padStart(6, '0');
  const iso = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${iso}.${frac}${zone ? '+00:00' : ''}`;
}

/** A human-readable partition value, as used in data file paths. */
export function humanValue(t: Transform, resultType: PrimitiveType, v: CanonicalValue): string {
  if (v === null) return 'null';
  if (t.name === 'year') return pad(1970 + (v as number), 4);
  if (t.name === 'month') {
    const m = v as number;
    const year = 1970 + Math.floor(m / 12);
    return `${pad(year, 4)}-${pad(m - (year - 1970) * 12 + 1, 2)}`;
  }
  if (t.name === 'hour') {
    const h = v as number;
    const day = Math.floor(h / 24);
    return `${isoDate(day)}-${pad(h - day * 24, 2)}`;
  }
  switch (resultType.name) {
    case 'date':
      return isoDate(v as number);
    case 'timestamp':
    case 'timestamptz':
      return isoTimestamp(v as bigint, resultType.name === 'timestamptz');
    case 'binary':
      return Buffer.from(v as Uint8Array).toString('base64');
    case 'decimal': {
      const scale = resultType.scale ?? 0;
      const n = v as bigint;
      const digits = (n < 0n ? -n : n).toString().padStart(scale + 1, '0');
      const text = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
      return n < 0n ? `-${text}` : text;
    }
    default:
      return String(v);
  }
}

/** `name=value/…` for a partition tuple (values URL-encoded), or '' for an unpartitioned table. */
export function partitionPath(
  fields: ReadonlyArray<{ name: string; transform: Transform; resultType: PrimitiveType }>,
  values: readonly CanonicalValue[],
): string {
  return fields
    .map(
      (f, i) => `${f.name}=${encodeURIComponent(humanValue(f.transform, f.resultType, values[i] ?? null))}`,
    )
    .join('/');
}
