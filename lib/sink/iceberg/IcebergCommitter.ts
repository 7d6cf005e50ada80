/**
 * Commits task-epochs' data files to an Iceberg table exactly once.
 *
 * Each commit is one new snapshot (a fast append) holding any number of epochs of any number of
 * tasks, so the rate of commits is the rate at which the committer runs, not the rate of epochs.
 * Every snapshot it writes records, in its summary, the last epoch of every task of the pipeline
 * (`tidemark.<pipeline>.<topic>.<partition>.epoch`, like Flink's `flink.max-committed-checkpoint-id`)
 * and the pipeline (`tidemark.pipeline`); the same map is mirrored in the table property
 * `tidemark.progress.<pipeline>`.
 *
 * One attempt:
 *   1. load the table from the catalog (metadata + the catalog's version token);
 *   2. find the pipeline's progress (metadata.ts `findProgress`) and drop every batch whose epoch
 *      is not above its task's recorded epoch: it is in the table already;
 *   3. write a manifest of the remaining batches' files (status ADDED, sequence numbers inherited),
 *      merging the parent's data manifests into it once they are `minManifestsToMerge` or more;
 *   4. write the manifest list (the new manifest + the parent's other manifests) and the new
 *      metadata (snapshot, progress, sequence number, snapshot and metadata logs);
 *   5. ask the catalog to swap base → new. Only this step decides.
 * A conflict (another committer or engine changed the table) deletes this attempt's files and
 * starts again at 1, so progress is re-read: a racing committer that added an epoch first makes
 * this one drop it. An unknown outcome (a timeout) reloads: the table shows whether the snapshot
 * (its id is unique) landed; if not, the attempt starts again, and the same check holds.
 *
 * Precondition (the caller's): for each task, epochs reach the committer in order, and an epoch is
 * presented only once every earlier epoch of the task that has data files was (the engine delivers
 * a task's epochs in order and stages each one before the next commits).
 */
import { randomUUID } from 'node:crypto';
import { IcebergCommitConflictError, IcebergError, isRetriable } from '../../errors.ts';
import {
  type Long,
  type ManifestEntryRecord,
  ManifestEntryStatus,
  type ManifestFileRecord,
  toLong,
} from './avro.ts';
import type { IcebergCatalog, LoadedTable, TableIdentifier } from './catalog.ts';
import { tableName } from './catalog.ts';
import type { EpochBatch } from './dataFiles.ts';
import type { IcebergFileIO } from './fileIO.ts';
import {
  dataFileRecord,
  newManifestListPath,
  newManifestPath,
  readManifestEntries,
  readManifestList,
  type SpecInfo,
  specInfo,
  writeManifest,
  writeManifestList,
} from './manifests.ts';
import {
  currentSnapshot,
  epochSummaryKey,
  findProgress,
  newSnapshotId,
  offsetSummaryKey,
  PIPELINE_SUMMARY_KEY,
  type Progress,
  type ProgressFound,
  progressProperty,
  progressPropertyKey,
  type SnapshotJson,
  sameId,
  stringifyJsonLossless,
  type TableMetadata,
  type TaskProgress,
  taskKey,
} from './metadata.ts';

export interface IcebergCommitterOptions {
  readonly catalog: IcebergCatalog;
  readonly identifier: TableIdentifier;
  readonly io: IcebergFileIO;
  readonly pipeline: string;
  /** Attempts before `IcebergCommitConflictError`. Default 10. */
  readonly maxAttempts?: number;
  /** Data manifests of one spec that trigger a merge into the new manifest. Default 50. */
  readonly minManifestsToMerge?: number;
  /** Base of the jittered backoff between attempts, in ms. Default 25. */
  readonly retryBaseMs?: number;
  readonly now?: () => number;
}

export interface CommitResult {
  /** The new snapshot, or undefined when every batch was already in the table. */
  readonly snapshotId?: Long;
  readonly sequenceNumber?: Long;
  /** The table's metadata file after the commit. */
  readonly metadataLocation: string;
  /** Batches this commit added. */
  readonly committed: readonly EpochBatch[];
  /** Batches that were in the table already (by this or another committer). */
  readonly alreadyCommitted: readonly EpochBatch[];
  readonly addedFiles: number;
  readonly addedRecords: number;
  /** Attempts made (1 when nothing raced). */
  readonly attempts: number;
  readonly manifestsMerged: number;
}

const ENGINE_NAME = 'tidemark';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class IcebergCommitter {
  private readonly options: IcebergCommitterOptions;

  constructor(options: IcebergCommitterOptions) {
    this.options = options;
  }

  private get table(): string {
    return tableName(this.options.identifier);
  }

  private async load(): Promise<LoadedTable> {
    const loaded = await this.options.catalog.loadTable(this.options.identifier);
    if (!loaded) throw new IcebergError('the catalog has no such table', { table: this.table });
    return loaded;
  }

  /** The pipeline's progress in the table as it is now. */
  async progress(): Promise<ProgressFound> {
    return findProgress((await this.load()).metadata, this.options.pipeline);
  }

  /** Commits the batches not yet in the table, in one snapshot (see the module comment). */
  async commit(batches: readonly EpochBatch[]): Promise<CommitResult> {
    const { pipeline } = this.options;
    const unique = new Map<string, EpochBatch>();
    for (const b of batches) {
      if (b.task.pipeline !== pipeline) {
        throw new IcebergError(`batch of pipeline ${b.task.pipeline} given to the committer of ${pipeline}`);
      }
      if (!Number.isSafeInteger(b.epoch) || b.epoch < 1)
        throw new IcebergError(`epoch must be a positive integer, got ${b.epoch}`);
      unique.set(`${taskKey(b.task)}#${b.epoch}`, b);
    }
    const sorted = [...unique.values()].sort((a, b) =>
      a.task.topic !== b.task.topic
        ? a.task.topic < b.task.topic
          ? -1
          : 1
        : a.task.partition !== b.task.partition
          ? a.task.partition - b.task.partition
          : a.epoch - b.epoch,
    );
    const maxAttempts = this.options.maxAttempts ?? 10;
    // Snapshots of attempts whose outcome was unknown, with the batches each would add.
    const unknown = new Map<string, readonly EpochBatch[]>();
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const base = await this.load();
      for (const [id, added] of unknown) {
        const landed = base.metadata.snapshots?.find((s) => String(s['snapshot-id']) === id);
        if (landed) return this.result(base, sorted, added, attempt, landed['snapshot-id'], 0);
      }
      const found = findProgress(base.metadata, pipeline);
      const pending = sorted.filter((b) => b.epoch > (found.progress.get(taskKey(b.task))?.epoch ?? 0));
      if (pending.length === 0) return this.result(base, sorted, [], attempt, undefined, 0);
      const attemptFiles: string[] = [];
      let snapshotId: number | undefined;
      try {
        const prepared = await this.prepare(base, found.progress, pending, attempt, attemptFiles);
        snapshotId = prepared.snapshotId;
        const outcome = await this.options.catalog.commitTable(base, prepared.metadata);
        if (outcome.status === 'committed') {
          await this.deleteDroppedMetadata(base, outcome.table.metadata);
          return this.result(outcome.table, sorted, pending, attempt, snapshotId, prepared.merged);
        }
        await this.options.io.delete(attemptFiles).catch(() => {});
      } catch (err) {
        if (!isRetriable(err) || attempt === maxAttempts) throw err;
        // Unknown outcome: keep this attempt's files (the swap may have landed); the next load tells.
        if (snapshotId !== undefined) unknown.set(String(snapshotId), pending);
      }
      const backoff = this.options.retryBaseMs ?? 25;
      await sleep(backoff * 2 ** Math.min(attempt - 1, 6) * (0.5 + Math.random()));
    }
    throw new IcebergCommitConflictError(maxAttempts, { table: this.table });
  }

  private result(
    table: LoadedTable,
    batches: readonly EpochBatch[],
    committed: readonly EpochBatch[],
    attempts: number,
    snapshotId: Long | undefined,
    manifestsMerged: number,
  ): CommitResult {
    const snapshot =
      snapshotId === undefined
        ? undefined
        : table.metadata.snapshots?.find((s) => sameId(s['snapshot-id'], snapshotId));
    return {
      ...(snapshotId !== undefined ? { snapshotId } : {}),
      ...(snapshot ? { sequenceNumber: snapshot['sequence-number'] } : {}),
      metadataLocation: table.metadataLocation,
      committed,
      alreadyCommitted: batches.filter((b) => !committed.includes(b)),
      addedFiles: committed.reduce((n, b) => n + b.files.length, 0),
      addedRecords: committed.reduce((n, b) => n + b.files.reduce((m, f) => m + f.recordCount, 0), 0),
      attempts,
      manifestsMerged,
    };
  }

  /** Steps 3 and 4: this attempt's manifest(s), manifest list and new metadata (files listed in `written`). */
  private async prepare(
    base: LoadedTable,
    progress: Progress,
    pending: readonly EpochBatch[],
    attempt: number,
    written: string[],
  ): Promise<{ metadata: TableMetadata; snapshotId: number; merged: number }> {
    const { io } = this.options;
    const m = base.metadata;
    const now = this.options.now?.() ?? Date.now();
    const snapshotId = newSnapshotId(m);
    const sequenceNumber = toLong(BigInt(m['last-sequence-number']) + 1n);
    const parent = currentSnapshot(m);
    const parentManifests = parent ? await readManifestList(io, parent['manifest-list']) : [];

    const bySpec = new Map<number, EpochBatch['files'][number][]>();
    for (const f of pending.flatMap((b) => b.files))
      bySpec.set(f.specId, [...(bySpec.get(f.specId) ?? []), f]);
    const newManifests: ManifestFileRecord[] = [];
    const replaced = new Set<string>();
    let merged = 0;
    for (const [specId, files] of bySpec) {
      const info = specInfo(m, specId);
      const entries: ManifestEntryRecord[] = files.map((f) => ({
        status: ManifestEntryStatus.ADDED,
        snapshot_id: snapshotId,
        sequence_number: null,
        file_sequence_number: null,
        data_file: dataFileRecord(info, f),
      }));
      const candidates = parentManifests.filter((p) => p.content === 0 && p.partition_spec_id === specId);
      if (candidates.length + 1 >= (this.options.minManifestsToMerge ?? 50)) {
        for (const p of candidates) {
          const existing = await this.existingEntries(p, info);
          if (!existing) continue;
          entries.push(...existing);
          replaced.add(p.manifest_path);
          merged++;
        }
      }
      const path = newManifestPath(m);
      written.push(path);
      newManifests.push(await writeManifest(io, path, info, entries, snapshotId, sequenceNumber));
    }
    const kept = parentManifests.filter((p) => !replaced.has(p.manifest_path));
    const manifestListPath = newManifestListPath(m, snapshotId, attempt);
    written.push(manifestListPath);
    await writeManifestList(io, manifestListPath, [...newManifests, ...kept], {
      snapshotId,
      parentSnapshotId: parent?.['snapshot-id'],
      sequenceNumber,
    });

    const newProgress = new Map<string, TaskProgress>(progress);
    for (const b of pending) {
      newProgress.set(taskKey(b.task), {
        epoch: b.epoch,
        ...(b.committedOffset !== undefined ? { offset: String(b.committedOffset) } : {}),
      });
    }
    const summary = this.summary(parent, pending, newProgress, {
      created: newManifests.length,
      kept: kept.length,
      replaced: replaced.size,
    });
    const snapshot: SnapshotJson = {
      'snapshot-id': snapshotId,
      ...(parent ? { 'parent-snapshot-id': parent['snapshot-id'] } : {}),
      'sequence-number': sequenceNumber,
      'timestamp-ms': now,
      'manifest-list': manifestListPath,
      summary,
      'schema-id': m['current-schema-id'],
    };
    const maxPrevious = Number(m.properties?.['write.metadata.previous-versions-max'] ?? 100);
    const metadataLog = [
      ...(m['metadata-log'] ?? []),
      { 'metadata-file': base.metadataLocation, 'timestamp-ms': m['last-updated-ms'] },
    ];
    const metadata: TableMetadata = {
      ...m,
      'last-sequence-number': sequenceNumber,
      'last-updated-ms': now,
      properties: {
        ...m.properties,
        [progressPropertyKey(this.options.pipeline)]: progressProperty(newProgress),
      },
      'current-snapshot-id': snapshotId,
      refs: { ...m.refs, main: { ...m.refs?.main, 'snapshot-id': snapshotId, type: 'branch' } },
      snapshots: [...(m.snapshots ?? []), snapshot],
      'snapshot-log': [...(m['snapshot-log'] ?? []), { 'snapshot-id': snapshotId, 'timestamp-ms': now }],
      'metadata-log': metadataLog.slice(Math.max(0, metadataLog.length - maxPrevious)),
    };
    return { metadata, snapshotId, merged };
  }

  /** A parent manifest's live entries as EXISTING entries with explicit sequence numbers, or undefined if it cannot be read with this spec. */
  private async existingEntries(
    p: ManifestFileRecord,
    info: SpecInfo,
  ): Promise<ManifestEntryRecord[] | undefined> {
    let records: ManifestEntryRecord[];
    try {
      records = await readManifestEntries(this.options.io, p.manifest_path, info);
    } catch {
      return undefined; // written with a schema this sink does not resolve: kept as it is
    }
    return records
      .filter((e) => e.status !== ManifestEntryStatus.DELETED)
      .map((e) => ({
        status: ManifestEntryStatus.EXISTING,
        snapshot_id: e.snapshot_id ?? p.added_snapshot_id,
        sequence_number: e.sequence_number ?? p.sequence_number,
        file_sequence_number: e.file_sequence_number ?? p.sequence_number,
        data_file: e.data_file,
      }));
  }

  private summary(
    parent: SnapshotJson | undefined,
    pending: readonly EpochBatch[],
    progress: Progress,
    manifests: { created: number; kept: number; replaced: number },
  ): Record<string, string> {
    const files = pending.flatMap((b) => b.files);
    const records = files.reduce((n, f) => n + f.recordCount, 0);
    const size = files.reduce((n, f) => n + f.fileSizeInBytes, 0);
    const partitions = new Set(
      files.map((f) =>
        stringifyJsonLossless([
          f.specId,
          ...f.partition.map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)),
        ]),
      ),
    );
    const summary: Record<string, string> = {
      operation: 'append',
      'added-data-files': String(files.length),
      'added-records': String(records),
      'added-files-size': String(size),
      'changed-partition-count': String(partitions.size),
      'manifests-created': String(manifests.created),
      'manifests-kept': String(manifests.kept),
      'manifests-replaced': String(manifests.replaced),
    };
    const total = (key: string, added: number) => {
      const before = parent ? parent.summary?.[key] : '0';
      if (before !== undefined && /^\d+$/.test(before)) summary[key] = String(BigInt(before) + BigInt(added));
    };
    total('total-data-files', files.length);
    total('total-records', records);
    total('total-files-size', size);
    total('total-delete-files', 0);
    total('total-position-deletes', 0);
    total('total-equality-deletes', 0);
    summary['engine-name'] = ENGINE_NAME;
    summary[PIPELINE_SUMMARY_KEY] = this.options.pipeline;
    summary['tidemark.commit-id'] = randomUUID();
    summary['tidemark.epochs-added'] = String(pending.length);
    for (const [key, p] of progress) {
      const slash = key.lastIndexOf('/');
      const task = {
        pipeline: this.options.pipeline,
        topic: key.slice(0, slash),
        partition: Number(key.slice(slash + 1)),
      };
      summary[epochSummaryKey(task)] = String(p.epoch);
      if (p.offset !== undefined) summary[offsetSummaryKey(task)] = p.offset;
    }
    return summary;
  }

  /** Metadata files the commit pushed out of the metadata log (when the table asks for their deletion). */
  private async deleteDroppedMetadata(base: LoadedTable, next: TableMetadata): Promise<void> {
    if (this.options.catalog.managesMetadataFiles) return;
    if (next.properties?.['write.metadata.delete-after-commit.enabled'] !== 'true') return;
    const kept = new Set((next['metadata-log'] ?? []).map((e) => e['metadata-file']));
    const dropped = [
      ...(base.metadata['metadata-log'] ?? []).map((e) => e['metadata-file']),
      base.metadataLocation,
    ].filter((f) => !kept.has(f));
    if (dropped.length > 0) await this.options.io.delete(dropped).catch(() => {});
  }
}
