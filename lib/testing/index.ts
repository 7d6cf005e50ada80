// `tidemark/testing`: run processors without servers — the memory stores and the test driver.
export type { BatchSummary, TaskSummary } from '../checkpoint/epochEngine.ts';
export { MemorySavepointStore } from '../store/memory/MemorySavepointStore.ts';
export { MemoryCommitStore, MemorySnapshotStore } from '../store/memory/memoryStores.ts';
export { MemorySink, type ReceivedOutput } from './memorySink.ts';
export { defaultPartition, murmur2 } from './partitioner.ts';
export {
  type QuarantinedRecord,
  type SendOptions,
  type SendResult,
  type TestBytes,
  TestDriver,
  type TestDriverOptions,
  type TestRecord,
} from './testDriver.ts';
