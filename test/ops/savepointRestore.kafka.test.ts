/**
 * Savepoint → more processing → restore → re-consume, against the local Kafka cluster, DynamoDB
 * Local and the S3 server: the final state equals a fold of every record (the oracle of a run that
 * was never interrupted), with a warm handler created before the restore.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import type { TestRecord } from '../../harness/esm/mskEvent.ts';
import { type KafkaMock, startKafkaMock } from '../../harness/kafka/kafkaMock.ts';
import { foldBalances } from '../../harness/oracle.ts';
import { savepointPrefix } from '../../lib/checkpoint/layout.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { collectGarbage } from '../../lib/ops/gc.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createKafkaOps, type KafkaOps, kafkaClientConfig } from '../../lib/ops/kafka.ts';
import { createSavepoint, restoreSavepoint } from '../../lib/ops/savepoints.ts';
import { pipelineStatus } from '../../lib/ops/status.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { createAwsStores, createSavepointStore } from '../../lib/store/stores.ts';
import { drainWithEsm, testKafka } from './kafkaDriver.ts';

const TOPIC = 'orders';
const PARTITIONS = 3;

let mock: KafkaMock;
let kafka: Kafka;
let ops: KafkaOps;
const s3 = createS3Client();
const ddb = createDynamoDBClient();
const table = process.env.TIDEMARK_TABLE!;
const stores = {
  ...createAwsStores({ bucket: process.env.TIDEMARK_BUCKET!, table, s3, dynamodb: ddb }),
  savepoints: createSavepointStore({ table, dynamodb: ddb }),
};

beforeAll(async () => {
  mock = await startKafkaMock({ topics: { [TOPIC]: PARTITIONS } });
  kafka = testKafka(mock.brokers);
  ops = createKafkaOps(kafkaClientConfig({ brokers: mock.brokers }));
});

afterAll(async () => {
  await ops?.close();
  await mock?.stop();
  s3.destroy();
  ddb.destroy();
});

/** Produces deposits round-robin over the partitions; returns them with their offsets. */
async function produce(sent: TestRecord[], count: number, seed: number): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  const next = new Map<number, number>();
  for (const r of sent) next.set(r.partition!, Math.max(next.get(r.partition!) ?? 0, Number(r.offset) + 1));
  const batch: TestRecord[] = [];
  for (let i = 0; i < count; i++) {
    const partition = i % PARTITIONS;
    const offset = next.get(partition) ?? 0;
    next.set(partition, offset + 1);
    batch.push({
      topic: TOPIC,
      partition,
      offset,
      key: `acct-${(i * 7 + seed) % 5}`,
      value: { amount: ((i * 13 + seed) % 50) - 10 },
    });
  }
  await producer.send({
    topic: TOPIC,
    messages: batch.map((r) => ({
      partition: r.partition!,
      key: String(r.key),
      value: JSON.stringify(r.value),
    })),
  });
  await producer.disconnect();
  sent.push(...batch);
}

async function states(pipeline: string) {
  const out: Record<number, unknown> = {};
  for (let p = 0; p < PARTITIONS; p++) {
    out[p] = (await inspectTask(stores, { pipeline, topic: TOPIC, partition: p })).state.account ?? {};
  }
  return out;
}

function oracle(sent: TestRecord[]) {
  const out: Record<number, unknown> = {};
  for (let p = 0; p < PARTITIONS; p++) {
    out[p] = Object.fromEntries(foldBalances(sent.filter((r) => r.partition === p)));
  }
  return out;
}

describe('savepoint restore against a Kafka cluster', () => {
  it('savepoint → more processing → restore → re-consume: the state of a never-interrupted run', async () => {
    const pipeline = `sp-${randomUUID().slice(0, 8)}`;
    const restored: string[] = [];
    const handler = createKafkaHandler(balances, {
      env: { ...process.env, TIDEMARK_PIPELINE: pipeline },
      telemetry: false,
      observer: { taskRestored: (i) => restored.push(`${i.reason} ${i.task.partition}`) },
    });
    // One warm handler (one Lambda container) for the whole test, created before the restore.
    const consume = () =>
      drainWithEsm(kafka, mock.brokers, pipeline, TOPIC, (event, context) => handler(event, context));
    const sent: TestRecord[] = [];
    await produce(sent, 30, 1);
    await consume();
    const atSavepoint = oracle(sent);
    expect(await states(pipeline)).toEqual(atSavepoint);

    const layout = { [TOPIC]: (await ops.partitions(TOPIC)).length };
    const meta = await createSavepoint(stores, { prefix: 'tidemark', pipeline, name: 'before', layout });
    expect(meta).toMatchObject({ status: 'complete', tasks: PARTITIONS, layoutSource: 'kafka' });

    // More processing after the savepoint: the "bad deploy" we go back before.
    await produce(sent, 45, 2);
    await consume();
    expect(await states(pipeline)).toEqual(oracle(sent));

    // The savepoint's objects survive a pipeline GC that deletes everything unreferenced.
    await collectGarbage(stores, { prefix: 'tidemark', pipeline, minAgeMs: 0 });
    const sp = (await stores.savepoints.read(pipeline, 'before'))!;
    const held: string[] = [];
    for await (const o of stores.snapshots.list(savepointPrefix('tidemark', pipeline, 'before')))
      held.push(o.key);
    expect(held.sort()).toEqual(sp.tasks.flatMap((t) => t.chain.map((r) => r.key)).sort());

    // Refused while the group has an active member (an ESM poller that was not disabled).
    const poller = kafka.consumer({
      groupId: pipeline,
      sessionTimeout: 6_000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 100,
    });
    await poller.connect();
    const joined = new Promise((r) => poller.on(poller.events.GROUP_JOIN, r));
    await poller.subscribe({ topic: TOPIC });
    await poller.run({ autoCommit: false, eachBatch: async () => {} });
    await joined;
    const before = await states(pipeline);
    await expect(
      restoreSavepoint(stores, ops, { prefix: 'tidemark', pipeline, name: 'before', group: pipeline }),
    ).rejects.toThrow(/consumer group .* has active members: \S+.*nothing was changed/);
    await poller.disconnect();
    expect(await states(pipeline)).toEqual(before);

    const r = await restoreSavepoint(stores, ops, {
      prefix: 'tidemark',
      pipeline,
      name: 'before',
      group: pipeline,
    });
    const spOffsets = sp.tasks.map((t) => t.committedOffset!.toString());
    expect(r.tasks.map((t) => t.offset)).toEqual(spOffsets);
    expect((await ops.groupOffsets(pipeline, [TOPIC])).map((g) => g.offset?.toString())).toEqual(spOffsets);
    expect(await states(pipeline)).toEqual(atSavepoint);

    // Re-consume from the rewound group with the same (warm) handler: it re-validates its stale
    // copy, reloads the restored checkpoint, and applies the records after the savepoint again.
    restored.length = 0;
    await consume();
    expect(await states(pipeline)).toEqual(oracle(sent));
    // The container stayed warm: each task re-validated its copy and reloaded the restored checkpoint.
    expect(restored.sort()).toEqual(['conflict 0', 'conflict 1', 'conflict 2']);
    const st = await pipelineStatus(stores, { pipeline, kafka: ops });
    expect(st.tasks.map((t) => t.kafka?.lag)).toEqual(['0', '0', '0']);
    expect(st.tasks.map((t) => t.committedOffset)).toEqual(st.tasks.map((t) => t.kafka?.end));
  });
});
