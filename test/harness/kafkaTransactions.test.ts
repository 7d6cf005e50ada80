/**
 * The local Kafka cluster enforces Kafka's transaction semantics, as seen by two independent
 * clients: kafkajs (the project's client) writes, and both a kafkajs consumer and kcat (librdkafka,
 * Debian's package) read under read_committed. The reference is a real broker's behaviour for the
 * request versions kafkajs 2.2.4 sends (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
 * TxnOffsetCommit v0-1): a stale epoch is INVALID_PRODUCER_EPOCH there (PRODUCER_FENCED only from
 * the versions of KIP-588 on), which kafkajs raises as a KafkaJSProtocolError of that type.
 */
import { Kafka, logLevel, type Producer, type Transaction } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type KafkaMock, startKafkaMock } from '../../harness/kafka/kafkaMock.ts';
import { type KcatRecord, readCommittedWithKcat } from '../../harness/kafka/kcat.ts';

const BUILD_TIMEOUT_MS = 600_000;
const FENCED = 'INVALID_PRODUCER_EPOCH';

interface LogEntry {
  message: string;
  extra: Record<string, unknown>;
}

/** A kafkajs client whose debug log is kept, to read the producer id and epoch it was given. */
interface Client {
  kafka: Kafka;
  logs: LogEntry[];
}

interface ProducerIdAndEpoch {
  producerId: number;
  producerEpoch: number;
}

interface Seen {
  partition: number;
  offset: bigint;
  value: string;
}

let mock: KafkaMock;
let topicCount = 0;

function client(): Client {
  const logs: LogEntry[] = [];
  const kafka = new Kafka({
    clientId: 'txn-test',
    brokers: [...mock.brokers],
    logLevel: logLevel.DEBUG,
    logCreator:
      () =>
      ({ log }) => {
        const { message, ...extra } = log as { message: string } & Record<string, unknown>;
        logs.push({ message, extra });
      },
  });
  return { kafka, logs };
}

async function transactionalProducer(c: Client, transactionalId: string, transactionTimeout?: number) {
  const producer = c.kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    ...(transactionTimeout === undefined ? {} : { transactionTimeout }),
  });
  await producer.connect();
  return producer;
}

/** The producer id and epoch of the latest InitProducerId answer this client got. */
function lastInit(c: Client): ProducerIdAndEpoch {
  const entry = c.logs.filter((l) => l.message === 'Initialized producer id & epoch').at(-1);
  if (!entry) throw new Error('no InitProducerId answer logged');
  return { producerId: Number(entry.extra.producerId), producerEpoch: Number(entry.extra.producerEpoch) };
}

/** Whether kafkajs was told CONCURRENT_TRANSACTIONS by InitProducerId and retried. */
function retriedInit(c: Client): boolean {
  return c.logs.some((l) => l.message.startsWith('There is an ongoing transaction on this transactionId'));
}

async function newTopic(partitions: number): Promise<string> {
  const topic = `txn-${++topicCount}`;
  await mock.createTopic(topic, partitions);
  return topic;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<{ type?: string; name?: string }> {
  try {
    await p;
  } catch (err) {
    return err as { type?: string; name?: string };
  }
  throw new Error('expected a rejection');
}

/** Read-committed end offsets (the last stable offset of each partition), from ListOffsets. */
async function lastStableOffsets(c: Client, topic: string): Promise<bigint[]> {
  const admin = c.kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.sort((a, b) => a.partition - b.partition).map((o) => BigInt(o.offset));
  } finally {
    await admin.disconnect();
  }
}

async function sendPlain(c: Client, topic: string, messages: { partition: number; value: string }[]) {
  const producer = c.kafka.producer();
  await producer.connect();
  const meta = await producer.send({ topic, messages });
  await producer.disconnect();
  return meta;
}

/** Writes a non-transactional `end` record to every partition: a reader that saw it is past every
 * transaction before it. */
async function sendSentinels(c: Client, topic: string, partitions: number) {
  await sendPlain(
    c,
    topic,
    Array.from({ length: partitions }, (_, p) => ({ partition: p, value: 'end' })),
  );
}

/** Reads with a kafkajs read_committed consumer (the default) until every partition's `end`. */
async function readWithKafkajs(c: Client, topic: string, partitions: number): Promise<Seen[]> {
  const consumer = c.kafka.consumer({
    groupId: `reader-${topic}-${Math.random().toString(36).slice(2)}`,
    sessionTimeout: 6_000,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: Seen[] = [];
  const ended = new Set<number>();
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          const value = String(message.value);
          if (value === 'end') ended.add(partition);
          else seen.push({ partition, offset: BigInt(message.offset), value });
          if (ended.size === partitions) resolve();
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return seen;
}

function values(records: readonly Seen[] | readonly KcatRecord[]): string[] {
  return records
    .map((r) => ({
      partition: r.partition,
      offset: r.offset,
      value: typeof r.value === 'string' ? r.value : String(r.value?.toString('utf8')),
    }))
    .filter((r) => r.value !== 'end')
    .sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : 1))
    .map((r) => `${r.partition}:${r.value}`);
}

async function readWithKcat(topic: string): Promise<KcatRecord[]> {
  return readCommittedWithKcat({ brokers: mock.brokers, topic });
}

/** Kafka errors come back as the `type` of kafkajs's protocol error; 'OK' when none. */
async function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'OK',
    (e: { type?: string; message?: string }) => e.type ?? String(e.message),
  );
}

type RawBroker = Record<string, (request: Record<string, unknown>) => Promise<Record<string, unknown>>>;
interface RawCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  refreshMetadata(): Promise<void>;
  findGroupCoordinator(request: { groupId: string; coordinatorType: number }): Promise<RawBroker>;
  findTopicPartitionMetadata(topic: string): { partitionId: number; leader: number }[];
  findBroker(request: { nodeId: number }): Promise<RawBroker>;
}

/**
 * kafkajs 2.2.4's own cluster object (reached through the private factory of its `Kafka` class),
 * to send single protocol requests in orders its producer never uses: what a buggy or crashed
 * client could send. Requests get kafkajs's versions, as the producer's do.
 */
async function rawCluster(c: Client): Promise<RawCluster> {
  const factory = Object.getOwnPropertySymbols(c.kafka).find(
    (sym) => sym.description === 'private:Kafka:createCluster',
  );
  if (!factory) throw new Error('kafkajs internals changed: no cluster factory');
  const cluster = (c.kafka as unknown as Record<symbol, (o: object) => RawCluster>)[factory]!({});
  await cluster.connect();
  return cluster;
}

beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 3 });
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await mock?.stop();
});

describe('Kafka transactions on the local cluster', () => {
  it('a second initTransactions fences the zombie: its send, sendOffsets and commit fail, its records stay invisible', async () => {
    const topic = await newTopic(3);
    const a = client();
    const zombie = await transactionalProducer(a, 'sink-fence');
    const txA = await zombie.transaction();
    await txA.send({ topic, messages: [{ partition: 0, value: 'A1' }] });
    await txA.send({ topic, messages: [{ partition: 1, value: 'A2' }] });

    const b = client();
    const live = await transactionalProducer(b, 'sink-fence');
    const txB = await live.transaction();

    // A partition already in A's transaction (Produce), a new one (AddPartitionsToTxn), offsets
    // (AddOffsetsToTxn) and the commit (EndTxn): all refused with the fencing error.
    expect((await rejection(txA.send({ topic, messages: [{ partition: 0, value: 'A3' }] }))).type).toBe(
      FENCED,
    );
    expect((await rejection(txA.send({ topic, messages: [{ partition: 2, value: 'A4' }] }))).type).toBe(
      FENCED,
    );
    const sendOffsets = txA.sendOffsets({
      consumerGroupId: 'fence-group',
      topics: [{ topic, partitions: [{ partition: 0, offset: '1' }] }],
    });
    expect((await rejection(sendOffsets)).type).toBe(FENCED);
    expect((await rejection(txA.commit())).type).toBe(FENCED);

    await txB.send({ topic, messages: [{ partition: 0, value: 'B1' }] });
    await txB.commit();
    await sendSentinels(a, topic, 3);

    const expected = ['0:B1'];
    expect(values(await readWithKafkajs(b, topic, 3))).toEqual(expected);
    expect(values(await readWithKcat(topic))).toEqual(expected);
    await Promise.all([zombie.disconnect(), live.disconnect()]);
  });

  it('InitProducerId keeps the producer id, bumps the epoch and aborts the open transaction at once (the LSO moves)', async () => {
    const topic = await newTopic(2);
    const a = client();
    const first = await transactionalProducer(a, 'sink-init');
    const txA = await first.transaction();
    const initA = lastInit(a);
    const [m0] = await txA.send({ topic, messages: [{ partition: 0, value: 'open-0' }] });
    const [m1] = await txA.send({ topic, messages: [{ partition: 1, value: 'open-1' }] });
    const open = [BigInt(m0!.baseOffset!), BigInt(m1!.baseOffset!)];
    // read_committed stops at the open transaction.
    expect(await lastStableOffsets(a, topic)).toEqual(open);

    const b = client();
    const second = await transactionalProducer(b, 'sink-init');
    const txB = await second.transaction();

    // Like a real broker: the first InitProducerId fenced the epoch and aborted the transaction
    // (answer CONCURRENT_TRANSACTIONS), kafkajs retried and got the epoch bumped once more.
    expect(retriedInit(b)).toBe(true);
    expect(lastInit(b)).toEqual({ producerId: initA.producerId, producerEpoch: initA.producerEpoch + 2 });
    // The abort markers are written: the last stable offset is past them right away.
    expect(await lastStableOffsets(b, topic)).toEqual(open.map((o) => o + 2n));
    expect(values(await readWithKcat(topic))).toEqual([]);

    // Nothing open now: the next producer of the id only bumps the epoch (no abort, no retry).
    await txB.abort();
    const c = client();
    const third = await transactionalProducer(c, 'sink-init');
    const txC = await third.transaction();
    expect(retriedInit(c)).toBe(false);
    expect(lastInit(c)).toEqual({ producerId: initA.producerId, producerEpoch: initA.producerEpoch + 3 });
    await txC.abort();
    await Promise.all([first.disconnect(), second.disconnect(), third.disconnect()]);
  });

  it('a transaction that was committing completes before the next producer of its id starts', async () => {
    const topic = await newTopic(1);
    const a = client();
    const first = await transactionalProducer(a, 'sink-committing');
    const txA = await first.transaction();
    const initA = lastInit(a);
    const [m] = await txA.send({ topic, messages: [{ partition: 0, value: 'C1' }] });
    const offset = BigInt(m!.baseOffset!);
    await mock.holdTxnMarkers();
    try {
      await txA.commit(); // EndTxn answered: PrepareCommit, its markers not written yet
      expect(await lastStableOffsets(a, topic)).toEqual([offset]);
      expect(values(await readWithKcat(topic))).toEqual([]);

      const b = client();
      const second = await transactionalProducer(b, 'sink-committing');
      const initB = second.transaction();
      await vi.waitFor(() => expect(retriedInit(b)).toBe(true), { timeout: 30_000, interval: 50 });
      expect(await lastStableOffsets(a, topic)).toEqual([offset]); // still committing
      await mock.setTxnMarkerDelay(0); // the markers are written now
      const txB = await initB;
      // The commit completed (not aborted): one epoch bump only.
      expect(lastInit(b)).toEqual({ producerId: initA.producerId, producerEpoch: initA.producerEpoch + 1 });
      expect(await lastStableOffsets(b, topic)).toEqual([offset + 2n]);
      expect(values(await readWithKcat(topic))).toEqual(['0:C1']);
      await txB.abort();
      await second.disconnect();
    } finally {
      await mock.setTxnMarkerDelay(0);
    }
    await first.disconnect();
  });

  it('delays the markers of a commit (EndTxn answered first, the records visible once the markers land)', async () => {
    const topic = await newTopic(1);
    const c = client();
    const producer = await transactionalProducer(c, 'sink-delayed');
    const tx = await producer.transaction();
    const [m] = await tx.send({ topic, messages: [{ partition: 0, value: 'D1' }] });
    const offset = BigInt(m!.baseOffset!);
    await mock.setTxnMarkerDelay(600_000);
    try {
      await tx.commit();
      expect(await lastStableOffsets(c, topic)).toEqual([offset]);
      await mock.setTxnMarkerDelay(0); // pending markers: written now
      await vi.waitFor(async () => expect(await lastStableOffsets(c, topic)).toEqual([offset + 2n]), {
        timeout: 30_000,
        interval: 50,
      });
    } finally {
      await mock.setTxnMarkerDelay(0);
    }
    expect(values(await readWithKcat(topic))).toEqual(['0:D1']);
    await producer.disconnect();
  });

  it('committed transactions are visible exactly once and in order, aborted ones never', async () => {
    const topic = await newTopic(2);
    const c = client();
    const p1 = await transactionalProducer(c, 'sink-commit-1');
    const p2 = await transactionalProducer(c, 'sink-commit-2');
    const run = async (p: Producer, body: (tx: Transaction) => Promise<void>, commit: boolean) => {
      const tx = await p.transaction();
      await body(tx);
      await (commit ? tx.commit() : tx.abort());
    };

    await sendPlain(c, topic, [{ partition: 0, value: 'plain-1' }]);
    // Transactions of two ids interleaved on the same partitions; one produce request fails once
    // and is retried by kafkajs inside its transaction.
    const tx1 = await p1.transaction();
    const tx2 = await p2.transaction();
    await tx1.send({ topic, messages: [{ partition: 0, value: 'c1-a' }] });
    await tx2.send({ topic, messages: [{ partition: 0, value: 'x1-a' }] });
    await mock.failRequests('Produce', 'NOT_ENOUGH_REPLICAS', 1);
    await tx1.send({ topic, messages: [{ partition: 1, value: 'c1-b' }] });
    await tx2.send({ topic, messages: [{ partition: 1, value: 'x1-b' }] });
    await tx1.send({ topic, messages: [{ partition: 0, value: 'c1-c' }] });
    await tx2.abort();
    await tx1.commit();
    await sendPlain(c, topic, [{ partition: 1, value: 'plain-2' }]);
    await run(
      p2,
      (tx) => tx.send({ topic, messages: [{ partition: 1, value: 'c2-a' }] }).then(() => {}),
      true,
    );
    await run(
      p1,
      (tx) => tx.send({ topic, messages: [{ partition: 0, value: 'x2-a' }] }).then(() => {}),
      false,
    );
    await sendSentinels(c, topic, 2);

    const expected = ['0:plain-1', '0:c1-a', '0:c1-c', '1:c1-b', '1:plain-2', '1:c2-a'];
    expect(values(await readWithKafkajs(c, topic, 2))).toEqual(expected);
    expect(values(await readWithKcat(topic))).toEqual(expected);
    await Promise.all([p1.disconnect(), p2.disconnect()]);
  });

  it('offsets sent in a transaction are stored when it commits and dropped when it aborts', async () => {
    const topic = await newTopic(1);
    const input = await newTopic(2);
    const c = client();
    const admin = c.kafka.admin();
    await admin.connect();
    const committed = async () =>
      (await admin.fetchOffsets({ groupId: 'txn-offsets', topics: [input] }))[0]!.partitions
        .sort((x, y) => x.partition - y.partition)
        .map((p) => p.offset);
    const producer = await transactionalProducer(c, 'sink-offsets');
    const sendOffsets = (tx: Transaction, offset: string) =>
      tx.sendOffsets({
        consumerGroupId: 'txn-offsets',
        topics: [{ topic: input, partitions: [{ partition: 0, offset }] }],
      });

    let tx = await producer.transaction();
    await tx.send({ topic, messages: [{ partition: 0, value: 'x' }] });
    await sendOffsets(tx, '5');
    expect(await committed()).toEqual(['-1', '-1']); // pending, not visible
    await tx.abort();
    expect(await committed()).toEqual(['-1', '-1']); // dropped

    tx = await producer.transaction();
    await sendOffsets(tx, '7');
    expect(await committed()).toEqual(['-1', '-1']);
    await tx.commit();
    expect(await committed()).toEqual(['7', '-1']);
    await producer.disconnect();
    await admin.disconnect();
  });

  it("a plain offset commit made while a transaction is open wins over the transaction's earlier offset", async () => {
    const input = await newTopic(1);
    const c = client();
    const admin = c.kafka.admin();
    await admin.connect();
    const producer = await transactionalProducer(c, 'sink-offset-order');
    const tx = await producer.transaction();
    await tx.sendOffsets({
      consumerGroupId: 'offset-order',
      topics: [{ topic: input, partitions: [{ partition: 0, offset: '7' }] }],
    });
    // Stored after the transactional one: the broker keeps the later record when the commit lands.
    await admin.setOffsets({
      groupId: 'offset-order',
      topic: input,
      partitions: [{ partition: 0, offset: '3' }],
    });
    await tx.commit();
    const [fetched] = await admin.fetchOffsets({ groupId: 'offset-order', topics: [input] });
    expect(fetched!.partitions.map((p) => p.offset)).toEqual(['3']);
    await producer.disconnect();
    await admin.disconnect();
  });

  it('answers out-of-order requests like a broker: EndTxn states, unverified produce and offsets', async () => {
    const topic = await newTopic(2);
    const c = client();
    const cluster = await rawCluster(c);
    try {
      const tid = 'sink-raw';
      const coordinator = await cluster.findGroupCoordinator({ groupId: tid, coordinatorType: 1 });
      const init = await coordinator.initProducerId!({ transactionalId: tid, transactionTimeout: 60_000 });
      const ids = { transactionalId: tid, producerId: init.producerId, producerEpoch: init.producerEpoch };
      await cluster.refreshMetadata();
      const leaderOf = async (partition: number) =>
        cluster.findBroker({
          nodeId: cluster.findTopicPartitionMetadata(topic).find((m) => m.partitionId === partition)!.leader,
        });
      const produce = async (partition: number, firstSequence: number) =>
        (await leaderOf(partition)).produce!({
          ...ids,
          topicData: [{ topic, partitions: [{ partition, firstSequence, messages: [{ value: 'raw' }] }] }],
        });
      const endTxn = (commit: boolean) => coordinator.endTxn!({ ...ids, transactionResult: commit });
      const group = await cluster.findGroupCoordinator({ groupId: 'raw-group', coordinatorType: 0 });
      const txnOffsetCommit = () =>
        group.txnOffsetCommit!({
          ...ids,
          groupId: 'raw-group',
          topics: [{ topic, partitions: [{ partition: 0, offset: '1' }] }],
        });

      expect(await outcome(endTxn(true))).toBe('INVALID_TXN_STATE'); // no transaction (Empty)
      const add = { ...ids, topics: [{ topic, partitions: [{ partition: 0 }] }] };
      expect(await outcome(coordinator.addPartitionsToTxn!(add))).toBe('OK');
      expect(await outcome(produce(1, 0))).toBe('INVALID_TXN_STATE'); // partition not added
      expect(await outcome(produce(0, 0))).toBe('OK');
      expect(await outcome(txnOffsetCommit())).toBe('INVALID_TXN_STATE'); // group not added

      await mock.holdTxnMarkers();
      try {
        expect(await outcome(endTxn(true))).toBe('OK'); // PrepareCommit
        expect(await outcome(endTxn(true))).toBe('CONCURRENT_TRANSACTIONS');
        expect(await outcome(endTxn(false))).toBe('INVALID_TXN_STATE');
        expect(await outcome(coordinator.addPartitionsToTxn!(add))).toBe('CONCURRENT_TRANSACTIONS');
        expect(await outcome(produce(0, 1))).toBe('NOT_ENOUGH_REPLICAS'); // retriable
      } finally {
        await mock.setTxnMarkerDelay(0);
      }
      // CompleteCommit: a retried commit succeeds, an abort is refused, no more produce.
      await vi.waitFor(async () => expect(await outcome(endTxn(true))).toBe('OK'), {
        timeout: 30_000,
        interval: 50,
      });
      expect(await outcome(endTxn(false))).toBe('INVALID_TXN_STATE');
      expect(await outcome(produce(0, 1))).toBe('INVALID_TXN_STATE');
      expect(values(await readWithKcat(topic))).toEqual(['0:raw']);
    } finally {
      await cluster.disconnect();
    }
  });

  it('a transaction open longer than its timeout is aborted by the cluster and its producer fenced', async () => {
    const topic = await newTopic(1);
    const a = client();
    const producer = await transactionalProducer(a, 'sink-timeout', 1_000);
    const tx = await producer.transaction();
    const initA = lastInit(a);
    const [m] = await tx.send({ topic, messages: [{ partition: 0, value: 'T1' }] });
    const offset = BigInt(m!.baseOffset!);

    // Nobody touches the transaction: after its 1 s timeout the cluster aborts it (marker written).
    await vi.waitFor(async () => expect(await lastStableOffsets(a, topic)).toEqual([offset + 2n]), {
      timeout: 30_000,
      interval: 100,
    });
    expect((await rejection(tx.send({ topic, messages: [{ partition: 0, value: 'T2' }] }))).type).toBe(
      FENCED,
    );
    expect((await rejection(tx.commit())).type).toBe(FENCED);

    // The abort bumped the epoch (fencing): the next producer gets one more bump.
    const b = client();
    const next = await transactionalProducer(b, 'sink-timeout');
    const txB = await next.transaction();
    expect(retriedInit(b)).toBe(false);
    expect(lastInit(b)).toEqual({ producerId: initA.producerId, producerEpoch: initA.producerEpoch + 2 });
    await txB.abort();

    await sendSentinels(a, topic, 1);
    expect(values(await readWithKafkajs(a, topic, 1))).toEqual([]);
    expect(values(await readWithKcat(topic))).toEqual([]);
    await Promise.all([producer.disconnect(), next.disconnect()]);
  });

  it('refuses a transaction timeout above the broker maximum (INVALID_TRANSACTION_TIMEOUT)', async () => {
    const c = client();
    const producer = await transactionalProducer(c, 'sink-too-long', 900_001);
    expect((await rejection(producer.transaction())).type).toBe('INVALID_TRANSACTION_TIMEOUT');
    await producer.disconnect();
  });

  it('a commit whose EndTxn failed leaves the transaction open until the next producer of the id aborts it', async () => {
    const topic = await newTopic(1);
    const a = client();
    const producer = await transactionalProducer(a, 'sink-lost-commit');
    const tx = await producer.transaction();
    const [m] = await tx.send({ topic, messages: [{ partition: 0, value: 'L1' }] });
    const offset = BigInt(m!.baseOffset!);
    await mock.failRequests('EndTxn', 'COORDINATOR_NOT_AVAILABLE', 1);
    // kafkajs does not retry EndTxn, and the transaction object is spent.
    expect((await rejection(tx.commit())).type).toBe('GROUP_COORDINATOR_NOT_AVAILABLE');
    expect(await lastStableOffsets(a, topic)).toEqual([offset]); // still open

    const b = client();
    const next = await transactionalProducer(b, 'sink-lost-commit');
    const txB = await next.transaction();
    expect(retriedInit(b)).toBe(true);
    expect(await lastStableOffsets(b, topic)).toEqual([offset + 2n]); // aborted
    await txB.send({ topic, messages: [{ partition: 0, value: 'L1-again' }] });
    await txB.commit();
    expect(values(await readWithKcat(topic))).toEqual(['0:L1-again']);
    await Promise.all([producer.disconnect(), next.disconnect()]);
  });
});
