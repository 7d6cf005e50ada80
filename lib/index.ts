// `tidemark`: the runtime — processors, state and outputs, the Lambda handler, errors and types.
// It loads nothing of the CDK constructs (`tidemark/cdk`), the operator commands (`tidemark/ops`), the
// middy middleware (`tidemark/middy`), the test driver (`tidemark/testing`) or the sinks' clients
// (`tidemark/kafka`, `tidemark/dynamodb`, `tidemark/s3`, `tidemark/iceberg`, `tidemark/sql`).
export type { BatchSummary, InvocationContext, TaskSummary } from './checkpoint/epochEngine.ts';
export { EpochEngine, type EpochEngineOptions } from './checkpoint/epochEngine.ts';
export type {
  EngineObserver,
  EpochCommittedInfo,
  OutputsDeliveredInfo,
  TaskRestoredInfo,
} from './checkpoint/observer.ts';
export { combineObservers } from './checkpoint/observer.ts';
export type {
  NoOutputs,
  ProcessContext,
  Processor,
  TimeDomain,
  TimeOptions,
  Timer,
  Timers,
} from './checkpoint/processor.ts';
export { defineProcessor, utf8Key } from './checkpoint/processor.ts';
export type {
  CheckpointSummary,
  CommitRecord,
  CommitStore,
  OutboxRef,
  SnapshotRef,
  SnapshotStore,
  StoredObject,
  TaskId,
} from './checkpoint/stores.ts';
export type { PoisonPolicy, TidemarkConfig } from './config/config.ts';
export { DEFAULTS, loadConfig } from './config/config.ts';
export { isTickEvent, TICK_EVENT } from './config/definitions.ts';
export { ENV } from './config/env.ts';
export * from './errors.ts';
export { parseEvent, parseEventJson } from './event/parseEvent.ts';
export type { KafkaEvent, KafkaRecord, RawKafkaRecord } from './event/types.ts';
export { createKafkaHandler, type KafkaHandler } from './handler/createKafkaHandler.ts';
export { createRuntime, type TidemarkOptions, type TidemarkRuntime } from './handler/runtime.ts';
export { METRIC, METRICS_NAMESPACE } from './observability/metricNames.ts';
export {
  CUSTOM_OUTPUT_DEFAULTS,
  type CustomOutputBatch,
  type CustomOutputMessage,
  type CustomOutputOptions,
  CustomSink,
  customOutput,
} from './output/custom.ts';
export type { SinkProvider } from './output/router.ts';
export {
  type AttachedWrites,
  type Delivery,
  type EmitContext,
  type OutputDescriptor,
  type OutputDescriptors,
  type OutputEntry,
  type OutputHandle,
  type OutputHandles,
  type OutputId,
  type OutputKind,
  type OutputPart,
  type OutputReceived,
  type OutputValue,
  outputIdString,
  type Sink,
  type SinkEnvironment,
} from './output/types.ts';
export * from './state/descriptors.ts';
export { MemoryCommitStore, MemorySnapshotStore } from './store/memory/memoryStores.ts';
export {
  type Aggregate,
  hoppingWindows,
  type LateRecord,
  sessionWindows,
  tumblingWindows,
  type WindowAssigner,
  type WindowContext,
  type WindowedAggregate,
  type WindowedAggregateOptions,
  type WindowResult,
  type WindowSlot,
  windowedAggregate,
} from './time/windows.ts';
