import type { KafkaEvent, RawKafkaRecord } from '../../lib/event/types.ts';

export interface TestRecord {
  topic?: string;
  partition?: number;
  offset: number | bigint | string;
  key?: string | null;
  /** A string (UTF-8), an object (JSON), null (tombstone) or undefined (absent: tombstone too). */
  value?: string | object | null;
  headers?: Array<Record<string, number[]>>;
  timestamp?: number;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export function rawRecord(r: TestRecord): RawKafkaRecord {
  const out: RawKafkaRecord = {
    topic: r.topic ?? 'orders',
    partition: r.partition ?? 0,
    offset: typeof r.offset === 'bigint' ? r.offset.toString() : r.offset,
    timestamp: r.timestamp ?? 1_700_000_000_000,
    timestampType: 'CREATE_TIME',
    key: r.key === undefined ? b64('k') : r.key === null ? null : b64(r.key),
    headers: r.headers ?? [],
  };
  if (r.value !== undefined) {
    out.value =
      r.value === null ? null : b64(typeof r.value === 'string' ? r.value : JSON.stringify(r.value));
  }
  return out;
}

/** An Amazon MSK (`aws:kafka`) event holding these records, grouped by topic-partition. */
export function mskEvent(
  records: TestRecord[],
  eventSource: 'aws:kafka' | 'SelfManagedKafka' = 'aws:kafka',
): KafkaEvent {
  const groups: Record<string, RawKafkaRecord[]> = {};
  for (const r of records) {
    const raw = rawRecord(r);
    const k = `${raw.topic}-${raw.partition}`;
    const list = groups[k] ?? [];
    list.push(raw);
    groups[k] = list;
  }
  return {
    eventSource,
    ...(eventSource === 'aws:kafka'
      ? {
          eventSourceArn:
            'arn:aws:kafka:us-east-1:123456789012:cluster/demo/751d2973-a626-431c-9d4e-d7975eb44dd7-2',
        }
      : {}),
    bootstrapServers: 'b-1.demo.kafka.us-east-1.amazonaws.com:9092',
    records: groups,
  };
}

/** Balances records: `deposit(topic, partition, offset, account, amount)`. */
export function deposit(
  topic: string,
  partition: number,
  offset: number | bigint,
  account: string | null,
  amount: number,
): TestRecord {
  return { topic, partition, offset, key: account, value: { amount } };
}

/** Expected balances: a plain fold of records in offset order (tombstones delete, poison skipped). */
export function foldBalances(records: TestRecord[]): Map<string, { balance: number; count: number }> {
  const m = new Map<string, { balance: number; count: number }>();
  const sorted = [...records].sort((a, b) => (BigInt(a.offset) < BigInt(b.offset) ? -1 : 1));
  for (const r of sorted) {
    if (r.key === null || r.key === undefined) continue;
    if (r.value === null || r.value === undefined) {
      m.delete(r.key);
      continue;
    }
    const amount = typeof r.value === 'object' ? (r.value as { amount?: unknown }).amount : undefined;
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) continue;
    const cur = m.get(r.key);
    m.set(r.key, { balance: (cur?.balance ?? 0) + amount, count: (cur?.count ?? 0) + 1 });
  }
  return m;
}

/** A Lambda-like context whose remaining time counts down from `ms`. */
export function lambdaContext(ms = 60_000, requestId = 'req-1') {
  const deadline = Date.now() + ms;
  return { awsRequestId: requestId, getRemainingTimeInMillis: () => deadline - Date.now() };
}
