// `tidemark/ops`: the operator operations as functions (what `npx tidemark` runs): status, inspect,
// retained checkpoints and rollback, export and bootstrap, savepoints, garbage collection, and the
// stores they work on. Not for the Lambda hot path.

export { ensureBucket, ensureTable } from '../store/provision.ts';
export { type AwsStoreOptions, createAwsStores, createSavepointStore, type Stores } from '../store/stores.ts';
export {
  type BootstrapOptions,
  type BootstrappedTask,
  type BootstrapResult,
  bootstrapState,
  parseOffsets,
} from './bootstrap.ts';
export {
  type CheckpointListing,
  installCheckpoint,
  listCheckpoints,
  type RollbackResult,
  rollbackTask,
} from './checkpoints.ts';
export type { EventSourceControl, EventSourceMappingInfo } from './eventSources.ts';
export { type ExportOptions, type ExportResult, exportState } from './exportState.ts';
export { collectGarbage, type GcOptions, type GcResult } from './gc.ts';
export { type InspectDetails, inspectTask, type TaskInspection } from './inspect.ts';
export {
  createKafkaOps,
  type KafkaConnectionOptions,
  type KafkaOps,
  kafkaClientConfig,
  parseBrokers,
} from './kafka.ts';
export {
  type CreateSavepointOptions,
  createSavepoint,
  deleteSavepoint,
  listSavepoints,
  type RestoreOptions,
  type RestoreResult,
  restoreSavepoint,
  type SavepointStores,
} from './savepoints.ts';
export { pipelineStatus } from './status.ts';
