/**
 * Iceberg v2 table metadata (spec, "Table Metadata" and Appendix C): the JSON document, read and
 * written without losing 64-bit snapshot ids (integers beyond 2^53 parse as bigints and are written
 * back digit for digit), its file names, snapshot ancestry, and the per-task progress Tidemark
 * records in snapshot summaries.
 */
import { randomUUID } from 'node:crypto';
import type { TaskId } from '../../checkpoint/stores.ts';
import { IcebergError } from '../../errors.ts';
import type { Long } from './avro.ts';
import type { PartitionSpecJson, SchemaJson } from './schema.ts';

export interface SnapshotJson {
  'snapshot-id': Long;
  'parent-snapshot-id'?: Long | null;
  'sequence-number': Long;
  'timestamp-ms': number;
  'manifest-list': string;
  summary: Record<string, string>;
  'schema-id'?: number;
  [extra: string]: unknown;
}

export interface SnapshotRefJson {
  'snapshot-id': Long;
  type: 'branch' | 'tag';
  'min-snapshots-to-keep'?: number;
  'max-snapshot-age-ms'?: number;
  'max-ref-age-ms'?: number;
}

export interface TableMetadata {
  'format-version': number;
  'table-uuid': string;
  location: string;
  'last-sequence-number': Long;
  'last-updated-ms': number;
  'last-column-id': number;
  schemas: SchemaJson[];
  'current-schema-id': number;
  'partition-specs': PartitionSpecJson[];
  'default-spec-id': number;
  'last-partition-id': number;
  properties?: Record<string, string>;
  'current-snapshot-id'?: Long | null;
  snapshots?: SnapshotJson[];
  'snapshot-log'?: { 'snapshot-id': Long; 'timestamp-ms': number }[];
  'metadata-log'?: { 'metadata-file': string; 'timestamp-ms': number }[];
  'sort-orders': { 'order-id': number; fields: unknown[] }[];
  'default-sort-order-id': number;
  refs?: Record<string, SnapshotRefJson>;
  statistics?: { 'snapshot-id': Long; [k: string]: unknown }[];
  'partition-statistics'?: { 'snapshot-id': Long; [k: string]: unknown }[];
  [extra: string]: unknown;
}

// JSON.parse's source-text access (reviver context) and JSON.rawJSON are in Node ≥ 21; the
// TypeScript library this project targets does not describe them yet.
type Reviver = (this: unknown, key: string, value: unknown, context?: { source?: string }) => unknown;
const parseJson = JSON.parse as (text: string, reviver: Reviver) => unknown;
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/** JSON.parse, keeping integers beyond 2^53 exact (as bigints). */
export function parseJsonLossless(text: string): unknown {
  return parseJson(text, (_key, value, context) =>
    typeof value === 'number' &&
    !Number.isSafeInteger(value) &&
    context?.source &&
    /^-?\d+$/.test(context.source)
      ? BigInt(context.source)
      : value,
  );
}

/** JSON.stringify, writing bigints as JSON integers. */
export function stringifyJsonLossless(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? rawJSON(v.toString()) : v), indent);
}

export function parseTableMetadata(text: string, location?: string): TableMetadata {
  let m: TableMetadata;
  try {
    m = parseJsonLossless(text) as TableMetadata;
  } catch (err) {
    throw new IcebergError(`table metadata ${location ?? ''} is not JSON`, { cause: err });
  }
  if (m['format-version'] !== 2) {
    throw new IcebergError(
      `table metadata ${location ?? ''} has format version ${m['format-version']}; this sink reads and writes version 2 tables only`,
    );
  }
  return m;
}

export function stringifyTableMetadata(m: TableMetadata): string {
  return stringifyJsonLossless(m, 2);
}

/** Same snapshot id, whether held as a number or a bigint. */
export function sameId(a: Long | null | undefined, b: Long | null | undefined): boolean {
  return a !== null && a !== undefined && b !== null && b !== undefined && String(a) === String(b);
}

/** The id of the current snapshot of `main`, or undefined for a table without snapshots (-1 means none). */
export function currentSnapshotId(m: TableMetadata): Long | undefined {
  const id = m.refs?.main?.['snapshot-id'] ?? m['current-snapshot-id'];
  return id === null || id === undefined || String(id) === '-1' ? undefined : id;
}

export function snapshotById(m: TableMetadata, id: Long | null | undefined): SnapshotJson | undefined {
  return id === null || id === undefined ? undefined : m.snapshots?.find((s) => sameId(s['snapshot-id'], id));
}

export function currentSnapshot(m: TableMetadata): SnapshotJson | undefined {
  return snapshotById(m, currentSnapshotId(m));
}

/** The snapshot and its ancestors still in the metadata, newest first. */
export function* ancestors(m: TableMetadata, from: SnapshotJson | undefined): Generator<SnapshotJson> {
  const seen = new Set<string>();
  let s = from;
  while (s && !seen.has(String(s['snapshot-id']))) {
    seen.add(String(s['snapshot-id']));
    yield s;
    s = snapshotById(m, s['parent-snapshot-id']);
  }
}

/** A positive snapshot id below 2^53 (safe in every JSON and Avro reader) that the table does not use. */
export function newSnapshotId(m: TableMetadata): number {
  for (;;) {
    const words = crypto.getRandomValues(new Uint32Array(2));
    const id = ((words[0] as number) & 0x1fffff) * 2 ** 32 + (words[1] as number);
    if (id > 0 && !snapshotById(m, id)) return id;
  }
}

/** Metastore-style metadata file name: `<version, 5 digits>-<uuid>.metadata.json`. */
export function metastoreMetadataFileName(version: number): string {
  return `${String(version).padStart(5, '0')}-${randomUUID()}.metadata.json`;
}

/** The version a metastore-style metadata location encodes, or -1 (as Iceberg's Java code answers). */
export function metadataVersion(location: string): number {
  const name = location.slice(location.lastIndexOf('/') + 1);
  const m = /^(\d+)-/.exec(name) ?? /^v(\d+)\.metadata\.json$/.exec(name);
  return m ? Number(m[1]) : -1;
}

export function metadataDirectory(m: TableMetadata): string {
  return m.properties?.['write.metadata.path'] ?? `${m.location}/metadata`;
}

export function dataDirectory(m: TableMetadata): string {
  return (
    m.properties?.['write.data.path'] ?? m.properties?.['write.folder-storage.path'] ?? `${m.location}/data`
  );
}

/** Properties Tidemark sets on the tables it creates. */
export const DEFAULT_TABLE_PROPERTIES: Readonly<Record<string, string>> = {
  'write.format.default': 'parquet',
  'write.parquet.compression-codec': 'snappy',
  // Old metadata files are deleted as commits push them out of the metadata log.
  'write.metadata.delete-after-commit.enabled': 'true',
  'write.metadata.previous-versions-max': '50',
};

export function newTableMetadata(options: {
  location: string;
  schema: SchemaJson;
  spec: PartitionSpecJson;
  lastColumnId: number;
  lastPartitionId: number;
  properties?: Readonly<Record<string, string>>;
  now?: number;
}): TableMetadata {
  return {
    'format-version': 2,
    'table-uuid': randomUUID(),
    location: options.location.replace(/\/+$/, ''),
    'last-sequence-number': 0,
    'last-updated-ms': options.now ?? Date.now(),
    'last-column-id': options.lastColumnId,
    schemas: [options.schema],
    'current-schema-id': options.schema['schema-id'],
    'partition-specs': [options.spec],
    'default-spec-id': options.spec['spec-id'],
    'last-partition-id': options.lastPartitionId,
    properties: { ...DEFAULT_TABLE_PROPERTIES, ...options.properties },
    'current-snapshot-id': -1,
    refs: {},
    snapshots: [],
    'snapshot-log': [],
    'metadata-log': [],
    'sort-orders': [{ 'order-id': 0, fields: [] }],
    'default-sort-order-id': 0,
  };
}

// --- Progress: which epoch of each task the table holds -------------------------------------------

/** Summary key naming the pipeline whose progress a snapshot records. */
export const PIPELINE_SUMMARY_KEY = 'tidemark.pipeline';

export function epochSummaryKey(task: TaskId): string {
  return `tidemark.${task.pipeline}.${task.topic}.${task.partition}.epoch`;
}

export function offsetSummaryKey(task: TaskId): string {
  return `tidemark.${task.pipeline}.${task.topic}.${task.partition}.offset`;
}

/** Table property mirroring the latest progress of a pipeline (found even after its snapshots expired). */
export function progressPropertyKey(pipeline: string): string {
  return `tidemark.progress.${pipeline}`;
}

export function taskKey(task: Pick<TaskId, 'topic' | 'partition'>): string {
  return `${task.topic}/${task.partition}`;
}

export interface TaskProgress {
  readonly epoch: number;
  /** The committed offset (next to read) recorded with the epoch, when the committer was given one. */
  readonly offset?: string;
}

/** Progress of a pipeline: `topic/partition` → the last epoch in the table. */
export type Progress = ReadonlyMap<string, TaskProgress>;

export interface ProgressFound {
  readonly progress: Progress;
  /** Where it was found: a snapshot's summary, the table property, or nowhere (a new pipeline). */
  readonly source: 'snapshot' | 'property' | 'none';
  readonly snapshotId?: Long;
}

/**
 * The progress of `pipeline` in the table, as Flink finds its last committed checkpoint: walk the
 * current snapshot's ancestry to the nearest snapshot this pipeline committed and read its summary,
 * which holds the epoch of every task of the pipeline (not only the tasks it added). When no such
 * ancestor is left (another engine expired it, or rolled the table back past it), the table property
 * the same commits write is used instead.
 */
export function findProgress(m: TableMetadata, pipeline: string): ProgressFound {
  const prefix = `tidemark.${pipeline}.`;
  for (const s of ancestors(m, currentSnapshot(m))) {
    if (s.summary?.[PIPELINE_SUMMARY_KEY] !== pipeline) continue;
    const progress = new Map<string, TaskProgress>();
    const offsets = new Map<string, string>();
    for (const [k, v] of Object.entries(s.summary)) {
      if (!k.startsWith(prefix)) continue;
      const rest = k.slice(prefix.length);
      const m2 = /^(.+)\.(\d+)\.(epoch|offset)$/.exec(rest);
      if (!m2) continue;
      const key = `${m2[1]}/${m2[2]}`;
      if (m2[3] === 'epoch') progress.set(key, { epoch: Number(v) });
      else offsets.set(key, v);
    }
    for (const [key, offset] of offsets) {
      const p = progress.get(key);
      if (p) progress.set(key, { ...p, offset });
    }
    return { progress, source: 'snapshot', snapshotId: s['snapshot-id'] };
  }
  const property = m.properties?.[progressPropertyKey(pipeline)];
  if (property) {
    const parsed = JSON.parse(property) as Record<string, TaskProgress>;
    return { progress: new Map(Object.entries(parsed)), source: 'property' };
  }
  return { progress: new Map(), source: 'none' };
}

export function progressProperty(progress: Progress): string {
  return JSON.stringify(Object.fromEntries([...progress].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}
