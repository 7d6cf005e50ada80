/**
 * Repro (the main job's one duplicated-output run, docs/local-run.md): kafkajs 2.2.4 writes a
 * partition's records twice in one transaction when a send spans several brokers, one broker's
 * produce fails fast with a retriable error while another broker's answer is still on its way.
 * `sendMessages.js` waits for the produce requests with `Promise.all`, so the failure rejects at
 * once and the retry (about 100 ms later) sends again to every broker that has not answered yet,
 * the slow one included: its second request waits for the broker lock, and by then the first has
 * been answered and moved the partitions' sequence numbers on, so it goes out with the next
 * sequence numbers. The broker takes it as new records (a real broker would too: only a resend with
 * the same sequence is a duplicate), `send` resolves, and the transaction commits both copies.
 * The sink must never let one kafkajs send span two brokers (it sends one partition per send).
 * Before that fix this test failed in 3 of 3 runs (one or more partitions of an epoch twice).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type KafkaMock, startKafkaMock } from '../../../harness/kafka/kafkaMock.ts';
import { partitionedSink, partitionLeaders, readWithKafkajs, readWithKcat, visible } from './helpers.ts';

const INPUT = 'in';
const OUTPUT = 'out';
const PARTITIONS = 6;
let mock: KafkaMock;

beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 3, topics: { [INPUT]: 1, [OUTPUT]: PARTITIONS } });
}, 600_000);

afterAll(async () => {
  await mock?.stop();
});

it('writes each record once when one broker fails a produce while another is still answering', async () => {
  // Prepare: a sink whose records go to every partition, one request per epoch.
  const { sink, values, delivery } = await partitionedSink(
    mock,
    'rif',
    INPUT,
    OUTPUT,
    Array.from({ length: PARTITIONS }, (_, p) => p),
  );
  try {
    await sink.deliver(delivery(1)); // the producer, its transaction and metadata are warm
    const led = [...new Set((await partitionLeaders(mock, OUTPUT)).values())];
    expect(led.length).toBeGreaterThanOrEqual(2);
    const [slow, failing] = led as [number, number];
    // Act: in each epoch, the slow broker appends its next produce at once but answers 1.5 s later,
    // and the other broker refuses its next produce with a retriable error. (kafkajs's retry first
    // refreshes metadata from a random broker; when that is the slow one, the refresh waits behind
    // the slow produce and the race is missed, so one epoch alone shows it about 2 times in 3.)
    const epochs = [2, 3, 4, 5, 6, 7];
    for (const epoch of epochs) {
      await mock.scriptBrokerRequests(slow, 'Produce', 1, { delayMs: 1_500 });
      await mock.scriptBrokerRequests(failing, 'Produce', 1, { error: 'NOT_ENOUGH_REPLICAS' });
      await sink.deliver(delivery(epoch));
    }
    // Assess: both read_committed readers see every record exactly once.
    const expected = [1, ...epochs].flatMap(values).sort();
    const byKcat = await readWithKcat(mock, [OUTPUT]);
    const byKafkajs = await readWithKafkajs(mock, [OUTPUT]);
    expect(byKcat.map((r) => r.value).sort()).toEqual(expected);
    expect(visible(byKafkajs)).toEqual(visible(byKcat));
  } finally {
    await sink.close();
  }
});
