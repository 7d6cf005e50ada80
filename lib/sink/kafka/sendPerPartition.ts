/**
 * Sends records with one kafkajs send per partition, all at once, settled before this returns or
 * throws (an abort never overtakes a produce still in flight). Messages must name their partition.
 *
 * Never one send for several partitions: kafkajs 2.2.4 can then write a partition's records twice.
 * Its send produces to each leader at once and waits with `Promise.all`; when one broker fails (a
 * retriable error, a dropped connection) while another has not answered yet, the retry produces
 * again to every broker without an answer, the slow one included. That second request waits for the
 * broker's lock until the first is answered, then goes out with the sequence numbers that answer
 * moved on to, so the broker (a real one too) appends it as new records
 * (test/sink/kafka/retryInFlight.repro.test.ts). A send of one partition has one request: a retry
 * follows only its failure, and resends with the same sequence numbers, which the broker
 * deduplicates.
 */
import type {
  CompressionTypes,
  Message,
  Producer,
  RecordMetadata,
  TopicMessages,
  Transaction,
} from 'kafkajs';

export async function sendPerPartition(
  sender: Pick<Producer | Transaction, 'sendBatch'>,
  topicMessages: readonly TopicMessages[],
  options: { acks: number; compression?: CompressionTypes },
): Promise<RecordMetadata[]> {
  const sends: Promise<RecordMetadata[]>[] = [];
  for (const { topic, messages } of topicMessages) {
    const byPartition = new Map<number | undefined, Message[]>();
    for (const m of messages) {
      const list = byPartition.get(m.partition) ?? [];
      list.push(m);
      byPartition.set(m.partition, list);
    }
    for (const list of byPartition.values()) {
      sends.push(sender.sendBatch({ topicMessages: [{ topic, messages: list }], ...options }));
    }
  }
  const settled = await Promise.allSettled(sends);
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
}
