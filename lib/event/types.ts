/**
 * Kafka event source mapping payloads, as Lambda delivers them (Amazon MSK: `aws:kafka`;
 * self-managed Kafka: `SelfManagedKafka`), and the decoded records Tidemark hands to processors.
 */

export const EVENT_SOURCES = ['aws:kafka', 'SelfManagedKafka'] as const;
export type KafkaEventSource = (typeof EVENT_SOURCES)[number];

export const TIMESTAMP_TYPES = ['CREATE_TIME', 'LOG_APPEND_TIME', 'NO_TIMESTAMP_TYPE'] as const;
/**
 * Kafka's timestamp types. `NO_TIMESTAMP_TYPE` marks a record without a timestamp (written with
 * the oldest message format): its `timestamp` is then -1.
 */
export type TimestampType = (typeof TIMESTAMP_TYPES)[number];

export interface SchemaMetadata {
  dataFormat: string;
  schemaId: string;
}

/** One record as it appears in the ESM payload (before decoding). */
export interface RawKafkaRecord {
  topic: string;
  partition: number;
  /** The record's own offset. A JSON number in real events; a decimal string or bigint is accepted too. */
  offset: number | string | bigint;
  timestamp: number;
  timestampType: TimestampType;
  /** base64; `null` or absent for a null key. */
  key?: string | null;
  /** base64; `null` or absent for a tombstone. */
  value?: string | null;
  /**
   * One-key objects `{ name: [signed bytes] }`, in order; names may repeat. A header whose value
   * is null arrives as an empty object `{}` (its name is lost with its value).
   */
  headers?: Array<Record<string, number[]>>;
  keySchemaMetadata?: SchemaMetadata;
  valueSchemaMetadata?: SchemaMetadata;
}

/** The ESM invocation payload. */
export interface KafkaEvent {
  eventSource: KafkaEventSource;
  /** MSK cluster ARN (MSK events only). */
  eventSourceArn?: string;
  bootstrapServers?: string | null;
  /** Keyed `"<topic>-<partition>"`; topic names may themselves contain `-`. */
  records: Record<string, RawKafkaRecord[]>;
}

/** A decoded record. Offsets are int64 (`bigint`), never JS numbers. */
export interface KafkaRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly timestamp: number;
  readonly timestampType: TimestampType;
  /** Raw key bytes, or `null` for a null key. */
  readonly key: Buffer | null;
  /** Raw value bytes, or `null` for a tombstone. */
  readonly value: Buffer | null;
  /**
   * Header name and (unsigned) bytes, in delivery order; a name may repeat. Headers whose value was
   * null are not here: the ESM delivers them as `{}`, without their name.
   */
  readonly headers: ReadonlyArray<readonly [string, Buffer]>;
  readonly keySchemaMetadata?: SchemaMetadata | undefined;
  readonly valueSchemaMetadata?: SchemaMetadata | undefined;
  /** Key and value size in bytes (what epoch byte bounds count). */
  readonly size: number;
}

/** A problem with one record whose identity (topic, partition, offset) is intact. */
export interface RecordDefect {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly reason: string;
  /** The record exactly as delivered, kept for quarantine. */
  readonly raw: unknown;
}

/** The records of one task (topic-partition) in one event, sorted by offset, offsets unique. */
export interface TaskBatch {
  readonly topic: string;
  readonly partition: number;
  /** Records in offset order. A record that could not be decoded appears as a `RecordDefect`. */
  readonly records: ReadonlyArray<KafkaRecord | RecordDefect>;
  /** Records delivered more than once within this one event (same offset), dropped here. */
  readonly duplicatesInEvent: number;
}

export interface ParsedEvent {
  readonly eventSource: KafkaEventSource;
  readonly eventSourceArn: string | undefined;
  readonly tasks: ReadonlyArray<TaskBatch>;
  readonly recordCount: number;
}

export function isRecordDefect(r: KafkaRecord | RecordDefect): r is RecordDefect {
  return 'reason' in r;
}
