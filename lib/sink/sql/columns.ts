/**
 * Column types of a SQL output and the encoding of values into them, dialect-neutral and checked at
 * emit time: a value the column cannot hold exactly (a number beyond its range, more decimals than
 * its scale, a string with a NUL, an invalid date) fails the record instead of the commit.
 *
 * An encoded value (`SqlValue`) is plain data that survives the outbox codec: a string, a number, a
 * boolean, a bigint, a Uint8Array or null. Which of them a column holds:
 *
 *   text      string                       bigint   bigint          numeric  canonical decimal string
 *   integer   number (int32)               double   finite number   boolean  boolean
 *   timestamp ISO 8601 string, ms, UTC     json     JSON text       bytes    Uint8Array
 */

/** The column types a SQL output declares (docs/outputs.md#sql has their SQL types per dialect). */
export type SqlColumnType =
  | 'text'
  | 'integer'
  | 'bigint'
  | 'double'
  | 'numeric'
  | 'boolean'
  | 'timestamp'
  | 'json'
  | 'bytes';

export const SQL_COLUMN_TYPES: readonly SqlColumnType[] = [
  'text',
  'integer',
  'bigint',
  'double',
  'numeric',
  'boolean',
  'timestamp',
  'json',
  'bytes',
];

/** Types a key column may have (values equal in the database are equal here). */
export const SQL_KEY_TYPES: ReadonlySet<SqlColumnType> = new Set([
  'text',
  'integer',
  'bigint',
  'numeric',
  'boolean',
  'timestamp',
  'bytes',
]);

/** A declared column. */
export interface SqlColumn {
  readonly type: SqlColumnType;
  /** Whether the column may hold null (default false; a key column never does). */
  readonly nullable?: boolean;
  /** `text`: at most this many characters (code points); `bytes`: this many bytes. */
  readonly maxLength?: number;
  /** `numeric` (required): digits in all. */
  readonly precision?: number;
  /** `numeric` (required): digits after the decimal point. */
  readonly scale?: number;
}

/** A column as the sink reads it. */
export interface ResolvedSqlColumn {
  readonly name: string;
  readonly type: SqlColumnType;
  readonly nullable: boolean;
  readonly maxLength: number | undefined;
  readonly precision: number | undefined;
  readonly scale: number | undefined;
}

/** An encoded value. */
export type SqlValue = string | number | boolean | bigint | Uint8Array | null;

/** A value as a reader gets it back (`decode`, `readSqlOutputRows`): a `Date` for a timestamp, parsed JSON. */
export type SqlReadValue = string | number | boolean | bigint | Uint8Array | Date | null | unknown;

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };
const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
/** The widest range both dialects store in their timestamp types (MySQL's DATETIME). */
const TIMESTAMP_MIN = Date.UTC(1000, 0, 1);
const TIMESTAMP_MAX = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const DECIMAL = /^([+-]?)(\d+)(?:\.(\d+))?$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a Date';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  return typeof v;
}

/** Checks a string both dialects store as given (no NUL: PostgreSQL refuses it; valid UTF-16). */
function checkString(what: string, s: string): void {
  if (s.includes('\u0000')) throw new TypeError(`${what}: a string holds a NUL character (\\u0000)`);
  if (LONE_SURROGATE.test(s)) throw new TypeError(`${what}: a string holds a lone surrogate (not UTF-8)`);
}

/** `1.50` → `1.5`, `-0` → `0`, `007` → `7`: one spelling per number (so equal keys compare equal). */
export function canonicalDecimal(sign: string, whole: string, fraction: string): string {
  const w = whole.replace(/^0+(?=\d)/, '');
  const f = fraction.replace(/0+$/, '');
  const zero = /^0*$/.test(w) && f === '';
  return `${sign === '-' && !zero ? '-' : ''}${w}${f ? `.${f}` : ''}`;
}

function numericValue(what: string, v: unknown, c: ResolvedSqlColumn): string {
  let text: string;
  if (typeof v === 'bigint') text = v.toString();
  else if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`${what}: ${describe(v)} is not a decimal number`);
    text = String(v);
    // 1e21 and 1e-7 print in exponent form: give such numbers as strings, with their exact digits.
    if (/e/i.test(text)) throw new RangeError(`${what}: give ${text} as a decimal string`);
  } else if (typeof v === 'string') text = v;
  else
    throw new TypeError(
      `${what}: a numeric column takes a decimal string, a bigint or a number, got ${describe(v)}`,
    );
  const m = DECIMAL.exec(text);
  if (!m) throw new TypeError(`${what}: ${describe(v)} is not a decimal number (digits, an optional point)`);
  const value = canonicalDecimal(m[1]!, m[2]!, m[3] ?? '');
  const [whole, fraction = ''] = value.replace('-', '').split('.');
  const wholeDigits = whole === '0' ? 0 : whole!.length;
  if (fraction.length > c.scale!) {
    throw new RangeError(
      `${what}: ${value} has ${fraction.length} digits after the point, the column keeps ${c.scale} (it would be rounded)`,
    );
  }
  if (wholeDigits > c.precision! - c.scale!) {
    throw new RangeError(
      `${what}: ${value} has ${wholeDigits} digits before the point, numeric(${c.precision}, ${c.scale}) holds ${c.precision! - c.scale!}`,
    );
  }
  return value;
}

function integerValue(what: string, v: unknown, min: bigint, max: bigint): bigint {
  let n: bigint;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
  else if (typeof v === 'number' && Number.isInteger(v)) {
    throw new RangeError(`${what}: ${describe(v)} is beyond 2^53 and may have been rounded; give a bigint`);
  } else
    throw new TypeError(`${what}: an integer column takes an integer (number or bigint), got ${describe(v)}`);
  if (n < min || n > max) throw new RangeError(`${what}: ${n} is outside ${min}..${max}`);
  return n;
}

function timestampValue(what: string, v: unknown): string {
  let ms: number;
  if (v instanceof Date) ms = v.getTime();
  else if (typeof v === 'number' && Number.isSafeInteger(v)) ms = v;
  else
    throw new TypeError(
      `${what}: a timestamp column takes a Date or integer milliseconds, got ${describe(v)}`,
    );
  if (!Number.isFinite(ms)) throw new RangeError(`${what}: an invalid Date`);
  if (ms < TIMESTAMP_MIN || ms > TIMESTAMP_MAX) {
    throw new RangeError(`${what}: ${new Date(ms).toISOString()} is outside 1000-01-01 … 9999-12-31 (UTC)`);
  }
  return new Date(ms).toISOString();
}

/** Encodes one value into its column (throws what the column cannot hold). */
export function encodeSqlValue(c: ResolvedSqlColumn, v: unknown): SqlValue {
  const what = `column '${c.name}'`;
  if (v === null) {
    if (!c.nullable) throw new TypeError(`${what} is not nullable, got null`);
    return null;
  }
  switch (c.type) {
    case 'text': {
      if (typeof v !== 'string')
        throw new TypeError(`${what}: a text column takes a string, got ${describe(v)}`);
      checkString(what, v);
      if (c.maxLength !== undefined) {
        let n = 0;
        for (const _ of v) n++;
        if (n > c.maxLength)
          throw new RangeError(`${what}: ${n} characters, the column holds ${c.maxLength}`);
      }
      return v;
    }
    case 'integer':
      return Number(integerValue(what, v, BigInt(INT32.min), BigInt(INT32.max)));
    case 'bigint':
      return integerValue(what, v, INT64.min, INT64.max);
    case 'double':
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new TypeError(`${what}: a double column takes a finite number, got ${describe(v)}`);
      }
      return v;
    case 'numeric':
      return numericValue(what, v, c);
    case 'boolean':
      if (typeof v !== 'boolean')
        throw new TypeError(`${what}: a boolean column takes a boolean, got ${describe(v)}`);
      return v;
    case 'timestamp':
      return timestampValue(what, v);
    case 'json': {
      let text: string | undefined;
      try {
        text = JSON.stringify(v);
      } catch (err) {
        throw new TypeError(
          `${what}: the value has no JSON form (${err instanceof Error ? err.message : err})`,
        );
      }
      if (typeof text !== 'string')
        throw new TypeError(`${what}: the value has no JSON form (${describe(v)})`);
      // PostgreSQL's jsonb refuses \u0000 in strings.
      if (/(?<!\\)(?:\\\\)*\\u0000/.test(text))
        throw new TypeError(`${what}: the JSON holds a NUL character`);
      checkString(what, text);
      return text;
    }
    case 'bytes': {
      if (!(v instanceof Uint8Array))
        throw new TypeError(`${what}: a bytes column takes a Uint8Array, got ${describe(v)}`);
      if (c.maxLength !== undefined && v.byteLength > c.maxLength) {
        throw new RangeError(`${what}: ${v.byteLength} bytes, the column holds ${c.maxLength}`);
      }
      return new Uint8Array(v);
    }
  }
}

/** An encoded value as a reader gets it back. */
export function decodeSqlValue(type: SqlColumnType, v: SqlValue): SqlReadValue {
  if (v === null) return null;
  if (type === 'timestamp') return new Date(v as string);
  if (type === 'json') return JSON.parse(v as string);
  return v;
}

/**
 * One string per key value, equal exactly when the database sees equal values (with a binary
 * collation for text: see docs). Used to merge an epoch's writes of one row.
 */
export function keyValueId(type: SqlColumnType, v: SqlValue): string {
  if (v instanceof Uint8Array)
    return `${type}:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}`;
  return `${type}:${String(v)}`;
}
