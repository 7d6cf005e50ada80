/**
 * CloudWatch metric names Tidemark emits (EMF, through Powertools Metrics). The CDK construct
 * imports this module to build its dashboard and alarms, so the two can never drift apart.
 */
export const METRICS_NAMESPACE = 'Tidemark';
/** The one dimension on every Tidemark metric. */
export const PIPELINE_DIMENSION = 'Pipeline';
export const SERVICE_NAME = 'tidemark';

export const METRIC = {
  recordsApplied: 'RecordsApplied',
  duplicatesSkipped: 'DuplicatesSkipped',
  recordsQuarantined: 'RecordsQuarantined',
  epochsCommitted: 'EpochsCommitted',
  commitConflicts: 'CommitConflicts',
  checkpointDuration: 'CheckpointDuration',
  snapshotBytes: 'SnapshotBytes',
  stateKeys: 'StateKeys',
  restoreDuration: 'RestoreDuration',
  warmCacheHits: 'WarmCacheHits',
  recordAge: 'RecordAge',
  failedBatches: 'FailedBatches',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];
