/**
 * Kafka records as Lambda's Kafka event source mapping delivers them: keys and values base64 (null
 * for a null key or a tombstone), headers as one-key objects of signed (Java) bytes, records
 * grouped by `"<topic>-<partition>"` in one payload that may mix partitions.
 */
import type { KafkaEvent, KafkaEventSource, RawKafkaRecord } from '../../lib/event/types.ts';

/** What kafkajs hands over for one record (the fields the ESM uses). */
export interface FetchedMessage {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: Record<string, Buffer | string | null | undefined | Array<Buffer | string | null>>;
  /** kafkajs fills this at run time (not in its types): the record batch's header. */
  batchContext?: { timestampType?: number };
}

/** Lambda's invocation payload limit: 6 MB (not configurable). */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function signedBytes(value: Buffer | string | null | undefined): number[] {
  if (value === null || value === undefined) return [];
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Array.from(bytes, (b) => (b > 127 ? b - 256 : b));
}

/**
 * One record in the ESM's shape. Offsets are JSON numbers, as in real events; an offset beyond
 * 2^53 would lose precision as a number, so it is delivered as a decimal string instead.
 */
export function toEventRecord(topic: string, partition: number, message: FetchedMessage): RawKafkaRecord {
  const offset = BigInt(message.offset);
  const headers: Array<Record<string, number[]>> = [];
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) headers.push({ [name]: signedBytes(v) });
  }
  return {
    topic,
    partition,
    offset: offset <= MAX_SAFE ? Number(offset) : offset.toString(),
    timestamp: Number(message.timestamp),
    timestampType: message.batchContext?.timestampType === 1 ? 'LOG_APPEND_TIME' : 'CREATE_TIME',
    key: message.key === null ? null : message.key.toString('base64'),
    value: message.value === null ? null : message.value.toString('base64'),
    headers,
  };
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
