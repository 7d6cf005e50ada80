/**
 * The local Kafka cluster deduplicates a producer's resent batches as Kafka does (mock-sequences.patch):
 * a batch equal to one of the producer's last 5 on a partition (the resend of a batch whose answer
 * was lost) is answered with no error and the offset of the batch it repeats, and nothing is
 * appended. Seen by two clients: kafkajs writes with a transactional producer whose produce answers
 * are delayed past its request timeout (it then resends the batch with the same sequence numbers),
 * and both kcat (librdkafka) and a kafkajs consumer read under read_committed.
 */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type KafkaMock, startKafkaMock } from '../../harness/kafka/kafkaMock.ts';
import { readWithKafkajs, readWithKcat, visible } from '../sink/kafka/helpers.ts';

let mock: KafkaMock;

beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 1, topics: { first: 1, later: 1 } });
}, 600_000);

afterAll(async () => {
  await mock?.stop();
});

/**
 * Sends each value in its own batch in one transaction, the ones in `lost` appended at once but
 * answered 3 s later (the producer gives up after 1 s and resends the batch with the same sequence
 * numbers); returns the offset each send was answered with.
 */
async function sendInTransaction(
  topic: string,
  values: readonly string[],
  lost: ReadonlySet<string>,
): Promise<Map<string, string>> {
  const kafka = new Kafka({
    clientId: 'seq-test',
    brokers: [...mock.brokers],
    logLevel: logLevel.NOTHING,
    requestTimeout: 1_000,
    retry: { retries: 3, initialRetryTime: 50 },
  });
  const producer = kafka.producer({ transactionalId: `seq-${topic}`, maxInFlightRequests: 1 });
  await producer.connect();
  const offsets = new Map<string, string>();
  try {
    const tx = await producer.transaction();
    for (const value of values) {
      if (lost.has(value)) await mock.scriptBrokerRequests(1, 'Produce', 1, { delayMs: 3_000 });
      const [meta] = await tx.send({ topic, messages: [{ partition: 0, value }] });
      offsets.set(value, meta!.baseOffset!);
    }
    await tx.commit();
  } finally {
    await producer.disconnect();
  }
  return offsets;
}

/** Each value once, at the offset its send was answered with, and both readers agree. */
async function expectOnceAtAnsweredOffsets(topic: string, offsets: Map<string, string>): Promise<void> {
  const byKcat = await readWithKcat(mock, [topic]);
  expect(byKcat.map((r) => r.value)).toEqual([...offsets.keys()]);
  for (const r of byKcat) expect(r.offset.toString()).toBe(offsets.get(r.value!));
  expect(visible(await readWithKafkajs(mock, [topic]))).toEqual(visible(byKcat));
}

it('answers the resend of the first batch of a producer epoch with its offset and appends it once', async () => {
  // The mock answered it DUPLICATE_SEQUENCE_NUMBER, which kafkajs does not retry: the send failed.
  const offsets = await sendInTransaction('first', ['a', 'b'], new Set(['a']));
  await expectOnceAtAnsweredOffsets('first', offsets);
});

it('answers the resend of a later batch with its offset and appends it once', async () => {
  // The mock answered it with offset -1.
  const offsets = await sendInTransaction('later', ['a', 'b', 'c', 'd'], new Set(['c']));
  await expectOnceAtAnsweredOffsets('later', offsets);
});
