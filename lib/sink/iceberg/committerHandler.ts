/**
 * The scheduled Iceberg committer: a Lambda handler that commits the staged epochs of a pipeline's
 * Iceberg outputs, many epochs of many tasks per snapshot, and expires old snapshots.
 *
 *     // functions/orders.ts: the processor's function and its committer, from one module
 *     export const handler = createKafkaHandler(processor);
 *     export const commitIceberg = createIcebergCommitter(processor);
 *
 * The CDK construct runs it on an EventBridge schedule (`iceberg: { handler: 'commitIceberg' }`), so
 * a table gets at most one commit per table and run, whatever the number of epochs: rows are visible
 * within (their delivery + the schedule's interval + the commit's duration). Runs that overlap (a
 * slow run and the next one, a manual invocation) are safe: every commit is a compare-and-swap in
 * the catalog that re-checks the table's progress, so no epoch is added twice (docs/iceberg.md).
 *
 * Each table of a run: list the staged records, read the progress, commit what is above it in one
 * snapshot, delete the records the table now covers; then, when enough snapshots are due, expire
 * them in one more commit. A failure in one table does not stop the others; the run then fails
 * (naming every failed table) so the schedule's retries and the function's error alarm see it.
 */
import { ENV } from '../../config/env.ts';
import { ConfigurationError, IcebergError, isRetriable } from '../../errors.ts';
import type { OutputDescriptor, OutputDescriptors } from '../../output/types.ts';
import { icebergOptionsOf } from './icebergOutput.ts';
import type { OpenedOutputTable } from './outputTable.ts';

export const ICEBERG_COMMITTER_DEFAULTS = {
  /** Staged epochs committed per table and run at most (the rest wait for the next run). */
  maxEpochsPerRun: 10_000,
  /** Snapshots older than this expire… */
  maxSnapshotAgeMs: 6 * 3_600_000,
  /** …except the newest this many, whatever their age. */
  minSnapshotsToKeep: 10,
  /** Expire only once this many are due (one commit per batch, not one per run). */
  minExpired: 30,
} as const;

export interface IcebergCommitterHandlerOptions {
  /** The environment (catalog settings, `TIDEMARK_PIPELINE`). Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default: `TIDEMARK_PIPELINE`, else the processor's `config.pipeline`. */
  readonly pipeline?: string;
  readonly maxEpochsPerRun?: number;
  /** Snapshot expiration, or false to leave snapshots alone. */
  readonly expire?:
    | false
    | {
        readonly maxSnapshotAgeMs?: number;
        readonly minSnapshotsToKeep?: number;
        readonly minExpired?: number;
      };
  /** One JSON-safe entry per table and run. Default: a JSON line on stdout. */
  readonly log?: (entry: Readonly<Record<string, unknown>>) => void;
}

/** What one run did to one table. */
export interface IcebergCommitRun {
  readonly table: string;
  readonly ok: boolean;
  readonly error?: string;
  /** Staged epochs this run added, of how many tasks. */
  readonly epochs: number;
  readonly tasks: number;
  readonly files: number;
  readonly records: number;
  /** The new snapshot (absent when nothing was added). */
  readonly snapshotId?: string;
  readonly attempts: number;
  /** Staged records deleted because the table holds their epochs. */
  readonly cleaned: number;
  /** Staged epochs left for a later run (the run's cap, or a racing committer's). */
  readonly remaining: number;
  readonly expiredSnapshots: number;
  readonly durationMs: number;
}

export interface IcebergCommitterSummary {
  readonly pipeline: string;
  readonly tables: readonly IcebergCommitRun[];
}

export type IcebergCommitterHandler = (
  event?: unknown,
  context?: unknown,
) => Promise<IcebergCommitterSummary>;

/** The committer is given the processor (its Iceberg outputs are used) or the outputs themselves. */
export type IcebergCommitterSource =
  | { readonly outputs?: OutputDescriptors; readonly config?: { readonly pipeline?: string } }
  | readonly OutputDescriptor[];

function icebergOutputs(source: IcebergCommitterSource): OutputDescriptor[] {
  const all = Array.isArray(source)
    ? (source as readonly OutputDescriptor[])
    : Object.values((source as { outputs?: OutputDescriptors }).outputs ?? {});
  const bySink = new Map<string, OutputDescriptor>();
  for (const d of all) if (d.kind === 'iceberg' && !bySink.has(d.sinkId)) bySink.set(d.sinkId, d);
  return [...bySink.values()];
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ConfigurationError(
      `createIcebergCommitter.${name}`,
      `${name} must be a non-negative integer, got ${value}`,
    );
  }
  return value;
}

/** Builds the committer's Lambda handler (see the module comment). */
export function createIcebergCommitter(
  source: IcebergCommitterSource,
  options: IcebergCommitterHandlerOptions = {},
): IcebergCommitterHandler {
  const outputs = icebergOutputs(source);
  if (outputs.length === 0)
    throw new ConfigurationError('processor.outputs', 'createIcebergCommitter: no Iceberg output');
  const env = options.env ?? process.env;
  const configured = Array.isArray(source)
    ? undefined
    : (source as { config?: { pipeline?: string } }).config?.pipeline;
  const maxEpochs = positive(
    'maxEpochsPerRun',
    options.maxEpochsPerRun ?? ICEBERG_COMMITTER_DEFAULTS.maxEpochsPerRun,
  );
  const expire =
    options.expire === false
      ? undefined
      : {
          maxSnapshotAgeMs: positive(
            'expire.maxSnapshotAgeMs',
            options.expire?.maxSnapshotAgeMs ?? ICEBERG_COMMITTER_DEFAULTS.maxSnapshotAgeMs,
          ),
          minSnapshotsToKeep: positive(
            'expire.minSnapshotsToKeep',
            options.expire?.minSnapshotsToKeep ?? ICEBERG_COMMITTER_DEFAULTS.minSnapshotsToKeep,
          ),
          minExpired: positive(
            'expire.minExpired',
            options.expire?.minExpired ?? ICEBERG_COMMITTER_DEFAULTS.minExpired,
          ),
        };
  const log =
    options.log ??
    ((entry) => console.log(JSON.stringify({ level: 'INFO', message: 'iceberg commit', ...entry })));
  // Tables stay open across the invocations of a warm container (one catalog read saved per run).
  const tables = new Map<string, Promise<OpenedOutputTable>>();

  const open = (d: OutputDescriptor, pipeline: string): Promise<OpenedOutputTable> => {
    let opened = tables.get(d.sinkId);
    if (!opened) {
      opened = import('./outputTable.ts').then(({ openIcebergOutputTable }) =>
        openIcebergOutputTable(icebergOptionsOf(d), { env, pipeline }),
      );
      opened.catch(() => tables.delete(d.sinkId));
      tables.set(d.sinkId, opened);
    }
    return opened;
  };

  const runTable = async (
    d: OutputDescriptor,
    pipeline: string,
  ): Promise<{ run: IcebergCommitRun; cause?: unknown }> => {
    const started = performance.now();
    const { identifier } = icebergOptionsOf(d);
    const name = `${identifier.namespace}.${identifier.name}`;
    try {
      const { table } = await open(d, pipeline);
      const result = await table.commitStaged({ maxEpochs });
      let expiredSnapshots = 0;
      if (expire) expiredSnapshots = (await table.expireSnapshots(expire)).expiredSnapshotIds.length;
      const run: IcebergCommitRun = {
        table: name,
        ok: true,
        epochs: result.committed.length,
        tasks: new Set(result.committed.map((b) => `${b.task.topic}/${b.task.partition}`)).size,
        files: result.addedFiles,
        records: result.addedRecords,
        ...(result.snapshotId !== undefined ? { snapshotId: String(result.snapshotId) } : {}),
        attempts: result.attempts,
        cleaned: result.cleaned,
        remaining: result.remaining,
        expiredSnapshots,
        durationMs: Math.round(performance.now() - started),
      };
      return { run };
    } catch (err) {
      const run: IcebergCommitRun = {
        table: name,
        ok: false,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        epochs: 0,
        tasks: 0,
        files: 0,
        records: 0,
        attempts: 0,
        cleaned: 0,
        remaining: 0,
        expiredSnapshots: 0,
        durationMs: Math.round(performance.now() - started),
      };
      return { run, cause: err };
    }
  };

  return async function icebergCommitter(): Promise<IcebergCommitterSummary> {
    const pipeline = options.pipeline ?? (env[ENV.pipeline]?.trim() || configured);
    if (!pipeline) {
      throw new ConfigurationError(
        ENV.pipeline,
        `missing required setting ${ENV.pipeline} (the pipeline whose epochs to commit)`,
      );
    }
    const runs = await Promise.all(outputs.map((d) => runTable(d, pipeline)));
    for (const { run } of runs) log({ pipeline, ...run });
    const failed = runs.filter((r) => !r.run.ok);
    if (failed.length > 0) {
      throw new IcebergError(
        `the committer failed on ${failed.map((f) => `${f.run.table} (${f.run.error})`).join('; ')}`,
        { retriable: failed.every((f) => isRetriable(f.cause)), cause: failed[0]?.cause },
      );
    }
    return { pipeline, tables: runs.map((r) => r.run) };
  };
}
