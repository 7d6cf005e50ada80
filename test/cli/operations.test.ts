import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { type KafkaMock, startKafkaMock } from '../../harness/kafka/kafkaMock.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { tidemark } from '../helpers/cli.ts';
import { drain, testKafka } from '../ops/kafkaDriver.ts';

let mock: KafkaMock;
let kafka: Kafka;
let dir: string;

beforeAll(async () => {
  mock = await startKafkaMock({ topics: { orders: 2 } });
  kafka = testKafka(mock.brokers);
  dir = mkdtempSync(path.join(tmpdir(), 'tidemark-cli-'));
});

afterAll(async () => {
  await mock?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function produce(from: number, count: number) {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic: 'orders',
    messages: Array.from({ length: count }, (_, i) => ({
      partition: (from + i) % 2,
      key: `acct-${(from + i) % 3}`,
      value: JSON.stringify({ amount: from + i }),
    })),
  });
  await producer.disconnect();
}

describe('npx tidemark operator commands', () => {
  // A dozen CLI processes one after the other (each a cold Node start): minutes on a busy machine.
  it('status, savepoint create/list/restore/delete, export and bootstrap', { timeout: 300_000 }, async () => {
    const pipeline = `cli-${randomUUID().slice(0, 8)}`;
    const brokers = mock.brokers.join(',');
    const handler = createKafkaHandler(balances, {
      env: { ...process.env, TIDEMARK_PIPELINE: pipeline },
      telemetry: false,
    });
    const invoke = (event: unknown) => handler(event, lambdaContext());
    await produce(0, 10);
    await drain(kafka, pipeline, 'orders', invoke);

    const status = await tidemark(['status', '--pipeline', pipeline, '--brokers', brokers, '--json']);
    expect(status.code).toBe(0);
    const st = JSON.parse(status.stdout);
    expect(st.group).toMatchObject({ id: pipeline, members: [] });
    expect(
      st.tasks.map((t: { committedOffset: string; kafka: { lag: string } }) => [
        t.committedOffset,
        t.kafka.lag,
      ]),
    ).toEqual([
      ['5', '0'],
      ['5', '0'],
    ]);
    const human = await tidemark(['status', '--pipeline', pipeline]);
    expect(human.stdout).toMatch(/task\s+epoch\s+offset\s+snapshot bytes\s+last commit\s+quarantined\n/);
    expect(human.stdout).toMatch(/orders-1\s+1\s+5\s+\d+/);

    const created = await tidemark([
      'savepoint',
      'create',
      '--pipeline',
      pipeline,
      '--name',
      's1',
      '--brokers',
      brokers,
    ]);
    expect(created).toMatchObject({ code: 0 });
    expect(created.stdout).toMatch(
      /savepoint s1 of cli-\w+: 2 task\(s\) of orders \(2 partitions\), \d+ bytes, layout from kafka/,
    );
    const again = await tidemark(['savepoint', 'create', '--pipeline', pipeline, '--name', 's1']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/savepoint s1 already exists/);
    const list = await tidemark(['savepoint', 'list', '--pipeline', pipeline, '--json']);
    expect(JSON.parse(list.stdout)).toMatchObject([
      { name: 's1', status: 'complete', tasks: 2, topics: { orders: 2 } },
    ]);

    await produce(10, 6);
    await drain(kafka, pipeline, 'orders', invoke);
    const exportFile = path.join(dir, 'state.jsonl');
    const exported = await tidemark(['export', '--pipeline', pipeline, '--output', exportFile]);
    expect(exported.code).toBe(0);
    expect(exported.stderr).toMatch(/exported 2 task\(s\), \d+ entries/);

    const noBrokers = await tidemark(['savepoint', 'restore', '--pipeline', pipeline, '--name', 's1'], {
      TIDEMARK_KAFKA_BROKERS: '',
    });
    expect(noBrokers.code).toBe(2);
    expect(noBrokers.stderr).toMatch(/needs --brokers/);
    const dry = await tidemark([
      'savepoint',
      'restore',
      '--pipeline',
      pipeline,
      '--name',
      's1',
      '--brokers',
      brokers,
      '--dry-run',
    ]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/orders-0\s+savepoint epoch 1\s+8 → 5\s+2 → 3/);
    expect(dry.stdout).toMatch(/dry run: nothing was changed/);
    const restored = await tidemark([
      'savepoint',
      'restore',
      '--pipeline',
      pipeline,
      '--name',
      's1',
      '--brokers',
      brokers,
    ]);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(
      /restored savepoint s1: consumer group cli-\w+ rewound; enable the event source mapping again/,
    );
    const after = JSON.parse(
      (await tidemark(['status', '--pipeline', pipeline, '--brokers', brokers, '--json'])).stdout,
    );
    expect(
      after.tasks.map((t: { committedOffset: string; kafka: { groupOffset: string; lag: string } }) => [
        t.committedOffset,
        t.kafka.groupOffset,
        t.kafka.lag,
      ]),
    ).toEqual([
      ['5', '5', '3'],
      ['5', '5', '3'],
    ]);

    // The export taken before the restore seeds a new pipeline with that state.
    const target = `${pipeline}-copy`;
    const boot = await tidemark(['bootstrap', '--input', exportFile, '--pipeline', target]);
    expect(boot.code).toBe(0);
    expect(boot.stdout).toMatch(/created orders-0: epoch 1, offset 8, \d+ entries/);
    expect(boot.stdout).toMatch(/bootstrapped 2 task\(s\) of pipeline cli-\w+-copy/);
    const twice = await tidemark(['bootstrap', '--input', exportFile, '--pipeline', target]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/already has checkpoints for orders-0 \(epoch 1, offset 8\)/);
    const copy = await tidemark(['export', '--pipeline', target]);
    const entries = (text: string) => text.split('\n').filter((l) => l.includes('"type":"entry"'));
    expect(entries(copy.stdout)).toEqual(entries(readFileSync(exportFile, 'utf8')));
    expect(entries(copy.stdout).length).toBeGreaterThan(0);

    const deleted = await tidemark(['savepoint', 'delete', '--pipeline', pipeline, '--name', 's1']);
    expect(deleted.stdout).toMatch(/deleted savepoint s1 of cli-\w+ \(\d+ object\(s\)\)/);
    expect(
      JSON.parse((await tidemark(['savepoint', 'list', '--pipeline', pipeline, '--json'])).stdout),
    ).toEqual([]);
  });
});
