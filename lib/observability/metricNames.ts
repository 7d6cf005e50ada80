/**
 * CloudWatch metric names Tidemark emits (EMF, through Powertools Metrics). The CDK construct
 * imports this module to build its dashboard and alarms, so the two can never drift apart. Keep it
 * free of imports: `cdk/` loads it without any runtime code.
 */
export const METRICS_NAMESPACE = 'Tidemark';
/** Dimension naming the pipeline, on every Tidemark metric. */
export const PIPELINE_DIMENSION = 'Pipeline';
/**
 * Dimension Powertools Metrics adds to every metric (its value is the service name). Every Tidemark
 * metric therefore has exactly the dimensions {service: SERVICE_NAME, Pipeline: <pipeline id>}, and an
 * alarm must name both to find it.
 */
export const SERVICE_DIMENSION = 'service';
export const SERVICE_NAME = 'tidemark';

export const METRIC = {
  /** Records applied to state and committed (quarantined records excluded). Per epoch. */
  recordsApplied: 'RecordsApplied',
  /** Records skipped because a commit already covered them (re-deliveries, duplicates). */
  duplicatesSkipped: 'DuplicatesSkipped',
  /** Poison records set aside in S3 under the `quarantine` policy, counted when their epoch commits. */
  recordsQuarantined: 'RecordsQuarantined',
  /** Epochs committed (one snapshot PUT and one conditional write each). */
  epochsCommitted: 'EpochsCommitted',
  /** Commits lost to another attempt (zombie or concurrent duplicate invocation). */
  commitConflicts: 'CommitConflicts',
  /** Snapshot PUT + conditional commit of one epoch, in ms. */
  checkpointDuration: 'CheckpointDuration',
  /** Bytes of the snapshot object an epoch wrote (a delta or a full snapshot). */
  snapshotBytes: 'SnapshotBytes',
  /** Keys in a task's state after an epoch. */
  stateKeys: 'StateKeys',
  /** Loading a task's checkpoint (cold container or lost race), in ms. */
  restoreDuration: 'RestoreDuration',
  /** Tasks whose state a warm container already held in memory. */
  warmCacheHits: 'WarmCacheHits',
  /** Now minus the timestamp of the newest record an epoch applied, in ms. */
  recordAge: 'RecordAge',
  /** Invocations that failed (the event source mapping retries them). */
  failedBatches: 'FailedBatches',
  /** Outputs an epoch committed (in the commit's transaction or in its outbox). Per epoch. */
  outputsCommitted: 'OutputsCommitted',
  /** Outputs of an epoch's outbox delivered after its commit (a retry may deliver some again). */
  outputsDelivered: 'OutputsDelivered',
  /** Delivering an epoch's outbox to every sink, in ms. */
  outputDeliveryDuration: 'OutputDeliveryDuration',
  /** Timers whose callback failed for good and were set aside under the quarantine policy. */
  timersQuarantined: 'TimersQuarantined',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** CloudWatch unit of each metric (the same strings Powertools' `MetricUnit` uses). */
export const METRIC_UNIT = {
  RecordsApplied: 'Count',
  DuplicatesSkipped: 'Count',
  RecordsQuarantined: 'Count',
  EpochsCommitted: 'Count',
  CommitConflicts: 'Count',
  CheckpointDuration: 'Milliseconds',
  SnapshotBytes: 'Bytes',
  StateKeys: 'Count',
  RestoreDuration: 'Milliseconds',
  WarmCacheHits: 'Count',
  RecordAge: 'Milliseconds',
  FailedBatches: 'Count',
  OutputsCommitted: 'Count',
  OutputsDelivered: 'Count',
  OutputDeliveryDuration: 'Milliseconds',
  TimersQuarantined: 'Count',
} as const satisfies Record<MetricName, 'Count' | 'Milliseconds' | 'Bytes'>;
