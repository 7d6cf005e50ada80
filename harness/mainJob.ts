/**
 * The main job (`npm start`): the whole system end to end on local servers, with faults, verified.
 *
 *   DynamoDB Local + S3 server + Kafka mock cluster (+ PostgreSQL, MariaDB or Redis for commits)
 *   →  `tidemark init`  →  a seeded keyed stream produced with kafkajs  →  the ESM emulator
 *   (consumer group = pipeline id)  →  the balances pipeline with outputs
 *   (examples/balancesWithOutputs.ts) in emulated Lambda containers  →  checkpoints in S3 + the
 *   commit store, outputs to a Kafka topic and a DynamoDB table  →  every task's state, read back
 *   through `inspect`, and both outputs (Kafka read with kcat under read_committed), compared with
 *   an independent fold of what was produced (jobOutputs.ts).
 *
 * `runMainJob` returns with the servers still running (the caller stops them, or keeps them for
 * `npx tidemark inspect`); on any error or abort it stops what it started before rethrowing.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, type logCreator, logLevel, Partitioners, type Producer } from 'kafkajs';
import { BALANCES_PIPELINE } from '../examples/balances.ts';
import { BALANCE_UPDATES_TOPIC, balancesWithOutputs } from '../examples/balancesWithOutputs.ts';
import { loadConfig } from '../lib/config/config.ts';
import { type CommitStoreKind, ENV } from '../lib/config/env.ts';
import { sendPerPartition } from '../lib/sink/kafka/sendPerPartition.ts';
import { createDynamoDBClient, createS3Client } from '../lib/store/clients.ts';
import { createStores } from '../lib/store/stores.ts';
import { BROKER_FAULT_KINDS, type BrokerFaultKind, BrokerFaults } from './brokerFaults.ts';
import { CommitLedger } from './campaign/commits.ts';
import { expectedOutputs, type SinkVerdict, verdictProblems } from './campaign/outputCheck.ts';
import { type DynamoLocal, startDynamoLocal } from './dynamoLocal.ts';
import { EsmEmulator, type EsmStats } from './esm/esmEmulator.ts';
import { RandomEsmFaults } from './esm/faults.ts';
import { JobMetrics, quantile } from './jobMetrics.ts';
import {
  assertKcat,
  ensureAccountTable,
  expectedTasks,
  judgeKafkaOutput,
  judgeOverdrawn,
  overdrawnWrites,
  readAccountTable,
} from './jobOutputs.ts';
import { type KafkaMock, startKafkaMock } from './kafka/kafkaMock.ts';
import { localEnv } from './localStack.ts';
import { BalancesOracle, effectOf, TaskFold } from './oracle.ts';
import { type S3Local, startS3Local } from './s3Local.ts';
import { SeededRandom } from './seededRandom.ts';
import { startMariaDb } from './servers/mariadb.ts';
import { startPostgres } from './servers/postgres.ts';
import { startRedis } from './servers/redis.ts';
import { accountCount, generateStream, type StreamRecord } from './stream.ts';
import { TidemarkContainers } from './tidemarkContainers.ts';
import { type TaskVerdict, verifyTask } from './verify.ts';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(import.meta.dirname, '..');

/** Probability of each fault per invocation (`rebatch`: per failed batch). */
export interface FaultRates {
  crash: number;
  timeout: number;
  duplicate: number;
  rebatch: number;
  store: number;
  broker: number;
}
export const FAULT_NAMES = ['crash', 'timeout', 'duplicate', 'rebatch', 'store', 'broker'] as const;

export const DEFAULT_FAULT_RATES: Readonly<FaultRates> = {
  crash: 0.03,
  timeout: 0.02,
  duplicate: 0.03,
  rebatch: 0.5,
  store: 0.03,
  broker: 0.05,
};
export const NO_FAULTS: Readonly<FaultRates> = {
  crash: 0,
  timeout: 0,
  duplicate: 0,
  rebatch: 0,
  store: 0,
  broker: 0,
};

/** `on`, `off`, or `kind=rate,…` on top of the defaults (e.g. `crash=0.1,broker=0`). */
export function parseFaults(spec: string): FaultRates {
  const s = spec.trim();
  if (s === 'on' || s === '') return { ...DEFAULT_FAULT_RATES };
  if (s === 'off' || s === 'none') return { ...NO_FAULTS };
  const out = { ...DEFAULT_FAULT_RATES };
  for (const part of s.split(',')) {
    const m = /^([a-z]+)=(\d+(?:\.\d+)?)$/.exec(part.trim());
    const name = m?.[1] as keyof FaultRates | undefined;
    if (!m || !name || !(FAULT_NAMES as readonly string[]).includes(name)) {
      throw new RangeError(
        `bad fault setting ${JSON.stringify(part)}: use on, off or ${FAULT_NAMES.join('|')}=<0..1>`,
      );
    }
    const rate = Number(m[2]);
    if (rate > 1) throw new RangeError(`fault rate ${name}=${rate} is above 1`);
    out[name] = rate;
  }
  return out;
}

/** Running local AWS servers to use (tests pass the suite's); otherwise the job starts its own. */
export interface AwsTarget {
  env: Record<string, string>;
  bucket: string;
  table: string;
}

export interface MainJobOptions {
  records?: number;
  partitions?: number;
  seed?: number;
  faults?: FaultRates;
  /** An existing Kafka cluster (bootstrap `host:port` list): no embedded cluster, no broker faults. */
  brokers?: readonly string[];
  /** Brokers of the embedded cluster. Default 3. */
  embeddedBrokers?: number;
  /** Default `transactions` (embedded cluster) or `transactions-<random>` (existing cluster). */
  topic?: string;
  /** Pipeline id, also the consumer group id. Default `balances`. */
  pipeline?: string;
  aws?: AwsTarget;
  /**
   * Where commits go (`TIDEMARK_COMMIT_STORE`). Default `dynamodb` (DynamoDB Local); `postgres`,
   * `mysql` (MariaDB) and `redis` start their server for the run, in a temporary directory.
   */
  commitStore?: CommitStoreKind;
  /** A running server of the database commit store (tests pass the suite's): none is started. */
  dbUrl?: string;
  /**
   * The Kafka output topic. Default `balance-updates` (`balance-updates-<random>` on an existing
   * cluster).
   */
  outputTopic?: string;
  /** The DynamoDB output table (created when missing). Default `<pipeline>-overdrawn`. */
  outputTable?: string;
  batchSize?: number;
  batchingWindowMs?: number;
  /**
   * The emulated function's timeout. Default 120 s, the CDK construct's default. (With 30 s, a
   * container whose checkpoints once took over 10 s, a slow output delivery on a loaded machine,
   * kept a time reserve above the whole invocation and failed every later one: docs/local-run.md,
   * known issues.)
   */
  functionTimeoutMs?: number;
  /** Engine's time reserve (also decides how short `timeout` faults are). Default 1,000 ms. */
  timeReserveMs?: number;
  epochMaxRecords?: number;
  maxConcurrency?: number;
  /** Give up when no record was committed for this long. Default 120 s, at least 1.5 × the function timeout. */
  stallTimeoutMs?: number;
  /**
   * The mapping reads partial batch responses (ReportBatchItemFailures) and the engine reports the
   * failed tasks of a batch, so only their records are delivered again. Default true.
   */
  partialBatchResponse?: boolean;
  signal?: AbortSignal;
  /** Diagnostics: kafkajs warnings and errors, faults as they start, the emulator's state every 5 s. */
  log?: (line: string) => void;
  /** Stage changes and one-line notes (server endpoints, init output, build progress). */
  onStage?: (stage: JobStage, note?: string) => void;
  onProgress?: (progress: JobProgress) => void;
}

export type JobStage = 'servers' | 'init' | 'topic' | 'run' | 'verify' | 'done';

/** The settings naming the commit store, as the function reads them. */
function commitStoreEnv(kind: CommitStoreKind, url: string | undefined): Record<string, string> {
  if (kind === 'dynamodb') return { [ENV.commitStore]: kind };
  return {
    [ENV.commitStore]: kind,
    [ENV.dbUrl]: url ?? '',
    // The run's servers listen on 127.0.0.1 without TLS (the default requires it).
    [ENV.dbTls]: 'off',
    // The run's Redis keeps everything in memory and never fails over; the acknowledgement a
    // self-hosted Redis calls for (docs/stores.md).
    ...(kind === 'redis' ? { [ENV.redisDurability]: 'accept-loss' } : {}),
  };
}

/** Starts the database server of a commit store, in a temporary directory (dies with the job). */
async function startDatabase(
  kind: Exclude<CommitStoreKind, 'dynamodb'>,
): Promise<{ url: string; stop(): Promise<void> }> {
  if (kind === 'postgres') return startPostgres();
  if (kind === 'mysql') return startMariaDb();
  return startRedis();
}

export interface JobProgress {
  total: number;
  produced: number;
  /** Records below the committed offsets of the consumer group. */
  committed: number;
  epochs: number;
  faults: number;
  elapsedMs: number;
}

export interface JobServers {
  /**
   * Environment for `npx tidemark` and the function against these servers: AWS endpoints, bucket,
   * table, the commit store and its URL, the outputs' cluster and table.
   */
  awsEnv: Record<string, string>;
  bucket: string;
  table: string;
  commitStore: CommitStoreKind;
  /** The database commit store's URL (absent for DynamoDB). */
  dbUrl?: string;
  kafkaBrokers: readonly string[];
  embeddedKafka: boolean;
  /** The embedded cluster (absent with `brokers`). */
  mock?: KafkaMock;
  stop(): Promise<void>;
}

/** One output's verdict against the fold (harness/campaign/outputCheck.ts). */
export interface OutputSummary {
  /** The Kafka topic or the DynamoDB table. */
  name: string;
  verdict: SinkVerdict;
  /** The writes the fold implies (a table; a topic's records are `verdict.expected`). */
  writes?: number;
}

export interface JobSummary {
  seed: number;
  pipeline: string;
  topic: string;
  commitStore: CommitStoreKind;
  outputs: {
    kafka: OutputSummary;
    dynamodb: OutputSummary;
    /** What makes the outputs fail verification (empty when both are exactly once). */
    problems: string[];
  };
  partitions: number;
  records: number;
  accounts: number;
  applied: number;
  epochs: number;
  duplicatesSkipped: number;
  quarantined: number;
  commitConflicts: number;
  restores: { cold: number; conflict: number };
  snapshots: { full: number; delta: number; bytes: number };
  checkpointMs: { p50: number; p99: number; count: number };
  /** Faults that actually happened, by kind. */
  faults: Record<(typeof FAULT_NAMES)[number], number>;
  brokerFaults: Record<BrokerFaultKind, number> | undefined;
  esm: EsmStats;
  /** Invocations that failed or named failed records, and the records delivered again for them. */
  redelivery: { partialBatchResponse: boolean; failures: number; records: number; perFailure: number };
  produceMs: number;
  processMs: number;
  recordsPerSecond: number;
  batchSize: number;
}

export interface MainJobResult {
  verified: boolean;
  verdicts: TaskVerdict[];
  summary: JobSummary;
  servers: JobServers;
}

/** Failures (failed invocations, partial responses naming records) and the records delivered again. */
function redeliveryOf(esm: EsmStats, partialBatchResponse: boolean): JobSummary['redelivery'] {
  const failures = esm.failed.error + esm.failed.crash + esm.failed.timeout + esm.partialResponses;
  return {
    partialBatchResponse,
    failures,
    records: esm.recordsRedelivered,
    perFailure: failures > 0 ? esm.recordsRedelivered / failures : 0,
  };
}

/** Connection-level broker faults are held back while producing (a lost produce response could duplicate records). */
const SAFE_WHILE_PRODUCING = BROKER_FAULT_KINDS.filter((k) => k !== 'broker-down' && k !== 'slow-broker');

const CLEANUP_STEP_MS = 5_000;

/** Settles when `p` settles or after `ms`, whichever comes first; never rejects. */
function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(
      () => {},
      () => {},
    ),
    new Promise<void>((r) => {
      timer = setTimeout(r, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function aborted(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}

/** Waits `ms`, or less when aborted (then throws). */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Like `Promise.all`, but settles only once every start settled, so that when one fails, the
 * servers the others started are known (and stopped) before the error is reported.
 */
async function allStarted<T extends readonly unknown[]>(
  starts: readonly [...{ [K in keyof T]: Promise<T[K]> }],
): Promise<T> {
  const settled = await Promise.allSettled(starts);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

async function startServers(
  options: MainJobOptions,
  commitStore: CommitStoreKind,
  outputTable: string,
): Promise<JobServers> {
  const stage = options.onStage ?? (() => {});
  let dynamo: DynamoLocal | undefined;
  let s3: S3Local | undefined;
  let mock: KafkaMock | undefined;
  let db: { stop(): Promise<void> } | undefined;
  const stop = async () => {
    await Promise.allSettled([dynamo?.stop(), s3?.stop(), mock?.stop(), db?.stop()]);
  };
  try {
    const bucket = options.aws?.bucket ?? 'tidemark-local';
    const table = options.aws?.table ?? 'tidemark-local';
    const [aws, kafka, dbUrl] = await allStarted<
      [Record<string, string>, readonly string[], string | undefined]
    >([
      (async () => {
        if (options.aws) return options.aws.env;
        const [d, s] = await allStarted<[DynamoLocal, S3Local]>([
          startDynamoLocal().then((started) => (dynamo = started)),
          startS3Local().then((started) => (s3 = started)),
        ]);
        return localEnv(s.endpoint, d.endpoint);
      })(),
      (async () => {
        if (options.brokers) return options.brokers;
        mock = await startKafkaMock({
          brokers: options.embeddedBrokers ?? 3,
          build: { onOutput: (line) => stage('servers', line) },
        });
        return mock.brokers;
      })(),
      (async () => {
        if (commitStore === 'dynamodb' || options.dbUrl) return options.dbUrl;
        const server = await startDatabase(commitStore);
        db = server;
        return server.url;
      })(),
    ]);
    const awsEnv = {
      ...aws,
      [ENV.bucket]: bucket,
      [ENV.table]: table,
      ...commitStoreEnv(commitStore, dbUrl),
      [ENV.kafkaOutputBrokers]: kafka.join(','),
      [ENV.dynamodbOutputTable]: outputTable,
    };
    return {
      awsEnv,
      bucket,
      table,
      commitStore,
      ...(commitStore === 'dynamodb' ? {} : { dbUrl }),
      kafkaBrokers: kafka,
      embeddedKafka: !options.brokers,
      mock,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs `npx tidemark init` against the local servers, as a user would. */
async function runInit(servers: JobServers): Promise<string> {
  const bin = path.join(REPO_ROOT, 'bin', 'tidemark.mjs');
  const r = await run(process.execPath, [bin, 'init'], { env: { ...process.env, ...servers.awsEnv } });
  return r.stdout.trim();
}

export async function runMainJob(options: MainJobOptions = {}): Promise<MainJobResult> {
  const records = options.records ?? 200_000;
  const partitions = options.partitions ?? 8;
  if (!Number.isSafeInteger(records) || records < 1)
    throw new RangeError('records must be a positive integer');
  if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > 1000)
    throw new RangeError('partitions must be 1..1000');
  const seed = options.seed ?? 42;
  const rates = options.faults ?? DEFAULT_FAULT_RATES;
  const pipeline = options.pipeline ?? BALANCES_PIPELINE;
  const suffix = randomBytes(4).toString('hex');
  const topic = options.topic ?? (options.brokers ? `transactions-${suffix}` : 'transactions');
  const outputTopic =
    options.outputTopic ?? (options.brokers ? `${BALANCE_UPDATES_TOPIC}-${suffix}` : BALANCE_UPDATES_TOPIC);
  const outputTable = options.outputTable ?? `${pipeline}-overdrawn`;
  const commitStore = options.commitStore ?? 'dynamodb';
  const batchSize = options.batchSize ?? 1_000;
  const partialBatchResponse = options.partialBatchResponse ?? true;
  const timeReserveMs = options.timeReserveMs ?? 1_000;
  const functionTimeoutMs = options.functionTimeoutMs ?? 120_000;
  const stage = options.onStage ?? (() => {});
  const signal = options.signal;
  const random = new SeededRandom(seed);
  const log = options.log;
  const kafkaLogs: logCreator | undefined = log
    ? () =>
        ({ namespace, label, log: entry }) => {
          const { message, timestamp: _t, logger: _l, stack: _s, ...rest } = entry as Record<string, unknown>;
          log(`kafkajs ${label} ${namespace}: ${String(message)} ${JSON.stringify(rest)}`);
        }
    : undefined;

  // The outputs are read back with kcat: say so now, not after the run.
  assertKcat();
  stage('servers');
  const servers = await startServers(options, commitStore, outputTable);
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  // Each step is bounded: after an abort a Kafka client may wait for a broker that is gone.
  const closeAll = async () => {
    for (const c of cleanup.splice(0).reverse()) await bounded(Promise.resolve().then(c), CLEANUP_STEP_MS);
  };
  try {
    aborted(signal);
    stage(
      'servers',
      `DynamoDB ${servers.awsEnv.AWS_ENDPOINT_URL_DYNAMODB} · S3 ${servers.awsEnv.AWS_ENDPOINT_URL_S3} · Kafka ${servers.kafkaBrokers.join(',')}${servers.embeddedKafka ? ` (embedded, ${options.embeddedBrokers ?? 3} brokers)` : ''}${servers.dbUrl ? ` · commits: ${commitStore} ${servers.dbUrl}` : ''}`,
    );
    stage('init', await runInit(servers));
    aborted(signal);

    const kafka = new Kafka({
      clientId: 'tidemark-main-job',
      brokers: [...servers.kafkaBrokers],
      logLevel: kafkaLogs ? logLevel.WARN : logLevel.NOTHING,
      ...(kafkaLogs ? { logCreator: kafkaLogs } : {}),
      retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
    const admin = kafka.admin();
    await admin.connect();
    cleanup.push(() => admin.disconnect());
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: partitions }],
      waitForLeaders: true,
    });
    stage('topic', `${topic}: ${created ? 'created' : 'exists'} (${partitions} partitions)`);
    const outputCreated = await admin.createTopics({
      topics: [{ topic: outputTopic, numPartitions: partitions }],
      waitForLeaders: true,
    });
    stage(
      'topic',
      `${outputTopic} (output): ${outputCreated ? 'created' : 'exists'} (${partitions} partitions)`,
    );
    const s3 = createS3Client(servers.awsEnv);
    const dynamodb = createDynamoDBClient(servers.awsEnv);
    cleanup.push(() => {
      s3.destroy();
      dynamodb.destroy();
    });
    stage('topic', `table ${outputTable} (output): ${await ensureAccountTable(dynamodb, outputTable)}`);
    aborted(signal);

    const metrics = new JobMetrics();
    const ledger = new CommitLedger();
    const containers = new TidemarkContainers({
      processor: balancesWithOutputs,
      ledger,
      env: { ...process.env, ...servers.awsEnv },
      config: {
        bucket: servers.bucket,
        table: servers.table,
        pipeline,
        timeReserveMs,
        reportBatchItemFailures: partialBatchResponse,
        ...(options.epochMaxRecords ? { epochMaxRecords: options.epochMaxRecords } : {}),
      },
      observer: metrics.observer(),
      storeFaults: rates.store > 0 ? { rate: rates.store, random: random.derive('store-faults') } : undefined,
    });
    cleanup.push(() => containers.destroy());
    const brokerFaults =
      servers.mock && rates.broker > 0
        ? new BrokerFaults(servers.mock, random.derive('broker-faults'), {
            topic,
            partitions,
            onFault: log ? (kind) => log(`broker fault ${kind}`) : undefined,
          })
        : undefined;
    const brokerRandom = random.derive('broker-trigger');
    let producing = true;
    let committed = 0n;
    let produced = 0;
    const started = performance.now();
    const faultCount = () =>
      emulator.stats.faults.crash +
      emulator.stats.faults.timeout +
      emulator.stats.faults.duplicate +
      emulator.stats.faults.rebatch +
      containers.storeFaultCount +
      (brokerFaults?.total ?? 0);
    const progress = () =>
      options.onProgress?.({
        total: records,
        produced,
        committed: Number(committed),
        epochs: metrics.epochs,
        faults: faultCount(),
        elapsedMs: performance.now() - started,
      });
    const committedBy = new Map<number, bigint>();
    const emulator = new EsmEmulator({
      brokers: servers.kafkaBrokers,
      topics: [topic],
      groupId: pipeline,
      functionName: `${pipeline}-function`,
      createContainer: containers.create,
      batchSize,
      batchingWindowMs: options.batchingWindowMs ?? 500,
      functionTimeoutMs,
      maxConcurrency: options.maxConcurrency ?? Math.min(partitions, 8),
      reportBatchItemFailures: partialBatchResponse,
      faults: new RandomEsmFaults(
        { crash: rates.crash, timeout: rates.timeout, duplicate: rates.duplicate, rebatch: rates.rebatch },
        random.derive('esm-faults'),
        { shortTimeoutMs: [Math.round(timeReserveMs * 0.5), Math.round(timeReserveMs * 1.5)] },
      ),
      ...(kafkaLogs ? { kafkaLogCreator: kafkaLogs } : {}),
      onInvocation: (r) => {
        if (log && (r.fault || r.outcome !== 'success')) {
          log(
            `invocation ${r.requestId} container ${r.containerId} attempt ${r.attempt} ${r.parts.map((p) => `${p.topic}-${p.partition}@${p.firstOffset}..${p.lastOffset}`).join(' ')}: ${r.outcome}${r.fault ? ` (fault ${JSON.stringify(r.fault)})` : ''}${r.error instanceof Error ? ` ${r.error.name}: ${r.error.message}` : ''}`,
          );
        }
        if (brokerFaults && brokerRandom.chance(rates.broker)) {
          brokerFaults.trigger(producing ? SAFE_WHILE_PRODUCING : undefined);
        }
      },
      onCommit: (t, partition, offset) => {
        if (t !== topic) return;
        const before = committedBy.get(partition) ?? 0n;
        committedBy.set(partition, offset);
        committed += offset - before;
        progress();
      },
    });
    cleanup.push(() => emulator.stop());
    await emulator.start();
    if (log) {
      const every = setInterval(() => {
        log(
          `esm committed=${committed} produced=${produced} stats=${JSON.stringify(emulator.stats)} state=${JSON.stringify(emulator.describe())}`,
        );
      }, 5_000);
      cleanup.push(() => clearInterval(every));
    }
    stage('run', `consumer group ${pipeline} · BatchSize ${batchSize} · ${records} records to produce`);

    // Produce the stream (idempotent producer, one request in flight per broker: each partition's log
    // order is its send order).
    const oracle = new BalancesOracle();
    // The same fold, per partition, with every applied record: what the outputs must show.
    const folds = new Map<number, TaskFold>();
    const producer: Producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner, // unused: every record names its partition
    });
    await producer.connect();
    cleanup.push(() => producer.disconnect());
    const produceStarted = performance.now();
    const stream = generateStream({ records, partitions }, random.derive('stream'));
    const chunk: StreamRecord[] = [];
    const flush = async () => {
      if (chunk.length === 0) return;
      // One send per partition, as the Kafka sink sends (lib/sink/kafka/sendPerPartition.ts says why):
      // a send spanning brokers could append a partition's records twice, which the fold never saw.
      const meta = await sendPerPartition(
        producer,
        [
          {
            topic,
            messages: chunk.map((r) => ({
              partition: r.partition,
              key: r.key,
              value: r.value,
              timestamp: String(r.timestamp),
              ...(r.headers ? { headers: r.headers } : {}),
            })),
          },
        ],
        { acks: -1 },
      );
      const next = new Map(meta.map((m) => [m.partition, BigInt(m.baseOffset ?? '-1')]));
      for (const r of chunk) {
        const offset = next.get(r.partition);
        if (offset === undefined || offset < 0n)
          throw new Error(`no offset returned for partition ${r.partition}`);
        oracle.observe(r.partition, offset, r.key, r.value);
        let fold = folds.get(r.partition);
        if (!fold) {
          fold = new TaskFold();
          folds.set(r.partition, fold);
        }
        fold.observe(offset, effectOf(r.key, r.value));
        next.set(r.partition, offset + 1n);
      }
      produced += chunk.length;
      chunk.length = 0;
      progress();
    };
    for (const r of stream) {
      chunk.push(r);
      if (chunk.length >= 2_000) {
        await flush();
        aborted(signal);
      }
    }
    await flush();
    producing = false;
    const produceMs = performance.now() - produceStarted;
    // The fold must have seen every record of the log: a produce request whose records were
    // appended, and then appended again by a retry, would make the job judge Tidemark on a stream
    // it does not know. Then the run says so instead of reporting differences.
    for (const { partition, high } of await admin.fetchTopicOffsets(topic)) {
      const end = oracle.expected(partition).endOffset ?? '0';
      if (high !== end) {
        throw new Error(
          `the input topic's partition ${partition} ends at offset ${high}, but the records produced to it end at ${end}: the log holds records the verification does not know (a produce request appended twice?)`,
        );
      }
    }

    // Wait until the consumer group's offsets cover every produced record.
    const ends = new Map<number, bigint>();
    for (let p = 0; p < partitions; p++) {
      const end = oracle.expected(p).endOffset;
      if (end !== null) ends.set(p, BigInt(end));
    }
    const stallMs = options.stallTimeoutMs ?? Math.max(120_000, 1.5 * functionTimeoutMs);
    let lastCommitted = -1n;
    let lastMove = performance.now();
    for (;;) {
      const done = [...ends].every(([p, end]) => (committedBy.get(p) ?? 0n) >= end);
      if (done) break;
      if (committed !== lastCommitted) {
        lastCommitted = committed;
        lastMove = performance.now();
      } else if (performance.now() - lastMove > stallMs) {
        throw new Error(
          `no progress for ${Math.round(stallMs / 1000)} s (committed ${committed} of ${records} records); ESM stats: ${JSON.stringify(emulator.stats)}; ESM state: ${JSON.stringify(emulator.describe())}`,
        );
      }
      progress();
      await pause(200, signal);
    }
    const processMs = performance.now() - started;
    await brokerFaults?.stop();
    await emulator.stop();
    // Nothing runs in a container any more: close their sinks, connections and clients.
    await containers.destroy();
    progress();

    // Verify every task through the public inspect path, in the commit store the function used.
    stage('verify');
    const config = loadConfig({ ...process.env, ...servers.awsEnv, [ENV.pipeline]: pipeline });
    const stores = createStores(config, { s3, dynamodb });
    cleanup.push(() => stores.close());
    const prefix = config.prefix;
    const verdicts: TaskVerdict[] = [];
    for (let p = 0; p < partitions; p++) {
      verdicts.push(await verifyTask(stores, { pipeline, topic, prefix }, oracle.expected(p)));
    }
    // And the outputs, read back by readers that share no code with the sinks.
    const expected = expectedTasks(
      pipeline,
      topic,
      new Map([...folds].map(([p, f]) => [p, expectedOutputs(f.applications)])),
    );
    const [kafkaVerdict, tableVerdict] = await Promise.all([
      judgeKafkaOutput({
        brokers: servers.kafkaBrokers,
        topic: outputTopic,
        pipeline,
        inputTopic: topic,
        expected,
        ledger,
      }),
      readAccountTable(dynamodb, outputTable).then((items) => judgeOverdrawn(items, expected, ledger)),
    ]);
    const outputProblems = [
      ...verdictProblems(kafkaVerdict),
      ...verdictProblems(tableVerdict),
      ...ledger.contradictions.map((c) => `two commits of one epoch: ${c}`),
    ];
    const totals = oracle.totals;
    const esm = emulator.stats;
    const summary: JobSummary = {
      seed,
      pipeline,
      topic,
      commitStore,
      outputs: {
        kafka: { name: outputTopic, verdict: kafkaVerdict },
        dynamodb: { name: outputTable, verdict: tableVerdict, writes: overdrawnWrites(expected) },
        problems: outputProblems,
      },
      partitions,
      records,
      accounts: accountCount({ records, partitions }),
      applied: totals.applied,
      // From the commit items: an epoch committed just before a crash is never reported to observers.
      epochs: verdicts.reduce((n, v) => n + v.epoch, 0),
      duplicatesSkipped: metrics.duplicatesSkipped,
      quarantined: verdicts.reduce((n, v) => n + v.quarantined, 0),
      commitConflicts: metrics.commitConflicts,
      restores: metrics.restores,
      snapshots: { full: metrics.fullSnapshots, delta: metrics.deltaSnapshots, bytes: metrics.snapshotBytes },
      checkpointMs: {
        p50: quantile(metrics.checkpointMs, 0.5),
        p99: quantile(metrics.checkpointMs, 0.99),
        count: metrics.checkpointMs.length,
      },
      faults: {
        crash: esm.faults.crash,
        timeout: esm.faults.timeout,
        duplicate: esm.faults.duplicate,
        rebatch: esm.faults.rebatch,
        store: containers.storeFaultCount,
        broker: brokerFaults?.total ?? 0,
      },
      brokerFaults: brokerFaults ? { ...brokerFaults.injected } : undefined,
      esm,
      redelivery: redeliveryOf(esm, partialBatchResponse),
      produceMs,
      processMs,
      recordsPerSecond: records / (processMs / 1000),
      batchSize,
    };
    await closeAll();
    stage('done');
    return {
      verified: verdicts.every((v) => v.ok) && outputProblems.length === 0,
      verdicts,
      summary,
      servers,
    };
  } catch (err) {
    await closeAll();
    await bounded(servers.stop(), CLEANUP_STEP_MS);
    throw err;
  }
}
