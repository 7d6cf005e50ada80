/**
 * Outputs: what exactly-once outputs cost next to state alone. The same balances stream runs, side by
 * side in one run, through five scenarios on the local servers: state only (the balances example),
 * and state plus one output per record (the account's new total) delivered to
 *   - Kafka (the local Kafka cluster, 3 brokers: one transaction per task-epoch, marker, settle),
 *   - DynamoDB in the commit (the epoch's merged writes join the commit's TransactWriteItems),
 *   - DynamoDB after the commit (`inCommit: false`: chunk transactions with the task's fence),
 *   - S3 (a JSON lines object and a manifest per task-epoch).
 *
 * Every request is counted: S3 and DynamoDB by an SDK middleware (`countRequests`), Kafka by a
 * counting socket under kafkajs (each request frame's API key, from the bytes written). Write units are
 * computed from each write's items by DynamoDB's size rules (2 per KB and item in a transaction),
 * since DynamoDB Local's ConsumedCapacity undercounts multi-action transactions. Per scenario and
 * repeat: one warm-up invocation (connections, producers, first restores: reported apart), then
 * `batches` measured invocations. Epoch latency is from an epoch's first record to its outputs being
 * delivered (to its commit when nothing is left to deliver after it).
 *
 * The stream: `accounts` accounts (few, so an epoch's DynamoDB writes, one per item, fit the commit's
 * transaction: at most 99) over `partitions` partitions; each invocation gives each task one epoch.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import {
  type AttributeValue,
  CreateTableCommand,
  type DynamoDBClient,
  paginateScan,
} from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { type ISocketFactory, Kafka, logLevel } from 'kafkajs';
import { type Account, addToBalance, balances, depositAmount } from '../examples/balances.ts';
import { startKafkaMock } from '../harness/kafka/kafkaMock.ts';
import { KAFKA_API } from '../harness/kafka/protocol.ts';
import type { BatchSummary } from '../lib/checkpoint/epochEngine.ts';
import type { EngineObserver } from '../lib/checkpoint/observer.ts';
import { defineProcessor, type Processor } from '../lib/checkpoint/processor.ts';
import { PoisonRecordError } from '../lib/errors.ts';
import { createKafkaHandler, type KafkaHandler } from '../lib/handler/createKafkaHandler.ts';
import type { SinkProvider } from '../lib/output/router.ts';
import type { OutputDescriptor, OutputDescriptors } from '../lib/output/types.ts';
import { DynamoOutputSink } from '../lib/sink/dynamodb/DynamoOutputSink.ts';
import { dynamoOutput } from '../lib/sink/dynamodb/dynamoOutput.ts';
import { KafkaOutputSink } from '../lib/sink/kafka/KafkaOutputSink.ts';
import { kafkaOutput, type ResolvedKafkaOutputOptions } from '../lib/sink/kafka/kafkaOutput.ts';
import { markerSlotOf } from '../lib/sink/kafka/marker.ts';
import { readS3Outputs } from '../lib/sink/s3/reader.ts';
import { S3OutputSink } from '../lib/sink/s3/S3OutputSink.ts';
import { s3Output } from '../lib/sink/s3/s3Output.ts';
import type { StateDescriptors } from '../lib/state/descriptors.ts';
import { valueState } from '../lib/state/descriptors.ts';
import { createDynamoDBClient, createS3Client } from '../lib/store/clients.ts';
import { countRequests, type RequestCounts } from '../lib/store/requestCounter.ts';
import type { GoalCheck } from './goals.ts';
import { fmt, fmtSpread } from './goals.ts';
import { itemSize, writeUnits } from './itemSize.ts';
import type { RequestsTarget } from './requests.ts';
import { type Spread, spread, timed } from './stats.ts';
import { BalancesWorkload } from './workload.ts';

export interface OutputsBenchOptions {
  partitions: number;
  /** Records per invocation (ESM batch): each task gets `batchRecords / partitions` (one epoch). */
  batchRecords: number;
  /** Measured invocations per scenario and repeat (after one warm-up invocation). */
  batches: number;
  /** Distinct accounts: at most 99 so every epoch's DynamoDB writes (one per item) fit the commit. */
  accounts: number;
  repeats: number;
  seed: number;
}

const SEED = 20_261_202;

export const OUTPUTS_PROFILES: Record<'full' | 'quick' | 'smoke', OutputsBenchOptions> = {
  full: { partitions: 4, batchRecords: 800, batches: 25, accounts: 64, repeats: 3, seed: SEED },
  quick: { partitions: 4, batchRecords: 800, batches: 6, accounts: 64, repeats: 1, seed: SEED },
  /** Seconds: exercises every scenario (CI). Its figures mean nothing. */
  smoke: { partitions: 2, batchRecords: 40, batches: 2, accounts: 8, repeats: 1, seed: SEED },
};

export const OUTPUT_SCENARIOS = [
  'state',
  'kafka',
  'dynamodb-in-commit',
  'dynamodb-after-commit',
  's3',
] as const;
export type OutputScenarioId = (typeof OUTPUT_SCENARIOS)[number];

export const OUTPUT_SCENARIO_LABELS: Record<OutputScenarioId, string> = {
  state: 'state only',
  kafka: '+ Kafka output',
  'dynamodb-in-commit': '+ DynamoDB output, in the commit',
  'dynamodb-after-commit': '+ DynamoDB output, after the commit',
  s3: '+ S3 output',
};

/** Requests per task-epoch, by class. */
export interface OutputRequestClasses {
  s3Put: number;
  s3Get: number;
  s3Other: number;
  dynamoWrite: number;
  dynamoOther: number;
  kafka: number;
}

export interface OutputScenarioResult {
  id: OutputScenarioId;
  label: string;
  /** Records of the measured invocations, per repeat. */
  records: number;
  /** Task-epochs committed by the measured invocations, per repeat. */
  taskEpochs: number;
  /** Outputs committed per task-epoch (0 for state only). */
  outputsPerTaskEpoch: number;
  recordsPerSecond: Spread;
  /** From an epoch's first record to its outputs delivered (its commit with nothing to deliver), pooled over repeats. */
  epochLatencyMs: { p50: number; p99: number; samples: number };
  /** Requests per task-epoch over every repeat's measured invocations. */
  perTaskEpoch: OutputRequestClasses & { total: number; writeUnits: number };
  /** Requests per task-epoch by command (S3 and DynamoDB) and by Kafka API, over every repeat. */
  byCommand: Record<string, number>;
  /** Requests of the warm-up invocation, by command or Kafka API (new clients, producers, first reads). */
  warmUp: Record<string, number>;
  /** The encoded outbox of an epoch (0 when none: state only, or outputs in the commit). */
  outboxBytes: Spread;
  /** What the destination holds after the last repeat, against a plain fold of the records. */
  check: { ok: boolean; detail: string };
}

export interface OutputsBenchResult {
  options: OutputsBenchOptions;
  /** Brokers of the local Kafka cluster (replication factor = brokers, at most 3). */
  kafkaBrokers: number;
  scenarios: OutputScenarioResult[];
}

interface Total {
  account: string;
  balance: number;
  count: number;
}

// ---------------------------------------------------------------------------------------------
// Counting

/** Kafka API keys by number (the harness's list and the few more a client sends). */
const KAFKA_API_NAMES = new Map<number, string>([
  ...Object.entries(KAFKA_API).map(([name, key]) => [key, name] as [number, string]),
  [15, 'DescribeGroups'],
  [17, 'SaslHandshake'],
  [18, 'ApiVersions'],
  [19, 'CreateTopics'],
  [36, 'SaslAuthenticate'],
]);

/**
 * A kafkajs socket factory that counts the requests written, by API: every Kafka request is a frame
 * of a 4-byte size and its header, whose first two bytes are the API key. The frames are read from
 * the bytes written (not from the calls), so split or merged writes count right. (kafkajs offers
 * instrumentation events per producer and admin; the sink's clients are its own, so the bench counts
 * at the socket, the one seam kafkajs exposes through its configuration.)
 */
export function countingSocketFactory(counts: RequestCounts): ISocketFactory {
  return ({ host, port, ssl, onConnect }) => {
    const socket = ssl
      ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ...ssl }, onConnect)
      : net.connect({ host, port }, onConnect);
    socket.setKeepAlive(true, 60_000);
    let header = Buffer.alloc(0);
    let skip = 0;
    const feed = (buf: Buffer) => {
      for (let i = 0; i < buf.length; ) {
        if (skip > 0) {
          const n = Math.min(skip, buf.length - i);
          skip -= n;
          i += n;
          continue;
        }
        const take = buf.subarray(i, i + (6 - header.length));
        header = Buffer.concat([header, take]);
        i += take.length;
        if (header.length === 6) {
          const api = header.readInt16BE(4);
          const name = KAFKA_API_NAMES.get(api) ?? `api${api}`;
          counts.set(name, (counts.get(name) ?? 0) + 1);
          skip = header.readInt32BE(0) - 2;
          header = Buffer.alloc(0);
        }
      }
    };
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string')
        feed(Buffer.from(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : 'utf8'));
      else if (chunk instanceof Uint8Array)
        feed(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      return write(chunk, ...rest);
    }) as typeof socket.write;
    return socket;
  };
}

/** An update's size as DynamoDB bills a small item: its key and the values it sets. */
function updateSize(update: {
  Key?: Record<string, AttributeValue>;
  ExpressionAttributeValues?: Record<string, AttributeValue>;
}): number {
  return itemSize(update.Key ?? {}) + itemSize(update.ExpressionAttributeValues ?? {});
}

/**
 * Write units of a DynamoDB write request, by DynamoDB's rules: 1 per started KB of each item
 * written (a put by its item, an update by its key and values: the items here are small, a delete 1),
 * twice that in a transaction.
 */
export function requestWriteUnits(command: string, input: Record<string, unknown>): number {
  type Put = { Item?: Record<string, AttributeValue> };
  type Update = {
    Key?: Record<string, AttributeValue>;
    ExpressionAttributeValues?: Record<string, AttributeValue>;
  };
  switch (command) {
    case 'PutItemCommand':
      return writeUnits(itemSize((input as Put).Item ?? {}));
    case 'UpdateItemCommand':
      return writeUnits(updateSize(input as Update));
    case 'DeleteItemCommand':
      return 1;
    case 'TransactWriteItemsCommand': {
      let units = 0;
      const items = (input.TransactItems ?? []) as Array<{
        Put?: Put;
        Update?: Update;
        Delete?: unknown;
        ConditionCheck?: unknown;
      }>;
      for (const a of items) {
        if (a.Put) units += writeUnits(itemSize(a.Put.Item ?? {}));
        else if (a.Update) units += writeUnits(updateSize(a.Update));
        else units += 1;
      }
      return 2 * units;
    }
    default:
      return 0;
  }
}

interface Meter {
  s3: RequestCounts;
  dynamo: RequestCounts;
  kafka: RequestCounts;
  writeUnits: number;
}

const newMeter = (): Meter => ({ s3: new Map(), dynamo: new Map(), kafka: new Map(), writeUnits: 0 });

function meterWriteUnits(client: DynamoDBClient, meter: Meter): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = (context as { commandName?: string }).commandName ?? '';
      meter.writeUnits += requestWriteUnits(name, args.input as Record<string, unknown>);
      return next(args);
    },
    { step: 'initialize', name: 'benchOutputWriteUnits', override: true },
  );
}

function classify(m: Meter): OutputRequestClasses {
  const c: OutputRequestClasses = {
    s3Put: 0,
    s3Get: 0,
    s3Other: 0,
    dynamoWrite: 0,
    dynamoOther: 0,
    kafka: 0,
  };
  for (const [name, n] of m.s3) {
    if (/^(PutObject|UploadPart|CreateMultipartUpload|CompleteMultipartUpload)Command$/.test(name))
      c.s3Put += n;
    else if (/^(GetObject|HeadObject)Command$/.test(name)) c.s3Get += n;
    else c.s3Other += n;
  }
  for (const [name, n] of m.dynamo) {
    if (/^(PutItem|UpdateItem|DeleteItem|BatchWriteItem|TransactWriteItems)Command$/.test(name))
      c.dynamoWrite += n;
    else c.dynamoOther += n;
  }
  for (const n of m.kafka.values()) c.kafka += n;
  return c;
}

function byCommand(m: Meter): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, n] of m.s3) out[`S3 ${name.replace(/Command$/, '')}`] = n;
  for (const [name, n] of m.dynamo) out[`DynamoDB ${name.replace(/Command$/, '')}`] = n;
  for (const [name, n] of m.kafka) out[`Kafka ${name}`] = n;
  return out;
}

function addInto(target: Meter, source: Meter): void {
  for (const k of ['s3', 'dynamo', 'kafka'] as const) {
    for (const [name, n] of source[k]) target[k].set(name, (target[k].get(name) ?? 0) + n);
  }
  target.writeUnits += source.writeUnits;
}

function clear(m: Meter): void {
  m.s3.clear();
  m.dynamo.clear();
  m.kafka.clear();
  m.writeUnits = 0;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

// ---------------------------------------------------------------------------------------------
// The processors

const TOPIC = 'payments';
const OUTPUT_TOPIC = 'account-totals';

/** Balances plus one output per record: the account's new total (a tombstone emits nothing). */
function withTotals(totals: OutputDescriptor<Total, unknown, unknown>) {
  return defineProcessor({
    state: { account: valueState<Account>() },
    outputs: { totals },
    poisonPolicy: 'quarantine',
    process(record, { state, outputs, key }) {
      if (key === null) throw new PoisonRecordError('record has no key (an account id is required)');
      if (record.value === null) {
        state.account.clear();
        return;
      }
      const amount = depositAmount(record.value);
      const current = state.account.get();
      const next = { balance: addToBalance(current?.balance ?? 0, amount), count: (current?.count ?? 0) + 1 };
      state.account.set(next);
      outputs.totals.emit({ account: key, ...next });
    },
  });
}

interface Scenario {
  processor: Processor<StateDescriptors, OutputDescriptors>;
  sinks?: SinkProvider;
  /** Checks what the destination holds against the fold, after the run. */
  check(
    expected: Array<Map<string, { balance: number; count: number }>>,
    records: number,
  ): Promise<{ ok: boolean; detail: string }>;
}

interface Ctx {
  target: RequestsTarget;
  kafkaBrokers: readonly string[];
  outputTable: string;
  s3Prefix: string;
}

type Clients = { s3: S3Client; dynamodb: DynamoDBClient };

function scenario(
  id: OutputScenarioId,
  pipeline: string,
  c: Ctx,
  clients: Clients,
  meter: Meter,
  o: OutputsBenchOptions,
): Scenario {
  const checkState = async () => ({ ok: true, detail: 'state only (the requests benchmark checks state)' });
  switch (id) {
    case 'state':
      return { processor: balances as unknown as Scenario['processor'], check: checkState };
    case 'kafka': {
      const totals = kafkaOutput<Total>({ topic: OUTPUT_TOPIC, cluster: { brokers: [...c.kafkaBrokers] } });
      const kafkaConfig = {
        clientId: `bench-${pipeline}`,
        brokers: [...c.kafkaBrokers],
        socketFactory: countingSocketFactory(meter.kafka),
      };
      return {
        processor: withTotals(totals) as unknown as Scenario['processor'],
        sinks: (d, env) =>
          KafkaOutputSink.create(env, d.options as unknown as ResolvedKafkaOutputOptions, { kafkaConfig }),
        // Each task's marker (committed in the same transaction as its records) names its last offset.
        check: async () => {
          const kafka = new Kafka({
            clientId: 'bench-check',
            brokers: [...c.kafkaBrokers],
            logLevel: logLevel.NOTHING,
          });
          const admin = kafka.admin();
          await admin.connect();
          try {
            const slot = markerSlotOf(
              { transactionalIdPrefix: 'tidemark.' },
              { pipeline, topic: TOPIC, partition: 0 },
            );
            const [offsets] = await admin.fetchOffsets({ groupId: slot.groupId, topics: [TOPIC] });
            const perPartition = ((o.batches + 1) * o.batchRecords) / o.partitions;
            const wrong = (offsets?.partitions ?? []).filter((p) => Number(p.offset) !== perPartition);
            return {
              ok: wrong.length === 0 && offsets?.partitions.length === o.partitions,
              detail: `${o.partitions} markers at offset ${fmt(perPartition)}: ${wrong.length} differ`,
            };
          } finally {
            await admin.disconnect();
          }
        },
      };
    }
    case 'dynamodb-in-commit':
    case 'dynamodb-after-commit': {
      const totals = dynamoOutput<Total>({
        table: c.outputTable,
        partitionKey: 'pk',
        inCommit: id === 'dynamodb-in-commit',
        item: (t, ctx) => ({
          pk: `${ctx.pipeline}/${ctx.partition}/${t.account}`,
          balance: t.balance,
          count: t.count,
        }),
      });
      return {
        processor: withTotals(totals) as unknown as Scenario['processor'],
        sinks: (_d, env) => new DynamoOutputSink(env, { client: clients.dynamodb }),
        check: async (expected) => {
          const client = createDynamoDBClient(c.target.env);
          try {
            const items = new Map<string, { balance: number; count: number }>();
            for await (const page of paginateScan({ client }, { TableName: c.outputTable })) {
              for (const item of page.Items ?? []) {
                const pk = item.pk?.S ?? '';
                if (!pk.startsWith(`${pipeline}/`)) continue;
                items.set(pk, { balance: Number(item.balance?.N), count: Number(item.count?.N) });
              }
            }
            let wrong = 0;
            let want = 0;
            expected.forEach((accounts, p) => {
              for (const [account, v] of accounts) {
                want++;
                const got = items.get(`${pipeline}/${p}/${account}`);
                if (!got || got.balance !== v.balance || got.count !== v.count) wrong++;
              }
            });
            return {
              ok: wrong === 0 && items.size === want,
              detail: `${fmt(items.size)} items, ${wrong} differ from the fold`,
            };
          } finally {
            client.destroy();
          }
        },
      };
    }
    case 's3': {
      const totals = s3Output<Total>({ bucket: c.target.bucket, prefix: c.s3Prefix });
      return {
        processor: withTotals(totals) as unknown as Scenario['processor'],
        sinks: (_d, env) => new S3OutputSink(env, { client: clients.s3 }),
        check: async (_expected, records) => {
          const client = createS3Client(c.target.env);
          let lines = 0;
          try {
            for await (const _r of readS3Outputs({
              bucket: c.target.bucket,
              prefix: c.s3Prefix,
              pipeline,
              output: 'totals',
              client,
            }))
              lines++;
          } finally {
            client.destroy();
          }
          return {
            ok: lines === records,
            detail: `${fmt(lines)} lines behind the manifests for ${fmt(records)} records`,
          };
        },
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Running

interface RepeatOutcome {
  measured: Meter;
  warmUp: Meter;
  records: number;
  ms: number;
  taskEpochs: number;
  outputs: number;
  latencies: number[];
  outboxBytes: number[];
  check?: { ok: boolean; detail: string };
}

async function runRepeat(
  id: OutputScenarioId,
  o: OutputsBenchOptions,
  c: Ctx,
  rep: number,
  checkIt: boolean,
): Promise<RepeatOutcome> {
  const pipeline = `bench-out-${id}-${c.target.runId}-${rep}`;
  const meter = newMeter();
  const s3 = createS3Client(c.target.env);
  const dynamodb = createDynamoDBClient(c.target.env);
  countRequests(s3, meter.s3);
  countRequests(dynamodb, meter.dynamo);
  meterWriteUnits(dynamodb, meter);
  const sc = scenario(id, pipeline, c, { s3, dynamodb }, meter, o);
  // Latency: from an epoch's first record (its commit time less its duration) to its delivery.
  const started = new Map<string, number>();
  let latencies: number[] = [];
  const outboxBytes: number[] = [];
  let outputs = 0;
  const observer: EngineObserver = {
    epochCommitted: (info) => {
      const now = performance.now();
      const start = now - info.epochMs;
      outputs += info.outputs;
      if (info.outboxBytes === 0) {
        latencies.push(info.epochMs);
        return;
      }
      outboxBytes.push(info.outboxBytes);
      const key = `${info.task.partition}/${info.epoch}`;
      const delivered = started.get(key);
      if (delivered !== undefined && delivered < 0) {
        latencies.push(-delivered - start);
        started.delete(key);
      } else started.set(key, start);
    },
    outputsDelivered: (info) => {
      const now = performance.now();
      const key = `${info.task.partition}/${info.epoch}`;
      const start = started.get(key);
      if (start === undefined) started.set(key, -now);
      else {
        latencies.push(now - start);
        started.delete(key);
      }
    },
  };
  let handler: KafkaHandler<StateDescriptors, OutputDescriptors> | undefined;
  const workload = new BalancesWorkload({
    topic: TOPIC,
    partitions: o.partitions,
    accounts: o.accounts,
    seed: o.seed + rep,
    track: true,
  });
  try {
    handler = createKafkaHandler(sc.processor, {
      env: {},
      telemetry: false,
      clients: { s3, dynamodb },
      config: { bucket: c.target.bucket, table: c.target.table, pipeline },
      ...(sc.sinks ? { sinks: sc.sinks } : {}),
      observer,
    });
    const context = { getRemainingTimeInMillis: () => 900_000 };
    // Warm-up: clients connect, producers initialize, tasks start; counted apart, not timed.
    await handler(workload.batch(o.batchRecords), context);
    const warmUp = newMeter();
    addInto(warmUp, meter);
    clear(meter);
    latencies = [];
    outboxBytes.length = 0;
    outputs = 0;
    let ms = 0;
    let taskEpochs = 0;
    let records = 0;
    for (let b = 0; b < o.batches; b++) {
      const event = workload.batch(o.batchRecords);
      const t = await timed((): Promise<BatchSummary> => handler!(event, context));
      ms += t.ms;
      taskEpochs += t.value.epochsCommitted;
      records += t.value.applied;
    }
    const measured = newMeter();
    addInto(measured, meter);
    const outcome: RepeatOutcome = {
      measured,
      warmUp,
      records,
      ms,
      taskEpochs,
      outputs,
      latencies,
      outboxBytes,
    };
    if (checkIt) outcome.check = await sc.check(workload.expected, records + o.batchRecords);
    return outcome;
  } finally {
    await handler?.runtime.engine.close();
    s3.destroy();
    dynamodb.destroy();
  }
}

function summarize(id: OutputScenarioId, runs: RepeatOutcome[]): OutputScenarioResult {
  const all = newMeter();
  for (const r of runs) addInto(all, r.measured);
  const taskEpochs = runs.reduce((n, r) => n + r.taskEpochs, 0);
  const c = classify(all);
  const per = (n: number) => n / taskEpochs;
  const latencies = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const commands: Record<string, number> = {};
  for (const [k, v] of Object.entries(byCommand(all))) commands[k] = per(v);
  const last = runs[runs.length - 1]!;
  const outboxes = runs.flatMap((r) => r.outboxBytes);
  return {
    id,
    label: OUTPUT_SCENARIO_LABELS[id],
    records: last.records,
    taskEpochs: last.taskEpochs,
    outputsPerTaskEpoch: runs.reduce((n, r) => n + r.outputs, 0) / taskEpochs,
    recordsPerSecond: spread(runs.map((r) => r.records / (r.ms / 1000))),
    epochLatencyMs: {
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      samples: latencies.length,
    },
    perTaskEpoch: {
      s3Put: per(c.s3Put),
      s3Get: per(c.s3Get),
      s3Other: per(c.s3Other),
      dynamoWrite: per(c.dynamoWrite),
      dynamoOther: per(c.dynamoOther),
      kafka: per(c.kafka),
      total: per(c.s3Put + c.s3Get + c.s3Other + c.dynamoWrite + c.dynamoOther + c.kafka),
      writeUnits: per(all.writeUnits),
    },
    byCommand: commands,
    warmUp: byCommand(last.warmUp),
    outboxBytes: spread(outboxes),
    check: last.check ?? { ok: false, detail: 'not checked' },
  };
}

/** Runs every scenario `repeats` times, interleaved (a repeat runs each scenario once, in turn). */
export async function runOutputsBench(
  o: OutputsBenchOptions,
  target: RequestsTarget,
  log: (line: string) => void = () => {},
): Promise<OutputsBenchResult> {
  const brokers = 3;
  const kafka = await startKafkaMock({
    brokers,
    topics: { [TOPIC]: o.partitions, [OUTPUT_TOPIC]: o.partitions },
  });
  const setup = createDynamoDBClient(target.env);
  const c: Ctx = {
    target,
    kafkaBrokers: kafka.brokers,
    outputTable: `bench-outputs-${target.runId}-${randomUUID().slice(0, 6)}`,
    s3Prefix: `bench-outputs/${target.runId}`,
  };
  try {
    await setup.send(
      new CreateTableCommand({
        TableName: c.outputTable,
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const runs = new Map<OutputScenarioId, RepeatOutcome[]>(OUTPUT_SCENARIOS.map((id) => [id, []]));
    for (let rep = 0; rep < o.repeats; rep++) {
      for (const id of OUTPUT_SCENARIOS) {
        const r = await runRepeat(id, o, c, rep, rep === o.repeats - 1);
        runs.get(id)!.push(r);
        const total = classify(r.measured);
        const n = Object.values(total).reduce((a, b) => a + b, 0);
        log(
          `outputs: ${id}, ${r.records} records in ${(r.ms / 1000).toFixed(1)} s (${Math.round(r.records / (r.ms / 1000))} rec/s), ${r.taskEpochs} task-epochs, ${(n / r.taskEpochs).toFixed(2)} requests per task-epoch${r.check ? `; check: ${r.check.ok ? 'OK' : 'FAILED'} (${r.check.detail})` : ''}`,
        );
      }
    }
    return {
      options: o,
      kafkaBrokers: brokers,
      scenarios: OUTPUT_SCENARIOS.map((id) => summarize(id, runs.get(id)!)),
    };
  } finally {
    setup.destroy();
    await kafka.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Goals and the report

/** What the sinks promise per task-epoch (docs/outputs.md), checked against the counts. */
export function outputGoals(r: OutputsBenchResult | undefined): GoalCheck[] {
  const s = (id: OutputScenarioId) => r?.scenarios.find((x) => x.id === id);
  const kafka = s('kafka');
  const inCommit = s('dynamodb-in-commit');
  const state = s('state');
  const s3 = s('s3');
  const endTxn = kafka?.byCommand['Kafka EndTxn'];
  const inCommitWrites =
    inCommit && state ? inCommit.perTaskEpoch.dynamoWrite - state.perTaskEpoch.dynamoWrite : undefined;
  const s3Puts = s3 && state ? s3.perTaskEpoch.s3Put - state.perTaskEpoch.s3Put : undefined;
  return [
    {
      figure: 'Kafka output: Kafka transactions (EndTxn) per task-epoch',
      goal: '1 (one transaction per task-epoch, not per record)',
      measured: endTxn === undefined ? 'not measured' : fmt(endTxn, 2),
      met: endTxn === undefined ? null : endTxn === 1,
    },
    {
      figure: 'DynamoDB output in the commit: DynamoDB writes per task-epoch beyond state only',
      goal: '0 (the commit becomes one TransactWriteItems)',
      measured: inCommitWrites === undefined ? 'not measured' : fmt(inCommitWrites, 2),
      met: inCommitWrites === undefined ? null : inCommitWrites === 0,
    },
    {
      figure: 'S3 output: S3 PUTs per task-epoch beyond state only',
      goal: '2 (one data object and its manifest)',
      measured: s3Puts === undefined ? 'not measured' : fmt(s3Puts, 2),
      met: s3Puts === undefined ? null : s3Puts === 2,
    },
  ];
}

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const signed = (n: number, digits = 2) => `${n >= 0 ? '+' : '−'}${fmt(Math.abs(n), digits)}`;

/** What a scenario adds to state only, per task-epoch, in words (for the report). */
function meaning(x: OutputScenarioResult, base: OutputScenarioResult): string {
  const d = (k: keyof OutputScenarioResult['perTaskEpoch']) => x.perTaskEpoch[k] - base.perTaskEpoch[k];
  const kafkaApis = Object.entries(x.byCommand)
    .filter(([k]) => k.startsWith('Kafka '))
    .map(([k, v]) => `${k.slice(6)} ${fmt(v, 2)}`)
    .join(', ');
  const dynamoCommands = (s: OutputScenarioResult) =>
    Object.entries(s.byCommand)
      .filter(([k]) => k.startsWith('DynamoDB '))
      .map(([k, v]) => `${k.slice(9)} ${fmt(v, 2)}`)
      .join(', ');
  const parts: string[] = [];
  if (d('kafka') !== 0) parts.push(`${fmt(d('kafka'), 2)} Kafka requests (${kafkaApis})`);
  if (d('dynamoWrite') !== 0 || x.id.startsWith('dynamodb'))
    parts.push(
      `${signed(d('dynamoWrite'))} DynamoDB writes (${dynamoCommands(x)}; state only: ${dynamoCommands(base)})`,
    );
  if (d('s3Put') !== 0) parts.push(`${signed(d('s3Put'))} S3 PUTs`);
  if (d('s3Get') !== 0) parts.push(`${signed(d('s3Get'))} S3 GET/HEAD`);
  parts.push(
    `${signed(d('writeUnits'), 1)} write units (${fmt(x.perTaskEpoch.writeUnits, 1)} against ${fmt(base.perTaskEpoch.writeUnits, 1)})`,
  );
  return parts.join('; ');
}

export function outputsSection(r: OutputsBenchResult): string {
  const o = r.options;
  const base = r.scenarios.find((s) => s.id === 'state')!;
  const perEpoch = o.batchRecords / o.partitions;
  const rows = r.scenarios.map((s) => [
    s.label,
    fmtSpread(s.recordsPerSecond),
    fmt(s.recordsPerSecond.median / base.recordsPerSecond.median, 2),
    `${fmt(s.epochLatencyMs.p50, 1)} / ${fmt(s.epochLatencyMs.p99, 1)} ms`,
    fmt(s.perTaskEpoch.s3Put, 2),
    fmt(s.perTaskEpoch.s3Get + s.perTaskEpoch.s3Other, 2),
    fmt(s.perTaskEpoch.dynamoWrite, 2),
    fmt(s.perTaskEpoch.dynamoOther, 2),
    fmt(s.perTaskEpoch.kafka, 2),
    fmt(s.perTaskEpoch.total, 2),
    fmt(s.perTaskEpoch.writeUnits, 1),
    s.outboxBytes.n === 0 ? '—' : fmtSpread(s.outboxBytes, 0, ' B'),
  ]);
  const warm = r.scenarios.flatMap((s) => {
    const kafka = Object.entries(s.warmUp).filter(([k]) => k.startsWith('Kafka '));
    return kafka.length === 0
      ? []
      : [`- ${s.label}: ${kafka.map(([k, v]) => `${k.slice(6)} ${fmt(v)}`).join(', ')}`];
  });
  return `## 6. Outputs: state only against state plus each sink (DynamoDB Local, the S3 server, the local Kafka cluster)

The balances stream (${o.partitions} partitions, ${fmt(o.accounts)} accounts, ${fmt(o.batchRecords)}-record
invocations, so one ${fmt(perEpoch)}-record epoch per task and invocation) through the balances
example (state only) and through the same processor emitting one output per record, the account's new
total, to each sink. Per scenario and repeat: one warm-up invocation (not counted below), then
${fmt(o.batches)} measured invocations; ${o.repeats} repeat(s), the scenarios interleaved. Requests are counted
(S3 and DynamoDB by an SDK middleware, Kafka at the socket, by API) and divided by the task-epochs
committed; write units are computed from each write's items by DynamoDB's rules (1 per started KB,
2 in a transaction). Epoch latency runs from an epoch's first record to its outputs delivered (to its
commit when nothing is delivered after it), p50 / p99 over every measured epoch. The Kafka cluster has
${r.kafkaBrokers} brokers; the output topic has ${o.partitions} partitions and the records are keyed by account, so
a transaction writes to every partition.

${table(
  [
    'Scenario',
    'Records/s',
    '÷ state only',
    'Epoch latency p50 / p99',
    'S3 PUT',
    'S3 GET, other',
    'DynamoDB writes',
    'DynamoDB other',
    'Kafka requests',
    'Requests',
    'WRU',
    'Outbox per epoch',
  ],
  rows,
)}

(Requests and write units are per task-epoch; outputs per task-epoch: ${r.scenarios
    .filter((s) => s.id !== 'state')
    .map((s) => `${s.label.replace(/^\+ /, '')} ${fmt(s.outputsPerTaskEpoch, 1)}`)
    .join(', ')}.)

What each sink adds to state only, per task-epoch:
${r.scenarios
  .filter((s) => s.id !== 'state')
  .map((s) => `- ${s.label}: ${meaning(s, base)}`)
  .join('\n')}

How to read it. Every sink's cost is per task-epoch, not per record. **Kafka**: one transaction per
task-epoch — AddPartitionsToTxn once per partition the epoch writes (before the first Produce
there), Produce once per such partition and request of about 512 KiB of records (all outputs
together; one kafkajs send per partition, never one spanning brokers: docs/outputs.md says why),
AddOffsetsToTxn and TxnOffsetCommit for the
task's marker, EndTxn — and kafkajs looks the coordinator up (FindCoordinator) before each
transactional request; the one DynamoDB write more is the settle, which rewrites the whole commit item
(with its inline snapshot and outbox, so it costs the commit's write units again) once per task and
invocation (here every invocation gives each task one epoch, so once per task-epoch).
**DynamoDB in the commit** adds no request: the commit's PutItem becomes one TransactWriteItems of the
commit item and one write per item the epoch touched (its writes merged), each billed twice (2 write
units per started KB), the commit item too. **DynamoDB after the commit**: the commit stays a
PutItem, then one TransactWriteItems per 99 items with the task's fence item, also at 2 units per KB.
**S3**: a data object and a manifest per output and task-epoch. The outbox (the outputs waiting for
delivery) travels inside the commit item up to 16 KiB (\`TIDEMARK_OUTBOX_INLINE_MAX_BYTES\`): it makes
the commit's write larger (more write units) instead of adding an S3 PUT. Latency: a sink that delivers
after the commit adds its delivery to the epoch's; DynamoDB in the commit makes the commit itself a
larger transaction. The DynamoDB rows' records/s and latency are mostly DynamoDB Local's time for a
transaction of one action per item (compare the epoch latency with state only's): they say little about
DynamoDB's own, which this benchmark cannot measure.

Kafka requests of the warm-up invocation (connections, metadata, each task's producer: InitProducerId,
and the marker read):
${warm.join('\n') || '- none'}

Result checks (last repeat): ${r.scenarios.map((s) => `${s.label}: ${s.check.ok ? 'OK' : 'FAILED'} (${s.check.detail})`).join('; ')}.
`;
}
