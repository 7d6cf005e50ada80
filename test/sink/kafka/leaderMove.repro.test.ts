/**
 * Repro (found by the fault campaign's broker faults): a partition's leadership moves while the Kafka
 * sink delivers, and kafkajs 2.2.4 drops that partition's records without an error. Its `send`
 * retries a failed produce only towards brokers that have not answered yet (`sendMessages.js` keeps
 * one answer per broker across retries): when the new leader already answered for other partitions
 * of the same send, the moved partition's records are never sent again, and `send` resolves with the
 * answers it has. The transaction then commits without them: outputs lost (the upstream report:
 * kafkajs issue 1303, open). The sink must check that every partition of a request was written, and
 * abort and send again otherwise.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type KafkaMock, startKafkaMock } from '../../../harness/kafka/kafkaMock.ts';
import { partitionedSink, partitionLeaders, readWithKcat } from './helpers.ts';

const INPUT = 'in';
const OUTPUT = 'out';
let mock: KafkaMock;

beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 3, topics: { [INPUT]: 1, [OUTPUT]: 4 } });
}, 600_000);

afterAll(async () => {
  await mock?.stop();
});

it('delivers every record of an epoch whose partition moved to a broker that answered first', async () => {
  const { sink, delivery } = await partitionedSink(mock, 'lm', INPUT, OUTPUT, [0, 1, 2, 3]);
  try {
    await sink.deliver(delivery(1));
    // Partition 3 moves to the leader of another partition of the next request: kafkajs (its
    // metadata now stale) sends partition 3's record to the old leader, which refuses it, while the
    // new leader answers for its own partition.
    const before = await partitionLeaders(mock, OUTPUT);
    const target = [0, 1, 2].map((p) => before.get(p)!).find((b) => b !== before.get(3))!;
    await mock.moveLeader(OUTPUT, 3, target);
    await sink.deliver(delivery(2));
    const seen = (await readWithKcat(mock, [OUTPUT])).map((r) => r.value).sort();
    expect(seen).toEqual(['e1-0', 'e1-1', 'e1-2', 'e1-3', 'e2-0', 'e2-1', 'e2-2', 'e2-3']);
  } finally {
    await sink.close();
  }
});
