/**
 * Names of the environment variables Tidemark reads. Shared with the CDK construct, which sets
 * them on the function; nothing else lives here so `cdk/` can import it without runtime code.
 */
export const ENV = {
  bucket: 'TIDEMARK_BUCKET',
  table: 'TIDEMARK_TABLE',
  pipeline: 'TIDEMARK_PIPELINE',
  prefix: 'TIDEMARK_PREFIX',
  epochMaxRecords: 'TIDEMARK_EPOCH_MAX_RECORDS',
  epochMaxBytes: 'TIDEMARK_EPOCH_MAX_BYTES',
  timeReserveMs: 'TIDEMARK_TIME_RESERVE_MS',
  poisonPolicy: 'TIDEMARK_POISON_POLICY',
  retainedCheckpoints: 'TIDEMARK_RETAINED_CHECKPOINTS',
  warmCacheMaxTasks: 'TIDEMARK_WARM_CACHE_MAX_TASKS',
  taskConcurrency: 'TIDEMARK_TASK_CONCURRENCY',
  compression: 'TIDEMARK_SNAPSHOT_COMPRESSION',
  snapshotMode: 'TIDEMARK_SNAPSHOT_MODE',
  compactAfterDeltas: 'TIDEMARK_COMPACT_AFTER_DELTAS',
  compactDeltaRatio: 'TIDEMARK_COMPACT_DELTA_RATIO',
  orphanMinAgeSeconds: 'TIDEMARK_ORPHAN_MIN_AGE_SECONDS',
  sweepEveryEpochs: 'TIDEMARK_SWEEP_EVERY_EPOCHS',
} as const;

export type EnvName = (typeof ENV)[keyof typeof ENV];
