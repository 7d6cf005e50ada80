/**
 * Data files of an epoch, and the staged-epoch record that lists them.
 *
 * `writeDataFiles(task, epoch, rows)` groups an epoch's rows by partition, cuts each group into
 * files of at most `maxRowsPerFile` rows (emit order kept), encodes them as Parquet and PUTs them at
 * keys derived from (pipeline, task, epoch, file number) plus a hash of the bytes:
 *
 *   <data dir>/<partition path>/tm-<pipeline>-<topic>-<partition>-e<epoch>-f<file#>-<sha256, 16 hex>.parquet
 *
 * A retry of the same epoch encodes the same rows into the same bytes, hence the same keys: it
 * overwrites each file with itself. Should an attempt ever produce other bytes (rows that are not
 * deterministic, a new library version), its files get other keys and never replace a file a
 * commit may reference.
 *
 * Then it creates the epoch's staged record (`If-None-Match: *`) at a key derived from the task and
 * epoch only:
 *
 *   <table location>/tidemark/<pipeline>/staged/<topic>/<partition>/<epoch, 12 digits>.json
 *
 * The first attempt to create it wins; a later attempt reads and returns the winner's. The record
 * is what the committer commits, so the files of exactly one attempt per epoch reach the table.
 */
import { createHash } from 'node:crypto';
import type { TaskId } from '../../checkpoint/stores.ts';
import { IcebergError } from '../../errors.ts';
import type { IcebergFileIO } from './fileIO.ts';
import { parseJsonLossless, stringifyJsonLossless } from './metadata.ts';
import { encodeParquet } from './parquet.ts';
import type { CanonicalValue, IcebergTableSchema, SchemaJson } from './schema.ts';
import { applyTransform, partitionPath } from './transforms.ts';
import { type ColumnMetrics, columnMetrics, type FieldMetric } from './values.ts';

/** A Parquet data file as a manifest entry describes it. */
export interface DataFile extends ColumnMetrics {
  readonly path: string;
  readonly specId: number;
  /** Partition values (canonical, see schema.ts) in partition spec order. */
  readonly partition: readonly CanonicalValue[];
  readonly recordCount: number;
  readonly fileSizeInBytes: number;
}

/** One task-epoch's data files: what the committer commits at once. */
export interface EpochBatch {
  readonly task: TaskId;
  readonly epoch: number;
  readonly files: readonly DataFile[];
  /** The epoch's committed offset (next offset to read), recorded next to the epoch when given. */
  readonly committedOffset?: bigint | string;
}

/** A staged epoch: its batch, the table it was written for, and where its record is. */
export interface StagedEpoch extends EpochBatch {
  readonly tableUuid: string;
  readonly key: string;
}

/** Default cap on rows per data file. */
export const DEFAULT_MAX_ROWS_PER_FILE = 1_000_000;

export function stagingPrefix(tableLocation: string, pipeline: string): string {
  return `${tableLocation}/tidemark/${pipeline}/staged/`;
}

export function stagedEpochKey(tableLocation: string, task: TaskId, epoch: number): string {
  return `${stagingPrefix(tableLocation, task.pipeline)}${task.topic}/${task.partition}/${String(epoch).padStart(12, '0')}.json`;
}

/** Task and epoch of a staged-epoch key, or undefined for other keys. */
export function parseStagedEpochKey(
  tableLocation: string,
  pipeline: string,
  key: string,
): { task: TaskId; epoch: number } | undefined {
  const prefix = stagingPrefix(tableLocation, pipeline);
  if (!key.startsWith(prefix)) return undefined;
  const m = /^(.+)\/(\d+)\/(\d{12})\.json$/.exec(key.slice(prefix.length));
  return m
    ? { task: { pipeline, topic: m[1] as string, partition: Number(m[2]) }, epoch: Number(m[3]) }
    : undefined;
}

export interface WriteDataFilesOptions {
  readonly io: IcebergFileIO;
  readonly schema: IcebergTableSchema;
  readonly schemaJson: SchemaJson;
  readonly specId: number;
  readonly tableUuid: string;
  readonly tableLocation: string;
  readonly dataLocation: string;
  readonly task: TaskId;
  readonly epoch: number;
  readonly rows: readonly Readonly<Record<string, unknown>>[];
  readonly committedOffset?: bigint | string;
  readonly maxRowsPerFile?: number;
  readonly rowGroupRows?: number;
}

function checkEpoch(task: TaskId, epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 1)
    throw new IcebergError(`epoch must be a positive integer, got ${epoch}`);
  if (!Number.isSafeInteger(task.partition) || task.partition < 0) {
    throw new IcebergError(`partition must be a non-negative integer, got ${task.partition}`);
  }
}

/** Writes an epoch's data files and stages them (see the module comment). Returns the staged epoch that won. */
export async function writeDataFiles(options: WriteDataFilesOptions): Promise<StagedEpoch> {
  const { io, schema, task, epoch } = options;
  checkEpoch(task, epoch);
  const key = stagedEpochKey(options.tableLocation, task, epoch);
  const existing = await readStagedEpoch(io, key);
  if (existing) return checkStaged(existing, options.tableUuid);

  const rows = options.rows.map((r) => schema.normalizeRow(r));
  const groups = new Map<string, { partition: CanonicalValue[]; rows: CanonicalValue[][] }>();
  for (const row of rows) {
    const partition = schema.partitionFields.map((p) =>
      applyTransform(p.transform, p.source.type, row[p.sourceIndex] ?? null),
    );
    const path = partitionPath(schema.partitionFields, partition);
    const group = groups.get(path) ?? { partition, rows: [] };
    groups.set(path, group);
    group.rows.push(row);
  }
  const maxRows = options.maxRowsPerFile ?? DEFAULT_MAX_ROWS_PER_FILE;
  const files: DataFile[] = [];
  const writes: Promise<unknown>[] = [];
  let fileNumber = 0;
  for (const [path, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (let i = 0; i < group.rows.length; i += maxRows) {
      const chunk = group.rows.slice(i, i + maxRows);
      const bytes = encodeParquet(schema.columns, options.schemaJson, chunk, {
        rowGroupRows: options.rowGroupRows,
      });
      const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
      const name = `tm-${task.pipeline}-${task.topic}-${task.partition}-e${epoch}-f${fileNumber++}-${hash}.parquet`;
      const uri = `${options.dataLocation}/${path ? `${path}/` : ''}${name}`;
      writes.push(io.put(uri, bytes, { contentType: 'application/vnd.apache.parquet' }));
      files.push({
        path: uri,
        specId: options.specId,
        partition: group.partition,
        recordCount: chunk.length,
        fileSizeInBytes: bytes.byteLength,
        ...columnMetrics(schema.columns, chunk),
      });
    }
  }
  await Promise.all(writes);
  const staged: StagedEpoch = {
    task,
    epoch,
    files,
    tableUuid: options.tableUuid,
    key,
    ...(options.committedOffset !== undefined ? { committedOffset: options.committedOffset } : {}),
  };
  const created = await io.put(key, new TextEncoder().encode(encodeStagedEpoch(staged)), {
    ifAbsent: true,
    contentType: 'application/json',
  });
  if (created) return staged;
  const winner = await readStagedEpoch(io, key);
  if (!winner) throw new IcebergError(`staged epoch ${key} exists but cannot be read`, { retriable: true });
  return checkStaged(winner, options.tableUuid);
}

function checkStaged(staged: StagedEpoch, tableUuid: string): StagedEpoch {
  if (staged.tableUuid !== tableUuid) {
    throw new IcebergError(
      `staged epoch ${staged.key} was written for table ${staged.tableUuid}, not for table ${tableUuid} at the same location`,
    );
  }
  return staged;
}

const FORMAT = 'tidemark.iceberg.staged-epoch/1';

type Tagged = { $bigint: string } | { $bytes: string };

function tag(v: CanonicalValue): unknown {
  if (typeof v === 'bigint') return { $bigint: v.toString() } satisfies Tagged;
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('base64') } satisfies Tagged;
  return v;
}

function untag(v: unknown): CanonicalValue {
  if (v && typeof v === 'object') {
    if ('$bigint' in v) return BigInt((v as { $bigint: string }).$bigint);
    if ('$bytes' in v) return new Uint8Array(Buffer.from((v as { $bytes: string }).$bytes, 'base64'));
  }
  return v as CanonicalValue;
}

const b64 = (m: FieldMetric<Uint8Array>) => m.map(([id, b]) => [id, Buffer.from(b).toString('base64')]);
const unb64 = (m: [number, string][]): FieldMetric<Uint8Array> =>
  m.map(([id, s]) => [id, new Uint8Array(Buffer.from(s, 'base64'))] as const);

export function encodeStagedEpoch(s: StagedEpoch): string {
  return stringifyJsonLossless({
    format: FORMAT,
    'table-uuid': s.tableUuid,
    pipeline: s.task.pipeline,
    topic: s.task.topic,
    partition: s.task.partition,
    epoch: s.epoch,
    ...(s.committedOffset !== undefined ? { 'committed-offset': String(s.committedOffset) } : {}),
    files: s.files.map((f) => ({
      path: f.path,
      'spec-id': f.specId,
      partition: f.partition.map(tag),
      'record-count': f.recordCount,
      'file-size-in-bytes': f.fileSizeInBytes,
      'value-counts': f.valueCounts,
      'null-value-counts': f.nullValueCounts,
      'nan-value-counts': f.nanValueCounts,
      'lower-bounds': b64(f.lowerBounds),
      'upper-bounds': b64(f.upperBounds),
    })),
  });
}

interface StagedJson {
  format: string;
  'table-uuid': string;
  pipeline: string;
  topic: string;
  partition: number;
  epoch: number;
  'committed-offset'?: string;
  files: {
    path: string;
    'spec-id': number;
    partition: unknown[];
    'record-count': number;
    'file-size-in-bytes': number;
    'value-counts': [number, number][];
    'null-value-counts': [number, number][];
    'nan-value-counts': [number, number][];
    'lower-bounds': [number, string][];
    'upper-bounds': [number, string][];
  }[];
}

export function decodeStagedEpoch(text: string, key: string): StagedEpoch {
  const j = parseJsonLossless(text) as StagedJson;
  if (j.format !== FORMAT)
    throw new IcebergError(`staged epoch ${key}: unknown format ${JSON.stringify(j.format)}`);
  return {
    task: { pipeline: j.pipeline, topic: j.topic, partition: j.partition },
    epoch: j.epoch,
    tableUuid: j['table-uuid'],
    key,
    ...(j['committed-offset'] !== undefined ? { committedOffset: j['committed-offset'] } : {}),
    files: j.files.map((f) => ({
      path: f.path,
      specId: f['spec-id'],
      partition: f.partition.map(untag),
      recordCount: f['record-count'],
      fileSizeInBytes: f['file-size-in-bytes'],
      valueCounts: f['value-counts'],
      nullValueCounts: f['null-value-counts'],
      nanValueCounts: f['nan-value-counts'],
      lowerBounds: unb64(f['lower-bounds']),
      upperBounds: unb64(f['upper-bounds']),
    })),
  };
}

export async function readStagedEpoch(io: IcebergFileIO, key: string): Promise<StagedEpoch | undefined> {
  const bytes = await io.get(key);
  return bytes ? decodeStagedEpoch(new TextDecoder().decode(bytes), key) : undefined;
}
