import { ConfigurationError } from '../errors.ts';
import { ENV } from './env.ts';

/** What happens to a record the processor cannot handle (see docs/configuration.md). */
export type PoisonPolicy = 'fail' | 'quarantine';
export type SnapshotCompression = 'zstd' | 'none';
export type SnapshotMode = 'incremental' | 'full';

/**
 * Every Tidemark setting, with its default. This is the one place where settings are defined.
 * Precedence when a setting is given in several places: environment variable > value passed in
 * code (`createKafkaHandler(processor, { config })`) > processor definition > default below.
 */
export interface TidemarkConfig {
  /** S3 bucket holding snapshots and quarantined records. Env `TIDEMARK_BUCKET`. Required. */
  bucket: string;
  /** DynamoDB table holding commit items and savepoints (`pk`/`sk` strings). Env `TIDEMARK_TABLE`. Required. */
  table: string;
  /** Pipeline id: one deployed processor, one ESM and its consumer group. Env `TIDEMARK_PIPELINE`. Required. */
  pipeline: string;
  /** Key prefix of every object the pipeline writes in the bucket. Env `TIDEMARK_PREFIX`. Default `tidemark`. */
  prefix: string;
  /** An epoch ends after this many applied records. Env `TIDEMARK_EPOCH_MAX_RECORDS`. Default 10,000 (the ESM's largest batch). */
  epochMaxRecords: number;
  /** An epoch ends once its records' key+value bytes reach this. Env `TIDEMARK_EPOCH_MAX_BYTES`. Default 8 MiB. */
  epochMaxBytes: number;
  /**
   * Time kept in reserve to snapshot and commit. An epoch is cut short when the invocation's
   * remaining time falls below max(this, 3 × the slowest checkpoint seen by this container), and no
   * epoch starts below it. Env `TIDEMARK_TIME_RESERVE_MS`. Default 5,000 ms.
   */
  timeReserveMs: number;
  /** `quarantine` sets poison records aside in S3 and goes on; `fail` fails the invocation. Env `TIDEMARK_POISON_POLICY`. Default `fail`. */
  poisonPolicy: PoisonPolicy;
  /** Committed checkpoints kept per task (the newest included); older snapshots are deleted after a commit. Env `TIDEMARK_RETAINED_CHECKPOINTS`. Default 3. */
  retainedCheckpoints: number;
  /** Tasks whose state a warm container keeps in memory (least recently used evicted). Env `TIDEMARK_WARM_CACHE_MAX_TASKS`. Default 64. */
  warmCacheMaxTasks: number;
  /** Tasks of one batch processed at the same time. Env `TIDEMARK_TASK_CONCURRENCY`. Default 8. */
  taskConcurrency: number;
  /** Compression of snapshot bodies. Env `TIDEMARK_SNAPSHOT_COMPRESSION`. Default `zstd`. */
  compression: SnapshotCompression;
  /**
   * `incremental`: an epoch writes only the keys it changed (a delta chained to a full snapshot);
   * `full`: every epoch writes the whole state. Env `TIDEMARK_SNAPSHOT_MODE`. Default `incremental`.
   */
  snapshotMode: SnapshotMode;
  /** A chain is compacted into a new full snapshot once it holds this many deltas. Env `TIDEMARK_COMPACT_AFTER_DELTAS`. Default 16. */
  compactAfterDeltas: number;
  /**
   * …or once its deltas' bytes exceed this fraction of the full snapshot's bytes, so restoring never
   * reads more than (1 + ratio) × a full snapshot. Env `TIDEMARK_COMPACT_DELTA_RATIO`. Default 0.5.
   */
  compactDeltaRatio: number;
  /**
   * Snapshot objects no commit references are deleted only when older than this: an attempt may be
   * between its snapshot PUT and its commit. Must exceed the function timeout by a wide margin.
   * Env `TIDEMARK_ORPHAN_MIN_AGE_SECONDS`. Default 3,600 s.
   */
  orphanMinAgeSeconds: number;
  /**
   * Every this many epochs of a task, after the commit, the engine lists the task's snapshot
   * objects (one LIST) and deletes orphans of attempts that never committed. Env
   * `TIDEMARK_SWEEP_EVERY_EPOCHS`. Default 100.
   */
  sweepEveryEpochs: number;
}

export const DEFAULTS = {
  prefix: 'tidemark',
  epochMaxRecords: 10_000,
  epochMaxBytes: 8 * 1024 * 1024,
  timeReserveMs: 5_000,
  poisonPolicy: 'fail',
  retainedCheckpoints: 3,
  warmCacheMaxTasks: 64,
  taskConcurrency: 8,
  compression: 'zstd',
  snapshotMode: 'incremental',
  compactAfterDeltas: 16,
  compactDeltaRatio: 0.5,
  orphanMinAgeSeconds: 3_600,
  sweepEveryEpochs: 100,
} as const satisfies Partial<TidemarkConfig>;

const REQUIRED = ['bucket', 'table', 'pipeline'] as const;

/** Identifiers end up in S3 keys and DynamoDB keys: keep them to a safe alphabet. */
const ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

function positiveInt(setting: string, raw: string | number): number {
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigurationError(
      setting,
      `${setting} must be a positive integer, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

function positiveNumber(setting: string, raw: string | number): number {
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isFinite(n) || n <= 0) {
    throw new ConfigurationError(setting, `${setting} must be a positive number, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function oneOf<T extends string>(setting: string, raw: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigurationError(
      setting,
      `${setting} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`,
    );
  }
  return raw as T;
}

/**
 * Resolves the configuration from the environment and values given in code, validating every
 * field. A missing required setting fails with a `ConfigurationError` naming the variable.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
  given: Partial<TidemarkConfig> = {},
): TidemarkConfig {
  const pick = (key: keyof TidemarkConfig): string | number | undefined => {
    const fromEnv = env[ENV[key]];
    if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv.trim();
    const fromCode = given[key];
    if (fromCode !== undefined) return fromCode;
    return (DEFAULTS as Partial<Record<keyof TidemarkConfig, string | number>>)[key];
  };
  for (const key of REQUIRED) {
    if (pick(key) === undefined) {
      throw new ConfigurationError(
        ENV[key],
        `missing required setting ${ENV[key]} (the ${key} Tidemark stores ${key === 'pipeline' ? 'checkpoints under' : 'checkpoints in'})`,
      );
    }
  }
  const config: TidemarkConfig = {
    bucket: String(pick('bucket')),
    table: String(pick('table')),
    pipeline: String(pick('pipeline')),
    prefix: String(pick('prefix')),
    epochMaxRecords: positiveInt(ENV.epochMaxRecords, pick('epochMaxRecords')!),
    epochMaxBytes: positiveInt(ENV.epochMaxBytes, pick('epochMaxBytes')!),
    timeReserveMs: positiveInt(ENV.timeReserveMs, pick('timeReserveMs')!),
    poisonPolicy: oneOf(ENV.poisonPolicy, String(pick('poisonPolicy')), ['fail', 'quarantine'] as const),
    retainedCheckpoints: positiveInt(ENV.retainedCheckpoints, pick('retainedCheckpoints')!),
    warmCacheMaxTasks: positiveInt(ENV.warmCacheMaxTasks, pick('warmCacheMaxTasks')!),
    taskConcurrency: positiveInt(ENV.taskConcurrency, pick('taskConcurrency')!),
    compression: oneOf(ENV.compression, String(pick('compression')), ['zstd', 'none'] as const),
    snapshotMode: oneOf(ENV.snapshotMode, String(pick('snapshotMode')), ['incremental', 'full'] as const),
    compactAfterDeltas: positiveInt(ENV.compactAfterDeltas, pick('compactAfterDeltas')!),
    compactDeltaRatio: positiveNumber(ENV.compactDeltaRatio, pick('compactDeltaRatio')!),
    orphanMinAgeSeconds: positiveInt(ENV.orphanMinAgeSeconds, pick('orphanMinAgeSeconds')!),
    sweepEveryEpochs: positiveInt(ENV.sweepEveryEpochs, pick('sweepEveryEpochs')!),
  };
  if (!ID_PATTERN.test(config.pipeline)) {
    throw new ConfigurationError(
      ENV.pipeline,
      `${ENV.pipeline} must match ${ID_PATTERN}, got ${JSON.stringify(config.pipeline)}`,
    );
  }
  if (
    !/^[A-Za-z0-9._/-]{1,256}$/.test(config.prefix) ||
    config.prefix.startsWith('/') ||
    config.prefix.endsWith('/')
  ) {
    throw new ConfigurationError(
      ENV.prefix,
      `${ENV.prefix} must be a relative key prefix without leading or trailing '/'`,
    );
  }
  return config;
}
