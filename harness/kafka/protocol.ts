/**
 * Kafka protocol numbers the local tooling uses to inject request errors into the mock cluster
 * (a small subset of the Kafka protocol's API keys and error codes).
 */

/** API keys (`err <apikey> …` on the mock's control channel). */
export const KAFKA_API = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  InitProducerId: 22,
  AddPartitionsToTxn: 24,
  AddOffsetsToTxn: 25,
  EndTxn: 26,
  TxnOffsetCommit: 28,
} as const;

/** Retriable error codes: what a healthy client must ride out. */
export const KAFKA_ERROR = {
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_OR_FOLLOWER: 6,
  REQUEST_TIMED_OUT: 7,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  NOT_ENOUGH_REPLICAS: 19,
  KAFKA_STORAGE_ERROR: 56,
} as const;

export type KafkaApiName = keyof typeof KAFKA_API;
export type KafkaErrorName = keyof typeof KAFKA_ERROR;
