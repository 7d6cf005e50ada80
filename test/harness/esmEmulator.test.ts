import { Kafka, logLevel, type Message } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  EsmEmulator,
  type EsmEmulatorOptions,
  type InvocationReport,
  type LambdaContainer,
} from '../../harness/esm/esmEmulator.ts';
import type { EsmFaults, InvocationFault } from '../../harness/esm/faults.ts';
import type { LambdaContext } from '../../harness/esm/lambdaContext.ts';
import { type KafkaMock, startKafkaMock } from '../../harness/kafka/kafkaMock.ts';
import { parseEvent } from '../../lib/event/parseEvent.ts';
import type { KafkaEvent, RawKafkaRecord } from '../../lib/event/types.ts';

let mock: KafkaMock;
let kafka: Kafka;
let topicSeq = 0;
const running: EsmEmulator[] = [];

// The first run builds the cluster (about 35 s on two idle cores, minutes on a busy machine).
beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 1 });
  kafka = new Kafka({ clientId: 'esm-test', brokers: [...mock.brokers], logLevel: logLevel.NOTHING });
}, 600_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

afterAll(async () => {
  await mock?.stop();
});

async function newTopic(partitions: number): Promise<string> {
  const topic = `t${++topicSeq}`;
  await mock.createTopic(topic, partitions);
  return topic;
}

async function produce(topic: string, messages: Message[]): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  await producer.send({ topic, messages, acks: -1 });
  await producer.disconnect();
}

async function groupOffsets(groupId: string, topic: string): Promise<Record<number, string>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return Object.fromEntries((t?.partitions ?? []).map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
}

interface Call {
  event: KafkaEvent;
  context: LambdaContext;
  containerId: number;
}

/** Starts an emulator whose containers run `fn` and record every call. */
async function emulate(
  topic: string,
  fn: (call: Call, n: number) => Promise<unknown> | unknown,
  options: Partial<EsmEmulatorOptions> = {},
): Promise<{ emulator: EsmEmulator; calls: Call[]; reports: InvocationReport[]; groupId: string }> {
  const calls: Call[] = [];
  const reports: InvocationReport[] = [];
  const groupId = `pipeline-${topic}`;
  const emulator = new EsmEmulator({
    brokers: mock.brokers,
    topics: [topic],
    groupId,
    batchingWindowMs: 100,
    retryBackoffMs: 10,
    createContainer: (id) => ({
      invoke: async (event, context) => {
        const call = { event, context, containerId: id };
        calls.push(call);
        return fn(call, calls.length);
      },
    }),
    onInvocation: (r) => reports.push(r),
    ...options,
  });
  running.push(emulator);
  await emulator.start();
  return { emulator, calls, reports, groupId };
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function offsetsOf(calls: Call[], key: string): number[] {
  return calls.flatMap((c) => (c.event.records[key] ?? []).map((r) => Number(r.offset)));
}

function recordCount(event: KafkaEvent): number {
  return Object.values(event.records).reduce((n, rs) => n + rs.length, 0);
}

describe('ESM emulator: event shape', () => {
  it('delivers MSK events: base64 key and value, nulls for null keys and tombstones, signed header bytes', async () => {
    const topic = await newTopic(1);
    await produce(topic, [
      {
        key: 'alice',
        value: '{"amount":5}',
        headers: { source: 'app-ë', raw: Buffer.from([0x00, 0x7f, 0x80, 0xff]) },
      },
      { key: 'alice', value: null },
      { key: null, value: 'no key' },
    ]);
    const { calls } = await emulate(topic, () => 'ok', { eventSource: 'aws:kafka' });
    await until(() => calls.length > 0 && recordCount(calls[0]!.event) === 3, 'the batch');
    const event = calls[0]!.event;
    expect(event.eventSource).toBe('aws:kafka');
    expect(event.eventSourceArn).toMatch(/^arn:aws:kafka:/);
    expect(event.bootstrapServers).toBe(mock.brokers.join(','));
    expect(Object.keys(event.records)).toEqual([`${topic}-0`]);
    const [first, tombstone, keyless] = event.records[`${topic}-0`] as [
      RawKafkaRecord,
      RawKafkaRecord,
      RawKafkaRecord,
    ];
    expect(first).toMatchObject({
      topic,
      partition: 0,
      offset: 0,
      timestampType: 'CREATE_TIME',
      key: Buffer.from('alice').toString('base64'),
      value: Buffer.from('{"amount":5}').toString('base64'),
      headers: [{ source: [97, 112, 112, 45, -61, -85] }, { raw: [0, 127, -128, -1] }],
    });
    expect(typeof first.timestamp).toBe('number');
    expect(tombstone).toMatchObject({ offset: 1, value: null });
    expect(keyless).toMatchObject({ offset: 2, key: null, value: Buffer.from('no key').toString('base64') });
    // Tidemark's own intake accepts it and decodes the header bytes back.
    const parsed = parseEvent(event);
    const decoded = parsed.tasks[0]!.records[0]!;
    expect('headers' in decoded && decoded.headers[1]?.[1]).toEqual(Buffer.from([0x00, 0x7f, 0x80, 0xff]));
  });

  it('gives a Lambda-like context counting down from the function timeout', async () => {
    const topic = await newTopic(1);
    await produce(topic, [{ key: 'k', value: 'v' }]);
    const seen: number[] = [];
    const { calls } = await emulate(
      topic,
      async ({ context }) => {
        seen.push(context.getRemainingTimeInMillis());
        await new Promise((r) => setTimeout(r, 20));
        seen.push(context.getRemainingTimeInMillis());
      },
      { functionTimeoutMs: 45_000, functionName: 'balances-fn' },
    );
    await until(() => seen.length === 2, 'the invocation');
    const ctx = calls[0]!.context;
    expect(ctx.functionName).toBe('balances-fn');
    expect(ctx.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen[0]).toBeLessThanOrEqual(45_000);
    expect(seen[1]).toBeLessThan(seen[0]!);
  });
});

describe('ESM emulator: batching', () => {
  it('cuts batches at BatchSize, mixes partitions in one payload and keeps each partition in order', async () => {
    const topic = await newTopic(3);
    await produce(
      topic,
      Array.from({ length: 300 }, (_, i) => ({ partition: i % 3, key: `k${i}`, value: String(i) })),
    );
    const { calls } = await emulate(topic, () => 'ok', { batchSize: 70, batchingWindowMs: 1_000 });
    await until(() => calls.reduce((n, c) => n + recordCount(c.event), 0) >= 300, 'all records');
    for (const c of calls) expect(recordCount(c.event)).toBeLessThanOrEqual(70);
    expect(calls.some((c) => Object.keys(c.event.records).length > 1)).toBe(true);
    for (let p = 0; p < 3; p++) {
      expect(offsetsOf(calls, `${topic}-${p}`)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    }
  });

  it('holds a small batch for the batching window and closes it early at BatchSize', async () => {
    const topic = await newTopic(1);
    await produce(
      topic,
      Array.from({ length: 5 }, (_, i) => ({ key: `a${i}`, value: 'x' })),
    );
    const { emulator, calls } = await emulate(topic, () => 'ok', {
      batchSize: 100,
      batchingWindowMs: 60_000,
    });
    // The first records are fetched and wait in the open window…
    await until(() => emulator.pending().buffered === 5, 'the first records');
    expect(calls).toHaveLength(0);
    await produce(
      topic,
      Array.from({ length: 95 }, (_, i) => ({ key: `b${i}`, value: 'y' })),
    );
    // …until BatchSize is reached: one invocation with all 100 records, long before the window ends.
    await until(() => calls.length === 1, 'the batch');
    expect(recordCount(calls[0]!.event)).toBe(100);
  });

  it('closes a batch when the payload would pass the byte limit, and delivers an oversized record alone', async () => {
    const topic = await newTopic(1);
    const big = 'x'.repeat(10_000);
    await produce(topic, [
      ...Array.from({ length: 12 }, (_, i) => ({ key: `k${i}`, value: big })),
      { key: 'huge', value: 'y'.repeat(80_000) },
      { key: 'after', value: 'z' },
    ]);
    const limit = 64 * 1024;
    const { emulator, calls } = await emulate(topic, () => 'ok', {
      batchSize: 1_000,
      maxPayloadBytes: limit,
      batchingWindowMs: 200,
    });
    await until(() => calls.reduce((n, c) => n + recordCount(c.event), 0) >= 14, 'all records');
    const sizes = calls.map((c) => Buffer.byteLength(JSON.stringify(c.event)));
    const huge = calls.findIndex((c) => c.event.records[`${topic}-0`]!.some((r) => r.offset === 12));
    expect(recordCount(calls[huge]!.event)).toBe(1);
    sizes.forEach((size, i) => {
      if (i !== huge) expect(size).toBeLessThanOrEqual(limit);
    });
    expect(calls.length).toBeGreaterThanOrEqual(4);
    expect(emulator.stats.oversizedRecords).toBe(1);
    expect(offsetsOf(calls, `${topic}-0`)).toEqual(Array.from({ length: 14 }, (_, i) => i));
  });

  it('never has two batches of one partition in flight, while other partitions run alongside', async () => {
    const topic = await newTopic(2);
    await produce(
      topic,
      Array.from({ length: 400 }, (_, i) => ({ partition: i % 2, key: `k${i}`, value: String(i) })),
    );
    const inFlight = new Map<string, number>();
    let overlapSamePartition = false;
    let sawOtherPartitionMeanwhile = false;
    let firstRunning = false;
    const { calls } = await emulate(
      topic,
      async ({ event }, n) => {
        const keys = Object.keys(event.records);
        for (const k of keys) {
          if ((inFlight.get(k) ?? 0) > 0) overlapSamePartition = true;
          inFlight.set(k, (inFlight.get(k) ?? 0) + 1);
        }
        if (n === 1) {
          // The first invocation waits (bounded) for another one to start meanwhile.
          firstRunning = true;
          for (let i = 0; i < 200 && !sawOtherPartitionMeanwhile; i++)
            await new Promise((r) => setTimeout(r, 25));
          firstRunning = false;
        } else {
          if (firstRunning) sawOtherPartitionMeanwhile = true;
          await new Promise((r) => setTimeout(r, 5));
        }
        for (const k of keys) inFlight.set(k, inFlight.get(k)! - 1);
      },
      { batchSize: 50, batchingWindowMs: 10, maxConcurrency: 4 },
    );
    await until(() => calls.reduce((n, c) => n + recordCount(c.event), 0) >= 400, 'all records');
    expect(overlapSamePartition).toBe(false);
    expect(sawOtherPartitionMeanwhile).toBe(true);
  });
});

describe('ESM emulator: offsets and retries', () => {
  it('commits offsets only after success, and retries a failed batch whole', async () => {
    const topic = await newTopic(1);
    await produce(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
    );
    const offsetsDuringRetry: Array<Record<number, string>> = [];
    const groupId = `pipeline-${topic}`;
    const { calls, reports } = await emulate(
      topic,
      async (_call, n) => {
        if (n <= 2) throw new Error(`transient failure ${n}`);
        offsetsDuringRetry.push(await groupOffsets(groupId, topic));
      },
      { batchSize: 100, batchingWindowMs: 300 },
    );
    await until(async () => (await groupOffsets(groupId, topic))[0] === '20', 'the commit');
    expect(reports.map((r) => [r.outcome, r.attempt])).toEqual([
      ['error', 1],
      ['error', 2],
      ['success', 3],
    ]);
    // Whole batch each time: the same 20 records.
    for (const c of calls)
      expect(offsetsOf([c], `${topic}-0`)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // Nothing was committed while the batch was failing.
    expect(offsetsDuringRetry).toEqual([{ 0: '-1' }]);
  });

  it('with ReportBatchItemFailures: commits up to the named offset, delivers only the named records again', async () => {
    const topic = await newTopic(2);
    await produce(topic, [
      ...Array.from({ length: 10 }, (_, i) => ({ key: `a${i}`, value: String(i), partition: 0 })),
      ...Array.from({ length: 10 }, (_, i) => ({ key: `b${i}`, value: String(i), partition: 1 })),
    ]);
    const groupId = `pipeline-${topic}`;
    const offsetsAfterPartial: Array<Record<number, string>> = [];
    const { calls, reports, emulator } = await emulate(
      topic,
      async ({ event }, n) => {
        if (n === 1) {
          expect(Object.keys(event.records).sort()).toEqual([`${topic}-0`, `${topic}-1`]);
          // Partition 1 failed from offset 6 on (two named, the lowest counts); partition 0 succeeded.
          return {
            batchItemFailures: [
              { itemIdentifier: { partition: `${topic}-1`, offset: 8 } },
              { itemIdentifier: { partition: `${topic}-1`, offset: 6 } },
            ],
          };
        }
        offsetsAfterPartial.push(await groupOffsets(groupId, topic));
        return { batchItemFailures: [] };
      },
      { batchSize: 100, batchingWindowMs: 300, reportBatchItemFailures: true },
    );
    await until(async () => (await groupOffsets(groupId, topic))[1] === '10', 'the retry to commit');
    expect(reports.map((r) => [r.outcome, r.attempt])).toEqual([
      ['success', 1],
      ['success', 2],
    ]);
    // The retry holds partition 1's records from the named offset only.
    expect(Object.keys(calls[1]!.event.records)).toEqual([`${topic}-1`]);
    expect(offsetsOf([calls[1]!], `${topic}-1`)).toEqual([6, 7, 8, 9]);
    expect(offsetsAfterPartial).toEqual([{ 0: '10', 1: '6' }]);
    expect(emulator.stats).toMatchObject({ partialResponses: 1, recordsRedelivered: 4, retries: 1 });
  });

  it('with ReportBatchItemFailures: an identifier naming no record of the event fails the whole batch', async () => {
    const topic = await newTopic(1);
    await produce(
      topic,
      Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
    );
    const groupId = `pipeline-${topic}`;
    const bad = [
      { batchItemFailures: [{ itemIdentifier: `${topic}-0-3` }] }, // a string, as for Kinesis
      { batchItemFailures: [{ itemIdentifier: { partition: `${topic}-0`, offset: 99 } }] },
      { batchItemFailures: [{ itemIdentifier: { partition: 'other-0', offset: 1 } }] },
    ];
    const { calls, reports, emulator } = await emulate(topic, (_call, n) => bad[n - 1] ?? null, {
      reportBatchItemFailures: true,
    });
    await until(async () => (await groupOffsets(groupId, topic))[0] === '5', 'the commit');
    expect(reports.map((r) => r.outcome)).toEqual(['error', 'error', 'error', 'success']);
    for (const c of calls) expect(offsetsOf([c], `${topic}-0`)).toEqual([0, 1, 2, 3, 4]);
    expect(emulator.stats).toMatchObject({
      invalidResponses: 3,
      partialResponses: 0,
      recordsRedelivered: 15,
    });
  });

  it('without ReportBatchItemFailures: a returned failure list is a success (the records are not delivered again)', async () => {
    const topic = await newTopic(1);
    await produce(
      topic,
      Array.from({ length: 3 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
    );
    const groupId = `pipeline-${topic}`;
    const { calls } = await emulate(topic, () => ({
      batchItemFailures: [{ itemIdentifier: { partition: `${topic}-0`, offset: 1 } }],
    }));
    await until(async () => (await groupOffsets(groupId, topic))[0] === '3', 'the commit');
    expect(calls).toHaveLength(1);
  });

  it('after maximumRetryAttempts hands the batch to onFailure and moves past it', async () => {
    const topic = await newTopic(1);
    await produce(topic, [{ key: 'poison', value: 'boom' }]);
    const failures: Array<{ attempts: number; offsets: string[] }> = [];
    const groupId = `pipeline-${topic}`;
    const { calls } = await emulate(
      topic,
      ({ event }) => {
        if (event.records[`${topic}-0`]!.some((r) => r.key === Buffer.from('poison').toString('base64')))
          throw new Error('cannot process');
      },
      {
        maximumRetryAttempts: 2,
        onFailure: (f) => {
          failures.push({
            attempts: f.attempts,
            offsets: f.parts.map((p) => `${p.firstOffset}-${p.lastOffset}`),
          });
        },
      },
    );
    await until(() => failures.length === 1, 'onFailure');
    expect(failures).toEqual([{ attempts: 3, offsets: ['0-0'] }]);
    await produce(topic, [{ key: 'fine', value: 'ok' }]);
    await until(async () => (await groupOffsets(groupId, topic))[0] === '2', 'the later record to commit');
    expect(calls).toHaveLength(4);
  });

  it('a timed-out invocation fails, its container is never reused, and the retry runs on a new one', async () => {
    const topic = await newTopic(1);
    await produce(topic, [{ key: 'k', value: 'v' }]);
    const killed: number[] = [];
    const reports: InvocationReport[] = [];
    let calls = 0;
    const emulator = new EsmEmulator({
      brokers: mock.brokers,
      topics: [topic],
      groupId: `pipeline-${topic}`,
      functionTimeoutMs: 300,
      retryBackoffMs: 10,
      batchingWindowMs: 50,
      createContainer: (id): LambdaContainer => ({
        invoke: () => (++calls === 1 ? new Promise(() => {}) : Promise.resolve('ok')),
        kill: () => killed.push(id),
      }),
      onInvocation: (r) => reports.push(r),
    });
    running.push(emulator);
    await emulator.start();
    await until(() => reports.some((r) => r.outcome === 'success'), 'the retry');
    expect(reports.map((r) => [r.outcome, r.containerId, r.coldStart])).toEqual([
      ['timeout', 1, true],
      ['success', 2, true],
    ]);
    expect(String((reports[0]!.error as Error).message)).toMatch(/Task timed out/);
    expect(killed).toEqual([1]);
  });
});

/** Faults from a script: one entry per invocation, then none. */
function scripted(faults: Array<InvocationFault | undefined>, rebatches: boolean[] = []): EsmFaults {
  return {
    forInvocation: () => faults.shift(),
    rebatch: () => rebatches.shift() ?? false,
  };
}

describe('ESM emulator: faults', () => {
  it('crash at a named point: the container dies there, the batch is retried on a new container', async () => {
    const topic = await newTopic(1);
    await produce(
      topic,
      Array.from({ length: 3 }, (_, i) => ({ key: `k${i}`, value: 'v' })),
    );
    const killed: number[] = [];
    const reports: InvocationReport[] = [];
    let afterPoint = 0;
    const emulator = new EsmEmulator({
      brokers: mock.brokers,
      topics: [topic],
      groupId: `pipeline-${topic}`,
      retryBackoffMs: 10,
      batchingWindowMs: 100,
      faults: scripted([{ kind: 'crash', point: 'before-commit', delayMs: 0 }]),
      createContainer: (id): LambdaContainer => {
        let armed: (() => void) | undefined;
        return {
          crashPoints: ['before-commit'],
          armCrash: () => new Promise<void>((fired) => (armed = fired)),
          disarm: () => {
            armed = undefined;
          },
          kill: () => killed.push(id),
          invoke: async () => {
            if (armed) {
              armed();
              return new Promise(() => {}); // the process died here
            }
            afterPoint++;
            return 'ok';
          },
        };
      },
      onInvocation: (r) => reports.push(r),
    });
    running.push(emulator);
    await emulator.start();
    await until(() => reports.some((r) => r.outcome === 'success'), 'the retry');
    expect(reports.map((r) => [r.outcome, r.containerId])).toEqual([
      ['crash', 1],
      ['success', 2],
    ]);
    expect(killed).toEqual([1]);
    expect(afterPoint).toBe(1);
    expect(emulator.stats.faults.crash).toBe(1);
  });

  it('duplicate delivery: a successful batch is delivered again before its offsets are committed', async () => {
    const topic = await newTopic(1);
    await produce(
      topic,
      Array.from({ length: 4 }, (_, i) => ({ key: `k${i}`, value: 'v' })),
    );
    const { calls, emulator, groupId } = await emulate(topic, () => 'ok', {
      faults: scripted([{ kind: 'duplicate', mode: 'redeliver' }]),
    });
    await until(async () => (await groupOffsets(groupId, topic))[0] === '4', 'the commit');
    expect(calls.map((c) => offsetsOf([c], `${topic}-0`))).toEqual([
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ]);
    expect(emulator.stats.faults.duplicate).toBe(1);
  });

  it('re-batched retry: a failed batch goes back and is cut again, in order, with later records', async () => {
    const topic = await newTopic(1);
    await produce(
      topic,
      Array.from({ length: 3 }, (_, i) => ({ key: `k${i}`, value: 'v' })),
    );
    let n = 0;
    const { calls, emulator } = await emulate(
      topic,
      async () => {
        if (++n === 1) {
          await produce(
            topic,
            Array.from({ length: 3 }, (_, i) => ({ key: `later${i}`, value: 'v' })),
          );
          // Let the later records reach the emulator before this invocation fails.
          await until(() => emulator.pending().buffered === 3, 'the later records to be fetched');
          throw new Error('fails once');
        }
      },
      { faults: scripted([], [true]), batchingWindowMs: 50 },
    );
    await until(() => offsetsOf(calls, `${topic}-0`).includes(5), 'the later records');
    expect(emulator.stats.faults.rebatch).toBe(1);
    expect(offsetsOf([calls[0]!], `${topic}-0`)).toEqual([0, 1, 2]);
    // The retry starts again at the failed batch's first record, and now carries the later ones too.
    expect(offsetsOf(calls.slice(1), `${topic}-0`)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(offsetsOf([calls[1]!], `${topic}-0`)).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
