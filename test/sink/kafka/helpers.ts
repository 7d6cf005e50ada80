/**
 * Readers for the Kafka sink's tests: two independent `read_committed` consumers (kafkajs, and kcat,
 * which is librdkafka), and small helpers to build sinks and deliveries against the local cluster.
 */
import { Kafka, logLevel } from 'kafkajs';
import type { KafkaMock } from '../../../harness/kafka/kafkaMock.ts';
import { readCommittedWithKcat } from '../../../harness/kafka/kcat.ts';
import type { Delivery, OutputDescriptor } from '../../../lib/output/types.ts';
import { KafkaOutputSink } from '../../../lib/sink/kafka/KafkaOutputSink.ts';
import {
  type KafkaOutputEntry,
  kafkaOutput,
  type ResolvedKafkaOutputOptions,
} from '../../../lib/sink/kafka/kafkaOutput.ts';

/** A record as a reader saw it. */
export interface ReadRecord {
  topic: string;
  partition: number;
  offset: bigint;
  key: string | null;
  value: string | null;
  /** The `tidemark-id` header (null when absent). */
  id: string | null;
  headers: Record<string, string[]>;
}

/**
 * Marks the end of a partition for the kafkajs reader (written outside any transaction); each read
 * writes its own, so sentinels of earlier reads of the same topics are passed over.
 */
const SENTINEL = '__end__';

export function kafkaClient(mock: KafkaMock, clientId = 'test'): Kafka {
  return new Kafka({ clientId, brokers: [...mock.brokers], logLevel: logLevel.NOTHING });
}

/**
 * Reads topics with a kafkajs consumer under read_committed (kafkajs's default), from the start until
 * a sentinel written now to every partition: a reader that saw a partition's sentinel is past every
 * transaction that was committed, aborted or open before it (an open one holds it back, so this
 * also proves none is left hanging). Sentinels are not returned.
 */
export async function readWithKafkajs(mock: KafkaMock, topics: readonly string[]): Promise<ReadRecord[]> {
  const kafka = kafkaClient(mock, 'reader');
  const admin = kafka.admin();
  await admin.connect();
  const partitions = new Map<string, number>();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: [...topics] });
    for (const t of meta.topics) partitions.set(t.name, t.partitions.length);
  } finally {
    await admin.disconnect();
  }
  const sentinel = `${SENTINEL}${Math.random().toString(36).slice(2)}`;
  const producer = kafka.producer();
  await producer.connect();
  for (const [topic, n] of partitions) {
    await producer.send({
      topic,
      messages: Array.from({ length: n }, (_, partition) => ({ partition, value: sentinel })),
    });
  }
  await producer.disconnect();
  const total = [...partitions.values()].reduce((a, b) => a + b, 0);
  const consumer = kafka.consumer({
    groupId: `reader-${Math.random().toString(36).slice(2)}`,
    sessionTimeout: 6_000,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  const records: ReadRecord[] = [];
  const ended = new Set<string>();
  try {
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ topic, partition, message }) => {
            const value = message.value === null ? null : message.value.toString('utf8');
            if (value === sentinel) ended.add(`${topic}/${partition}`);
            else if (!value?.startsWith(SENTINEL)) {
              const headers: Record<string, string[]> = {};
              for (const [name, v] of Object.entries(message.headers ?? {})) {
                const list = Array.isArray(v) ? v : [v];
                headers[name] = list.map((x) => String(x));
              }
              records.push({
                topic,
                partition,
                offset: BigInt(message.offset),
                key: message.key === null ? null : message.key.toString('utf8'),
                value,
                id: headers['tidemark-id']?.[0] ?? null,
                headers,
              });
            }
            if (ended.size === total) resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return sortRecords(records);
}

/** Reads topics with kcat (librdkafka) under read_committed, up to each partition's last stable offset. */
export async function readWithKcat(mock: KafkaMock, topics: readonly string[]): Promise<ReadRecord[]> {
  const records: ReadRecord[] = [];
  for (const topic of topics) {
    for (const r of await readCommittedWithKcat({ brokers: mock.brokers, topic })) {
      const value = r.value === null ? null : r.value.toString('utf8');
      if (value?.startsWith(SENTINEL)) continue;
      const headers: Record<string, string[]> = {};
      for (const h of r.headers)
        headers[h.name] = [...(headers[h.name] ?? []), h.value?.toString('utf8') ?? ''];
      records.push({
        topic,
        partition: r.partition,
        offset: r.offset,
        key: r.key === null ? null : r.key.toString('utf8'),
        value,
        id: headers['tidemark-id']?.[0] ?? null,
        headers,
      });
    }
  }
  return sortRecords(records);
}

function sortRecords(records: ReadRecord[]): ReadRecord[] {
  return records.sort(
    (a, b) =>
      a.topic.localeCompare(b.topic) ||
      a.partition - b.partition ||
      (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0),
  );
}

/** What two readers must agree on: topic, partition, key, value and id of each record, in log order. */
export function visible(records: readonly ReadRecord[]): string[] {
  return records.map((r) => `${r.topic}/${r.partition} ${r.key} ${r.value} ${r.id}`);
}

/** Read-committed end offsets (last stable offsets) of a topic's partitions. */
export async function lastStableOffsets(mock: KafkaMock, topic: string): Promise<bigint[]> {
  const admin = kafkaClient(mock, 'lso').admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.sort((a, b) => a.partition - b.partition).map((o) => BigInt(o.offset));
  } finally {
    await admin.disconnect();
  }
}

/** The leader broker of each of a topic's partitions. */
export async function partitionLeaders(mock: KafkaMock, topic: string): Promise<Map<number, number>> {
  const admin = kafkaClient(mock, 'leaders').admin();
  await admin.connect();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    return new Map(meta.topics[0]!.partitions.map((p) => [p.partitionId, p.leader]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * A Kafka sink writing to `output` (commits in memory) and the deliveries of one task of `input`:
 * epoch E holds one record per partition p of `partitions`, value `eE-p`, written to partition p.
 */
export async function partitionedSink(
  mock: KafkaMock,
  pipeline: string,
  input: string,
  output: string,
  partitions: readonly number[],
): Promise<{
  sink: KafkaOutputSink;
  values: (epoch: number) => string[];
  delivery: (epoch: number) => Delivery;
}> {
  const descriptor = kafkaOutput<string>({
    topic: output,
    key: () => null,
    partition: (v) => Number(v.split('-')[1]),
    value: (v) => v,
    cluster: { brokers: [...mock.brokers] },
  }) as OutputDescriptor;
  const sink = await KafkaOutputSink.create(
    { pipeline, env: {}, commitStore: 'memory' },
    descriptor.options as unknown as ResolvedKafkaOutputOptions,
  );
  const ctx = { pipeline, topic: input, partition: 0, offset: 0n, key: null };
  const values = (epoch: number) => partitions.map((p) => `e${epoch}-${p}`);
  const delivery = (epoch: number): Delivery => ({
    task: { pipeline, topic: input, partition: 0 },
    epoch,
    committedOffset: BigInt(epoch),
    parts: [
      {
        name: 'out',
        descriptor,
        entries: values(epoch).map((v, seq) => ({
          seq,
          entry: descriptor.encode(v, ctx) as KafkaOutputEntry,
        })),
      },
    ],
  });
  return { sink, values, delivery };
}

/** A promise the test resolves by hand, and one that says when someone started waiting on it. */
export function hold(): { reached: Promise<void>; wait: () => Promise<void>; release: () => void } {
  let reach = () => {};
  let release = () => {};
  const reached = new Promise<void>((r) => (reach = r));
  const released = new Promise<void>((r) => (release = r));
  return {
    reached,
    wait: () => {
      reach();
      return released;
    },
    release,
  };
}
