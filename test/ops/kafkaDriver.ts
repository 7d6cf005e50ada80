/**
 * Consumers for tests. `drain` is a minimal stand-in for the ESM: consumes a topic with a consumer group (kafkajs), hands
 * each fetched batch to a handler as an ESM event, and commits the group's offsets only after the
 * handler succeeded. `drain` runs until the group's committed offsets reach the end of the topic.
 */
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { EsmEmulator } from '../../harness/esm/esmEmulator.ts';
import type { LambdaContext } from '../../harness/esm/lambdaContext.ts';
import { buildEvent, type FetchedMessage, toEventRecord } from '../../harness/esm/mskEvent.ts';
import type { KafkaEvent } from '../../lib/event/types.ts';

export function testKafka(brokers: readonly string[]): Kafka {
  return new Kafka({ clientId: 'tidemark-test', brokers: [...brokers], logLevel: logLevel.NOTHING });
}

async function caughtUp(admin: Admin, group: string, topic: string): Promise<boolean> {
  const ends = await admin.fetchTopicOffsets(topic);
  const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  return ends.every((e) => {
    const c = committed?.partitions.find((p) => p.partition === e.partition)?.offset ?? '-1';
    return BigInt(e.high) === BigInt(e.low) || BigInt(c) >= BigInt(e.high);
  });
}

/** Consumes `topic` in `group` through `handler` until the group has committed the end of every partition. */
export async function drain(
  kafka: Kafka,
  group: string,
  topic: string,
  handler: (event: KafkaEvent) => Promise<unknown>,
  timeoutMs = 30_000,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const consumer = kafka.consumer({
    groupId: group,
    sessionTimeout: 6_000,
    heartbeatInterval: 300,
    maxWaitTimeInMs: 100,
  });
  let failure: unknown;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        if (batch.messages.length === 0) return;
        const records = batch.messages.map((m) =>
          toEventRecord(batch.topic, batch.partition, m as FetchedMessage),
        );
        try {
          await handler(
            buildEvent({ eventSource: 'SelfManagedKafka', bootstrapServers: 'local' }, [
              { topic: batch.topic, partition: batch.partition, records },
            ]),
          );
        } catch (err) {
          failure = err;
          throw err;
        }
        const last = batch.messages[batch.messages.length - 1]!.offset;
        resolveOffset(last);
        await consumer.commitOffsets([
          { topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() },
        ]);
        await heartbeat();
      },
    });
    const deadline = Date.now() + timeoutMs;
    while (!(await caughtUp(admin, group, topic))) {
      if (failure) throw failure;
      if (Date.now() > deadline) throw new Error(`group ${group} did not catch up within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await consumer.disconnect();
    await admin.disconnect();
  }
}

/**
 * The same with the ESM emulator of harness/esm (batching window, one batch in flight per
 * partition, offsets committed after success), one container: the handler stays warm throughout.
 */
export async function drainWithEsm(
  kafka: Kafka,
  brokers: readonly string[],
  group: string,
  topic: string,
  handler: (event: KafkaEvent, context: LambdaContext) => Promise<unknown>,
  timeoutMs = 30_000,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const failures: unknown[] = [];
  const esm = new EsmEmulator({
    brokers,
    topics: [topic],
    groupId: group,
    batchingWindowMs: 50,
    retryBackoffMs: 10,
    maxConcurrency: 1,
    createContainer: () => ({ invoke: (event, context) => handler(event, context) }),
    onInvocation: (r) => {
      if (r.outcome !== 'success') failures.push(r.error);
    },
  });
  try {
    await esm.start();
    const deadline = Date.now() + timeoutMs;
    while (!(await caughtUp(admin, group, topic))) {
      if (failures.length > 0) throw failures[0];
      if (Date.now() > deadline) throw new Error(`group ${group} did not catch up within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await esm.stop();
    await admin.disconnect();
  }
}
