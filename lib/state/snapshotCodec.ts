/**
 * The snapshot envelope: a self-describing, checksummed binary object holding one task's state
 * (a full snapshot) or the changes of one epoch (a delta).
 *
 *     offset  size  field
 *     0       4     magic "TDMK"
 *     4       2     format version (uint16 LE) = 1
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
import { ColumnarTable } from './columnarTable.ts';
import type { StateKind, StateScope } from './descriptors.ts';
import type { StateTable } from './stateStore.ts';

export const SNAPSHOT_MAGIC = 0x4b4d4454; // "TDMK" read as uint32 LE
export const SNAPSHOT_FORMAT_VERSION = 1;
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
    const lens = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const k = keys[i];
      if (typeof k !== 'string') throw new StateError(`state '${s.name}': keys must be strings`);
      lens[i] = k.length;
    }
    const joined = keys.join('');
    if (!joined.isWellFormed()) throw new StateError(`state '${s.name}': a key is not well-formed UTF-16`);
    const keyBlob = Buffer.from(joined, 'utf8');
    let valueBlob: Buffer;
    try {
      valueBlob = packValues(packr, values);
    } catch (err) {
      throw new StateError(`state '${s.name}': a value cannot be encoded (${(err as Error).message})`, {
        cause: err,
      });
    }
    const deletes = s.deletes ?? [];
    const deleteBlob = deletes.length > 0 ? packr.pack(deletes) : Buffer.alloc(0);
    parts.push(Buffer.from(lens.buffer, lens.byteOffset, lens.byteLength), keyBlob, valueBlob, deleteBlob);
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
    });
    entryCount += n;
  }
  const raw = Buffer.concat(parts);
  const body =
    compression === 'zstd' ? zstdCompressSync(raw, { params: { [zc.ZSTD_c_compressionLevel]: 1 } }) : raw;
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
  out.writeUInt16LE(SNAPSHOT_FORMAT_VERSION, p);
  p += 2;
  out.writeUInt16LE(compression === 'zstd' ? FLAG_ZSTD : 0, p);
  p += 2;
  out.writeUInt32LE(headerBlob.length, p);
  p += 4;
  headerBlob.copy(out, p);
  p += headerBlob.length;
  out.writeBigUInt64LE(BigInt(raw.length), p);
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

function parseHeader(blob: Buffer, key: string | undefined): SnapshotHeader {
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

function decodeEnvelope(
  bytes: Uint8Array,
  key: string | undefined,
): { header: SnapshotHeader; body: Buffer; raw: number } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < FIXED_BYTES) throw new SnapshotCorruptError(`truncated: ${b.length} bytes`, { key });
  if (b.readUInt32LE(0) !== SNAPSHOT_MAGIC)
    throw new SnapshotCorruptError('not a Tidemark snapshot (bad magic)', { key });
  const version = b.readUInt16LE(4);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
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
  const header = parseHeader(b.subarray(12, 12 + headerLen), key);
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
      raw = zstdDecompressSync(body, { maxOutputLength: Math.max(rawLen, 1) });
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
      // Copy the lengths so the Uint32Array is aligned whatever the offset.
      const lens = new Uint32Array(raw.buffer.slice(raw.byteOffset + p, raw.byteOffset + p + t.entries * 4));
      p += t.entries * 4;
      const joined = raw.toString('utf8', p, p + t.keyBytes);
      p += t.keyBytes;
      const values = packr.unpack(raw.subarray(p, p + t.valueBytes)) as unknown[];
      p += t.valueBytes;
      const deletes = t.deleteBytes > 0 ? (packr.unpack(raw.subarray(p, p + t.deleteBytes)) as string[]) : [];
      p += t.deleteBytes;
      if (!Array.isArray(values) || values.length !== t.entries) throw new Error('value count mismatch');
      if (!Array.isArray(deletes) || deletes.length !== t.deletes) throw new Error('delete count mismatch');
      let entries: Map<string, unknown>;
      if (options.columnar && t.kind !== 'map') entries = ColumnarTable.fromColumns(joined, lens, values);
      else {
        entries = new Map<string, unknown>();
        let pos = 0;
        for (let i = 0; i < t.entries; i++) {
          const len = lens[i]!;
          const v = values[i];
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
