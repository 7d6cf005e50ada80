/**
 * The fault campaign: generates a keyed input stream over several partitions, delivers it through
 * lanes of a simulated Kafka ESM to real handlers (`createKafkaHandler`) running against the S3
 * server and a commit store (DynamoDB Local, PostgreSQL, MariaDB or Redis), with faults injected at
 * every step of the commit protocol and of the outputs' deliveries (Kafka, DynamoDB, S3), then reads
 * every task back through the public inspect path and every sink with an independent reader, and
 * compares them with the oracle.
 *
 * A seed fixes the input, every batch composition and every fault's placement. Interleavings of
 * concurrent attempts (two invocations of one batch, a zombie and its retry, tasks of one batch
 * processed side by side) are left to the scheduler, as in production.
 */
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { quarantinePrefix } from '../../lib/checkpoint/layout.ts';
import type { CommitStore, SnapshotStore } from '../../lib/checkpoint/stores.ts';
import { type CommitStoreKind, DEFAULTS, type TidemarkConfig } from '../../lib/config/config.ts';
import type { AwsClientKind } from '../../lib/config/env.ts';
import { ConfigurationError } from '../../lib/errors.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import type { DatabaseStores } from '../../lib/store/database/DatabaseStores.ts';
import type { RedisStoreOptions } from '../../lib/store/database/options.ts';
import { ensureTable } from '../../lib/store/provision.ts';
import { loadDatabaseStores } from '../../lib/store/runtimeStores.ts';
import { S3SnapshotStore } from '../../lib/store/s3/S3SnapshotStore.ts';
import { createAwsStores } from '../../lib/store/stores.ts';
import { type BrokerFaultKind, BrokerFaults } from '../brokerFaults.ts';
import { type KafkaMock, startKafkaMock } from '../kafka/kafkaMock.ts';
import { type LocalStack, startLocalStack } from '../localStack.ts';
import { compareBalances, compareLedger, expectTask } from '../oracle.ts';
import { SeededRandom } from '../seededRandom.ts';
import { startMariaDb } from '../servers/mariadb.ts';
import { startPostgres } from '../servers/postgres.ts';
import { startRedis } from '../servers/redis.ts';
import { CommitLedger } from './commits.ts';
import { FAULT_KINDS, type FaultKind, type RequestObserver, STORE_OPS } from './faults.ts';
import { type CampaignTask, generateTaskRecords } from './input.ts';
import { emptyLaneStats, Lane, type LaneStats, type ProcessorName, type Sabotage } from './lane.ts';
import {
  CAMPAIGN_SINKS,
  type CampaignSink,
  type ExpectedTask,
  expectedOutputs,
  groupKey,
  type SinkVerdict,
  verdictProblems,
} from './outputCheck.ts';
import { CampaignOutputs, type OutputSabotage, type OutputTargets } from './outputs.ts';
import { type FaultProxy, NET_FAULTS, startFaultProxy } from './proxy.ts';

/** Relative frequency of each fault kind. */
export const DEFAULT_WEIGHTS: Readonly<Record<FaultKind, number>> = {
  's3-error': 8,
  'ddb-error': 6,
  'ddb-throttle': 4,
  'sdk-timeout': 5,
  'net-reset-request': 6,
  'net-reset-response': 6,
  'net-stall': 2,
  latency: 8,
  'crash-before-snapshot-put': 6,
  'crash-after-snapshot-put': 6,
  'crash-before-commit': 6,
  'crash-after-commit': 6,
  'crash-before-return': 4,
  'crash-mid-epoch': 6,
  'processor-transient': 6,
  'time-budget': 6,
  zombie: 4,
  'crash-before-delivery': 5,
  'crash-mid-delivery': 5,
  'crash-after-delivery': 5,
  'kafka-error': 5,
  'kafka-lost-commit': 4,
  'delivery-zombie': 4,
  'db-error': 8,
  'db-lost-response': 8,
};

/** The commit stores the campaign runs on. */
export const CAMPAIGN_COMMIT_STORES = ['dynamodb', 'postgres', 'mysql', 'redis'] as const;

/** Broker faults the campaign injects (the ones a transactional producer meets). */
const CAMPAIGN_BROKER_FAULTS: readonly BrokerFaultKind[] = [
  'broker-down',
  'slow-broker',
  'produce-errors',
  'leader-move',
];
/** A failure this long after a broker fault started may be its doing (not counted as unexplained). */
const BROKER_FAULT_SHADOW_MS = 15_000;

export interface CampaignOptions {
  seed: number;
  /** Faults to fire, at least (the campaign stops injecting once they fired). */
  faults: number;
  /** Records in the input stream, over all tasks. */
  records: number;
  /** Tasks (topic-partitions), over all lanes. */
  partitions: number;
  /** ESM pollers running side by side (each owns some tasks). Default 4. */
  lanes?: number;
  /** `both` (default): half the lanes run the ledger processor, half the balances example. */
  processor?: ProcessorName | 'both';
  /** Accounts (keys) per task. Default 24. */
  keysPerTask?: number;
  weights?: Partial<Record<FaultKind, number>>;
  /** Faults never planned: `<kind>` or `<kind>@<op>` (e.g. `net-stall@commit-write`). */
  skip?: readonly string[];
  /**
   * Servers to use (the standard AWS variables plus TIDEMARK_BUCKET / TIDEMARK_TABLE). Default: a
   * local stack started for the run and stopped after it.
   */
  env?: Readonly<Record<string, string | undefined>>;
  log?: (line: string) => void;
  /**
   * Tasks of one invocation run one after the other (task concurrency 1), so which faults fire
   * no longer depends on timing and a seed replays the same run. Default false: tasks run side by
   * side as in production, and a replay may part from the original run where timing decided.
   */
  deterministic?: boolean;
  /**
   * Harness self-check: break exactly-once on purpose in lane 0: `lose`/`double` a record of the
   * state (see `LaneOptions.sabotage`), `lose-output`/`duplicate-output` a sink's output (outputs.ts).
   */
  sabotage?: Sabotage | OutputSabotage;
  /** Where commits go (docs/stores.md). Default `dynamodb`. */
  commitStore?: CommitStoreKind;
  /**
   * The containers' client of snapshots and DynamoDB commits: `lite`, the Lambda bundle's (faults
   * through its transport's attempt hook), or `sdk` (faults as SDK middleware). Sinks use the SDK.
   * Default `lite`.
   */
  awsClient?: AwsClientKind;
  /**
   * The database of a `postgres`, `mysql` or `redis` commit store (a URL). Default: a server of that
   * kind started for the run in a temporary directory (and stopped after it).
   */
  databaseUrl?: string;
  /**
   * Sinks the processors emit to, for every record they apply. Default: Kafka, DynamoDB and S3. `sql`
   * needs commits in PostgreSQL or MySQL/MariaDB (`ConfigurationError` otherwise).
   */
  outputs?: readonly CampaignSink[];
  /** An existing Kafka cluster for the Kafka outputs. Default: a local cluster started for the run. */
  kafkaBrokers?: readonly string[];
  /** Chance per invocation of starting a Kafka broker fault (local cluster only). Default 0.02. */
  brokerFaultRate?: number;
  /** Diagnostics: invocations, commits, every delivery and Kafka step, one line each. */
  trace?: (line: string) => void;
}

export interface TaskVerdict {
  pipeline: string;
  processor: ProcessorName;
  task: string;
  records: number;
  poison: number;
  expectedOffset: string;
  committedOffset: string | null;
  epoch: number;
  lost: number;
  doubled: number;
  unexpected: number;
  inconsistentAccounts: number;
  quarantinedExpected: number;
  quarantinedCounted: number;
  quarantineObjectsMissing: number;
  quarantineObjectsExtra: number;
  appliedExpected: number;
  appliedCounted: number;
  error?: string;
}

export interface CampaignReport {
  seed: number;
  options: {
    faults: number;
    records: number;
    partitions: number;
    lanes: number;
    processor: string;
    skip: string[];
    deterministic: boolean;
    commitStore: CommitStoreKind;
    awsClient: AwsClientKind;
    outputs: CampaignSink[];
  };
  replay: string;
  durationMs: number;
  lanes: Array<{
    index: number;
    pipeline: string;
    processor: ProcessorName;
    tasks: number;
    config: Partial<TidemarkConfig>;
    /** DynamoDB outputs in the commit's transaction (commits in DynamoDB), else after it. */
    dynamoInCommit?: boolean;
  }>;
  records: { total: number; poison: number; applied: number };
  stats: LaneStats;
  proxy: Record<string, number>;
  orphanReads: string[];
  zombieOrphanReads: string[];
  tasks: TaskVerdict[];
  /** Per sink: what it holds against the fold (none without outputs). */
  outputs: Partial<Record<CampaignSink, SinkVerdict>>;
  /** Kafka broker faults injected (local cluster), by kind. */
  brokerFaults: Partial<Record<BrokerFaultKind, number>>;
  /** Commits the run saw, and contradictions among them (two commits of one epoch). */
  commits: { epochs: number; contradictions: string[] };
  totals: {
    faultsFired: number;
    faultsSurfaced: number;
    lost: number;
    doubled: number;
    unexpected: number;
    offsetMismatches: number;
    quarantineMismatches: number;
    unreadableTasks: number;
    oracleDisagreements: number;
  };
  problems: string[];
  passed: boolean;
}

function replayCommand(
  o: CampaignOptions,
  lanes: number,
  processor: string,
  store: CommitStoreKind,
  sinks: readonly CampaignSink[],
): string {
  const skip = o.skip && o.skip.length > 0 ? ` --skip ${o.skip.join(',')}` : '';
  return `npm run campaign -- --seed ${o.seed} --faults ${o.faults} --records ${o.records} --partitions ${o.partitions} --lanes ${lanes} --processor ${processor} --aws-client ${o.awsClient ?? 'lite'} --commit-store ${store} --outputs ${sinks.length > 0 ? sinks.join(',') : 'none'}${skip}${o.deterministic ? ' --deterministic' : ''}`;
}

/** A database server of the kind a commit store needs, started for the run. */
async function startDatabase(
  kind: Exclude<CommitStoreKind, 'dynamodb'>,
): Promise<{ url: string; stop(): Promise<void> }> {
  if (kind === 'postgres') return startPostgres();
  if (kind === 'mysql') return startMariaDb();
  return startRedis();
}

/**
 * The record whose epoch `lose-output` drops: the last deposit of the task that is also the last
 * record of its account, so every sink must show it (a later record of the account would hide it
 * from the DynamoDB table).
 */
function lastVisibleDeposit(records: CampaignTask['records']): bigint | undefined {
  const apps = expectTask(records).applications;
  const later = new Set<string>();
  for (let i = apps.length - 1; i >= 0; i--) {
    const a = apps[i]!;
    if (a.kind === 'deposit' && !later.has(a.account)) return a.offset;
    later.add(a.account);
  }
  return undefined;
}

function laneConfig(rnd: SeededRandom): Partial<TidemarkConfig> {
  return {
    epochMaxRecords: rnd.int(5, 60),
    epochMaxBytes: rnd.pick([64 * 1024, 256 * 1024, DEFAULTS.epochMaxBytes]),
    timeReserveMs: 1_000,
    retainedCheckpoints: rnd.int(1, 4),
    taskConcurrency: rnd.int(1, 8),
    warmCacheMaxTasks: rnd.int(1, 8),
    compression: rnd.pick(['zstd', 'none'] as const),
    snapshotMode: rnd.pick(['incremental', 'incremental', 'full'] as const),
    compactAfterDeltas: rnd.int(1, 8),
    compactDeltaRatio: rnd.pick([0.5, 2, 10]),
    sweepEveryEpochs: rnd.int(3, 20),
    // Far above any pause the campaign makes: a sweep must never take a live attempt's snapshot.
    orphanMinAgeSeconds: 600,
  };
}

function validateSkip(skip: readonly string[]): void {
  for (const s of skip) {
    const [kind, op] = s.split('@');
    if (
      !(FAULT_KINDS as readonly string[]).includes(kind ?? '') ||
      (op !== undefined && !(STORE_OPS as readonly string[]).includes(op))
    ) {
      throw new RangeError(
        `--skip ${s}: expected <kind> or <kind>@<op>; kinds: ${FAULT_KINDS.join(', ')}; ops: ${STORE_OPS.join(', ')}`,
      );
    }
  }
}

function hostPort(endpoint: string): { host: string; port: number } {
  const u = new URL(endpoint);
  return { host: u.hostname, port: Number(u.port || 80) };
}

function mergeStats(all: LaneStats[]): LaneStats {
  const out = emptyLaneStats();
  for (const s of all) {
    for (const k of FAULT_KINDS) {
      for (const f of ['planned', 'fired', 'absorbed', 'surfaced'] as const)
        out.faults[k][f] += s.faults[k][f];
    }
    for (const [k, v] of Object.entries(s.deliveries))
      out.deliveries[k as keyof LaneStats['deliveries']] += v;
    for (const [k, v] of Object.entries(s.failures)) out.failures[k] = (out.failures[k] ?? 0) + v;
    for (const k of ['invocations', 'succeeded', 'failed', 'containers', 'crashed'] as const) out[k] += s[k];
    for (const k of Object.keys(out.zombies) as Array<keyof LaneStats['zombies']>)
      out.zombies[k] += s.zombies[k];
    for (const k of Object.keys(out.deliveryZombies) as Array<keyof LaneStats['deliveryZombies']>)
      out.deliveryZombies[k] += s.deliveryZombies[k];
    out.untyped.push(...s.untyped);
    out.unexplained.push(...s.unexplained);
    out.stuck.push(...s.stuck);
    out.zombieKeys.push(...s.zombieKeys);
  }
  return out;
}

export async function runCampaign(options: CampaignOptions): Promise<CampaignReport> {
  const started = performance.now();
  const processor = options.processor ?? 'both';
  const lanesCount = Math.max(options.lanes ?? 4, processor === 'both' ? 2 : 1);
  const partitions = Math.max(options.partitions, lanesCount);
  const skip = [...(options.skip ?? [])];
  validateSkip(skip);
  const log = options.log ?? (() => {});
  const root = new SeededRandom(options.seed);
  const commitStore = options.commitStore ?? 'dynamodb';
  const sinks = [...(options.outputs ?? CAMPAIGN_SINKS)];
  const stateSabotage =
    options.sabotage === 'lose' || options.sabotage === 'double' ? options.sabotage : undefined;
  const outputSabotage =
    options.sabotage === 'lose-output' || options.sabotage === 'duplicate-output'
      ? options.sabotage
      : undefined;
  if (outputSabotage && sinks.length === 0)
    throw new RangeError(`--sabotage ${outputSabotage} needs outputs`);
  if (sinks.includes('sql') && commitStore !== 'postgres' && commitStore !== 'mysql') {
    throw new ConfigurationError(
      'commitStore',
      `the sql sink writes its rows in the epoch's commit transaction: it needs commits in postgres or mysql (--commit-store postgres|mysql), not ${commitStore}`,
    );
  }

  let stack: LocalStack | undefined;
  let env = options.env;
  if (!env) {
    log('starting DynamoDB Local and the S3 server');
    stack = await startLocalStack({ bucket: 'tidemark-campaign', table: 'tidemark-campaign' });
    env = stack.env;
  }
  const bucket = env.TIDEMARK_BUCKET ?? 'tidemark-campaign';
  const table = env.TIDEMARK_TABLE ?? 'tidemark-campaign';
  const s3Endpoint = env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const ddbEndpoint = env.AWS_ENDPOINT_URL_DYNAMODB ?? env.AWS_ENDPOINT_URL;
  if (!s3Endpoint || !ddbEndpoint)
    throw new RangeError('the campaign needs AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_DYNAMODB');
  const region = env.AWS_REGION ?? 'us-east-1';
  const credentials = {
    accessKeyId: env.AWS_ACCESS_KEY_ID ?? 'S3RVER',
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? 'S3RVER',
  };
  const proxies: FaultProxy[] = [];
  const direct = {
    s3: new S3Client({
      endpoint: s3Endpoint,
      region,
      credentials,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    }),
    dynamodb: new DynamoDBClient({ endpoint: ddbEndpoint, region, credentials }),
  };
  const lanes: Lane[] = [];
  let databaseServer: { stop(): Promise<void> } | undefined;
  let databaseStores: DatabaseStores | undefined;
  let mock: KafkaMock | undefined;
  let brokerFaults: BrokerFaults | undefined;
  try {
    proxies.push(await startFaultProxy(hostPort(s3Endpoint)), await startFaultProxy(hostPort(ddbEndpoint)));
    // The commit store: DynamoDB (the run's table), or a database each container connects to.
    let database: (RedisStoreOptions & { url: string }) | undefined;
    if (commitStore !== 'dynamodb') {
      let url = options.databaseUrl;
      if (!url) {
        log(`starting ${commitStore}`);
        const server = await startDatabase(commitStore);
        databaseServer = server;
        url = server.url;
      }
      database = {
        url,
        prefix: 'cmp',
        tls: 'off',
        poolMax: 2,
        connectTimeoutMs: 2_000,
        ...(commitStore === 'redis' ? { durability: 'accept-loss' as const } : {}),
      };
      databaseStores = await loadDatabaseStores(commitStore, database);
      await databaseStores.ensureSchema();
    }
    const [s3Proxy, ddbProxy] = proxies as [FaultProxy, FaultProxy];

    // Not derived from the seed: keeps runs on long-lived servers apart without changing the schedule.
    const runId = `${options.seed >>> 0}-${randomBytes(3).toString('hex')}`;
    const inputRnd = root.derive('input');
    // Tasks of uneven sizes (0.7-1.3 x the mean) that add up to exactly `records`.
    const shares = Array.from({ length: partitions }, () => 700 + inputRnd.int(0, 600));
    const shareSum = shares.reduce((a, b) => a + b, 0);
    const counts = shares.map((w) => Math.max(1, Math.floor((options.records * w) / shareSum)));
    for (let i = 0; counts.reduce((a, b) => a + b, 0) < options.records; i++) counts[i % partitions]!++;
    const laneTasks: CampaignTask[][] = Array.from({ length: lanesCount }, () => []);
    const laneProcessor = (i: number): ProcessorName =>
      processor === 'both' ? (i % 2 === 0 ? 'ledger' : 'balances') : processor;
    const pipelineOf = (i: number) => `cmp-${runId}-l${i}-${laneProcessor(i)}`;
    for (let t = 0; t < partitions; t++) {
      const lane = t % lanesCount;
      const topic = t % 3 === 2 ? 'pay-ments.eu' : 'orders';
      const records = generateTaskRecords(inputRnd, topic, t, counts[t]!, options.keysPerTask ?? 24);
      laneTasks[lane]!.push({
        pipeline: pipelineOf(lane),
        topic,
        partition: t,
        label: `${topic}-${t}`,
        records,
      });
    }
    const weights = { ...DEFAULT_WEIGHTS, ...options.weights };
    const observer: RequestObserver = { committedKeys: new Set(), snapshotReads: new Map() };
    const commitLedger = new CommitLedger();

    // Outputs: the sinks' destinations, created for the run.
    let outputs: CampaignOutputs | undefined;
    const brokerCounts: Partial<Record<BrokerFaultKind, number>> = {};
    let lastBrokerFault = Number.NEGATIVE_INFINITY;
    if (sinks.length > 0) {
      const targets: { -readonly [K in keyof OutputTargets]: OutputTargets[K] } = { sinks };
      if (sinks.includes('kafka')) {
        let brokers = options.kafkaBrokers;
        if (!brokers) {
          log('starting the Kafka cluster');
          mock = await startKafkaMock({ brokers: 3 });
          brokers = mock.brokers;
        }
        targets.kafka = {
          brokers,
          topic: `cmp-out-${runId}`,
          markerTopic: `cmp-markers-${runId}`,
          partitions: 4,
          transactionTimeoutMs: 5_000,
        };
      }
      if (sinks.includes('dynamodb')) targets.dynamodb = { table: `${table}-outputs` };
      if (sinks.includes('s3')) targets.s3 = { bucket, prefix: 'campaign-outputs' };
      if (sinks.includes('sql') && database && (commitStore === 'postgres' || commitStore === 'mysql')) {
        const suffix = runId.replace(/\W/g, '_');
        targets.sql = {
          store: commitStore,
          url: database.url,
          events: `cmp_events_${suffix}`,
          totals: `cmp_totals_${suffix}`,
        };
      }
      outputs = new CampaignOutputs(targets, commitLedger, outputSabotage, options.trace);
      await outputs.setup(direct, ensureTable);
      if (outputSabotage) {
        const t = laneTasks[0]![0]!;
        outputs.aim(
          { pipeline: t.pipeline, topic: t.topic, partition: t.partition },
          t.label,
          lastVisibleDeposit(t.records) ?? t.records[0]!.offset,
        );
      }
      const rate = options.brokerFaultRate ?? 0.02;
      if (mock && targets.kafka && rate > 0) {
        brokerFaults = new BrokerFaults(mock, root.derive('broker-faults'), {
          topic: targets.kafka.topic,
          partitions: targets.kafka.partitions,
          onFault: (kind) => {
            options.trace?.(`broker fault ${kind}`);
            lastBrokerFault = performance.now();
            brokerCounts[kind] = (brokerCounts[kind] ?? 0) + 1;
          },
        });
      }
    }
    const brokerSource = brokerFaults
      ? {
          trigger: () => brokerFaults?.trigger(CAMPAIGN_BROKER_FAULTS),
          recent: () => performance.now() - lastBrokerFault < BROKER_FAULT_SHADOW_MS,
        }
      : undefined;

    const laneInfo: CampaignReport['lanes'] = [];
    for (let i = 0; i < lanesCount; i++) {
      const rnd = root.derive(`lane-${i}`);
      const config = laneConfig(rnd.derive('config'));
      if (options.deterministic) config.taskConcurrency = 1;
      // Both DynamoDB paths, whatever the lane count: lanes 0 and 3 (of 4) in the commit.
      const outputRnd = rnd.derive('outputs');
      const settings = {
        inCommit: i % 4 === 0 || i % 4 === 3,
        gzip: outputRnd.chance(0.5),
        maxObjectBytes: outputRnd.pick([4_096, 16 * 1024 * 1024]),
      };
      laneInfo.push({
        index: i,
        pipeline: pipelineOf(i),
        processor: laneProcessor(i),
        tasks: laneTasks[i]!.length,
        config,
        ...(sinks.includes('dynamodb')
          ? { dynamoInCommit: commitStore === 'dynamodb' && settings.inCommit }
          : {}),
      });
      lanes.push(
        new Lane({
          index: i,
          rnd,
          processor: laneProcessor(i),
          pipeline: pipelineOf(i),
          tasks: laneTasks[i]!,
          faultBudget: Math.ceil(options.faults / lanesCount),
          weights,
          skip: new Set(skip),
          bucket,
          table,
          region,
          credentials,
          endpoints: { s3: s3Proxy.endpoint, dynamodb: ddbProxy.endpoint },
          config,
          observer,
          log,
          sabotage: i === 0 ? stateSabotage : undefined,
          commitStore,
          awsClient: options.awsClient ?? 'lite',
          database,
          commitLedger,
          ...(outputs ? { outputs: { campaign: outputs, settings } } : {}),
          brokerFaults: brokerSource,
          brokerFaultRate: options.brokerFaultRate ?? 0.02,
          ...(options.trace ? { trace: options.trace } : {}),
        }),
      );
    }
    log(
      `seed ${options.seed}: ${options.records} records, ${partitions} tasks, ${lanesCount} lanes, ${options.faults} faults, ${options.awsClient ?? 'lite'} AWS client, commits in ${commitStore}, outputs ${sinks.join(', ') || 'none'}`,
    );
    const ticker = setInterval(() => {
      for (const l of lanes) log(l.progress());
    }, 30_000);
    try {
      await Promise.all(lanes.map((l) => l.run()));
    } finally {
      clearInterval(ticker);
    }
    const stats = mergeStats(lanes.map((l) => l.stats));
    await brokerFaults?.stop();
    if (outputSabotage === 'duplicate-output' && outputs) {
      await outputs.replayCaptured(direct, { pipeline: pipelineOf(0), env: {}, commitStore });
    }

    // Verification: every task read back through the public inspect path, against the oracle.
    log('verifying every task against the oracle');
    const stores: { snapshots: SnapshotStore; commits: CommitStore } = databaseStores
      ? { snapshots: new S3SnapshotStore({ client: direct.s3, bucket }), commits: databaseStores.commits }
      : createAwsStores({ bucket, table, s3: direct.s3, dynamodb: direct.dynamodb });
    const expectedOutputsByTask = new Map<string, ExpectedTask>();
    const verdicts: TaskVerdict[] = [];
    let oracleDisagreements = 0;
    let totalRecords = 0;
    let totalPoison = 0;
    let totalApplied = 0;
    for (let i = 0; i < lanesCount; i++) {
      for (const task of laneTasks[i]!) {
        const exp = expectTask(task.records);
        expectedOutputsByTask.set(groupKey(task.pipeline, task.label), {
          id: { pipeline: task.pipeline, topic: task.topic, partition: task.partition },
          outputs: expectedOutputs(exp.applications),
        });
        oracleDisagreements += exp.disagreements;
        totalRecords += task.records.length;
        totalPoison += exp.poisonOffsets.size;
        totalApplied += exp.applied;
        const v: TaskVerdict = {
          pipeline: task.pipeline,
          processor: laneProcessor(i),
          task: task.label,
          records: task.records.length,
          poison: exp.poisonOffsets.size,
          expectedOffset: exp.committedOffset.toString(),
          committedOffset: null,
          epoch: 0,
          lost: 0,
          doubled: 0,
          unexpected: 0,
          inconsistentAccounts: 0,
          quarantinedExpected: exp.poisonOffsets.size,
          quarantinedCounted: 0,
          quarantineObjectsMissing: 0,
          quarantineObjectsExtra: 0,
          appliedExpected: exp.applied,
          appliedCounted: 0,
        };
        const id = { pipeline: task.pipeline, topic: task.topic, partition: task.partition };
        try {
          const r = await inspectTask(stores, id);
          v.committedOffset = r.committedOffset;
          v.epoch = r.epoch;
          v.quarantinedCounted = r.quarantined;
          v.appliedCounted = r.applied;
          const cmp =
            laneProcessor(i) === 'ledger'
              ? compareLedger(exp.ledger, r.state.entry)
              : compareBalances(exp.balances, r.state.account);
          // The commit item's own count of applied records catches what a tombstone hides.
          v.lost = Math.max(cmp.lost, exp.applied - r.applied);
          v.doubled = Math.max(cmp.doubled, r.applied - exp.applied);
          v.unexpected = cmp.unexpected;
          v.inconsistentAccounts = cmp.inconsistentAccounts.length;
        } catch (err) {
          v.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
          v.lost = exp.applied;
        }
        const found = new Set<string>();
        for await (const o of stores.snapshots.list(quarantinePrefix(DEFAULTS.prefix, id))) {
          const m = /(\d{20})\.json$/.exec(o.key);
          if (m) found.add(BigInt(m[1]!).toString());
        }
        for (const off of exp.poisonOffsets) if (!found.has(off)) v.quarantineObjectsMissing++;
        for (const off of found) if (!exp.poisonOffsets.has(off)) v.quarantineObjectsExtra++;
        verdicts.push(v);
      }
    }
    // Every sink read back by its own reader, against the fold.
    let outputVerdicts: Partial<Record<CampaignSink, SinkVerdict>> = {};
    if (outputs) {
      log(`verifying the outputs (${sinks.join(', ')}) against the fold`);
      outputVerdicts = await outputs.verify(
        expectedOutputsByTask,
        direct,
        laneInfo.map((l) => l.pipeline),
      );
    }
    const orphanReads = [...observer.snapshotReads.keys()].filter(
      (k) => k.includes('/tasks/') && !observer.committedKeys.has(k),
    );
    const zombieOrphanReads = stats.zombieKeys.filter((k) => observer.snapshotReads.has(k));
    const sum = (f: (v: TaskVerdict) => number) => verdicts.reduce((n, v) => n + f(v), 0);
    const faultsFired = FAULT_KINDS.reduce((n, k) => n + stats.faults[k].fired, 0);
    const totals = {
      faultsFired,
      faultsSurfaced: FAULT_KINDS.reduce((n, k) => n + stats.faults[k].surfaced, 0),
      lost: sum((v) => v.lost),
      doubled: sum((v) => v.doubled),
      unexpected: sum((v) => v.unexpected),
      offsetMismatches: sum((v) => (v.committedOffset === v.expectedOffset ? 0 : 1)),
      quarantineMismatches: sum((v) =>
        v.quarantinedCounted !== v.quarantinedExpected ||
        v.quarantineObjectsMissing + v.quarantineObjectsExtra > 0
          ? 1
          : 0,
      ),
      unreadableTasks: sum((v) => (v.error ? 1 : 0)),
      oracleDisagreements,
    };
    const problems: string[] = [];
    if (totals.lost > 0) problems.push(`${totals.lost} lost record(s)`);
    if (totals.doubled > 0) problems.push(`${totals.doubled} double-applied record(s)`);
    if (totals.unexpected > 0) problems.push(`${totals.unexpected} record(s) applied that should not be`);
    if (totals.offsetMismatches > 0)
      problems.push(`${totals.offsetMismatches} task(s) with a wrong committed offset`);
    if (totals.quarantineMismatches > 0)
      problems.push(`${totals.quarantineMismatches} task(s) with wrong quarantine`);
    if (totals.unreadableTasks > 0)
      problems.push(`${totals.unreadableTasks} task(s) whose checkpoint cannot be read`);
    if (totals.oracleDisagreements > 0)
      problems.push(`${totals.oracleDisagreements} oracle/generator disagreement(s)`);
    if (orphanReads.length > 0)
      problems.push(`${orphanReads.length} snapshot(s) read that no commit ever referenced`);
    if (zombieOrphanReads.length > 0) problems.push(`${zombieOrphanReads.length} zombie snapshot(s) read`);
    if (stats.zombies.commitWon > 0)
      problems.push(`${stats.zombies.commitWon} zombie commit(s) won over a committed retry`);
    if (stats.untyped.length > 0) problems.push(`${stats.untyped.length} untyped error(s)`);
    if (stats.stuck.length > 0)
      problems.push(`${stats.stuck.length} task(s) stuck: ${stats.stuck.slice(0, 3).join('; ')}`);
    if (faultsFired < options.faults) problems.push(`only ${faultsFired} of ${options.faults} faults fired`);
    for (const v of Object.values(outputVerdicts)) problems.push(...verdictProblems(v));
    if (commitLedger.contradictions.length > 0) {
      problems.push(
        `${commitLedger.contradictions.length} epoch(s) committed twice: ${commitLedger.contradictions.slice(0, 3).join('; ')}`,
      );
    }
    const inspectedRecords = totalRecords;
    return {
      seed: options.seed,
      options: {
        faults: options.faults,
        records: options.records,
        partitions,
        lanes: lanesCount,
        processor,
        skip,
        deterministic: options.deterministic ?? false,
        commitStore,
        awsClient: options.awsClient ?? 'lite',
        outputs: sinks,
      },
      replay: replayCommand(options, lanesCount, processor, commitStore, sinks),
      durationMs: Math.round(performance.now() - started),
      lanes: laneInfo,
      records: { total: inspectedRecords, poison: totalPoison, applied: totalApplied },
      stats,
      proxy: Object.fromEntries(NET_FAULTS.map((f) => [f, s3Proxy.broken[f] + ddbProxy.broken[f]])),
      orphanReads,
      zombieOrphanReads,
      tasks: verdicts,
      outputs: outputVerdicts,
      brokerFaults: brokerCounts,
      commits: {
        epochs: verdicts.reduce((n, v) => n + v.epoch, 0),
        contradictions: commitLedger.contradictions,
      },
      totals,
      problems,
      passed: problems.length === 0,
    };
  } finally {
    await brokerFaults?.stop();
    for (const l of lanes) l.close();
    direct.s3.destroy();
    direct.dynamodb.destroy();
    await Promise.allSettled(proxies.map((p) => p.close()));
    await databaseStores?.close().catch(() => {});
    await Promise.allSettled([stack?.stop(), databaseServer?.stop(), mock?.stop()]);
  }
}
