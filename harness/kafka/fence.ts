/**
 * Ends any transaction a dead container's Kafka delivery left open, as the task's next delivery
 * would: a producer of each task's transactional id initializes (the cluster aborts the previous
 * producer's open transaction) and ends at once. A read_committed reader stops at an open
 * transaction, so the verifiers (the campaign, the main job) call this before reading, once nothing
 * can commit any more.
 */
import { Kafka, logLevel } from 'kafkajs';
import type { TaskId } from '../../lib/checkpoint/stores.ts';
import { KAFKA_OUTPUT_DEFAULTS } from '../../lib/sink/kafka/kafkaOutput.ts';
import { transactionalIdOf } from '../../lib/sink/kafka/marker.ts';

export async function fenceOpenTransactions(
  brokers: readonly string[],
  tasks: readonly TaskId[],
  transactionalIdPrefix: string = KAFKA_OUTPUT_DEFAULTS.transactionalIdPrefix,
): Promise<void> {
  const kafka = new Kafka({ clientId: 'tidemark-fence', brokers: [...brokers], logLevel: logLevel.NOTHING });
  const fence = async (t: TaskId) => {
    const producer = kafka.producer({
      transactionalId: transactionalIdOf(transactionalIdPrefix, t),
      maxInFlightRequests: 1,
      idempotent: false,
    });
    await producer.connect();
    try {
      await (await producer.transaction()).abort();
    } finally {
      await producer.disconnect();
    }
  };
  // A few at a time: each is a connection and an InitProducerId.
  for (let i = 0; i < tasks.length; i += 8) await Promise.all(tasks.slice(i, i + 8).map(fence));
}
