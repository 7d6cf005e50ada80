/**
 * Kafka records as Lambda's Kafka event source mapping delivers them: keys and values base64 (null
 * for a null key or a tombstone), headers as one-key objects of signed (Java) bytes, records
 * grouped by `"<topic>-<partition>"` in one payload that may mix partitions.
 *
 * One encoder (`encodeRecord`, in lib/event/encode.ts, which TestDriver uses too) serves the ESM emulator (records fetched with kafkajs,
 * `toEventRecord`) and the tests (records written by hand, `rawRecord` / `mskEvent`).
 */
import {
  buildEvent,
  deliveredOffset,
  type EventSourceInfo,
  encodeRecord,
  signedBytes,
} from '../../lib/event/encode.ts';
import type { KafkaEvent, KafkaEventSource, RawKafkaRecord, TimestampType } from '../../lib/event/types.ts';

export {
  buildEvent,
  deliveredOffset,
  type EventSourceInfo,
  encodeRecord,
  envelopeBytes,
  eventRecordBytes,
  groupBytes,
  MAX_PAYLOAD_BYTES,
  type RecordFields,
  signedBytes,
} from '../../lib/event/encode.ts';

// ---------------------------------------------------------------------------------------------
// The ESM emulator's side: records fetched with kafkajs.

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

/** One fetched record in the ESM's shape. */
export function toEventRecord(topic: string, partition: number, message: FetchedMessage): RawKafkaRecord {
  const headers: Array<Record<string, number[]>> = [];
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) headers.push({ [name]: signedBytes(v) });
  }
  return encodeRecord({
    topic,
    partition,
    offset: deliveredOffset(BigInt(message.offset)),
    timestamp: Number(message.timestamp),
    timestampType: message.batchContext?.timestampType === 1 ? 'LOG_APPEND_TIME' : 'CREATE_TIME',
    key: message.key,
    value: message.value,
    headers,
  });
}

// ---------------------------------------------------------------------------------------------
// The tests' side: records written by hand.

/** A record as a test writes it; everything but the offset has a default. */
export interface TestRecord {
  /** Default `orders`. */
  topic?: string;
  /** Default 0. */
  partition?: number;
  /** A number travels as a JSON number, a bigint or a string as a decimal string. */
  offset: number | bigint | string;
  /** A string (UTF-8), bytes, or null (a null key). Default `k`. */
  key?: string | Uint8Array | null;
  /** A string (UTF-8), bytes, an object (JSON), null (tombstone) or undefined (absent: tombstone too). */
  value?: string | Uint8Array | object | null;
  /** In the ESM's shape: one-key objects of signed bytes. */
  headers?: Array<Record<string, number[]>>;
  /** Default 1,700,000,000,000. */
  timestamp?: number;
  /** Default `CREATE_TIME`. */
  timestampType?: TimestampType;
}

function bytesOf(v: string | Uint8Array | object): Uint8Array {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) return v;
  return Buffer.from(JSON.stringify(v), 'utf8');
}

export function rawRecord(r: TestRecord): RawKafkaRecord {
  return encodeRecord({
    topic: r.topic ?? 'orders',
    partition: r.partition ?? 0,
    offset: typeof r.offset === 'bigint' ? r.offset.toString() : r.offset,
    timestamp: r.timestamp ?? 1_700_000_000_000,
    timestampType: r.timestampType ?? 'CREATE_TIME',
    key: r.key === undefined ? bytesOf('k') : r.key === null ? null : bytesOf(r.key),
    value: r.value === undefined || r.value === null ? r.value : bytesOf(r.value),
    headers: r.headers ?? [],
  });
}

/** The event source of `mskEvent`'s payloads (MSK, or self-managed Kafka: no ARN). */
export const TEST_EVENT_SOURCE = {
  eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/demo/751d2973-a626-431c-9d4e-d7975eb44dd7-2',
  bootstrapServers: 'b-1.demo.kafka.us-east-1.amazonaws.com:9092',
} as const;

/** One ESM payload holding these records, grouped by topic-partition in order of appearance. */
export function mskEvent(
  records: readonly TestRecord[],
  eventSource: KafkaEventSource = 'aws:kafka',
  source: Omit<EventSourceInfo, 'eventSource'> = TEST_EVENT_SOURCE,
): KafkaEvent {
  const groups = new Map<string, { topic: string; partition: number; records: RawKafkaRecord[] }>();
  for (const r of records) {
    const raw = rawRecord(r);
    const id = `${raw.topic}-${raw.partition}`;
    let g = groups.get(id);
    if (!g) {
      g = { topic: raw.topic, partition: raw.partition, records: [] };
      groups.set(id, g);
    }
    g.records.push(raw);
  }
  return buildEvent({ eventSource, ...source }, [...groups.values()]);
}

/** A balances record: `amount` deposited to `account` (null: a record without a key). */
export function deposit(
  topic: string,
  partition: number,
  offset: number | bigint,
  account: string | null,
  amount: number,
): TestRecord {
  return { topic, partition, offset, key: account, value: { amount } };
}
