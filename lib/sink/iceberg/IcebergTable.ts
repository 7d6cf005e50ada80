/**
 * One Iceberg table as a pipeline's sink: opened (or created) through a catalog with the declared
 * schema, it writes and stages epochs' data files, commits staged epochs exactly once, and expires
 * old snapshots. The pieces are usable on their own (`writeDataFiles`, `IcebergCommitter`,
 * `expireSnapshots`); this class holds what they share.
 *
 * The life of an epoch's rows (docs/iceberg.md has the failure timeline):
 *   deliver   `writeDataFiles(task, epoch, rows)`: Parquet files + the staged-epoch record
 *   commit    `commitStaged()` (a scheduled committer) or `commit(batches)`: one snapshot for many epochs
 *   expire    `expireSnapshots()`
 */
import type { TaskId } from '../../checkpoint/stores.ts';
import { IcebergError, IcebergSchemaError } from '../../errors.ts';
import type { IcebergCatalog, LoadedTable, TableIdentifier } from './catalog.ts';
import { tableName } from './catalog.ts';
import {
  type EpochBatch,
  parseStagedEpochKey,
  readStagedEpoch,
  type StagedEpoch,
  stagedEpochKey,
  stagingPrefix,
  writeDataFiles,
} from './dataFiles.ts';
import { type ExpireSnapshotsResult, expireSnapshots } from './expireSnapshots.ts';
import type { IcebergFileIO } from './fileIO.ts';
import { type CommitResult, IcebergCommitter } from './IcebergCommitter.ts';
import {
  dataDirectory,
  findProgress,
  newTableMetadata,
  type Progress,
  type ProgressFound,
  taskKey,
} from './metadata.ts';
import type { IcebergTableSchema } from './schema.ts';

export interface IcebergTableOptions {
  readonly catalog: IcebergCatalog;
  readonly identifier: TableIdentifier;
  readonly io: IcebergFileIO;
  readonly schema: IcebergTableSchema;
  /** The pipeline whose epochs this sink commits (summary keys, staged-epoch keys, data file names). */
  readonly pipeline: string;
  /** Create the table when the catalog does not have it. Default true. */
  readonly create?: boolean;
  /** Table properties for a table created here. */
  readonly properties?: Readonly<Record<string, string>>;
  readonly maxRowsPerFile?: number;
  readonly rowGroupRows?: number;
  /**
   * Root of the staged-epoch records (an `s3://` prefix of this table's alone). Default: the table's
   * location, so records go to `<location>/tidemark/<pipeline>/staged/…`.
   */
  readonly stagingLocation?: string;
  readonly commit?: {
    readonly maxAttempts?: number;
    readonly minManifestsToMerge?: number;
    readonly retryBaseMs?: number;
  };
}

export interface StagedEpochRef {
  readonly task: TaskId;
  readonly epoch: number;
  readonly key: string;
}

export class IcebergTable {
  readonly identifier: TableIdentifier;
  readonly schema: IcebergTableSchema;
  readonly committer: IcebergCommitter;
  /** The pipeline's progress in the table when it was opened (a lower bound of its progress ever after). */
  readonly progressAtOpen: Progress;
  private readonly options: IcebergTableOptions;
  private loaded: LoadedTable;

  private constructor(options: IcebergTableOptions, loaded: LoadedTable) {
    this.options = options;
    this.identifier = options.identifier;
    this.schema = options.schema;
    this.loaded = loaded;
    this.progressAtOpen = findProgress(loaded.metadata, options.pipeline).progress;
    this.committer = new IcebergCommitter({
      catalog: options.catalog,
      identifier: options.identifier,
      io: options.io,
      pipeline: options.pipeline,
      ...options.commit,
    });
  }

  /** Loads the table (creating it if asked) and checks that its schema and spec are the declared ones. */
  static async open(options: IcebergTableOptions): Promise<IcebergTable> {
    const { catalog, identifier, schema } = options;
    let loaded = await catalog.loadTable(identifier);
    if (!loaded && (options.create ?? true)) {
      const metadata = newTableMetadata({
        location: await catalog.defaultLocation(identifier),
        schema: schema.schemaJson(),
        spec: schema.specJson(),
        lastColumnId: schema.lastColumnId,
        lastPartitionId: schema.lastPartitionId,
        ...(options.properties ? { properties: options.properties } : {}),
      });
      loaded = (await catalog.createTable(identifier, metadata)) ?? (await catalog.loadTable(identifier));
    }
    if (!loaded) throw new IcebergError('the catalog has no such table', { table: tableName(identifier) });
    const m = loaded.metadata;
    const current = m.schemas.find((s) => s['schema-id'] === m['current-schema-id']);
    const spec = m['partition-specs'].find((s) => s['spec-id'] === m['default-spec-id']);
    const mismatch =
      current && spec ? schema.mismatch(current, spec) : 'the metadata has no current schema or spec';
    if (mismatch) throw new IcebergSchemaError(mismatch, { table: tableName(identifier) });
    return new IcebergTable(options, loaded);
  }

  get location(): string {
    return this.loaded.metadata.location;
  }

  /** Where the staged-epoch records of this table are rooted (see `stagingLocation`). */
  get stagingRoot(): string {
    return this.options.stagingLocation?.replace(/\/+$/, '') ?? this.location;
  }

  get tableUuid(): string {
    return this.loaded.metadata['table-uuid'];
  }

  /** The table as last loaded or committed by this object. */
  get current(): LoadedTable {
    return this.loaded;
  }

  async refresh(): Promise<LoadedTable> {
    const loaded = await this.options.catalog.loadTable(this.identifier);
    if (!loaded) throw new IcebergError('the table was dropped', { table: tableName(this.identifier) });
    this.loaded = loaded;
    return loaded;
  }

  /** Writes and stages one epoch's rows (see dataFiles.ts); idempotent per (task, epoch). */
  writeDataFiles(
    task: TaskId,
    epoch: number,
    rows: readonly Readonly<Record<string, unknown>>[],
    options: { committedOffset?: bigint | string } = {},
  ): Promise<StagedEpoch> {
    this.checkTask(task);
    const m = this.loaded.metadata;
    return writeDataFiles({
      io: this.options.io,
      schema: this.schema,
      schemaJson: this.schema.schemaJson(m['current-schema-id']),
      specId: m['default-spec-id'],
      tableUuid: this.tableUuid,
      tableLocation: this.stagingRoot,
      dataLocation: dataDirectory(m),
      task,
      epoch,
      rows,
      ...(options.committedOffset !== undefined ? { committedOffset: options.committedOffset } : {}),
      ...(this.options.maxRowsPerFile ? { maxRowsPerFile: this.options.maxRowsPerFile } : {}),
      ...(this.options.rowGroupRows ? { rowGroupRows: this.options.rowGroupRows } : {}),
    });
  }

  /** The staged record of a task-epoch, or undefined when it was not staged (or was cleaned up after its commit). */
  readStagedEpoch(task: TaskId, epoch: number): Promise<StagedEpoch | undefined> {
    this.checkTask(task);
    return readStagedEpoch(this.options.io, stagedEpochKey(this.stagingRoot, task, epoch));
  }

  /** Every staged-epoch record of the pipeline, in task and epoch order. */
  async listStagedEpochs(): Promise<StagedEpochRef[]> {
    const keys = await this.options.io.list(stagingPrefix(this.stagingRoot, this.options.pipeline));
    return keys.flatMap((key) => {
      const parsed = parseStagedEpochKey(this.stagingRoot, this.options.pipeline, key);
      return parsed ? [{ ...parsed, key }] : [];
    });
  }

  /** The pipeline's progress in the table now (per task, the last epoch committed). */
  async progress(): Promise<ProgressFound> {
    return findProgress((await this.refresh()).metadata, this.options.pipeline);
  }

  /** Commits batches (those already in the table are skipped) in one snapshot. */
  async commit(batches: readonly EpochBatch[]): Promise<CommitResult> {
    const result = await this.committer.commit(batches);
    await this.refresh();
    return result;
  }

  /**
   * The scheduled committer's step: commits every staged epoch that is not in the table yet, in
   * one snapshot, then deletes the staged records the table now covers. Staged records of epochs
   * already committed are deleted without being read.
   */
  async commitStaged(
    options: { maxEpochs?: number; concurrency?: number } = {},
  ): Promise<CommitResult & { cleaned: number; remaining: number }> {
    const refs = await this.listStagedEpochs();
    const { progress } = await this.progress();
    const isIn = (r: StagedEpochRef) => r.epoch <= (progress.get(taskKey(r.task))?.epoch ?? 0);
    const notIn = refs.filter((r) => !isIn(r));
    const todo = notIn.slice(0, options.maxEpochs ?? Number.POSITIVE_INFINITY);
    const read: (StagedEpoch | undefined)[] = new Array(todo.length);
    const concurrency = options.concurrency ?? 16;
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, todo.length) }, async () => {
        while (next < todo.length) {
          const i = next++;
          const ref = todo[i] as StagedEpochRef;
          const staged = await readStagedEpoch(this.options.io, ref.key);
          if (staged && staged.tableUuid !== this.tableUuid) {
            throw new IcebergError(`staged epoch ${ref.key} belongs to table ${staged.tableUuid}`, {
              table: tableName(this.identifier),
            });
          }
          read[i] = staged;
        }
      }),
    );
    // A task's epochs are committed as a prefix (listed in epoch order). A record gone since the
    // listing was committed by another committer and cleaned up, which leaves the table's progress
    // at or past it: the rest of that task waits for the next run, whose listing is fresh.
    const cut = new Set<string>();
    const batches: StagedEpoch[] = [];
    todo.forEach((ref, i) => {
      const key = taskKey(ref.task);
      const staged = read[i];
      if (!staged) cut.add(key);
      if (!cut.has(key) && staged) batches.push(staged);
    });
    const result = await this.commit(batches);
    const after = findProgress(this.loaded.metadata, this.options.pipeline).progress;
    const covered = refs.filter((r) => r.epoch <= (after.get(taskKey(r.task))?.epoch ?? 0)).map((r) => r.key);
    if (covered.length > 0) await this.options.io.delete(covered);
    return { ...result, cleaned: covered.length, remaining: notIn.length - batches.length };
  }

  async expireSnapshots(
    options: {
      minSnapshotsToKeep?: number;
      maxSnapshotAgeMs?: number;
      now?: number;
      minExpired?: number;
    } = {},
  ): Promise<ExpireSnapshotsResult> {
    const result = await expireSnapshots({
      catalog: this.options.catalog,
      identifier: this.identifier,
      io: this.options.io,
      ...options,
    });
    if (result.expiredSnapshotIds.length > 0) await this.refresh();
    return result;
  }

  private checkTask(task: TaskId): void {
    if (task.pipeline !== this.options.pipeline) {
      throw new IcebergError(
        `task of pipeline ${task.pipeline} given to the sink of pipeline ${this.options.pipeline}`,
      );
    }
  }
}
