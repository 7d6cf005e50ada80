/**
 * The snapshot envelope: a self-describing, checksummed binary object holding one task's state
 * (a full snapshot) or the changes of one epoch (a delta).
 *
 *     offset  size  field
 *     0       4     magic "TDMK"
 *     4       2     format version (uint16 LE): 1 or 2 (see below)
 *     6       2     flags (uint16 LE): bit 0 = body compressed with zstd
 *     8       4     header length H (uint32 LE)
 *     12      H     header: UTF-8 JSON (SnapshotHeader: task identity, epoch, offset, tables, sizes)
 *     12+H    8     raw body length (uint64 LE)
 *     20+H    8     stored body length B (uint64 LE)
 *     28+H    B     body (zstd-compressed when flagged)
 *     28+H+B  4     CRC-32 of every byte before it (uint32 LE)
 *
 * The raw body is, per table in header order: key lengths (uint32 LE each, in UTF-16 units), the
 * keys joined as one UTF-8 string, the values as one MessagePack array (records extension on, so
 * repeated object shapes cost their field names once), then the deleted keys (deltas only) as a
 * MessagePack array. Columns keep encode and decode to a few large operations instead of millions
 * of small ones: a 1 M-key state encodes and decodes in a few hundred milliseconds.
 *
 * Format 2 adds typed value columns. A value table of at least COLUMN_MIN_ROWS rows whose values are
 * all numbers, or all plain objects with the same fields in the same order whose values are all
 * numbers (a balance and a count, a deadline), is written with a `layout` in its table header: the
 * field names (null for numbers) and a type per field ('i32' when every value of the field is a
 * 32-bit integer, else 'f64'); its values are then one column per field, every row's value of that
 * field in row order (int32 or float64, little-endian), instead of MessagePack. Decoding copies the
 * columns into typed arrays and makes a row's value (a frozen object) only when it is asked for: a
 * restore no longer unpacks a million objects. A snapshot with no such table is written as format 1,
 * which older readers read; format 1 snapshots are read as before. As with MessagePack, -0 comes
 * back as 0.
 *
 * Decoding refuses, with typed errors, anything that is not exactly what was written: wrong magic,
 * unknown version, truncated or extended bytes, a checksum mismatch, an undecodable header or body.
 * Whether it is the *committed* snapshot (task identity, epoch, offset, size, checksum) is checked
 * by `verifySnapshotIdentity` against the commit item.
 */
import { crc32, constants as zc, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
// `msgpackr/pack`, not `msgpackr`: the package's main entry probes for its native string extractor
// when it loads (a native addon no bundled function ships), a cold-start cost for nothing.
import { addExtension, Packr } from 'msgpackr/pack';
import { SnapshotCorruptError, SnapshotIdentityError, StateError } from '../errors.ts';
import { ColumnarTable, type RowValues } from './columnarTable.ts';
import type { StateKind, StateScope } from './descriptors.ts';
import type { StateTable } from './stateStore.ts';

export const SNAPSHOT_MAGIC = 0x4b4d4454; // "TDMK" read as uint32 LE
/** The newest format written (format 1 is written when no table uses typed value columns). */
export const SNAPSHOT_FORMAT_VERSION = 2;
const FORMAT_MESSAGEPACK_VALUES = 1;
/** The fewest rows for which a table's values are written as typed columns. */
const COLUMN_MIN_ROWS = 1024;
/** The most fields an object value may have for its table to be written as typed columns. */
const COLUMN_MAX_FIELDS = 64;
/** Bodies up to this size decompress into one buffer (larger ones in zlib's chunks). */
const MAX_SINGLE_CHUNK = 2 ** 30;
const FLAG_ZSTD = 1;
const FIXED_BYTES = 4 + 2 + 2 + 4 + 8 + 8 + 4;

export type SnapshotKind = 'full' | 'delta';

/** Who the snapshot belongs to and which commit it is for. */
export interface SnapshotIdentity {
  pipeline: string;
  topic: string;
  partition: number;
  epoch: number;
  committedOffset: bigint;
}

export interface SnapshotTableHeader {
  name: string;
  kind: StateKind;
  scope: StateScope;
  version: number;
  entries: number;
  deletes: number;
  keyBytes: number;
  valueBytes: number;
  deleteBytes: number;
  /** Format 2: the table's values are typed columns (see the top of this file). */
  layout?: ValueLayout;
}

/** How a table's values are written as typed columns. */
export interface ValueLayout {
  /** The fields of every value, in order; null when every value is a number. */
  fields: string[] | null;
  /** One per field (one when `fields` is null). */
  types: Array<'i32' | 'f64'>;
}

export interface SnapshotHeader extends SnapshotIdentity {
  kind: SnapshotKind;
  /** For a delta: the epoch of the full snapshot its chain starts from; null for a full snapshot. */
  baseEpoch: number | null;
  /** For a delta: the epoch of the previous link of the chain; null for a full snapshot. */
  parentEpoch: number | null;
  /** Attempt that wrote it (unique per epoch attempt). */
  attempt: string;
  createdAt: string;
  entryCount: number;
  compression: 'zstd' | 'none';
  tables: SnapshotTableHeader[];
}

/** One table's content in a snapshot: entries (values or, for deltas, new values) and deleted keys. */
export interface SnapshotSection {
  name: string;
  kind: StateKind;
  scope: StateScope;
  version: number;
  /**
   * key → value (map state: Map of mapKey → value; list state: array), as a Map or as two columns
   * of equal length.
   */
  entries: Map<string, unknown> | { readonly keys: readonly string[]; readonly values: readonly unknown[] };
  /** Keys removed since the parent (deltas only). */
  deletes?: readonly string[];
}

export interface DecodedSnapshot {
  header: SnapshotHeader;
  sections: Array<{
    name: string;
    kind: StateKind;
    scope: StateScope;
    version: number;
    entries: Map<string, unknown>;
    deletes: string[];
  }>;
}

export type SnapshotMeta = Omit<SnapshotHeader, 'entryCount' | 'compression' | 'tables'>;

const PACK_OPTIONS = {
  useRecords: true,
  moreTypes: false,
  int64AsType: 'bigint',
  useBigIntExtension: true,
} as const;

/**
 * Objects with an own `__proto__` key (what `JSON.parse('{"__proto__": 1}')` makes) must come back
 * exactly. msgpackr renames such a key to `__proto_` whenever it decodes an object (its guard
 * against prototype pollution), so the encoder writes these objects as an extension of their own:
 * their entries as one flat [key, value, …] list, rebuilt on decoding with `defineProperty`, which
 * creates an own property and never calls the `__proto__` setter. The guard stays on for every
 * other object. Encoding only takes this path for a table whose packed values contain the bytes
 * `__proto__` at all (one scan of the packed bytes), so ordinary states pay nothing for it.
 */
class ProtoKeyedObject {
  readonly entries: unknown[];
  constructor(entries: unknown[]) {
    this.entries = entries;
  }
}

/** MessagePack extension type of `ProtoKeyedObject` ('P'). Older readers refuse it as corrupt. */
const PROTO_KEYED_EXT = 0x50;
const PROTO_KEY = '__proto__';
const PROTO_KEY_BYTES = Buffer.from(PROTO_KEY, 'utf8');

function objectFromEntries(flat: unknown): Record<string, unknown> {
  if (!Array.isArray(flat) || flat.length % 2 !== 0)
    throw new Error('object entries are not a key/value list');
  const out: Record<string, unknown> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const key = flat[i];
    if (typeof key !== 'string') throw new Error('object key is not a string');
    Object.defineProperty(out, key, {
      value: flat[i + 1],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  // Decoded values come out frozen (see unpacker()).
  return Object.freeze(out);
}

addExtension({
  Class: ProtoKeyedObject,
  type: PROTO_KEYED_EXT,
  write: (o: ProtoKeyedObject) => o.entries,
  read: objectFromEntries,
});

/** A copy of `value` in which every plain object with an own `__proto__` key is a ProtoKeyedObject. */
function protectProtoKeys(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(protectProtoKeys);
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, protectProtoKeys(v)]));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value; // Date, Buffer, …: msgpackr's own types
  const o = value as Record<string, unknown>;
  if (Object.hasOwn(o, PROTO_KEY)) {
    const flat: unknown[] = [];
    for (const k of Object.keys(o)) flat.push(k, protectProtoKeys(o[k]));
    return new ProtoKeyedObject(flat);
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) out[k] = protectProtoKeys(o[k]); // never `__proto__` here
  return out;
}

/** Packs a table's values, keeping own `__proto__` keys (see ProtoKeyedObject). */
function packValues(packr: Packr, values: readonly unknown[]): Buffer {
  const blob = packr.pack(values);
  if (!blob.includes(PROTO_KEY_BYTES)) return blob;
  return packr.pack(values.map(protectProtoKeys));
}

function packer(): Packr {
  // A fresh Packr per snapshot: record structures are written inline, so every object decodes alone.
  return new Packr(PACK_OPTIONS);
}

function unpacker(): Packr {
  // Decoded values come out frozen, as the state store keeps them (costs next to nothing here).
  // (`freezeData` is a documented msgpackr option missing from its type declarations.)
  return new Packr({ ...PACK_OPTIONS, freezeData: true } as ConstructorParameters<typeof Packr>[0]);
}

function flattenMap(m: unknown): unknown[] {
  const map = m as Map<string, unknown>;
  const flat = new Array<unknown>(map.size * 2);
  let i = 0;
  for (const [k, v] of map) {
    flat[i++] = k;
    flat[i++] = v;
  }
  return flat;
}

function unflattenMap(flat: unknown): Map<string, unknown> {
  if (!Array.isArray(flat) || flat.length % 2 !== 0)
    throw new Error('map state value is not a key/value list');
  const m = new Map<string, unknown>();
  for (let i = 0; i < flat.length; i += 2) m.set(flat[i] as string, flat[i + 1]);
  return m;
}

/**
 * The typed columns of a value table's values (see the top of this file), or null when they are not
 * all numbers or all plain objects of one shape with number fields. One pass over the values reads
 * every field once (into float64 columns, noting which fields are all 32-bit integers); the blob is
 * then written from those columns, without touching the values again.
 */
function typedColumns(values: readonly unknown[]): { layout: ValueLayout; blob: Buffer } | null {
  const n = values.length;
  const first = values[0];
  let fields: string[] | null = null;
  if (typeof first !== 'number') {
    if (!isPlainObject(first)) return null;
    fields = Object.keys(first);
    if (fields.length === 0 || fields.length > COLUMN_MAX_FIELDS || fields.includes(PROTO_KEY)) return null;
  }
  const width = fields ? fields.length : 1;
  const ints = new Array<boolean>(width).fill(true);
  // Field f of row r at read[f * n + r]; + 0: -0 is stored as 0, as MessagePack does.
  const read = new Float64Array(width * n);
  if (fields === null) {
    let int = true;
    for (let r = 0; r < n; r++) {
      const x = values[r];
      if (typeof x !== 'number') return null;
      if (int && (x | 0) !== x) int = false;
      read[r] = x + 0;
    }
    ints[0] = int;
  } else {
    // In chunks, each read by a short function of its own: one long loop over a million values was at
    // the mercy of on-stack replacement (a full snapshot's encode took 5–7 s instead of 0.4–0.6 s when
    // V8 kept deoptimizing and re-entering it); a small function called many times is optimized once.
    for (let from = 0; from < n; from += TYPED_CHUNK_ROWS) {
      if (!readObjectRows(values, from, Math.min(n, from + TYPED_CHUNK_ROWS), n, fields, read, ints))
        return null;
    }
  }
  const types = ints.map((i) => (i ? 'i32' : 'f64') as 'i32' | 'f64');
  let bytes = 0;
  for (const t of types) bytes += columnBytes(t, n);
  // Its own ArrayBuffer (offset 0): every column starts at a multiple of 4, so int32 columns are
  // written through aligned views.
  const blob = Buffer.allocUnsafeSlow(bytes);
  let at = 0;
  for (let f = 0; f < width; f++) {
    const from = f * n;
    if (types[f] === 'i32') {
      const col = new Int32Array(blob.buffer, blob.byteOffset + at, n);
      for (let r = 0; r < n; r++) col[r] = read[from + r]!;
    } else {
      blob.set(new Uint8Array(read.buffer, from * 8, n * 8), at);
    }
    at += columnBytes(types[f]!, n);
  }
  return { layout: { fields, types }, blob };
}

/** Rows read per call of readObjectRows. */
const TYPED_CHUNK_ROWS = 4096;

/**
 * Reads rows `from` to `to` of `values` (plain objects with exactly `fields`, in that order, all
 * numbers) into `read` (field f of row r at f * n + r), noting in `ints` which fields stay 32-bit
 * integers. False when a row is not such an object.
 */
function readObjectRows(
  values: readonly unknown[],
  from: number,
  to: number,
  n: number,
  fields: readonly string[],
  read: Float64Array,
  ints: boolean[],
): boolean {
  // Every value is touched first in a loop this short: the values lie scattered over the heap, and
  // a short loop keeps many of their cache misses in flight at once, where the checking loop below
  // would wait for them one or two at a time (it then finds them in the cache).
  let objects = 0;
  for (let r = from; r < to; r++) {
    const v = values[r];
    if (typeof v === 'object' && v !== null) objects++;
  }
  if (objects !== to - from) return false;
  const width = fields.length;
  for (let r = from; r < to; r++) {
    const v = values[r];
    if (!isPlainObject(v)) return false;
    let i = 0;
    for (const k in v) {
      if (k !== fields[i]) return false;
      const x = v[k];
      if (typeof x !== 'number') return false;
      if (ints[i] && (x | 0) !== x) ints[i] = false;
      read[i * n + r] = x + 0;
      i++;
    }
    if (i !== width) return false;
  }
  return true;
}

/** Bytes of one typed column of `rows` rows. */
function columnBytes(type: 'i32' | 'f64', rows: number): number {
  return rows * (type === 'i32' ? 4 : 8);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * A table's values from its typed columns (`bytes`, laid out as `layout` says): each row's value is
 * made when asked for, a number or a frozen object (as MessagePack decodes them, see unpacker()).
 */
class TypedValues implements RowValues<unknown> {
  readonly length: number;
  readonly #fields: string[] | null;
  readonly #columns: Array<Int32Array | Float64Array>;

  constructor(layout: ValueLayout, rows: number, bytes: Buffer) {
    const { fields, types } = layout;
    this.length = rows;
    this.#fields = fields;
    let expected = 0;
    for (const t of types) expected += columnBytes(t, rows);
    if (bytes.length !== expected) throw new Error('typed value columns do not match their layout');
    // Copied (aligned, and the decompressed body is not kept alive by the table).
    this.#columns = [];
    let at = 0;
    for (const t of types) {
      const size = columnBytes(t, rows);
      const copy = bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + size);
      this.#columns.push(t === 'i32' ? new Int32Array(copy) : new Float64Array(copy));
      at += size;
    }
  }

  valueAt(row: number): unknown {
    const fields = this.#fields;
    const columns = this.#columns;
    if (fields === null) return columns[0]![row];
    const o: Record<string, unknown> = {};
    for (let f = 0; f < fields.length; f++) o[fields[f]!] = columns[f]![row];
    return Object.freeze(o);
  }

  /** Every row's value, in order. */
  toArray(): unknown[] {
    const out = new Array<unknown>(this.length);
    for (let r = 0; r < this.length; r++) out[r] = this.valueAt(r);
    return out;
  }
}

/** A section's keys and values as two arrays (map state values flattened to key/value lists). */
function columns(s: SnapshotSection): { keys: readonly string[]; values: readonly unknown[] } {
  const src = s.entries;
  const flat = s.kind === 'map';
  if (src instanceof Map) {
    const keys = new Array<string>(src.size);
    const values = new Array<unknown>(src.size);
    let i = 0;
    src.forEach((v, k) => {
      keys[i] = k;
      values[i++] = flat ? flattenMap(v) : v;
    });
    return { keys, values };
  }
  if (src.keys.length !== src.values.length) {
    throw new StateError(`state '${s.name}': keys and values differ in length`);
  }
  return flat ? { keys: src.keys, values: src.values.map(flattenMap) } : src;
}

/** A table's key columns: each key's length (uint32 LE, in UTF-16 units) and the keys as UTF-8. */
interface KeyColumns {
  readonly keys: readonly string[];
  readonly lens: Buffer;
  readonly blob: Buffer;
}

/**
 * The key columns last written for a table (by its entries Map), reused while the table holds the
 * same keys in the same order: a table whose values change but whose keys do not (every full snapshot
 * of a settled key space) then skips joining, checking and encoding its keys again. Checking costs a
 * pass of string comparisons, nearly all of them on the very same strings (a Map keeps the key it was
 * first given). Only for tables of COLUMN_MIN_ROWS to KEY_CACHE_MAX_ROWS keys: the entry keeps the
 * key array and both columns alive with the table.
 */
const keyColumnCache = new WeakMap<object, KeyColumns>();
const KEY_CACHE_MAX_ROWS = 1 << 18;

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function keyColumns(s: SnapshotSection, keys: readonly string[]): KeyColumns {
  const src = s.entries;
  const n = keys.length;
  const cacheable = src instanceof Map && n >= COLUMN_MIN_ROWS && n <= KEY_CACHE_MAX_ROWS;
  if (cacheable) {
    const cached = keyColumnCache.get(src);
    if (cached && sameKeys(cached.keys, keys)) return cached;
  }
  const lens = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const k = keys[i];
    if (typeof k !== 'string') throw new StateError(`state '${s.name}': keys must be strings`);
    lens[i] = k.length;
  }
  const joined = keys.join('');
  if (!joined.isWellFormed()) throw new StateError(`state '${s.name}': a key is not well-formed UTF-16`);
  const out: KeyColumns = {
    keys,
    lens: Buffer.from(lens.buffer, lens.byteOffset, lens.byteLength),
    blob: Buffer.from(joined, 'utf8'),
  };
  if (cacheable) keyColumnCache.set(src, out);
  return out;
}

/** Encodes a snapshot. `sections` are written in order. */
export function encodeSnapshot(
  meta: SnapshotMeta,
  sections: Iterable<SnapshotSection>,
  compression: 'zstd' | 'none' = 'zstd',
): Buffer {
  const packr = packer();
  const tables: SnapshotTableHeader[] = [];
  const parts: Buffer[] = [];
  let entryCount = 0;
  for (const s of sections) {
    const { keys, values } = columns(s);
    const n = keys.length;
    const { lens, blob: keyBlob } = keyColumns(s, keys);
    let valueBlob: Buffer;
    let layout: ValueLayout | undefined;
    try {
      const typed = s.kind === 'value' && n >= COLUMN_MIN_ROWS ? typedColumns(values) : null;
      if (typed) {
        layout = typed.layout;
        valueBlob = typed.blob;
      } else valueBlob = packValues(packr, values);
    } catch (err) {
      throw new StateError(`state '${s.name}': a value cannot be encoded (${(err as Error).message})`, {
        cause: err,
      });
    }
    const deletes = s.deletes ?? [];
    const deleteBlob = deletes.length > 0 ? packr.pack(deletes) : Buffer.alloc(0);
    parts.push(lens, keyBlob, valueBlob, deleteBlob);
    tables.push({
      name: s.name,
      kind: s.kind,
      scope: s.scope,
      version: s.version,
      entries: n,
      deletes: deletes.length,
      keyBytes: keyBlob.length,
      valueBytes: valueBlob.length,
      deleteBytes: deleteBlob.length,
      ...(layout ? { layout } : {}),
    });
    entryCount += n;
  }
  const rawBody = Buffer.concat(parts);
  const body =
    compression === 'zstd'
      ? zstdCompressSync(rawBody, { params: { [zc.ZSTD_c_compressionLevel]: 1 } })
      : rawBody;
  const header: SnapshotHeader = { ...meta, entryCount, compression, tables };
  const headerBlob = Buffer.from(
    JSON.stringify(header, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    'utf8',
  );
  const total = FIXED_BYTES + headerBlob.length + body.length;
  const out = Buffer.allocUnsafe(total);
  let p = 0;
  out.writeUInt32LE(SNAPSHOT_MAGIC, p);
  p += 4;
  const version = tables.some((t) => t.layout) ? SNAPSHOT_FORMAT_VERSION : FORMAT_MESSAGEPACK_VALUES;
  out.writeUInt16LE(version, p);
  p += 2;
  out.writeUInt16LE(compression === 'zstd' ? FLAG_ZSTD : 0, p);
  p += 2;
  out.writeUInt32LE(headerBlob.length, p);
  p += 4;
  headerBlob.copy(out, p);
  p += headerBlob.length;
  out.writeBigUInt64LE(BigInt(rawBody.length), p);
  p += 8;
  out.writeBigUInt64LE(BigInt(body.length), p);
  p += 8;
  body.copy(out, p);
  p += body.length;
  out.writeUInt32LE(crc32(out.subarray(0, p)), p);
  return out;
}

/** CRC-32 stored in a snapshot's trailer (what commit items record), as 8 hex digits. */
export function snapshotChecksum(bytes: Uint8Array): string {
  if (bytes.length < 4) return '';
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return b
    .readUInt32LE(b.length - 4)
    .toString(16)
    .padStart(8, '0');
}

function parseHeader(blob: Buffer, key: string | undefined, version: number): SnapshotHeader {
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(blob.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new SnapshotCorruptError('header is not valid JSON', { key, cause: err });
  }
  const bad = (field: string) =>
    new SnapshotCorruptError(`header field ${field} is missing or invalid`, { key });
  const str = (f: string) => {
    if (typeof h[f] !== 'string') throw bad(f);
    return h[f] as string;
  };
  const int = (f: string) => {
    if (!Number.isSafeInteger(h[f]) || (h[f] as number) < 0) throw bad(f);
    return h[f] as number;
  };
  const intOrNull = (f: string) => (h[f] === null ? null : int(f));
  const committed = str('committedOffset');
  if (!/^\d{1,19}$/.test(committed)) throw bad('committedOffset');
  const kind = str('kind');
  if (kind !== 'full' && kind !== 'delta') throw bad('kind');
  const compression = str('compression');
  if (compression !== 'zstd' && compression !== 'none') throw bad('compression');
  if (!Array.isArray(h.tables)) throw bad('tables');
  const tables = (h.tables as unknown[]).map((t, i): SnapshotTableHeader => {
    const r = t as Record<string, unknown>;
    const ok =
      typeof r === 'object' &&
      r !== null &&
      typeof r.name === 'string' &&
      (r.kind === 'value' || r.kind === 'map' || r.kind === 'list') &&
      (r.scope === 'key' || r.scope === 'task') &&
      ['version', 'entries', 'deletes', 'keyBytes', 'valueBytes', 'deleteBytes'].every(
        (f) => Number.isSafeInteger(r[f]) && (r[f] as number) >= 0,
      );
    if (!ok) throw bad(`tables[${i}]`);
    if (r.layout !== undefined && (version < 2 || r.kind !== 'value' || !validLayout(r.layout)))
      throw bad(`tables[${i}].layout`);
    return r as unknown as SnapshotTableHeader;
  });
  return {
    pipeline: str('pipeline'),
    topic: str('topic'),
    partition: int('partition'),
    epoch: int('epoch'),
    committedOffset: BigInt(committed),
    kind,
    baseEpoch: intOrNull('baseEpoch'),
    parentEpoch: intOrNull('parentEpoch'),
    attempt: str('attempt'),
    createdAt: str('createdAt'),
    entryCount: int('entryCount'),
    compression,
    tables,
  };
}

function validLayout(l: unknown): l is ValueLayout {
  if (typeof l !== 'object' || l === null) return false;
  const { fields, types } = l as Record<string, unknown>;
  if (!Array.isArray(types) || !types.every((t) => t === 'i32' || t === 'f64')) return false;
  if (fields === null) return types.length === 1;
  return (
    Array.isArray(fields) &&
    fields.length === types.length &&
    fields.length > 0 &&
    fields.length <= COLUMN_MAX_FIELDS &&
    fields.every((f) => typeof f === 'string' && f !== PROTO_KEY) &&
    new Set(fields).size === fields.length
  );
}

function decodeEnvelope(
  bytes: Uint8Array,
  key: string | undefined,
): { header: SnapshotHeader; body: Buffer; raw: number } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < FIXED_BYTES) throw new SnapshotCorruptError(`truncated: ${b.length} bytes`, { key });
  if (b.readUInt32LE(0) !== SNAPSHOT_MAGIC)
    throw new SnapshotCorruptError('not a Tidemark snapshot (bad magic)', { key });
  const version = b.readUInt16LE(4);
  if (version !== FORMAT_MESSAGEPACK_VALUES && version !== SNAPSHOT_FORMAT_VERSION) {
    throw new SnapshotCorruptError(`unsupported snapshot format version ${version}`, { key });
  }
  const flags = b.readUInt16LE(6);
  const headerLen = b.readUInt32LE(8);
  if (12 + headerLen + 16 > b.length - 4) throw new SnapshotCorruptError('truncated header', { key });
  const rawLen = b.readBigUInt64LE(12 + headerLen);
  const storedLen = b.readBigUInt64LE(20 + headerLen);
  const expected = BigInt(FIXED_BYTES + headerLen) + storedLen;
  if (expected > BigInt(b.length)) {
    throw new SnapshotCorruptError(`truncated: ${b.length} bytes, envelope says ${expected}`, { key });
  }
  if (expected < BigInt(b.length)) {
    throw new SnapshotCorruptError(`extended: ${BigInt(b.length) - expected} bytes after the envelope`, {
      key,
    });
  }
  const end = b.length - 4;
  if (crc32(b.subarray(0, end)) !== b.readUInt32LE(end))
    throw new SnapshotCorruptError('checksum mismatch', { key });
  if (flags & ~FLAG_ZSTD) throw new SnapshotCorruptError(`unknown flags ${flags}`, { key });
  const header = parseHeader(b.subarray(12, 12 + headerLen), key, version);
  if ((header.compression === 'zstd') !== ((flags & FLAG_ZSTD) !== 0)) {
    throw new SnapshotCorruptError('compression flag disagrees with the header', { key });
  }
  return { header, body: b.subarray(28 + headerLen, end), raw: Number(rawLen) };
}

/**
 * Decodes and checks a snapshot object. Throws `SnapshotCorruptError` on anything wrong. With
 * `columnar`, value and list tables come back as `ColumnarTable`s (a `Map` built lazily from the
 * columns: what a restore uses, see ./columnarTable.ts); otherwise as plain `Map`s.
 */
export function decodeSnapshot(
  bytes: Uint8Array,
  key?: string,
  options: { columnar?: boolean } = {},
): DecodedSnapshot {
  const { header, body, raw: rawLen } = decodeEnvelope(bytes, key);
  let raw: Buffer;
  if (header.compression === 'zstd') {
    try {
      // One output buffer of the body's size: zlib's default (16 KB chunks joined at the end)
      // allocates the body twice and takes several times longer for a large one.
      raw = zstdDecompressSync(body, {
        maxOutputLength: Math.max(rawLen, 1),
        chunkSize: rawLen < MAX_SINGLE_CHUNK ? Math.max(rawLen + 1, 64) : undefined,
      });
    } catch (err) {
      throw new SnapshotCorruptError('body does not decompress', { key, cause: err });
    }
  } else raw = body;
  if (raw.length !== rawLen)
    throw new SnapshotCorruptError(`body is ${raw.length} bytes, header says ${rawLen}`, { key });
  const expectedRaw = header.tables.reduce(
    (n, t) => n + t.entries * 4 + t.keyBytes + t.valueBytes + t.deleteBytes,
    0,
  );
  if (expectedRaw !== raw.length)
    throw new SnapshotCorruptError('table sizes do not add up to the body', { key });

  const packr = unpacker();
  const sections: DecodedSnapshot['sections'] = [];
  let p = 0;
  let entryCount = 0;
  for (const t of header.tables) {
    try {
      const tableStart = raw.byteOffset + p;
      // The lengths are only read here: a view of the body when it is aligned, else a copy.
      const lens =
        tableStart % 4 === 0
          ? new Uint32Array(raw.buffer, tableStart, t.entries)
          : new Uint32Array(raw.buffer.slice(tableStart, tableStart + t.entries * 4));
      p += t.entries * 4;
      const joined = raw.toString('utf8', p, p + t.keyBytes);
      p += t.keyBytes;
      const valueBytes = raw.subarray(p, p + t.valueBytes);
      const typed = t.layout ? new TypedValues(t.layout, t.entries, valueBytes) : null;
      const values = typed ?? (packr.unpack(valueBytes) as unknown[]);
      p += t.valueBytes;
      const deletes = t.deleteBytes > 0 ? (packr.unpack(raw.subarray(p, p + t.deleteBytes)) as string[]) : [];
      p += t.deleteBytes;
      if (!(typed || Array.isArray(values)) || values.length !== t.entries)
        throw new Error('value count mismatch');
      if (!Array.isArray(deletes) || deletes.length !== t.deletes) throw new Error('delete count mismatch');
      let entries: Map<string, unknown>;
      if (options.columnar && t.kind !== 'map') {
        // A decompressed body is the decoder's own, and once a typed table's keys are a string and
        // its columns copied, the table's bytes are dead: the index may build in them (fewer fresh
        // megabytes per restore). Not for MessagePack values (binary values are views of the body).
        const scratch =
          typed && header.compression === 'zstd'
            ? deadInt32s(raw.buffer, tableStart, tableStart + t.entries * 4 + t.keyBytes + t.valueBytes)
            : undefined;
        entries = ColumnarTable.fromColumns(joined, lens, values, scratch);
      } else {
        entries = new Map<string, unknown>();
        const all = typed ? typed.toArray() : (values as unknown[]);
        let pos = 0;
        for (let i = 0; i < t.entries; i++) {
          const len = lens[i]!;
          const v = all[i];
          entries.set(joined.slice(pos, pos + len), t.kind === 'map' ? unflattenMap(v) : v);
          pos += len;
        }
        if (pos !== joined.length || entries.size !== t.entries)
          throw new Error('keys do not match their lengths');
      }
      sections.push({ name: t.name, kind: t.kind, scope: t.scope, version: t.version, entries, deletes });
      entryCount += t.entries;
    } catch (err) {
      if (err instanceof SnapshotCorruptError) throw err;
      throw new SnapshotCorruptError(`table '${t.name}' does not decode: ${(err as Error).message}`, {
        key,
        cause: err,
      });
    }
  }
  if (entryCount !== header.entryCount) throw new SnapshotCorruptError('entry count mismatch', { key });
  return { header, sections };
}

/** The int32s that fit in bytes [from, to) of `buffer`, aligned. */
function deadInt32s(buffer: ArrayBufferLike, from: number, to: number): Int32Array {
  const start = (from + 3) & ~3;
  return new Int32Array(buffer, start, Math.max(0, (to - start) >> 2));
}

/** What a commit item says about the snapshot it points at. */
export interface ExpectedSnapshot extends SnapshotIdentity {
  bytes: number;
  checksum: string;
  kind?: SnapshotKind;
}

/**
 * Refuses a snapshot that is not the one the commit item references: another task's, another
 * epoch's, an orphan of a losing attempt, or an object of a different size or checksum.
 */
export function verifySnapshotIdentity(
  bytes: Uint8Array,
  header: SnapshotHeader,
  expected: ExpectedSnapshot,
  key?: string,
): void {
  const mismatch = (what: string, got: unknown, want: unknown) =>
    new SnapshotIdentityError(`${what} is ${String(got)}, the commit item says ${String(want)}`, { key });
  if (bytes.length !== expected.bytes) throw mismatch('size', bytes.length, expected.bytes);
  const sum = snapshotChecksum(bytes);
  if (sum !== expected.checksum) throw mismatch('checksum', sum, expected.checksum);
  if (header.pipeline !== expected.pipeline) throw mismatch('pipeline', header.pipeline, expected.pipeline);
  if (header.topic !== expected.topic) throw mismatch('topic', header.topic, expected.topic);
  if (header.partition !== expected.partition)
    throw mismatch('partition', header.partition, expected.partition);
  if (header.epoch !== expected.epoch) throw mismatch('epoch', header.epoch, expected.epoch);
  if (header.committedOffset !== expected.committedOffset) {
    throw mismatch('committed offset', header.committedOffset, expected.committedOffset);
  }
  if (expected.kind && header.kind !== expected.kind) throw mismatch('kind', header.kind, expected.kind);
}

/** Sections of a full snapshot of these tables. */
export function fullSections(tables: Iterable<StateTable>): SnapshotSection[] {
  return [...tables].map((t) => ({
    name: t.name,
    kind: t.kind,
    scope: t.scope,
    version: t.version,
    entries: t.data,
  }));
}

/**
 * Sections of a delta: for each changed key, its current value, or its deletion when the key no
 * longer exists. `changes` is what `StateStore.takeChanges()` returned for the epoch.
 */
export function deltaSections(
  store: { table(name: string): StateTable | undefined },
  changes: ReadonlyMap<string, Iterable<string>>,
): SnapshotSection[] {
  const out: SnapshotSection[] = [];
  for (const [name, keys] of changes) {
    const t = store.table(name);
    if (!t) continue;
    const present: string[] = [];
    const values: unknown[] = [];
    const deletes: string[] = [];
    const data = t.data;
    for (const k of keys) {
      const v = data.get(k);
      if (v !== undefined) {
        present.push(k);
        values.push(v);
      } else if (!data.has(k)) deletes.push(k);
    }
    if (present.length === 0 && deletes.length === 0) continue;
    out.push({
      name,
      kind: t.kind,
      scope: t.scope,
      version: t.version,
      entries: { keys: present, values },
      deletes,
    });
  }
  return out;
}

/** State tables of a decoded full snapshot. */
export function tablesOf(decoded: DecodedSnapshot): StateTable[] {
  return decoded.sections.map((s) => ({
    name: s.name,
    kind: s.kind,
    scope: s.scope,
    version: s.version,
    data: s.entries,
  }));
}
