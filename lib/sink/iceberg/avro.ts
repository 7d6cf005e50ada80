/**
 * Manifests and manifest lists: Avro object container files (avsc) whose schemas are the v2
 * `manifest_entry` and `manifest_file` structs of the Iceberg spec, with the Iceberg field ids as
 * `field-id` (and `element-id`) attributes, maps with int keys as arrays of key/value records
 * (logical type `map`), optional fields as `["null", T]` with a null default, and the header keys the
 * spec requires. Types are written inline (no named references), which simple readers need.
 *
 * Longs: Iceberg snapshot ids written by other engines use all 63 bits, so longs decode to a number
 * when it is safe and to a bigint otherwise, and encode from either.
 */
import avro from 'avsc';
import { decimalBytes } from './parquet.ts';
import type { PrimitiveType } from './schema.ts';

export type Long = number | bigint;

/** A number when exactly representable, else a bigint. */
export function toLong(n: bigint): Long {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

const longType = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => toLong(buf.readBigInt64LE()),
  toBuffer: (n: Long) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (x: Long) => x,
  toJSON: (x: Long) => Number(x),
  isValid: (n: unknown) => typeof n === 'bigint' || Number.isSafeInteger(n),
  compare: (a: Long, b: Long) => (a === b ? 0 : a < b ? -1 : 1),
});

export type AvroSchema =
  | string
  | AvroSchema[]
  | {
      type: string;
      name?: string;
      fields?: AvroField[];
      items?: AvroSchema;
      size?: number;
      [attribute: string]: unknown;
    };
export interface AvroField {
  name: string;
  type: AvroSchema;
  default?: null;
  'field-id'?: number;
  doc?: string;
}

function opt(name: string, fieldId: number, type: AvroSchema, doc?: string): AvroField {
  return { name, type: ['null', type], default: null, 'field-id': fieldId, ...(doc ? { doc } : {}) };
}

function req(name: string, fieldId: number, type: AvroSchema, doc?: string): AvroField {
  return { name, type, 'field-id': fieldId, ...(doc ? { doc } : {}) };
}

function intMap(
  fieldId: number,
  keyId: number,
  valueId: number,
  valueType: 'long' | 'bytes',
  name: string,
  doc: string,
) {
  return opt(
    name,
    fieldId,
    {
      type: 'array',
      logicalType: 'map',
      items: {
        type: 'record',
        name: `k${keyId}_v${valueId}`,
        fields: [req('key', keyId, 'int'), req('value', valueId, valueType)],
      },
    },
    doc,
  );
}

/** The Avro type of a partition value (the transform's result type). */
export function partitionValueSchema(type: PrimitiveType, named: Set<string> = new Set()): AvroSchema {
  switch (type.name) {
    case 'binary':
      return 'bytes';
    case 'date':
      return { type: 'int', logicalType: 'date' };
    case 'timestamp':
    case 'timestamptz':
      return { type: 'long', logicalType: 'timestamp-micros', 'adjust-to-utc': type.name === 'timestamptz' };
    case 'decimal': {
      // Named as Iceberg's Java writer names it, so Avro schema resolution matches its manifests;
      // a second field of the same decimal type refers to the first definition by name.
      const name = `decimal_${type.precision}_${type.scale}`;
      if (named.has(name)) return name;
      named.add(name);
      return {
        type: 'fixed',
        name,
        size: decimalBytes(type.precision as number),
        logicalType: 'decimal',
        precision: type.precision,
        scale: type.scale,
      };
    }
    default:
      return type.name;
  }
}

export interface PartitionFieldType {
  readonly name: string;
  readonly fieldId: number;
  readonly type: PrimitiveType;
}

/** The v2 `manifest_entry` schema for a partition type. */
export function manifestEntrySchema(partition: readonly PartitionFieldType[]): AvroSchema {
  const named = new Set<string>();
  return {
    type: 'record',
    name: 'manifest_entry',
    fields: [
      req('status', 0, 'int'),
      opt('snapshot_id', 1, 'long'),
      opt('sequence_number', 3, 'long'),
      opt('file_sequence_number', 4, 'long'),
      req('data_file', 2, {
        type: 'record',
        name: 'r2',
        fields: [
          req('content', 134, 'int', 'Contents of the file: 0=data, 1=position deletes, 2=equality deletes'),
          req('file_path', 100, 'string', 'Location URI with FS scheme'),
          req('file_format', 101, 'string', 'File format name: avro, orc, or parquet'),
          req(
            'partition',
            102,
            {
              type: 'record',
              name: 'r102',
              fields: partition.map((p) => opt(p.name, p.fieldId, partitionValueSchema(p.type, named))),
            },
            'Partition data tuple, schema based on the partition spec',
          ),
          req('record_count', 103, 'long', 'Number of records in the file'),
          req('file_size_in_bytes', 104, 'long', 'Total file size in bytes'),
          intMap(108, 117, 118, 'long', 'column_sizes', 'Map of column id to total size on disk'),
          intMap(
            109,
            119,
            120,
            'long',
            'value_counts',
            'Map of column id to total count, including null and NaN',
          ),
          intMap(110, 121, 122, 'long', 'null_value_counts', 'Map of column id to null value count'),
          intMap(
            137,
            138,
            139,
            'long',
            'nan_value_counts',
            'Map of column id to number of NaN values in the column',
          ),
          intMap(125, 126, 127, 'bytes', 'lower_bounds', 'Map of column id to lower bound'),
          intMap(128, 129, 130, 'bytes', 'upper_bounds', 'Map of column id to upper bound'),
          opt('key_metadata', 131, 'bytes', 'Encryption key metadata blob'),
          opt(
            'split_offsets',
            132,
            { type: 'array', items: 'long', 'element-id': 133 },
            'Splittable offsets',
          ),
          opt(
            'equality_ids',
            135,
            { type: 'array', items: 'int', 'element-id': 136 },
            'Equality comparison field IDs',
          ),
          opt('sort_order_id', 140, 'int', 'Sort order ID'),
          opt(
            'referenced_data_file',
            143,
            'string',
            'Fully qualified location of a data file that all deletes reference',
          ),
        ],
      }),
    ],
  };
}

/** The v2 `manifest_file` schema (the records of a manifest list). */
export function manifestFileSchema(): AvroSchema {
  return {
    type: 'record',
    name: 'manifest_file',
    fields: [
      req('manifest_path', 500, 'string', 'Location URI with FS scheme'),
      req('manifest_length', 501, 'long', 'Total file size in bytes'),
      req('partition_spec_id', 502, 'int', 'Spec ID used to write'),
      req('content', 517, 'int', 'Contents of the manifest: 0=data, 1=deletes'),
      req('sequence_number', 515, 'long', 'Sequence number when the manifest was added'),
      req('min_sequence_number', 516, 'long', 'Lowest sequence number in the manifest'),
      req('added_snapshot_id', 503, 'long', 'Snapshot ID that added the manifest'),
      req('added_files_count', 504, 'int', 'Added entry count'),
      req('existing_files_count', 505, 'int', 'Existing entry count'),
      req('deleted_files_count', 506, 'int', 'Deleted entry count'),
      req('added_rows_count', 512, 'long', 'Added rows count'),
      req('existing_rows_count', 513, 'long', 'Existing rows count'),
      req('deleted_rows_count', 514, 'long', 'Deleted rows count'),
      opt(
        'partitions',
        507,
        {
          type: 'array',
          items: {
            type: 'record',
            name: 'r508',
            fields: [
              req('contains_null', 509, 'boolean', 'True if any file has a null partition value'),
              opt('contains_nan', 518, 'boolean', 'True if any file has a nan partition value'),
              opt('lower_bound', 510, 'bytes', 'Partition lower bound for all files'),
              opt('upper_bound', 511, 'bytes', 'Partition upper bound for all files'),
            ],
          },
          'element-id': 508,
        },
        'Summary for each partition',
      ),
      opt('key_metadata', 519, 'bytes', 'Encryption key metadata blob'),
    ],
  };
}

export interface FieldSummaryRecord {
  contains_null: boolean;
  contains_nan: boolean | null;
  lower_bound: Uint8Array | null;
  upper_bound: Uint8Array | null;
}

/** A manifest list record (`manifest_file`). */
export interface ManifestFileRecord {
  manifest_path: string;
  manifest_length: Long;
  partition_spec_id: number;
  content: number;
  sequence_number: Long;
  min_sequence_number: Long;
  added_snapshot_id: Long;
  added_files_count: number;
  existing_files_count: number;
  deleted_files_count: number;
  added_rows_count: Long;
  existing_rows_count: Long;
  deleted_rows_count: Long;
  partitions: FieldSummaryRecord[] | null;
  key_metadata: Uint8Array | null;
}

export interface KeyValue<T> {
  key: number;
  value: T;
}

/** A `data_file` record; `partition` maps partition field names to Avro values. */
export interface DataFileRecord {
  content: number;
  file_path: string;
  file_format: string;
  partition: Record<string, unknown>;
  record_count: Long;
  file_size_in_bytes: Long;
  column_sizes: KeyValue<Long>[] | null;
  value_counts: KeyValue<Long>[] | null;
  null_value_counts: KeyValue<Long>[] | null;
  nan_value_counts: KeyValue<Long>[] | null;
  lower_bounds: KeyValue<Uint8Array>[] | null;
  upper_bounds: KeyValue<Uint8Array>[] | null;
  key_metadata: Uint8Array | null;
  split_offsets: Long[] | null;
  equality_ids: number[] | null;
  sort_order_id: number | null;
  referenced_data_file: string | null;
}

export const ManifestEntryStatus = { EXISTING: 0, ADDED: 1, DELETED: 2 } as const;

export interface ManifestEntryRecord {
  status: number;
  snapshot_id: Long | null;
  sequence_number: Long | null;
  file_sequence_number: Long | null;
  data_file: DataFileRecord;
}

function branchName(s: AvroSchema): string {
  if (typeof s === 'string') return s;
  if (Array.isArray(s)) throw new Error('nested unions are not used');
  return s.type === 'record' || s.type === 'fixed' ? (s.name as string) : s.type;
}

/** Plain values → what avsc takes with wrapped unions (bytes as Buffers). */
function toAvro(s: AvroSchema, v: unknown): unknown {
  if (Array.isArray(s)) {
    if (v === null || v === undefined) return null;
    const branch = s.find((b) => b !== 'null') as AvroSchema;
    return { [branchName(branch)]: toAvro(branch, v) };
  }
  const type = typeof s === 'string' ? s : s.type;
  if (type === 'bytes' || type === 'fixed') {
    const b = v as Uint8Array;
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
  if (typeof s === 'object' && type === 'record') {
    const record = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const f of s.fields ?? []) out[f.name] = toAvro(f.type, record[f.name] ?? null);
    return out;
  }
  if (typeof s === 'object' && type === 'array')
    return (v as unknown[]).map((x) => toAvro(s.items as AvroSchema, x));
  // A named type referenced by name (a second decimal of the same type): bytes all the same.
  if (v instanceof Uint8Array && !Buffer.isBuffer(v))
    return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return v;
}

/** avsc's decoded values → plain values (unions unwrapped, bytes as Uint8Arrays). */
function fromAvro(s: AvroSchema, v: unknown): unknown {
  if (Array.isArray(s)) {
    if (v === null || v === undefined) return null;
    const [name, inner] = Object.entries(v as Record<string, unknown>)[0] as [string, unknown];
    const branch = s.find((b) => b !== 'null' && branchName(b) === name) as AvroSchema;
    return fromAvro(branch, inner);
  }
  const type = typeof s === 'string' ? s : s.type;
  if (type === 'bytes' || type === 'fixed') return Uint8Array.from(v as Buffer);
  if (typeof s === 'object' && type === 'record') {
    const record = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const f of s.fields ?? []) out[f.name] = fromAvro(f.type, record[f.name]);
    return out;
  }
  if (typeof s === 'object' && type === 'array')
    return (v as unknown[]).map((x) => fromAvro(s.items as AvroSchema, x));
  if (Buffer.isBuffer(v)) return Uint8Array.from(v);
  return v;
}

function typeOf(schema: AvroSchema) {
  return avro.Type.forSchema(schema as avro.Schema, { registry: { long: longType }, wrapUnions: true });
}

/** An Avro object container file (deflate) of records, with the schema (field ids kept) and metadata in its header. */
export async function writeAvro(
  schema: AvroSchema,
  records: readonly unknown[],
  metadata: Readonly<Record<string, string>>,
): Promise<Uint8Array> {
  const type = typeOf(schema);
  const meta: Record<string, Buffer> = { 'avro.schema': Buffer.from(JSON.stringify(schema)) };
  for (const [k, v] of Object.entries(metadata)) meta[k] = Buffer.from(v);
  // avsc's options type does not list `metadata`, which BlockEncoder supports.
  const encoder = new avro.streams.BlockEncoder(type, { codec: 'deflate', metadata: meta } as object);
  const chunks: Buffer[] = [];
  encoder.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    encoder.on('end', resolve);
    encoder.on('error', reject);
  });
  for (const r of records) encoder.write(toAvro(schema, r));
  encoder.end();
  await done;
  return new Uint8Array(Buffer.concat(chunks));
}

/** Records of an Avro container file, read through `schema` (Avro schema resolution by field name). */
export async function readAvro<T>(
  bytes: Uint8Array,
  schema: AvroSchema,
): Promise<{ records: T[]; metadata: Record<string, string> }> {
  const decoder = new avro.streams.BlockDecoder({ readerSchema: typeOf(schema) });
  const records: T[] = [];
  const metadata: Record<string, string> = {};
  decoder.on('data', (r: unknown) => records.push(fromAvro(schema, r) as T));
  decoder.on('metadata', (_type: unknown, _codec: unknown, header: { meta: Record<string, Buffer> }) => {
    for (const [k, v] of Object.entries(header.meta)) metadata[k] = v.toString('utf8');
  });
  const done = new Promise<void>((resolve, reject) => {
    decoder.on('end', resolve);
    decoder.on('error', reject);
  });
  decoder.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  await done;
  return { records, metadata };
}
