/**
 * Smoke of the outputs benchmark (not a measurement): every scenario runs on tiny sizes against the
 * test run's servers and a local Kafka cluster; the request counts per task-epoch, which do not depend
 * on the machine's speed, are checked, and what each destination holds. No time is asserted.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  countingSocketFactory,
  OUTPUTS_PROFILES,
  type OutputScenarioId,
  type OutputsBenchResult,
  outputGoals,
  outputsSection,
  requestWriteUnits,
  runOutputsBench,
} from '../../bench/outputs.ts';

/** The Kafka mock may have to be built first (once, about a minute on two busy cores). */
const BUILD_TIMEOUT_MS = 600_000;

describe('bench: outputs (smoke)', () => {
  let r: OutputsBenchResult;
  const o = OUTPUTS_PROFILES.smoke;
  const of = (id: OutputScenarioId) => r.scenarios.find((s) => s.id === id)!;

  beforeAll(async () => {
    const env = Object.fromEntries(
      Object.entries(process.env).filter(
        (e): e is [string, string] => e[0].startsWith('AWS_') && e[1] !== undefined,
      ),
    );
    r = await runOutputsBench(o, {
      env,
      bucket: process.env.TIDEMARK_BUCKET!,
      table: process.env.TIDEMARK_TABLE!,
      runId: `s${Date.now().toString(36)}`,
    });
  }, BUILD_TIMEOUT_MS);

  it('runs every scenario over the same epochs, and each destination holds what a fold of the records says', () => {
    expect(r.scenarios.map((s) => s.id)).toEqual([
      'state',
      'kafka',
      'dynamodb-in-commit',
      'dynamodb-after-commit',
      's3',
    ]);
    for (const s of r.scenarios) {
      expect(s.taskEpochs, s.id).toBe(o.batches * o.partitions);
      expect(s.records, s.id).toBe(o.batches * o.batchRecords);
      expect(s.check.ok, `${s.id}: ${s.check.detail}`).toBe(true);
      expect(s.epochLatencyMs.samples, s.id).toBe(s.taskEpochs);
      expect(s.recordsPerSecond.median).toBeGreaterThan(0);
      if (s.id !== 'state') expect(s.outputsPerTaskEpoch).toBe(o.batchRecords / o.partitions);
    }
  });

  it('counts what each sink adds per task-epoch', () => {
    // State only: the commit's one write (small snapshots travel inside the commit item).
    expect(of('state').byCommand).toEqual({ 'DynamoDB PutItem': 1 });
    // Kafka: one transaction (records, marker, commit) per task-epoch, and the settle write.
    const kafka = of('kafka').byCommand;
    for (const api of ['AddOffsetsToTxn', 'TxnOffsetCommit', 'EndTxn'])
      expect(kafka[`Kafka ${api}`], api).toBe(1);
    // kafkajs adds partitions to the transaction, then produces, once per broker leading some of them.
    expect(kafka['Kafka Produce']).toBeGreaterThanOrEqual(1);
    expect(kafka['Kafka Produce']).toBeLessThanOrEqual(Math.min(r.kafkaBrokers, o.partitions));
    expect(kafka['Kafka AddPartitionsToTxn']).toBe(kafka['Kafka Produce']);
    expect(kafka['Kafka InitProducerId']).toBeUndefined(); // producers are kept: only at warm-up
    expect(of('kafka').warmUp['Kafka InitProducerId']).toBe(o.partitions);
    expect(kafka['DynamoDB PutItem']).toBe(2);
    // DynamoDB in the commit: the commit is the one TransactWriteItems that carries the outputs.
    expect(of('dynamodb-in-commit').byCommand).toEqual({ 'DynamoDB TransactWriteItems': 1 });
    // After the commit: the commit, then one transaction of the epoch's items and the fence.
    expect(of('dynamodb-after-commit').byCommand).toEqual({
      'DynamoDB PutItem': 1,
      'DynamoDB TransactWriteItems': 1,
    });
    // S3: a data object and its manifest.
    expect(of('s3').byCommand).toEqual({ 'DynamoDB PutItem': 1, 'S3 PutObject': 2 });
    expect(outputGoals(r).map((g) => g.met)).toEqual([true, true, true]);
    expect(outputsSection(r)).toContain('## 6. Outputs');
  });
});

describe('bench: outputs counting', () => {
  let server: net.Server;
  let port = 0;
  let received = 0;

  beforeAll(async () => {
    server = net.createServer((s) => s.on('data', (d) => (received += d.length)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** A Kafka request frame: size, API key, version, correlation id, then `body` bytes. */
  const frame = (api: number, body: number) => {
    const b = Buffer.alloc(4 + 8 + body);
    b.writeInt32BE(8 + body, 0);
    b.writeInt16BE(api, 4);
    b.writeInt16BE(3, 6);
    b.writeInt32BE(7, 8);
    return b;
  };

  it('counts Kafka requests by API from the bytes written, however the writes are cut', async () => {
    const counts = new Map<string, number>();
    const socket = await new Promise<net.Socket>((resolve) => {
      const s = countingSocketFactory(counts)({
        host: '127.0.0.1',
        port,
        ssl: null as never,
        onConnect: () => resolve(s),
      });
    });
    const bytes = Buffer.concat([frame(0, 100), frame(26, 0), frame(22, 3), frame(28, 40), frame(0, 5)]);
    // Split inside a header, inside a body, and two frames in one write.
    for (const [a, b] of [
      [0, 3],
      [3, 50],
      [50, 130],
      [130, bytes.length],
    ] as const) {
      socket.write(bytes.subarray(a, b));
    }
    await new Promise<void>((resolve) => socket.end(resolve));
    expect(Object.fromEntries(counts)).toEqual({
      Produce: 2,
      EndTxn: 1,
      InitProducerId: 1,
      TxnOffsetCommit: 1,
    });
  });

  it('computes write units as DynamoDB bills them: per started KB and item, twice in a transaction', () => {
    const big = { S: 'x'.repeat(1500) };
    expect(requestWriteUnits('PutItemCommand', { Item: { pk: { S: 'a' } } })).toBe(1);
    expect(requestWriteUnits('PutItemCommand', { Item: { pk: { S: 'a' }, v: big } })).toBe(2);
    expect(
      requestWriteUnits('TransactWriteItemsCommand', {
        TransactItems: [
          { Put: { Item: { pk: { S: 'a' }, v: big } } },
          { Put: { Item: { pk: { S: 'b' } } } },
          { Update: { Key: { pk: { S: 'c' } }, ExpressionAttributeValues: { ':e': { N: '1' } } } },
          { Delete: { Key: { pk: { S: 'd' } } } },
        ],
      }),
    ).toBe(2 * (2 + 1 + 1 + 1));
    expect(requestWriteUnits('GetItemCommand', {})).toBe(0);
  });
});
