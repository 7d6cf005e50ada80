/**
 * Reading and writing manifests and manifest lists of a v2 table: data files → `manifest_entry`
 * records (metrics maps, partition tuple), the header keys the spec requires (`schema`, `schema-id`,
 * `partition-spec`, `partition-spec-id`, `format-version`, `content`; for manifest lists the
 * `snapshot-id`, `parent-snapshot-id`, `sequence-number` Iceberg's writers add), and the
 * partition field summaries of a manifest list entry.
 */
import { randomUUID } from 'node:crypto';
import { IcebergError } from '../../errors.ts';
import {
  type AvroSchema,
  type DataFileRecord,
  type Long,
  type ManifestEntryRecord,
  ManifestEntryStatus,
  type ManifestFileRecord,
  manifestEntrySchema,
  manifestFileSchema,
  type PartitionFieldType,
  readAvro,
  toLong,
  writeAvro,
} from './avro.ts';
import type { DataFile } from './dataFiles.ts';
import type { IcebergFileIO } from './fileIO.ts';
import { metadataDirectory, stringifyJsonLossless, type TableMetadata } from './metadata.ts';
import { decimalBytes } from './parquet.ts';
import {
  type CanonicalValue,
  columnsOfSchema,
  type PartitionSpecJson,
  type PrimitiveType,
  type SchemaJson,
} from './schema.ts';
import { parseTransform, transformResultType } from './transforms.ts';
import { compareValues, fromBinary, toBinary } from './values.ts';

/** The partition spec of a table with the result type of each field. */
export interface SpecInfo {
  readonly spec: PartitionSpecJson;
  readonly schema: SchemaJson;
  readonly fields: readonly PartitionFieldType[];
}

export function specInfo(m: TableMetadata, specId: number): SpecInfo {
  const spec = m['partition-specs'].find((s) => s['spec-id'] === specId);
  const schema = m.schemas.find((s) => s['schema-id'] === m['current-schema-id']);
  if (!spec || !schema)
    throw new IcebergError(`partition spec ${specId} or the current schema is not in the table metadata`);
  const columns = columnsOfSchema(schema);
  const fields = spec.fields.map((f) => {
    const source = columns.find((c) => c.id === f['source-id']);
    const transform = parseTransform(f.transform);
    const type = source && transform ? transformResultType(transform, source.type) : undefined;
    if (!type)
      throw new IcebergError(`partition field ${f.name} (${f.transform}) is not supported by this sink`);
    return { name: f.name, fieldId: f['field-id'], type };
  });
  return { spec, schema, fields };
}

function toAvroPartitionValue(type: PrimitiveType, v: CanonicalValue): unknown {
  if (v === null) return null;
  switch (type.name) {
    case 'long':
      return toLong(v as bigint);
    case 'timestamp':
    case 'timestamptz': {
      const n = toLong(v as bigint);
      if (typeof n === 'bigint') throw new IcebergError(`timestamp partition value ${v} is out of range`);
      return n;
    }
    case 'decimal': {
      const size = decimalBytes(type.precision as number);
      const out = new Uint8Array(size);
      let n = BigInt.asUintN(size * 8, v as bigint);
      for (let i = size - 1; i >= 0; i--) {
        out[i] = Number(n & 0xffn);
        n >>= 8n;
      }
      return out;
    }
    default:
      return v;
  }
}

function fromAvroPartitionValue(type: PrimitiveType, v: unknown): CanonicalValue {
  if (v === null || v === undefined) return null;
  switch (type.name) {
    case 'long':
    case 'timestamp':
    case 'timestamptz':
      return BigInt(v as Long);
    case 'decimal':
      return fromBinary(type, v as Uint8Array);
    default:
      return v as CanonicalValue;
  }
}

export function partitionValues(info: SpecInfo, record: DataFileRecord): CanonicalValue[] {
  return info.fields.map((f) => fromAvroPartitionValue(f.type, record.partition[f.name]));
}

export function dataFileRecord(info: SpecInfo, f: DataFile): DataFileRecord {
  const partition: Record<string, unknown> = {};
  info.fields.forEach((p, i) => {
    partition[p.name] = toAvroPartitionValue(p.type, f.partition[i] ?? null);
  });
  const kv = <T>(m: readonly (readonly [number, T])[]) => m.map(([key, value]) => ({ key, value }));
  return {
    content: 0,
    file_path: f.path,
    file_format: 'PARQUET',
    partition,
    record_count: f.recordCount,
    file_size_in_bytes: f.fileSizeInBytes,
    column_sizes: null,
    value_counts: kv(f.valueCounts),
    null_value_counts: kv(f.nullValueCounts),
    nan_value_counts: kv(f.nanValueCounts),
    lower_bounds: kv(f.lowerBounds),
    upper_bounds: kv(f.upperBounds),
    key_metadata: null,
    split_offsets: null,
    equality_ids: null,
    sort_order_id: 0,
    referenced_data_file: null,
  };
}

/** The new manifest's path: unique per attempt, under the table's metadata directory (as Iceberg's writers name them). */
export function newManifestPath(m: TableMetadata): string {
  return `${metadataDirectory(m)}/${randomUUID()}-m0.avro`;
}

export function newManifestListPath(m: TableMetadata, snapshotId: Long, attempt: number): string {
  return `${metadataDirectory(m)}/snap-${snapshotId}-${attempt}-${randomUUID()}.avro`;
}

/** Writes a data manifest of `entries` and returns its manifest list record (sequence numbers filled in by the caller). */
export async function writeManifest(
  io: IcebergFileIO,
  path: string,
  info: SpecInfo,
  entries: readonly ManifestEntryRecord[],
  snapshotId: Long,
  sequenceNumber: Long,
): Promise<ManifestFileRecord> {
  const bytes = await writeAvro(manifestEntrySchema(info.fields), entries, {
    schema: stringifyJsonLossless(info.schema),
    'schema-id': String(info.schema['schema-id']),
    'partition-spec': JSON.stringify(info.spec.fields),
    'partition-spec-id': String(info.spec['spec-id']),
    'format-version': '2',
    content: 'data',
  });
  await io.put(path, bytes, { contentType: 'application/avro' });
  const count = (status: number) => entries.filter((e) => e.status === status);
  const rows = (list: ManifestEntryRecord[]) =>
    list.reduce((n, e) => n + BigInt(e.data_file.record_count), 0n);
  const live = entries.filter((e) => e.status !== ManifestEntryStatus.DELETED);
  // Sequence numbers count commits: far below 2^53.
  const minSequence = entries.reduce(
    (min, e) => Math.min(min, Number(e.sequence_number ?? sequenceNumber)),
    Number(sequenceNumber),
  );
  return {
    manifest_path: path,
    manifest_length: bytes.byteLength,
    partition_spec_id: info.spec['spec-id'],
    content: 0,
    sequence_number: sequenceNumber,
    min_sequence_number: minSequence,
    added_snapshot_id: snapshotId,
    added_files_count: count(ManifestEntryStatus.ADDED).length,
    existing_files_count: count(ManifestEntryStatus.EXISTING).length,
    deleted_files_count: count(ManifestEntryStatus.DELETED).length,
    added_rows_count: toLong(rows(count(ManifestEntryStatus.ADDED))),
    existing_rows_count: toLong(rows(count(ManifestEntryStatus.EXISTING))),
    deleted_rows_count: toLong(rows(count(ManifestEntryStatus.DELETED))),
    partitions: partitionSummaries(
      info,
      live.map((e) => partitionValues(info, e.data_file)),
    ),
    key_metadata: null,
  };
}

/** Field summaries of the partition tuples of a manifest's live files. */
export function partitionSummaries(info: SpecInfo, tuples: readonly (readonly CanonicalValue[])[]) {
  return info.fields.map((f, i) => {
    let containsNull = false;
    let containsNan = false;
    let lower: CanonicalValue = null;
    let upper: CanonicalValue = null;
    for (const t of tuples) {
      const v = t[i] ?? null;
      if (v === null) containsNull = true;
      else if (typeof v === 'number' && Number.isNaN(v)) containsNan = true;
      else {
        if (lower === null || compareValues(f.type, v, lower) < 0) lower = v;
        if (upper === null || compareValues(f.type, v, upper) > 0) upper = v;
      }
    }
    const floating = f.type.name === 'float' || f.type.name === 'double';
    return {
      contains_null: containsNull,
      contains_nan: floating ? containsNan : null,
      lower_bound: lower === null ? null : toBinary(f.type, lower),
      upper_bound: upper === null ? null : toBinary(f.type, upper),
    };
  });
}

export async function writeManifestList(
  io: IcebergFileIO,
  path: string,
  manifests: readonly ManifestFileRecord[],
  header: { snapshotId: Long; parentSnapshotId: Long | undefined; sequenceNumber: Long },
): Promise<void> {
  const bytes = await writeAvro(manifestFileSchema(), manifests, {
    'snapshot-id': String(header.snapshotId),
    'parent-snapshot-id': header.parentSnapshotId === undefined ? 'null' : String(header.parentSnapshotId),
    'sequence-number': String(header.sequenceNumber),
    'format-version': '2',
  });
  await io.put(path, bytes, { contentType: 'application/avro' });
}

async function read(io: IcebergFileIO, path: string): Promise<Uint8Array> {
  const bytes = await io.get(path);
  if (!bytes) throw new IcebergError(`${path}, referenced by the table metadata, does not exist`);
  return bytes;
}

export async function readManifestList(io: IcebergFileIO, path: string): Promise<ManifestFileRecord[]> {
  return (await readAvro<ManifestFileRecord>(await read(io, path), manifestFileSchema())).records;
}

export async function readManifestEntries(
  io: IcebergFileIO,
  path: string,
  info: SpecInfo,
): Promise<ManifestEntryRecord[]> {
  return (await readAvro<ManifestEntryRecord>(await read(io, path), manifestEntrySchema(info.fields)))
    .records;
}

/** Just the status and path of each entry of a manifest, whatever its partition spec. */
export async function readManifestFilePaths(
  io: IcebergFileIO,
  path: string,
): Promise<{ status: number; path: string }[]> {
  const schema: AvroSchema = {
    type: 'record',
    name: 'manifest_entry',
    fields: [
      { name: 'status', type: 'int', 'field-id': 0 },
      {
        name: 'data_file',
        'field-id': 2,
        type: {
          type: 'record',
          name: 'r2',
          fields: [{ name: 'file_path', type: 'string', 'field-id': 100 }],
        },
      },
    ],
  };
  const { records } = await readAvro<{ status: number; data_file: { file_path: string } }>(
    await read(io, path),
    schema,
  );
  return records.map((r) => ({ status: r.status, path: r.data_file.file_path }));
}
