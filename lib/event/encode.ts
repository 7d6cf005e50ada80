/**
 * The Kafka event source mapping's wire format, as an encoder: records as Lambda delivers them
 * (keys and values base64, null for a null key or a tombstone; headers as one-key objects of signed
 * Java bytes; records grouped by `"<topic>-<partition>"`). The counterpart of `parseEvent`; used by
 * `TestDriver` and by the local ESM emulator.
 */
import { ESM } from '../config/definitions.ts';
import type { KafkaEvent, KafkaEventSource, RawKafkaRecord, TimestampType } from './types.ts';

/** Lambda's invocation payload limit: 6 MB (not configurable). */
export const MAX_PAYLOAD_BYTES = ESM.maxPayloadBytes;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Bytes as the ESM writes them in a header: signed (Java) bytes. */
export function signedBytes(value: Uint8Array | string | null | undefined): number[] {
  if (value === null || value === undefined) return [];
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Array.from(bytes, (b) => (b > 127 ? b - 256 : b));
}

/** One record's fields before the ESM encodes them. */
export interface RecordFields {
  topic: string;
  partition: number;
  /** As it travels in the payload: a JSON number, or a decimal string (see `deliveredOffset`). */
  offset: number | string;
  timestamp: number;
  timestampType?: TimestampType;
  key: Uint8Array | null;
  /** Null for a tombstone; undefined leaves the field out (real events do both). */
  value: Uint8Array | null | undefined;
  /** Already in the ESM's shape (one-key objects of signed bytes), in order. */
  headers?: Array<Record<string, number[]>>;
}

const base64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** One record in the ESM's shape. */
export function encodeRecord(fields: RecordFields): RawKafkaRecord {
  const out: RawKafkaRecord = {
    topic: fields.topic,
    partition: fields.partition,
    offset: fields.offset,
    timestamp: fields.timestamp,
    timestampType: fields.timestampType ?? 'CREATE_TIME',
    key: fields.key === null ? null : base64(fields.key),
    headers: fields.headers ?? [],
  };
  if (fields.value !== undefined) out.value = fields.value === null ? null : base64(fields.value);
  return out;
}

/**
 * An offset as the ESM delivers it: a JSON number, as in real events; an offset beyond 2^53 would
 * lose precision as a number, so it travels as a decimal string instead.
 */
export function deliveredOffset(offset: bigint): number | string {
  return offset <= MAX_SAFE ? Number(offset) : offset.toString();
}

/** Bytes a record adds to the JSON payload (its text plus the separating comma). */
export function eventRecordBytes(record: RawKafkaRecord): number {
  return Buffer.byteLength(JSON.stringify(record)) + 1;
}

export interface EventSourceInfo {
  eventSource: KafkaEventSource;
  /** Cluster ARN (MSK events only). */
  eventSourceArn?: string;
  bootstrapServers: string;
}

/** The JSON envelope around the records, and the bytes one `"<topic>-<partition>": [...]` group adds. */
export function envelopeBytes(source: EventSourceInfo): number {
  return Buffer.byteLength(JSON.stringify({ ...source, records: {} }));
}

export function groupBytes(topic: string, partition: number): number {
  return Buffer.byteLength(JSON.stringify(`${topic}-${partition}`)) + 4;
}

/** The invocation payload for records already grouped by topic-partition (each group in offset order). */
export function buildEvent(
  source: EventSourceInfo,
  groups: ReadonlyArray<{ topic: string; partition: number; records: readonly RawKafkaRecord[] }>,
): KafkaEvent {
  const records: Record<string, RawKafkaRecord[]> = {};
  for (const g of groups) records[`${g.topic}-${g.partition}`] = [...g.records];
  return {
    eventSource: source.eventSource,
    ...(source.eventSource === 'aws:kafka' && source.eventSourceArn
      ? { eventSourceArn: source.eventSourceArn }
      : {}),
    bootstrapServers: source.bootstrapServers,
    records,
  };
}
