import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { CommitLedger } from '../../harness/campaign/commits.ts';
import { emptyVerdict, expectedOutputs } from '../../harness/campaign/outputCheck.ts';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { expectedTasks, judgeOverdrawn, overdrawnWrites } from '../../harness/jobOutputs.ts';
import { ensureKafkaMock } from '../../harness/kafka/build.ts';
import { buildCommand } from '../../harness/main.ts';
import { type MainJobResult, parseFaults, runMainJob } from '../../harness/mainJob.ts';
import { BalancesOracle, effectOf, TaskFold } from '../../harness/oracle.ts';
import { verifyTask } from '../../harness/verify.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { createAwsStores } from '../../lib/store/stores.ts';

const localEnv = inject('localEnv');
const aws = { env: localEnv, bucket: localEnv.TIDEMARK_BUCKET!, table: localEnv.TIDEMARK_TABLE! };

/** Both outputs verified against the fold: nothing lost, doubled or from an attempt that did not commit. */
function expectOutputsExactlyOnce(result: MainJobResult): void {
  const { kafka, dynamodb, problems } = result.summary.outputs;
  expect(problems).toEqual([]);
  for (const v of [kafka.verdict, dynamodb.verdict]) {
    expect(v).toMatchObject({ lost: 0, duplicated: 0, uncommitted: 0, unexpected: 0, unplaced: 0 });
  }
  // Every applied record's update is in the topic once; the table holds the overdrawn accounts.
  expect(kafka.verdict.expected).toBe(result.summary.applied);
  expect(kafka.verdict.seen).toBe(result.summary.applied);
  expect(dynamodb.verdict.expected).toBeGreaterThan(0);
  expect(dynamodb.verdict.seen).toBe(dynamodb.verdict.expected);
  expect(dynamodb.writes).toBeGreaterThan(dynamodb.verdict.expected);
}

describe('the main job', () => {
  // The first run builds the Kafka cluster: in a hook with room for it, not in the test's time.
  beforeAll(() => ensureKafkaMock(), 600_000);

  it('runs Kafka → ESM emulator → Tidemark → S3/DynamoDB with faults, and verifies every task', {
    timeout: 120_000,
  }, async () => {
    const pipeline = `balances-${randomUUID().slice(0, 8)}`;
    const stages: string[] = [];
    const result = await runMainJob({
      records: 4_000,
      partitions: 3,
      seed: 7,
      faults: { crash: 0.15, timeout: 0.1, duplicate: 0.15, rebatch: 0.5, store: 0.15, broker: 0.3 },
      aws,
      pipeline,
      batchSize: 150,
      batchingWindowMs: 100,
      onStage: (stage, note) => stages.push(note ? `${stage}: ${note}` : stage),
    });
    try {
      expect(result.verdicts.filter((v) => !v.ok)).toEqual([]);
      expect(result.verified).toBe(true);
      expect(result.verdicts.map((v) => v.partition)).toEqual([0, 1, 2]);
      const s = result.summary;
      expect(s.records).toBe(4_000);
      expect(s.applied + s.quarantined).toBe(4_000);
      expect(s.quarantined).toBeGreaterThan(0);
      expect(Object.values(s.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(s.esm.invocations).toBeGreaterThan(4_000 / 150);
      expect(s.checkpointMs.count).toBeGreaterThan(0);
      expect(stages.some((line) => /^init: bucket \S+: (created|exists)/.test(line))).toBe(true);
      expect(s.commitStore).toBe('dynamodb');
      expect(stages).toContain(`topic: table ${pipeline}-overdrawn (output): created`);
      expectOutputsExactlyOnce(result);
      // The consumer group is named after the pipeline, and its offsets cover every record.
      const kafka = new Kafka({
        clientId: 't',
        brokers: [...result.servers.kafkaBrokers],
        logLevel: logLevel.NOTHING,
      });
      const admin = kafka.admin();
      await admin.connect();
      const [offsets] = await admin.fetchOffsets({ groupId: pipeline, topics: [s.topic] });
      await admin.disconnect();
      const byPartition = Object.fromEntries(offsets!.partitions.map((p) => [p.partition, p.offset]));
      for (const v of result.verdicts) expect(byPartition[v.partition]).toBe(v.committedOffset);
    } finally {
      await result.servers.stop();
    }
  });

  it('commits to PostgreSQL with --commit-store postgres, and verifies state and outputs through it', {
    timeout: 120_000,
  }, async () => {
    const pipeline = `balances-${randomUUID().slice(0, 8)}`;
    const url = localEnv.TIDEMARK_TEST_POSTGRES_URL!;
    const result = await runMainJob({
      records: 1_000,
      partitions: 2,
      seed: 11,
      faults: { crash: 0.1, timeout: 0.05, duplicate: 0.1, rebatch: 0.5, store: 0.1, broker: 0 },
      aws,
      pipeline,
      commitStore: 'postgres',
      dbUrl: url,
      batchSize: 150,
      batchingWindowMs: 100,
    });
    try {
      expect(result.verdicts.filter((v) => !v.ok)).toEqual([]);
      expect(result.verified).toBe(true);
      expect(result.summary.commitStore).toBe('postgres');
      expect(result.servers.awsEnv).toMatchObject({
        TIDEMARK_COMMIT_STORE: 'postgres',
        TIDEMARK_DB_URL: url,
      });
      expectOutputsExactlyOnce(result);
      // The commits are PostgreSQL rows, and what the job verified is what they say.
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query<{
          kafka_partition: number;
          epoch: string;
          committed_offset: string;
        }>(
          'SELECT kafka_partition, epoch, committed_offset FROM tidemark_commits WHERE pipeline = $1 ORDER BY kafka_partition',
          [pipeline],
        );
        expect(rows.map((r) => [r.kafka_partition, Number(r.epoch), String(r.committed_offset)])).toEqual(
          result.verdicts.map((v) => [v.partition, v.epoch, v.committedOffset]),
        );
      } finally {
        await client.end();
      }
    } finally {
      await result.servers.stop();
    }
  });
});

describe('verification', () => {
  const records: TestRecord[] = [
    { topic: 'transactions', partition: 0, offset: 0, key: 'alice', value: { amount: 5 } },
    { topic: 'transactions', partition: 0, offset: 1, key: 'bob', value: { amount: 7 } },
    { topic: 'transactions', partition: 0, offset: 2, key: null, value: { amount: 1 } },
    { topic: 'transactions', partition: 0, offset: 3, key: 'bob', value: null },
    { topic: 'transactions', partition: 0, offset: 4, key: 'alice', value: { amount: -2 } },
  ];
  const bytes = (v: TestRecord['value']) =>
    v === null || v === undefined ? null : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

  async function committedTask(pipeline: string) {
    const handler = createKafkaHandler(balances, {
      env: { ...process.env, TIDEMARK_PIPELINE: pipeline },
      telemetry: false,
    });
    await handler(mskEvent(records), lambdaContext());
    const stores = createAwsStores({
      bucket: aws.bucket,
      table: aws.table,
      s3: createS3Client(localEnv),
      dynamodb: createDynamoDBClient(localEnv),
    });
    return stores;
  }

  it('accepts a task whose checkpoint equals the fold, and reports every difference otherwise', async () => {
    const pipeline = `verify-${randomUUID().slice(0, 8)}`;
    const stores = await committedTask(pipeline);
    const where = { pipeline, topic: 'transactions', prefix: 'tidemark' };

    const right = new BalancesOracle();
    for (const r of records)
      right.observe(0, BigInt(r.offset), r.key ? Buffer.from(r.key) : null, bytes(r.value));
    expect(right.expected(0).balances).toEqual(new Map([['alice', { balance: 3, count: 2 }]]));
    expect(await verifyTask(stores, where, right.expected(0))).toMatchObject({
      ok: true,
      problems: [],
      committedOffset: '5',
      applied: 4,
      quarantined: 1,
    });

    const wrong = new BalancesOracle();
    for (const r of records)
      wrong.observe(0, BigInt(r.offset), r.key ? Buffer.from(r.key) : null, bytes(r.value));
    wrong.observe(0, 5n, Buffer.from('carol'), Buffer.from('{"amount":1}'));
    const verdict = await verifyTask(stores, where, wrong.expected(0));
    expect(verdict.ok).toBe(false);
    expect(verdict.problems).toEqual([
      'committed offset 5, expected 6',
      'applied 4 records, expected 5',
      'account carol: undefined, expected {"balance":1,"count":1}',
    ]);
  });
});

describe('the overdrawn accounts table check', () => {
  // Partition 0: a goes below zero at 0, b at 1 and back at 2, a closes at 3 and comes back below at 4.
  const fold = new TaskFold();
  const feed: Array<[string, number | null]> = [
    ['a', -5],
    ['b', -1],
    ['b', 4],
    ['a', null],
    ['a', -2],
  ];
  feed.forEach(([account, amount], i) => {
    fold.observe(
      BigInt(i),
      effectOf(Buffer.from(account), amount === null ? null : Buffer.from(JSON.stringify({ amount }))),
    );
  });
  const expected = expectedTasks('p', 't', new Map([[0, expectedOutputs(fold.applications)]]));
  const ledger = new CommitLedger();
  ledger.noteAttempt('x1', 'inv-1');
  ledger.noteAttempt('x2', 'inv-2');
  const record = (epoch: number, committedOffset: bigint, attempt: string) =>
    ({ pipeline: 'p', topic: 't', partition: 0, epoch, committedOffset, attempt, history: [] }) as never;
  ledger.noteRecord(record(1, 3n, 'x1'));
  ledger.noteRecord(record(2, 5n, 'x2'));
  const good = { account: 'a', offset: '4', balance: -2, count: 1, inv: 'inv-2', tidemarkEpoch: 2 };
  const judge = (...items: Array<Record<string, unknown>>) =>
    judgeOverdrawn(new Map(items.map((i) => [String(i.account), i])), expected, ledger);

  it('accepts the last update of each overdrawn account, written by the committed attempt', () => {
    expect(overdrawnWrites(expected)).toBe(5);
    expect(judge(good)).toEqual({ ...emptyVerdict('dynamodb'), expected: 1, seen: 1 });
  });

  it('counts a missing or older item as lost, a leftover as duplicated, another attempt’s as uncommitted', () => {
    expect(judge()).toMatchObject({ lost: 1, seen: 0 });
    expect(judge({ ...good, offset: '0', balance: -5 })).toMatchObject({ lost: 1 });
    expect(judge(good, { account: 'b', offset: '1', balance: -1, count: 1 })).toMatchObject({
      duplicated: 1,
    });
    expect(judge({ ...good, inv: 'inv-1' })).toMatchObject({ uncommitted: 1 });
    expect(judge({ ...good, tidemarkEpoch: 1 })).toMatchObject({ uncommitted: 1 });
    expect(judge({ ...good, balance: -3 })).toMatchObject({ unexpected: 1 });
    expect(judge(good, { account: 'zed', offset: '9', balance: -1, count: 1 })).toMatchObject({
      unexpected: 1,
    });
  });
});

describe('the independent fold', () => {
  it('classifies poison records, tombstones and deposits from the contract alone', () => {
    const o = new BalancesOracle();
    const feed: Array<[string | Buffer | null, string | null]> = [
      ['acct-1', '{"amount":10}'],
      ['acct-1', '{"amount":-3}'],
      [null, '{"amount":1}'], // no key
      [Buffer.from([0x61, 0xff]), '{"amount":1}'], // key not UTF-8
      ['acct-1', 'amount=1'], // not JSON
      ['acct-1', '[1]'], // not an object
      ['acct-1', '{"amount":1.5}'],
      ['acct-1', '{"amount":"1"}'],
      ['acct-1', '{"amount":1152921504606846977}'], // beyond 2^53
      ['acct-2', '{"amount":9007199254740991}'],
      ['acct-2', '{"amount":1}'], // the balance would leave the safe integer range
      ['acct-3', '{"amount":4}'],
      ['acct-3', null], // closes the account
    ];
    feed.forEach(([k, v], i) => {
      o.observe(
        0,
        BigInt(100 + i),
        typeof k === 'string' ? Buffer.from(k) : k,
        v === null ? null : Buffer.from(v),
      );
    });
    const t = o.expected(0);
    expect(t.balances).toEqual(
      new Map([
        ['acct-1', { balance: 7, count: 2 }],
        ['acct-2', { balance: 9007199254740991, count: 1 }],
      ]),
    );
    expect(t.poisonOffsets).toEqual(['102', '103', '104', '105', '106', '107', '108', '110']);
    expect(t).toMatchObject({ records: 13, applied: 5, endOffset: '113' });
    expect(() => o.observe(0, 50n, null, null)).toThrow(RangeError);
  });
});

describe('--faults', () => {
  it('parses on, off and per-kind rates on top of the defaults', () => {
    expect(parseFaults('off')).toEqual({
      crash: 0,
      timeout: 0,
      duplicate: 0,
      rebatch: 0,
      store: 0,
      broker: 0,
    });
    const on = parseFaults('on');
    expect(Object.values(on).every((r) => r > 0 && r <= 1)).toBe(true);
    expect(parseFaults('crash=0.5,broker=0')).toEqual({ ...on, crash: 0.5, broker: 0 });
    expect(() => parseFaults('crash=2')).toThrow(/above 1/);
    expect(() => parseFaults('meteor=0.1')).toThrow(/bad fault setting/);
  });
});

describe('npm start flags', () => {
  const parse = (...args: string[]) => {
    const cmd = buildCommand()
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    cmd.parse(['node', 'main.ts', ...args]);
    return cmd.opts();
  };

  it('has the documented defaults', () => {
    expect(parse()).toMatchObject({ records: 200_000, partitions: 8, seed: 42, batchSize: 1000 });
    expect(parse().faults).toEqual(parseFaults('on'));
    expect(parse().brokers).toBeUndefined();
    expect(parse().keep).toBeUndefined();
    expect(parse().partialBatchResponse).toBe(true);
    expect(parse().commitStore).toBe('dynamodb');
  });

  it('parses every flag', () => {
    expect(
      parse(
        '--records',
        '5_000',
        '--partitions',
        '3',
        '--faults',
        'off',
        '--seed',
        '9',
        '--brokers',
        'b1:9092, b2:9093',
        '--keep',
        '--batch-size',
        '10',
        '--json',
        '--log',
        'x.log',
        '--partial-batch-response',
        'off',
        '--commit-store',
        'postgres',
      ),
    ).toEqual({
      records: 5_000,
      partitions: 3,
      faults: parseFaults('off'),
      seed: 9,
      brokers: ['b1:9092', 'b2:9093'],
      keep: true,
      batchSize: 10,
      json: true,
      log: 'x.log',
      partialBatchResponse: false,
      commitStore: 'postgres',
    });
    for (const store of ['mysql', 'redis', 'dynamodb']) {
      expect(parse('--commit-store', store).commitStore).toBe(store);
    }
  });

  it('refuses bad values', () => {
    expect(() => parse('--records', '0')).toThrow(/integer from 1/);
    expect(() => parse('--brokers', 'nohost')).toThrow(/host:port/);
    expect(() => parse('--faults', 'crash=7')).toThrow(/above 1/);
    expect(() => parse('--batch-size', '10001')).toThrow(/integer from 1 to 10000/);
    expect(() => parse('--partial-batch-response', 'maybe')).toThrow(/on or off/);
    expect(() => parse('--commit-store', 'sqlite')).toThrow(/postgres/);
  });
});
