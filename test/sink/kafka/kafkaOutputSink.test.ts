/**
 * The Kafka sink against the local cluster (librdkafka's mock, patched to enforce Kafka's transaction
 * rules: fencing by epoch, abort on InitProducerId and on timeout, offsets visible on commit), one
 * delivery at a time: what readers see (kafkajs and kcat, both read_committed), the marker, and
 * each way a delivery can fail. The engine-driven proof is in exactlyOnce.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type KafkaMock, startKafkaMock } from '../../../harness/kafka/kafkaMock.ts';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import {
  ConfigurationError,
  KafkaOutputError,
  KafkaOutputMarkerError,
  KafkaProducerFencedError,
} from '../../../lib/errors.ts';
import type { Delivery, OutputDescriptor, OutputPart } from '../../../lib/output/types.ts';
import { KafkaOutputSink, type KafkaSinkDeps } from '../../../lib/sink/kafka/KafkaOutputSink.ts';
import {
  type KafkaClusterOptions,
  type KafkaOutputEntry,
  type KafkaOutputOptions,
  kafkaOutput,
  type ResolvedKafkaOutputOptions,
} from '../../../lib/sink/kafka/kafkaOutput.ts';
import { hold, kafkaClient, lastStableOffsets, readWithKafkajs, readWithKcat, visible } from './helpers.ts';

const BUILD_TIMEOUT_MS = 600_000;

let mock: KafkaMock;
let counter = 0;

beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 3 });
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await mock?.stop();
});

interface Setup {
  pipeline: string;
  input: string;
  task: TaskId;
  topics: string[];
  cluster: KafkaClusterOptions;
  sinks: KafkaOutputSink[];
}

/** Fresh topics (`outputs` partitions each) and an input topic of 4 partitions, for one test. */
async function setup(outputs: number[], cluster: Partial<KafkaClusterOptions> = {}): Promise<Setup> {
  const n = ++counter;
  const input = `in-${n}`;
  await mock.createTopic(input, 4);
  const topics: string[] = [];
  for (const [i, partitions] of outputs.entries()) {
    const topic = `out-${n}-${i}`;
    await mock.createTopic(topic, partitions);
    topics.push(topic);
  }
  const pipeline = `pipe-${n}`;
  return {
    pipeline,
    input,
    task: { pipeline, topic: input, partition: 1 },
    topics,
    cluster: { brokers: [...mock.brokers], ...cluster },
    sinks: [],
  };
}

async function sinkOf(
  s: Setup,
  descriptor: OutputDescriptor,
  deps: KafkaSinkDeps = {},
): Promise<KafkaOutputSink> {
  const sink = await KafkaOutputSink.create(
    { pipeline: s.pipeline, env: {}, commitStore: 'memory' },
    descriptor.options as unknown as ResolvedKafkaOutputOptions,
    deps,
  );
  s.sinks.push(sink);
  return sink;
}

async function closeAll(s: Setup): Promise<void> {
  await Promise.all(s.sinks.map((k) => k.close()));
}

type Output = OutputDescriptor<unknown, KafkaOutputEntry>;

function output<T>(s: Setup, topic: string, options: Partial<KafkaOutputOptions<T>> = {}): Output {
  return kafkaOutput<T>({ topic, cluster: s.cluster, ...options }) as Output;
}

/** A delivery of `values` per output, with sequence numbers in the order given (interleaved by `order`). */
function delivery(
  s: Setup,
  epoch: number,
  committedOffset: bigint,
  emits: Array<[name: string, descriptor: Output, value: unknown, key?: string | null]>,
  extra: Partial<Delivery> = {},
): Delivery {
  const parts = new Map<string, OutputPart>();
  emits.forEach(([name, descriptor, value, key], seq) => {
    const part = parts.get(name) ?? { name, descriptor: descriptor as OutputDescriptor, entries: [] };
    const ctx = { ...s.task, offset: committedOffset - 1n, key: key === undefined ? `k${seq}` : key };
    (part.entries as Array<{ seq: number; entry: unknown }>).push({
      seq,
      entry: descriptor.encode(value, ctx),
    });
    parts.set(name, part);
  });
  return { task: s.task, epoch, committedOffset, parts: [...parts.values()], ...extra };
}

async function markerOf(s: Setup, group = `tidemark.${s.pipeline}.outputs`, topic = s.input) {
  const admin = kafkaClient(mock).admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return t!.partitions.find((p) => p.partition === s.task.partition);
  } finally {
    await admin.disconnect();
  }
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** Kafka's murmur2 of a key, for the vectors of the Java client's own test (Utils.murmur2). */
const JAVA_MURMUR2: Record<string, number> = {
  '21': -973932308,
  foobar: -790332482,
  'a-little-bit-long-string': -985981536,
  abc: 479470107,
};

describe('KafkaOutputSink', () => {
  it('delivers a task-epoch to several topics in one transaction: both readers see each record once, with its id, key and partition', async () => {
    const s = await setup([5, 2]);
    const alerts = output(s, s.topics[0]!);
    const audit = output<string>(s, s.topics[1]!, {
      value: (v) => v,
      headers: () => ({ source: 'audit', tag: ['x', 'y'] }),
    });
    const emits: Parameters<typeof delivery>[3] = [
      ...Object.keys(JAVA_MURMUR2).map(
        (k, i) => ['alerts', alerts, { i }, k] as [string, Output, unknown, string],
      ),
      ['audit', audit, 'no key', null],
      ['alerts', alerts, { i: 'null key' }, null],
      ['audit', audit, 'keyed', 'abc'],
    ];
    const d = delivery(s, 1, 42n, emits);
    const sink = await sinkOf(s, alerts);
    await sink.deliver(d);

    const id = (seq: number) => `${s.pipeline}/${s.input}/1/1/${seq}`;
    const toPositive = (h: number) => h & 0x7fffffff;
    const expected = [
      // Keyed records: Kafka's default partitioner (murmur2, like the Java client).
      ...Object.entries(JAVA_MURMUR2).map(([k, h], i) => ({
        topic: s.topics[0]!,
        partition: toPositive(h) % 5,
        key: k,
        value: JSON.stringify({ i }),
        id: id(i),
      })),
      // No key: the input partition (1) modulo the partition count.
      { topic: s.topics[1]!, partition: 1 % 2, key: null, value: 'no key', id: id(4) },
      { topic: s.topics[0]!, partition: 1 % 5, key: null, value: '{"i":"null key"}', id: id(5) },
      {
        topic: s.topics[1]!,
        partition: toPositive(JAVA_MURMUR2.abc!) % 2,
        key: 'abc',
        value: 'keyed',
        id: id(6),
      },
    ];
    const seen = await readWithKafkajs(mock, s.topics);
    expect(
      seen.map(({ topic, partition, key, value, id }) => ({ topic, partition, key, value, id })),
    ).toEqual(expect.arrayContaining(expected));
    expect(seen).toHaveLength(expected.length);
    // Emit order within each partition.
    for (const t of s.topics) {
      for (const p of new Set(seen.filter((r) => r.topic === t).map((r) => r.partition))) {
        const ids = seen
          .filter((r) => r.topic === t && r.partition === p)
          .map((r) => Number(r.id!.split('/').at(-1)));
        expect(ids).toEqual([...ids].sort((a, b) => a - b));
      }
    }
    expect(seen.find((r) => r.value === 'keyed')?.headers).toMatchObject({
      source: ['audit'],
      tag: ['x', 'y'],
    });
    expect(visible(await readWithKcat(mock, s.topics))).toEqual(visible(seen));
    // The marker: the epoch's committed input offset, the epoch in its metadata.
    expect(await markerOf(s)).toEqual({ partition: 1, offset: '42', metadata: 'tidemark:1:epoch=1' });
    await closeAll(s);
  });

  it('makes a repeated delivery a no-op: with the same producer, with a new sink (marker read), and for an older epoch', async () => {
    const s = await setup([2]);
    const out = output(s, s.topics[0]!);
    const sink = await sinkOf(s, out);
    const e1 = delivery(s, 1, 10n, [['o', out, 'a']]);
    const e2 = delivery(s, 2, 20n, [['o', out, 'b']]);
    await sink.deliver(e1);
    await sink.deliver(e2);
    await sink.deliver(e2); // kept producer: it knows epoch 2 is delivered
    const fresh = await sinkOf(s, out);
    await fresh.deliver(e2); // a restored container: reads the marker
    await fresh.deliver(e1); // a zombie's old outbox
    const seen = await readWithKafkajs(mock, s.topics);
    expect(seen.map((r) => r.value)).toEqual(['"a"', '"b"']);
    expect(visible(await readWithKcat(mock, s.topics))).toEqual(visible(seen));
    await closeAll(s);
  });

  it("delivers a rollback's new epochs although their committed offsets are lower than the marker's", async () => {
    const s = await setup([1]);
    const out = output(s, s.topics[0]!);
    const sink = await sinkOf(s, out);
    await sink.deliver(delivery(s, 5, 100n, [['o', out, 'before rollback']]));
    // Rolled back to an older checkpoint: epoch 6 at offset 60, records 60.. processed again.
    await sink.deliver(delivery(s, 6, 80n, [['o', out, 'after rollback']]));
    await (await sinkOf(s, out)).deliver(delivery(s, 6, 80n, [['o', out, 'after rollback']]));
    expect((await readWithKcat(mock, s.topics)).map((r) => r.value)).toEqual([
      '"before rollback"',
      '"after rollback"',
    ]);
    expect(await markerOf(s)).toMatchObject({ offset: '80', metadata: 'tidemark:1:epoch=6' });
    await closeAll(s);
  });

  it('fences a zombie: a delivery held mid-transaction is overtaken by a new producer, fails, and none of its records become visible', async () => {
    const s = await setup([2, 1]);
    const a = output(s, s.topics[0]!);
    const b = output(s, s.topics[1]!);
    const held = hold();
    const zombie = await sinkOf(s, a, {
      hooks: { step: (step) => (step === 'request-sent' ? held.wait() : undefined) },
    });
    const d = delivery(s, 1, 7n, [
      ['a', a, 'one'],
      ['b', b, 'two'],
      ['a', a, 'three'],
    ]);
    const zombieDelivery = zombie.deliver(d);
    zombieDelivery.catch(() => undefined);
    await held.reached;
    // Its records are in the log, in an open transaction: read_committed readers see none of them.
    expect(await readWithKcat(mock, s.topics)).toEqual([]);

    const live = await sinkOf(s, a);
    await live.deliver(d);
    held.release();
    const err = await rejection(zombieDelivery);
    expect(err).toBeInstanceOf(KafkaProducerFencedError);
    expect((err as KafkaProducerFencedError).retriable).toBe(true);

    const seen = await readWithKafkajs(mock, s.topics);
    expect(seen.map((r) => r.value).sort()).toEqual(['"one"', '"three"', '"two"']);
    expect(new Set(seen.map((r) => r.id)).size).toBe(3);
    expect(visible(await readWithKcat(mock, s.topics))).toEqual(visible(seen));
    await closeAll(s);
  });

  it('retries a failed commit with a new producer, which aborts the open transaction and delivers once', async () => {
    const s = await setup([1]);
    const out = output(s, s.topics[0]!);
    const steps: string[] = [];
    const sink = await sinkOf(s, out, {
      hooks: { step: (step, info) => void steps.push(`${info.attempt}:${step}`) },
    });
    await mock.failRequests('EndTxn', 'COORDINATOR_NOT_AVAILABLE', 1);
    await sink.deliver(delivery(s, 1, 3n, [['o', out, 'x']]));
    expect(steps).toEqual([
      '1:ready',
      '1:marker-read',
      '1:request-sent',
      '1:offsets-sent',
      '2:ready',
      '2:marker-read',
      '2:request-sent',
      '2:offsets-sent',
      '2:committed',
    ]);
    const seen = await readWithKafkajs(mock, s.topics);
    expect(seen.map((r) => r.value)).toEqual(['"x"']);
    expect(visible(await readWithKcat(mock, s.topics))).toEqual(visible(seen));
    await closeAll(s);
  });

  it('re-checks a commit whose answer it lost: the new producer waits for the transaction to complete, the marker says delivered', async () => {
    const s = await setup([1]);
    const out = output(s, s.topics[0]!);
    const steps: string[] = [];
    let lost = false;
    const sink = await sinkOf(s, out, {
      hooks: {
        step: (step, info) => {
          steps.push(`${info.attempt}:${step}`);
          if (step === 'committed' && !lost) {
            lost = true;
            throw new Error('the answer to EndTxn was lost');
          }
        },
      },
    });
    // The committed transaction's markers are written 300 ms after EndTxn: the new producer's
    // InitProducerId meets it still committing (CONCURRENT_TRANSACTIONS) and waits.
    await mock.setTxnMarkerDelay(300);
    try {
      await sink.deliver(delivery(s, 1, 3n, [['o', out, 'once']]));
    } finally {
      await mock.setTxnMarkerDelay(0);
    }
    expect(steps.slice(4)).toEqual(['1:committed', '2:ready', '2:marker-read']);
    const seen = await readWithKafkajs(mock, s.topics);
    expect(seen.map((r) => r.value)).toEqual(['"once"']);
    expect(visible(await readWithKcat(mock, s.topics))).toEqual(visible(seen));
    await closeAll(s);
  });

  it('bounds a transaction left open by a crashed delivery: the cluster aborts it after transactionTimeoutMs', async () => {
    const s = await setup([1], { transactionTimeoutMs: 1_000 });
    const out = output(s, s.topics[0]!);
    const held = hold();
    const crashed = await sinkOf(s, out, {
      hooks: { step: (step) => (step === 'request-sent' ? held.wait() : undefined) },
    });
    const d = delivery(s, 1, 3n, [['o', out, 'x']]);
    const crashedDelivery = crashed.deliver(d);
    crashedDelivery.catch(() => undefined);
    await held.reached;
    const [open] = await lastStableOffsets(mock, s.topics[0]!);
    expect(open).toBe(0n); // readers wait at the open transaction
    // Nobody delivers the task again: the cluster aborts the transaction once it times out.
    await vi.waitFor(async () => expect((await lastStableOffsets(mock, s.topics[0]!))[0]).toBe(2n), {
      timeout: 30_000,
      interval: 100,
    });
    expect(await readWithKcat(mock, s.topics)).toEqual([]);
    held.release();
    expect(await rejection(crashedDelivery)).toBeInstanceOf(KafkaProducerFencedError);
    await (await sinkOf(s, out)).deliver(d);
    expect((await readWithKafkajs(mock, s.topics)).map((r) => r.value)).toEqual(['"x"']);
    await closeAll(s);
  });

  it('lets an operator decide when the marker of an old unsettled epoch is gone', async () => {
    const s = await setup([1]);
    const out = output(s, s.topics[0]!);
    const now = Date.parse('2026-12-20T00:00:00Z');
    const old = delivery(s, 3, 9n, [['o', out, 'x']], { committedAt: '2026-12-10T00:00:00Z' });
    const sink = await sinkOf(s, out, { now: () => now });
    const err = await rejection(sink.deliver(old));
    expect(err).toBeInstanceOf(KafkaOutputMarkerError);
    expect((err as KafkaOutputMarkerError).reason).toBe('missing');
    // The operator found no record of epoch 3 in the topic, and deploys once with 'deliver'.
    const decided = output(s, s.topics[0]!, { cluster: { ...s.cluster, onMissingMarker: 'deliver' } });
    const again = delivery(s, 3, 9n, [['o', decided, 'x']], { committedAt: '2026-12-10T00:00:00Z' });
    await (await sinkOf(s, decided, { now: () => now })).deliver(again);
    expect((await readWithKcat(mock, s.topics)).map((r) => r.value)).toEqual(['"x"']);
    await closeAll(s);
  });

  it('keeps markers on markerTopic when the input topic is not in the output cluster', async () => {
    const s = await setup([1]);
    s.task = { pipeline: s.pipeline, topic: 'input-elsewhere', partition: 2 };
    const out = output(s, s.topics[0]!);
    const d = delivery(s, 1, 5n, [['o', out, 'x']]);
    const err = await rejection((await sinkOf(s, out)).deliver(d));
    expect(err).toBeInstanceOf(KafkaOutputError);
    expect((err as KafkaOutputError).retriable).toBe(false);
    expect(err.message).toContain('markerTopic');

    const markers = `markers-${counter}`;
    await mock.createTopic(markers, 4);
    const withMarkers = output(s, s.topics[0]!, { cluster: { ...s.cluster, markerTopic: markers } });
    const d2 = delivery(s, 1, 5n, [['o', withMarkers, 'x']]);
    await (await sinkOf(s, withMarkers)).deliver(d2);
    await (await sinkOf(s, withMarkers)).deliver(d2);
    expect((await readWithKcat(mock, s.topics)).map((r) => r.value)).toEqual(['"x"']);
    const admin = kafkaClient(mock).admin();
    await admin.connect();
    const [t] = await admin.fetchOffsets({
      groupId: `tidemark.${s.pipeline}.outputs.input-elsewhere`,
      topics: [markers],
    });
    await admin.disconnect();
    expect(t!.partitions.find((p) => p.partition === 2)).toMatchObject({
      offset: '5',
      metadata: 'tidemark:1:epoch=1',
    });
    await closeAll(s);
  });

  it('refuses, without retry, records for a partition or a topic that does not exist', async () => {
    const s = await setup([2]);
    const out = output<number>(s, s.topics[0]!, { partition: (v) => v });
    const sink = await sinkOf(s, out);
    const err = await rejection(sink.deliver(delivery(s, 1, 1n, [['o', out, 5]])));
    expect(err).toBeInstanceOf(KafkaOutputError);
    expect((err as KafkaOutputError).retriable).toBe(false);
    expect(err.message).toContain('partition 5');
    const missing = output(s, 'no-such-topic');
    const err2 = await rejection(sink.deliver(delivery(s, 1, 1n, [['m', missing, 1]])));
    expect((err2 as KafkaOutputError).retriable).toBe(false);
    expect(err2.message).toContain('does not exist');
    await closeAll(s);
  });

  it('refuses, before the epoch commits, outputs of one prefix with different cluster options', async () => {
    const s = await setup([1, 1]);
    const a = output(s, s.topics[0]!);
    const b = output(s, s.topics[1]!, { cluster: { ...s.cluster, transactionTimeoutMs: 30_000 } });
    const sink = await sinkOf(s, a);
    expect(() => sink.attach(delivery(s, 1, 1n, [['a', a, 1]]))).not.toThrow();
    expect(() =>
      sink.attach(
        delivery(s, 1, 1n, [
          ['a', a, 1],
          ['b', b, 2],
        ]),
      ),
    ).toThrow(ConfigurationError);
    await closeAll(s);
  });

  it('sends a large epoch in several requests, in emit order', async () => {
    const s = await setup([1], { maxRequestBytes: 2_048 });
    const out = output<string>(s, s.topics[0]!, { value: (v) => v });
    const requests: number[] = [];
    const sink = await sinkOf(s, out, {
      hooks: { step: (step, info) => void (step === 'request-sent' && requests.push(info.requests!)) },
    });
    const values = Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')}${'.'.repeat(400)}`);
    await sink.deliver(
      delivery(
        s,
        1,
        1n,
        values.map((v) => ['o', out, v] as [string, Output, unknown]),
      ),
    );
    expect(requests.length).toBeGreaterThan(1);
    expect((await readWithKcat(mock, s.topics)).map((r) => r.value)).toEqual(values);
    await closeAll(s);
  });
});
