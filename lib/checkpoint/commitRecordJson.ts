/**
 * The one JSON form of commit items (and savepoint items) for the stores that keep a record as a
 * document: PostgreSQL, MySQL/MariaDB and Redis. Every field of the record goes through, including
 * fields added later, so a new field of `CommitRecord` needs no change in any store. Values JSON
 * cannot hold become one-key objects:
 *
 *     123n          {"$bigint":"123"}      (offsets are int64: decimal, never a float)
 *     Uint8Array    {"$bytes":"<base64>"}  (inline outboxes, inline deltas)
 *
 * Records are Tidemark's own data (no user value is stored in them as such), so no object of theirs
 * has a single `$` key: a stored one that does is refused as malformed. `undefined` fields are left
 * out, as optional fields are. Other types (Map, Date, functions) are a programming error.
 */
import type { CheckpointSummary, CommitRecord, SnapshotRef } from './stores.ts';

/** A stored document that does not have the shape Tidemark writes. */
export class MalformedRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedRecordError';
  }
}

function toJsonValue(value: unknown, path: string): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} has no JSON form`);
      return value;
    case 'bigint':
      return { $bigint: value.toString() };
    case 'object': {
      if (value === null) return null;
      if (value instanceof Uint8Array) {
        return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
      }
      if (Array.isArray(value)) return value.map((v, i) => toJsonValue(v, `${path}[${i}]`));
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(`${path}: a ${value.constructor?.name ?? 'object'} has no JSON form`);
      }
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (v !== undefined) out[k] = toJsonValue(v, `${path}.${k}`);
      }
      return out;
    }
    case 'undefined':
      return null;
    default:
      throw new TypeError(`${path}: a ${typeof value} has no JSON form`);
  }
}

function fromJsonValue(value: unknown, path: string): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v, i) => fromJsonValue(v, `${path}[${i}]`));
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0]!.startsWith('$')) {
    const arg = o[keys[0]!];
    if (keys[0] === '$bigint' && typeof arg === 'string' && /^-?\d{1,40}$/.test(arg)) return BigInt(arg);
    if (keys[0] === '$bytes' && typeof arg === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(arg)) {
      return new Uint8Array(Buffer.from(arg, 'base64'));
    }
    throw new MalformedRecordError(`${path}: unknown or invalid tag ${JSON.stringify(o)}`);
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = fromJsonValue(o[k], `${path}.${k}`);
  return out;
}

/** Any record (commit item, savepoint meta or task) as a JSON value. */
export function toStoredJson(value: unknown): unknown {
  return toJsonValue(value, '$');
}

/** The inverse of `toStoredJson` (a parsed JSON value). */
export function fromStoredJson(value: unknown): unknown {
  return fromJsonValue(value, '$');
}

/** Any record as JSON text. */
export function encodeStoredJson(value: unknown): string {
  return JSON.stringify(toStoredJson(value));
}

/** The inverse of `encodeStoredJson`; malformed text throws `MalformedRecordError`. */
export function decodeStoredJson(text: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new MalformedRecordError(`not JSON: ${(err as Error).message}`);
  }
  return fromStoredJson(parsed);
}

type Fields = Record<string, unknown>;

function field(o: Fields, name: string, type: 'string' | 'number' | 'bigint' | 'object', where: string) {
  const v = o[name];
  const ok =
    type === 'number' ? Number.isSafeInteger(v) : type === 'object' ? Array.isArray(v) : typeof v === type;
  if (!ok)
    throw new MalformedRecordError(
      `${where}.${name} is missing or not ${type === 'object' ? 'a list' : type === 'number' ? 'an integer' : `a ${type}`}`,
    );
  return v;
}

function checkRef(r: unknown, where: string): SnapshotRef {
  if (typeof r !== 'object' || r === null) throw new MalformedRecordError(`${where} is not an object`);
  const o = r as Fields;
  field(o, 'key', 'string', where);
  field(o, 'bytes', 'number', where);
  field(o, 'checksum', 'string', where);
  field(o, 'epoch', 'number', where);
  field(o, 'entries', 'number', where);
  if (o.kind !== 'full' && o.kind !== 'delta') throw new MalformedRecordError(`${where}.kind is unknown`);
  if (o.inline !== undefined && !(o.inline instanceof Uint8Array))
    throw new MalformedRecordError(`${where}.inline is not bytes`);
  return o as unknown as SnapshotRef;
}

function checkSummary(s: unknown, where: string): CheckpointSummary {
  if (typeof s !== 'object' || s === null) throw new MalformedRecordError(`${where} is not an object`);
  const o = s as Fields;
  field(o, 'epoch', 'number', where);
  field(o, 'committedOffset', 'bigint', where);
  field(o, 'updatedAt', 'string', where);
  (field(o, 'chain', 'object', where) as unknown[]).forEach((r, i) => {
    checkRef(r, `${where}.chain[${i}]`);
  });
  return o as unknown as CheckpointSummary;
}

/** Checks the fields every commit item has; extra fields go through untouched. */
export function asCommitRecord(value: unknown): CommitRecord {
  const where = 'commit';
  checkSummary(value, where);
  const o = value as Fields;
  field(o, 'pipeline', 'string', where);
  field(o, 'topic', 'string', where);
  field(o, 'partition', 'number', where);
  field(o, 'quarantined', 'number', where);
  field(o, 'applied', 'number', where);
  field(o, 'attempt', 'string', where);
  (field(o, 'history', 'object', where) as unknown[]).forEach((h, i) => {
    checkSummary(h, `${where}.history[${i}]`);
  });
  return o as unknown as CommitRecord;
}

/** A commit item as JSON text. */
export function encodeCommitRecord(record: CommitRecord): string {
  return encodeStoredJson(record);
}

/** A commit item from JSON text (or a JSON value a driver already parsed). */
export function decodeCommitRecord(stored: string | object): CommitRecord {
  return asCommitRecord(typeof stored === 'string' ? decodeStoredJson(stored) : fromStoredJson(stored));
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Fields;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Whether two commit items are the same write (every field equal, key order aside). A store that lost
 * the answer to a commit reads the item back and compares: epoch and attempt alone do not tell an
 * in-place rewrite (same epoch, same attempt, an outbox marked settled) from the item it replaces.
 */
export function sameCommitRecord(a: CommitRecord, b: CommitRecord): boolean {
  return canonical(toStoredJson(a)) === canonical(toStoredJson(b));
}
