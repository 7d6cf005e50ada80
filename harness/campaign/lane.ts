/**
 * One lane of the campaign: an event source mapping poller that owns a few tasks and delivers
 * their records to Lambda containers as the Kafka ESM does, and as it misbehaves: duplicate
 * batches, re-delivered batches with another composition, batches mixing partitions, records
 * repeated within a batch, two invocations of one batch at once, and retries after every failure
 * (on the same container when it survived, on a new one when it crashed). Each invocation may carry
 * faults (see faults.ts); the ESM only moves its position past a batch when an invocation of it
 * succeeded. Lanes are independent (their own tasks, containers and random stream) and run side by
 * side, as the ESM's pollers do.
 *
 * With outputs (outputs.ts), the processor emits for every record it applies and each container
 * delivers through its own sinks, so faults also land at every step of a delivery. With a database
 * commit store (PostgreSQL, MySQL/MariaDB, Redis), each container opens its own connections.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { balances } from '../../examples/balances.ts';
import type { BatchSummary } from '../../lib/checkpoint/epochEngine.ts';
import type { ProcessContext, Processor } from '../../lib/checkpoint/processor.ts';
import type { CommitStore } from '../../lib/checkpoint/stores.ts';
import type { CommitStoreKind, TidemarkConfig } from '../../lib/config/config.ts';
import type { AwsClientKind } from '../../lib/config/env.ts';
import { BatchFailedError, TidemarkError } from '../../lib/errors.ts';
import type { KafkaEvent, KafkaRecord, RawKafkaRecord } from '../../lib/event/types.ts';
import { createKafkaHandler, type KafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import type { OutputDescriptors, OutputHandle } from '../../lib/output/types.ts';
import type { StateDescriptors } from '../../lib/state/descriptors.ts';
import type { DatabaseStores } from '../../lib/store/database/DatabaseStores.ts';
import type { RedisStoreOptions } from '../../lib/store/database/options.ts';
import { DynamoCommitStore } from '../../lib/store/dynamodb/DynamoCommitStore.ts';
import { DeferredCommitStore, loadDatabaseStores } from '../../lib/store/runtimeStores.ts';
import { S3SnapshotStore } from '../../lib/store/s3/S3SnapshotStore.ts';
import type { SeededRandom } from '../seededRandom.ts';
import { CampaignCommitStore, type CommitLedger } from './commits.ts';
import {
  ContainerFaults,
  FAULT_KINDS,
  type FaultKind,
  gate,
  instrumentClients,
  instrumentedLiteClients,
  type ProcessorFault,
  type RequestObserver,
  type StoreFault,
  type StoreOp,
  type ZombieHold,
} from './faults.ts';
import type { CampaignTask } from './input.ts';
import { ledger } from './ledger.ts';
import type { CampaignOutput } from './outputCheck.ts';
import {
  type BrokerFaultSource,
  type CampaignOutputs,
  emitOutputs,
  type LaneOutputSettings,
  outputDescriptors,
} from './outputs.ts';

export type ProcessorName = 'balances' | 'ledger';

export const DELIVERY_KINDS = [
  'batch',
  'retry-same',
  'retry-recomposed',
  'rewind',
  'duplicate',
  'in-batch-duplicates',
  'concurrent',
  'drain',
] as const;
export type DeliveryKind = (typeof DELIVERY_KINDS)[number];

/** Socket timeouts of the campaign's clients (short, so stalls cost little wall time). */
export const CAMPAIGN_CLIENT_TIMEOUTS = {
  connectionTimeout: 1_000,
  requestTimeout: 1_500,
  // Without it the SDK only logs a warning when the request timeout is over (see the clients repro test).
  throwOnRequestTimeout: true,
} as const;

export interface FaultCounts {
  planned: number;
  fired: number;
  /** Hidden by the SDK's own retries: the engine never saw them. */
  absorbed: number;
  /** Reached the engine (a failed store call, a crash, an error from the processor, a timeout). */
  surfaced: number;
}

export interface LaneStats {
  faults: Record<FaultKind, FaultCounts>;
  deliveries: Record<DeliveryKind, number>;
  invocations: number;
  succeeded: number;
  failed: number;
  /** Failed invocations by the first error of each failed task (`BatchFailedError` unwrapped). */
  failures: Record<string, number>;
  containers: number;
  crashed: number;
  zombies: { held: number; commitLost: number; commitWon: number; noCommit: number; retryFailed: number };
  /** Attempts held mid-delivery (after their commit) while a retry delivered and moved on. */
  deliveryZombies: { held: number; resumedOk: number; resumedFailed: number };
  /** Rejections, or failed tasks, that were not Tidemark errors. */
  untyped: string[];
  /** Invocations that failed with no fault fired in them (and no concurrent twin). */
  unexplained: string[];
  /** Tasks the clean drain could not bring to their last record. */
  stuck: string[];
  /** Snapshot keys of zombies (orphans once their retry committed). */
  zombieKeys: string[];
}

export function emptyLaneStats(): LaneStats {
  const faults = Object.fromEntries(
    FAULT_KINDS.map((k) => [k, { planned: 0, fired: 0, absorbed: 0, surfaced: 0 }]),
  ) as Record<FaultKind, FaultCounts>;
  const deliveries = Object.fromEntries(DELIVERY_KINDS.map((k) => [k, 0])) as Record<DeliveryKind, number>;
  return {
    faults,
    deliveries,
    invocations: 0,
    succeeded: 0,
    failed: 0,
    failures: {},
    containers: 0,
    crashed: 0,
    zombies: { held: 0, commitLost: 0, commitWon: 0, noCommit: 0, retryFailed: 0 },
    deliveryZombies: { held: 0, resumedOk: 0, resumedFailed: 0 },
    untyped: [],
    unexplained: [],
    stuck: [],
    zombieKeys: [],
  };
}

export interface LaneOptions {
  index: number;
  rnd: SeededRandom;
  processor: ProcessorName;
  pipeline: string;
  tasks: CampaignTask[];
  /** Faults this lane must fire. */
  faultBudget: number;
  weights: Readonly<Record<FaultKind, number>>;
  /** Faults never planned: a kind (`net-stall`) or a kind at an operation (`net-stall@commit-write`). */
  skip: ReadonlySet<string>;
  bucket: string;
  table: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Where the containers' clients connect (the fault proxies). */
  endpoints: { s3: string; dynamodb: string };
  config: Partial<TidemarkConfig>;
  observer: RequestObserver;
  /** Where commits go; a database store's connection options (each container connects on its own). */
  commitStore: CommitStoreKind;
  /** The stores' client of snapshots and DynamoDB commits (sinks use the SDK clients). */
  awsClient: AwsClientKind;
  database?: RedisStoreOptions;
  /** The run's record of commits (every store). */
  commitLedger: CommitLedger;
  /** The run's outputs and this lane's choices about them; none: a state-only processor. */
  outputs?: { campaign: CampaignOutputs; settings: LaneOutputSettings };
  /** Kafka broker faults of the run (the lane triggers them now and then). */
  brokerFaults?: BrokerFaultSource & { trigger(): void };
  /** Chance per invocation that the lane triggers a broker fault. */
  brokerFaultRate?: number;
  /** Diagnostics (`--trace`): invocations, commits, deliveries. */
  trace?: (line: string) => void;
  /** Progress callback (one line per event worth telling). */
  log?: (line: string) => void;
  /**
   * Self-check of the harness (never in a real run): `lose` makes the ESM never deliver one record,
   * `double` makes the processor apply one record twice. The oracle must then report it.
   */
  sabotage?: Sabotage;
}

export type Sabotage = 'lose' | 'double';

interface Container {
  id: number;
  faults: ContainerFaults;
  handler: KafkaHandler<StateDescriptors, OutputDescriptors>;
  clients: { s3: S3Client; dynamodb: DynamoDBClient };
  /** A database commit store's connections (opened on first use). */
  database: { stores?: Promise<DatabaseStores> };
  /** Invocations running on it. */
  busy: number;
  retired: boolean;
}

interface Part {
  task: CampaignTask;
  /** Index of the first and one past the last record delivered. */
  from: number;
  to: number;
}

interface Delivery {
  kind: DeliveryKind;
  parts: Part[];
  event: KafkaEvent;
}

/** The faults of one invocation. */
interface Plan {
  store: StoreFault[];
  processor?: ProcessorFault;
  /** The call of getRemainingTimeInMillis from which no time is left. */
  timeBudgetAt?: number;
  /** The container dies after the handler resolved, before its response reaches the ESM. */
  crashBeforeReturn?: boolean;
}

interface Outcome {
  ok: boolean;
  summary?: BatchSummary;
  error?: unknown;
  /** Faults of this invocation that fired. */
  fired: number;
}

/** The processor's state, for the outputs: the account's balance and count after a record. */
function accountAfter(
  processor: ProcessorName,
  ctx: ProcessContext<StateDescriptors, OutputDescriptors>,
): { balance: number; count: number } | undefined {
  const state = ctx.state as unknown as Record<string, { get(): unknown }>;
  return state[processor === 'ledger' ? 'entry' : 'account']!.get() as
    | { balance: number; count: number }
    | undefined;
}

/**
 * The processor a container runs, with the user-function faults of its current plan, and (with
 * outputs) one output per applied record, naming the invocation that processed it.
 */
function faultyProcessor(
  inner: Processor<StateDescriptors, OutputDescriptors>,
  name: ProcessorName,
  faults: ContainerFaults,
  doubleAt?: string,
): Processor<StateDescriptors, OutputDescriptors> {
  const emits = Object.keys(inner.outputs ?? {}).length > 0;
  return {
    ...inner,
    process(record: KafkaRecord, ctx) {
      if (faults.dead) throw new TidemarkError('container is dead', { retriable: true });
      const f = faults.processor;
      if (f && !f.fired && f.task === `${ctx.topic}-${ctx.partition}` && ++f.seen === f.nth) {
        f.fired = true;
        if (f.kind === 'crash-mid-epoch') faults.kill(`crash mid-epoch ${f.task}`);
        // Retriable: the engine commits what came before and fails the invocation (no quarantine).
        throw new TidemarkError(`injected ${f.kind} at offset ${record.offset}`, { retriable: true });
      }
      inner.process(record, ctx);
      if (doubleAt === `${ctx.topic}-${ctx.partition}@${record.offset}`) inner.process(record, ctx);
      if (emits) {
        const tombstone = record.value === null;
        const after = accountAfter(name, ctx);
        const value: CampaignOutput = {
          task: `${ctx.topic}-${ctx.partition}`,
          offset: record.offset.toString(),
          account: ctx.key ?? '',
          balance: tombstone ? null : (after?.balance ?? 0),
          count: tombstone ? 0 : (after?.count ?? 0),
          inv: faults.invocation,
        };
        emitOutputs(ctx.outputs as unknown as Record<string, OutputHandle<CampaignOutput>>, value);
      }
    },
  };
}

const OPS_BY_KIND: Partial<Record<FaultKind, Partial<Record<StoreOp, number>>>> = {
  's3-error': { 'snapshot-put': 5, 'snapshot-get': 3, 'quarantine-put': 1, delete: 2, list: 0.5 },
  'ddb-error': { 'commit-write': 3, 'commit-read': 2 },
  'ddb-throttle': { 'commit-write': 3, 'commit-read': 2 },
  'sdk-timeout': { 'snapshot-put': 3, 'commit-write': 3, 'snapshot-get': 1, 'commit-read': 1, delete: 1 },
  'net-reset-request': {
    'snapshot-put': 3,
    'commit-write': 3,
    'snapshot-get': 1,
    'commit-read': 1,
    delete: 1,
  },
  'net-reset-response': {
    'snapshot-put': 3,
    'commit-write': 3,
    'snapshot-get': 1,
    'commit-read': 1,
    delete: 1,
  },
  'net-stall': { 'snapshot-put': 3, 'commit-write': 3, 'snapshot-get': 1, 'commit-read': 1 },
  latency: {
    'snapshot-put': 3,
    'commit-write': 3,
    'snapshot-get': 1,
    'commit-read': 1,
    delete: 1,
    'quarantine-put': 1,
  },
  'crash-before-snapshot-put': { 'snapshot-put': 1 },
  'crash-after-snapshot-put': { 'snapshot-put': 1 },
  'crash-before-commit': { 'commit-write': 1 },
  'crash-after-commit': { 'commit-write': 1 },
  // Deliveries: before the first write of a sink; after a data object (no manifest yet) or a Kafka
  // request (a transaction left open); after the last write (delivered, the engine never learns it).
  'crash-before-delivery': { 'output-data-put': 1, 'output-txn': 1, 'kafka-init': 1, 'kafka-marker': 0.5 },
  // SQL: the connection dies inside the commit's transaction, after the compare-and-set and some rows.
  'crash-mid-delivery': { 'output-data-put': 1, 'kafka-send': 1, 'kafka-offsets': 1, 'sql-txn': 1 },
  'crash-after-delivery': { 'output-manifest-put': 1, 'output-txn': 1, 'kafka-commit': 1 },
  'kafka-error': { 'kafka-init': 1, 'kafka-marker': 1, 'kafka-send': 2, 'kafka-offsets': 1 },
  'kafka-lost-commit': { 'kafka-commit': 1 },
  'db-error': { 'commit-write': 3, 'commit-read': 2 },
  'db-lost-response': { 'commit-write': 1 },
};
// Deliveries take the store faults too (the sinks' requests go through the same clients).
for (const [kind, ops] of [
  ['s3-error', { 'output-data-put': 2, 'output-manifest-put': 2, 'output-head': 0.5 }],
  ['ddb-error', { 'output-txn': 2 }],
  ['ddb-throttle', { 'output-txn': 2 }],
  ['sdk-timeout', { 'output-data-put': 1, 'output-manifest-put': 1, 'output-txn': 1 }],
  ['net-reset-request', { 'output-data-put': 1, 'output-manifest-put': 1, 'output-txn': 1 }],
  ['net-reset-response', { 'output-data-put': 1, 'output-manifest-put': 1, 'output-txn': 1 }],
  ['net-stall', { 'output-data-put': 1, 'output-txn': 1 }],
  ['latency', { 'output-data-put': 1, 'output-txn': 1, 'kafka-send': 1, 'kafka-commit': 1 }],
] as const) {
  OPS_BY_KIND[kind] ??= {};
  Object.assign(OPS_BY_KIND[kind], ops);
}
const READ_OPS: ReadonlySet<StoreOp> = new Set(['snapshot-get', 'commit-read']);
const COMMIT_OPS: ReadonlySet<StoreOp> = new Set(['commit-write', 'commit-read']);
/** Faults a database commit store can take (at its interface). */
const DATABASE_KINDS: ReadonlySet<FaultKind> = new Set([
  'db-error',
  'db-lost-response',
  'latency',
  'crash-before-commit',
  'crash-after-commit',
]);
const S3_OUTPUT_OPS: ReadonlySet<StoreOp> = new Set([
  'output-data-put',
  'output-manifest-put',
  'output-head',
]);
const KAFKA_OPS: ReadonlySet<StoreOp> = new Set([
  'kafka-init',
  'kafka-marker',
  'kafka-send',
  'kafka-offsets',
  'kafka-commit',
]);
/** Faults planned by kind of invocation, not by store operation. */
const NOT_BY_OP: ReadonlySet<FaultKind> = new Set([
  'time-budget',
  'crash-before-return',
  'crash-mid-epoch',
  'processor-transient',
  'zombie',
  'delivery-zombie',
]);
/** Error faults that may come in bursts long enough to exhaust the SDK's 3 attempts. */
const BURSTY: ReadonlySet<FaultKind> = new Set([
  's3-error',
  'ddb-error',
  'ddb-throttle',
  'sdk-timeout',
  'net-reset-request',
]);

export class Lane {
  readonly stats = emptyLaneStats();
  private readonly o: LaneOptions;
  private readonly rnd: SeededRandom;
  private readonly brokerRnd: SeededRandom;
  private readonly processor: Processor<StateDescriptors, OutputDescriptors>;
  /** Fault weights with the kinds this lane cannot place set to 0. */
  private readonly weights: Readonly<Record<FaultKind, number>>;
  /** Where a delivery zombie can be held (by sink). */
  private readonly deliveryHolds: StoreOp[];
  /** The ESM's position per task: index of the first record no successful invocation covered. */
  private readonly acked = new Map<string, number>();
  private pool: Container[] = [];
  /** Containers whose clients are not closed yet. */
  private all: Container[] = [];
  private nextContainerId = 0;
  private invocationCount = 0;
  private fired = 0;
  private steps = 0;
  /** Failed invocations in a row with no fault in them: the ESM would retry forever; the campaign stops. */
  private unexplainedInARow = 0;
  /** What the lane is doing right now (for the progress log). */
  activity = 'idle';
  private pendingRetry: Delivery | undefined;
  private readonly succeededEvents: Delivery[] = [];

  constructor(options: LaneOptions) {
    this.o = options;
    this.rnd = options.rnd;
    this.brokerRnd = options.rnd.derive('broker-faults');
    const base = (options.processor === 'ledger' ? ledger : balances) as unknown as Processor<
      StateDescriptors,
      OutputDescriptors
    >;
    const outputs = options.outputs
      ? outputDescriptors(options.outputs.campaign.targets, options.outputs.settings)
      : {};
    this.processor = Object.keys(outputs).length > 0 ? { ...base, outputs } : base;
    for (const t of options.tasks) this.acked.set(t.label, 0);
    const weights = { ...options.weights };
    for (const k of FAULT_KINDS) {
      if (NOT_BY_OP.has(k)) continue;
      const ops = Object.keys(OPS_BY_KIND[k] ?? {}) as StoreOp[];
      if (!ops.some((op) => this.supports(k, op))) weights[k] = 0;
    }
    this.deliveryHolds = (['kafka-send', 'output-data-put', 'output-txn'] as const).filter((op) =>
      this.supports('delivery-zombie', op),
    );
    if (this.deliveryHolds.length === 0) weights['delivery-zombie'] = 0;
    this.weights = weights;
  }

  /** Can a fault of `kind` be placed on `op` in this lane (its commit store, its sinks)? */
  private supports(kind: FaultKind, op: StoreOp): boolean {
    const sinks = this.o.outputs?.campaign.targets.sinks ?? [];
    if (COMMIT_OPS.has(op)) {
      return this.o.commitStore === 'dynamodb' ? !kind.startsWith('db-') : DATABASE_KINDS.has(kind);
    }
    if (kind.startsWith('db-')) return false;
    if (S3_OUTPUT_OPS.has(op)) return sinks.includes('s3');
    if (op === 'output-txn') {
      return (
        sinks.includes('dynamodb') &&
        (this.o.commitStore !== 'dynamodb' || this.o.outputs?.settings.inCommit === false)
      );
    }
    if (KAFKA_OPS.has(op)) return sinks.includes('kafka');
    if (op === 'sql-txn') return sinks.includes('sql');
    return true;
  }

  get faultsFired(): number {
    return this.fired;
  }

  /** The record a sabotage self-check aims at (`<task>@<offset>`: the first task's 10th deposit). */
  private sabotaged(kind: Sabotage): string | undefined {
    if (this.o.sabotage !== kind) return undefined;
    const t = this.o.tasks[0]!;
    const r = t.records.filter((x) => x.kind === 'deposit')[9] ?? t.records[0]!;
    return `${t.label}@${r.offset}`;
  }

  /** One line on where the lane stands. */
  progress(): string {
    const last = this.stats.unexplained[this.stats.unexplained.length - 1];
    return `lane ${this.o.index}: ${this.fired}/${this.o.faultBudget} faults, ${this.remainingRecords()} records to deliver, ${this.stats.invocations} invocations; now ${this.activity}${last ? `; ${this.stats.unexplained.length} failure(s) with no fault, last: ${last}` : ''}`;
  }

  private remainingRecords(): number {
    let n = 0;
    for (const t of this.o.tasks) n += t.records.length - this.acked.get(t.label)!;
    return n;
  }

  private newContainer(): Container {
    const id = this.nextContainerId++;
    const faults = new ContainerFaults(id);
    const common = {
      region: this.o.region,
      credentials: this.o.credentials,
      requestHandler: CAMPAIGN_CLIENT_TIMEOUTS,
    };
    const clients = {
      s3: new S3Client({
        ...common,
        endpoint: this.o.endpoints.s3,
        forcePathStyle: true,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      }),
      dynamodb: new DynamoDBClient({ ...common, endpoint: this.o.endpoints.dynamodb }),
    };
    const outputsPrefix = this.o.outputs?.campaign.targets.s3?.prefix;
    instrumentClients(clients, faults, this.o.observer, { outputsPrefix });
    const at = (endpoint: string) => ({ region: this.o.region, credentials: this.o.credentials, endpoint });
    const lite =
      this.o.awsClient === 'lite'
        ? instrumentedLiteClients(
            { dynamodb: at(this.o.endpoints.dynamodb), s3: at(this.o.endpoints.s3) },
            faults,
            this.o.observer,
            { outputsPrefix },
            {
              timeouts: {
                connectionTimeout: CAMPAIGN_CLIENT_TIMEOUTS.connectionTimeout,
                requestTimeout: CAMPAIGN_CLIENT_TIMEOUTS.requestTimeout,
              },
            },
          )
        : undefined;
    const database: Container['database'] = {};
    const kind = this.o.commitStore;
    const inner: CommitStore =
      kind === 'dynamodb'
        ? new DynamoCommitStore({ client: lite?.dynamodb ?? clients.dynamodb, table: this.o.table })
        : new DeferredCommitStore(kind, () => {
            database.stores ??= loadDatabaseStores(kind, this.o.database ?? {});
            return database.stores;
          });
    const stores = {
      snapshots: new S3SnapshotStore({ client: lite?.s3 ?? clients.s3, bucket: this.o.bucket }),
      commits: new CampaignCommitStore(inner, {
        faults,
        ledger: this.o.commitLedger,
        observer: this.o.observer,
        inject: kind !== 'dynamodb',
        ...(this.o.trace ? { trace: this.o.trace } : {}),
      }),
    };
    const handler = createKafkaHandler(
      faultyProcessor(this.processor, this.o.processor, faults, this.sabotaged('double')),
      {
        env: {
          TIDEMARK_BUCKET: this.o.bucket,
          TIDEMARK_TABLE: this.o.table,
          TIDEMARK_PIPELINE: this.o.pipeline,
        },
        stores,
        telemetry: false,
        config: this.o.config,
        ...(this.o.outputs ? { sinks: this.o.outputs.campaign.sinkProvider({ faults, clients }) } : {}),
      },
    );
    this.stats.containers++;
    const c: Container = { id, faults, handler, clients, database, busy: 0, retired: false };
    this.all.push(c);
    faults.onIdle = undefined;
    return c;
  }

  /** Releases what a container holds: its sinks (producers), its database connections, its clients. */
  private release(c: Container): void {
    void c.handler.runtime.engine.close().catch(() => {});
    void c.database.stores?.then((d) => d.close()).catch(() => {});
    c.clients.s3.destroy();
    c.clients.dynamodb.destroy();
  }

  /** A warm container of the pool (most of the time) or a new one (cold for every task). */
  private container(exclude?: Container): { c: Container; cold: boolean } {
    const warm = this.pool.filter((c) => c !== exclude && !c.faults.dead);
    if (warm.length > 0 && this.rnd.chance(0.75)) return { c: this.rnd.pick(warm), cold: false };
    const c = this.newContainer();
    this.pool.push(c);
    const idle = this.pool.find((x) => x !== c && x !== exclude && x.busy === 0);
    if (this.pool.length > 3 && idle) this.retire(idle);
    return { c, cold: true };
  }

  /**
   * Takes a container out of service. Its clients close once nothing of it is running any more:
   * an invocation may return while some of its requests are still on the wire (a crashed epoch's
   * quarantine PUTs), and those complete: the fault model lets requests already on the wire finish.
   */
  private retire(c: Container): void {
    this.pool = this.pool.filter((x) => x !== c);
    c.retired = true;
    if (c.busy > 0) return;
    const close = () => {
      this.release(c);
      this.all = this.all.filter((x) => x !== c);
    };
    if (c.faults.inFlight === 0) close();
    else c.faults.onIdle = close;
  }

  private eventOf(kind: DeliveryKind, parts: Part[], inBatchDuplicates = false): Delivery {
    const records: Record<string, RawKafkaRecord[]> = {};
    for (const p of parts) {
      const lost = this.sabotaged('lose');
      let raws = p.task.records
        .slice(p.from, p.to)
        .filter((r) => `${p.task.label}@${r.offset}` !== lost)
        .map((r) => r.raw);
      if (inBatchDuplicates && raws.length > 0) {
        const extra = Array.from({ length: this.rnd.int(1, 5) }, () => this.rnd.pick(raws));
        raws = this.rnd.shuffle([...raws, ...extra]);
      }
      records[p.task.label] = raws;
    }
    const msk = this.rnd.chance(0.7);
    return {
      kind,
      parts,
      event: {
        eventSource: msk ? 'aws:kafka' : 'SelfManagedKafka',
        ...(msk ? { eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/campaign/0000' } : {}),
        bootstrapServers: 'b-1.campaign.local:9092',
        records,
      },
    };
  }

  /** A batch from the ESM's position: some tasks, mixed, each from where the ESM stands. */
  private planBatch(kind: DeliveryKind): Delivery {
    const live = this.o.tasks.filter((t) => this.acked.get(t.label)! < t.records.length);
    const pool = live.length > 0 ? live : this.o.tasks;
    const chosen = this.rnd.shuffle(pool).slice(0, this.rnd.int(1, Math.min(pool.length, 4)));
    const done = this.o.tasks.filter((t) => !chosen.includes(t));
    if (done.length > 0 && this.rnd.chance(0.1)) chosen.push(this.rnd.pick(done));
    // Pace the stream so that records and faults run out together: steps still needed at the rate
    // faults have been firing so far (pessimistic, so records rather outlast the faults).
    const faultsLeft = Math.max(0, this.o.faultBudget - this.fired);
    const rate = (this.fired + 5) / (this.steps + 10);
    const stepsLeft = Math.max(1, (faultsLeft / rate) * 1.25);
    const mean =
      faultsLeft > 0 ? Math.max(1, Math.round(this.remainingRecords() / stepsLeft / chosen.length)) : 300;
    const parts = chosen.map((task) => {
      const acked = this.acked.get(task.label)!;
      // A task the ESM is through with comes back as a re-delivery of its tail.
      const rewind = kind === 'rewind' || acked >= task.records.length;
      const from = rewind ? this.rnd.int(Math.max(0, acked - 60), Math.max(0, acked - 1)) : acked;
      const size = this.rnd.chance(0.1) ? this.rnd.int(2 * mean, 6 * mean) : this.rnd.int(1, 2 * mean);
      return { task, from, to: Math.min(task.records.length, from + size) };
    });
    return this.eventOf(kind, parts, kind === 'in-batch-duplicates');
  }

  private skipped(kind: FaultKind, op?: StoreOp): boolean {
    return this.o.skip.has(kind) || (op !== undefined && this.o.skip.has(`${kind}@${op}`));
  }

  /** Tasks of a delivery with records the ESM has not seen acknowledged (so epochs will be committed). */
  private newParts(d: Delivery): Part[] {
    return d.parts.filter((p) => p.to > this.acked.get(p.task.label)!);
  }

  /** Draws the faults of one invocation. */
  private planFaults(d: Delivery, cold: boolean): Plan {
    const out: Plan = { store: [] };
    if (this.fired >= this.o.faultBudget) return out;
    const n = this.rnd.weighted({ 0: 15, 1: 50, 2: 25, 3: 10 } as Record<string, number>);
    const fresh = this.newParts(d);
    const weights = { ...this.weights, zombie: 0, 'delivery-zombie': 0 };
    for (let i = 0; i < Number(n); i++) {
      const kind = this.rnd.weighted<FaultKind>(weights);
      if (this.skipped(kind)) continue;
      if (kind === 'time-budget') {
        if (out.timeBudgetAt === undefined) {
          const records = fresh.reduce(
            (s, p) => s + p.to - Math.max(p.from, this.acked.get(p.task.label)!),
            0,
          );
          // The engine looks at the clock once per epoch and every few records.
          out.timeBudgetAt = this.rnd.int(1, 2 + Math.floor(records / 16));
          this.stats.faults[kind].planned++;
        }
        continue;
      }
      if (kind === 'crash-before-return') {
        if (!out.crashBeforeReturn) {
          out.crashBeforeReturn = true;
          this.stats.faults[kind].planned++;
        }
        continue;
      }
      if (kind === 'processor-transient' || kind === 'crash-mid-epoch') {
        if (out.processor || fresh.length === 0) continue;
        const p = this.rnd.pick(fresh);
        const records = p.to - Math.max(p.from, this.acked.get(p.task.label)!);
        out.processor = {
          kind,
          task: p.task.label,
          nth: this.rnd.int(1, Math.max(1, records)),
          seen: 0,
          fired: false,
        };
        this.stats.faults[kind].planned++;
        continue;
      }
      const ops = { ...OPS_BY_KIND[kind] };
      if (!cold) for (const op of READ_OPS) delete ops[op];
      for (const op of Object.keys(ops) as StoreOp[]) {
        if (this.skipped(kind, op) || !this.supports(kind, op)) delete ops[op];
      }
      if (Object.keys(ops).length === 0) continue;
      const op = this.rnd.weighted<StoreOp>(ops);
      const targets = READ_OPS.has(op) ? d.parts : fresh;
      if (targets.length === 0) continue;
      const task = this.rnd.pick(targets).task.label;
      const nth = this.rnd.chance(0.3) ? this.rnd.int(2, 3) : 1;
      const burst = BURSTY.has(kind) && this.rnd.chance(0.3) ? this.rnd.int(2, 3) : 1;
      for (let b = 0; b < burst; b++) {
        if (out.store.some((f) => f.op === op && f.task === task && f.nth === nth + b)) continue;
        out.store.push({
          kind,
          op,
          task,
          nth: nth + b,
          variant: kind === 'latency' ? this.rnd.int(5, 250) : this.rnd.int(0, 5),
          fired: false,
        });
        this.stats.faults[kind].planned++;
      }
    }
    return out;
  }

  private async invoke(c: Container, d: Delivery, plan: Plan, zombie?: ZombieHold): Promise<Outcome> {
    const requestId = `lane${this.o.index}-inv${++this.invocationCount}`;
    c.faults.arm(plan.store, plan.processor, zombie, requestId);
    this.activity = `${requestId} (${d.kind}) on container ${c.id}, faults: ${[...plan.store.map((f) => `${f.kind}@${f.op}#${f.nth}`), plan.processor?.kind, plan.timeBudgetAt === undefined ? undefined : 'time-budget', zombie ? 'zombie' : undefined].filter(Boolean).join(' ') || 'none'}`;
    let calls = 0;
    const context = {
      awsRequestId: requestId,
      // Deterministic: plenty of time, until the planned call (if any) finds it gone.
      getRemainingTimeInMillis: () =>
        plan.timeBudgetAt !== undefined && ++calls >= plan.timeBudgetAt ? 0 : 900_000,
    };
    this.stats.invocations++;
    this.stats.deliveries[d.kind]++;
    this.o.trace?.(
      `c${c.id} ${requestId} invoke ${d.kind} ${d.parts.map((p) => `${p.task.label}[${p.from},${p.to})`).join(' ')}; ${this.activity}`,
    );
    let outcome: Outcome;
    c.busy++;
    try {
      const summary = await c.handler(d.event, context);
      outcome = { ok: true, summary, fired: 0 };
    } catch (error) {
      outcome = { ok: false, error, fired: 0 };
    } finally {
      c.busy--;
    }
    // Tally what fired (store-fault outcomes were set by the observer middleware).
    for (const f of plan.store) {
      if (!f.fired) continue;
      outcome.fired++;
      const s = this.stats.faults[f.kind];
      s.fired++;
      if (f.outcome === 'absorbed') s.absorbed++;
      else s.surfaced++;
    }
    if (plan.processor?.fired) {
      outcome.fired++;
      this.stats.faults[plan.processor.kind].fired++;
      this.stats.faults[plan.processor.kind].surfaced++;
    }
    if (plan.timeBudgetAt !== undefined && calls >= plan.timeBudgetAt) {
      outcome.fired++;
      this.stats.faults['time-budget'].fired++;
      this.stats.faults['time-budget'].surfaced++;
    }
    if (plan.crashBeforeReturn && outcome.ok) {
      // Everything was committed, but the ESM never hears so: it will deliver the batch again.
      outcome.fired++;
      this.stats.faults['crash-before-return'].fired++;
      this.stats.faults['crash-before-return'].surfaced++;
      c.faults.kill('crash before return');
      outcome = {
        ok: false,
        fired: outcome.fired,
        error: new TidemarkError('the container died before returning'),
      };
      this.stats.failed++;
      this.stats.failures['(committed, no response)'] =
        (this.stats.failures['(committed, no response)'] ?? 0) + 1;
    } else if (outcome.ok) this.stats.succeeded++;
    else {
      this.stats.failed++;
      this.recordFailure(requestId, outcome.error);
    }
    this.fired += outcome.fired;
    this.o.trace?.(
      `c${c.id} ${requestId} ${outcome.ok ? 'succeeded' : `failed: ${outcome.error instanceof Error ? `${outcome.error.name}: ${outcome.error.message.slice(0, 300)}` : String(outcome.error)}`}${c.faults.dead ? ` (dead: ${c.faults.deathCause})` : ''}`,
    );
    if (this.o.brokerFaults && this.brokerRnd.chance(this.o.brokerFaultRate ?? 0))
      this.o.brokerFaults.trigger();
    if (c.faults.dead && !c.retired) {
      this.stats.crashed++;
      this.retire(c);
    } else if (c.retired && c.busy === 0) this.retire(c);
    return outcome;
  }

  private recordFailure(requestId: string, error: unknown): void {
    const describe = (e: unknown) =>
      e instanceof Error ? `${e.name}: ${e.message.slice(0, 300)}` : `non-error ${String(e)}`;
    if (!(error instanceof TidemarkError)) {
      this.stats.untyped.push(`${requestId}: ${describe(error)}`);
      return;
    }
    const inner = error instanceof BatchFailedError ? error.failures.map((f) => f.error) : [error];
    for (const e of inner) {
      const name = e instanceof Error ? e.name : 'non-error';
      this.stats.failures[name] = (this.stats.failures[name] ?? 0) + 1;
      if (!(e instanceof TidemarkError))
        this.stats.untyped.push(`${requestId}: task failed with ${describe(e)}`);
    }
  }

  private acknowledge(d: Delivery): void {
    for (const p of d.parts) {
      const label = p.task.label;
      this.acked.set(label, Math.max(this.acked.get(label)!, p.to));
    }
    this.succeededEvents.push(d);
    if (this.succeededEvents.length > 20) this.succeededEvents.shift();
  }

  private async settle(d: Delivery, c: Container, outcome: Outcome): Promise<void> {
    if (outcome.ok) {
      this.acknowledge(d);
      this.pendingRetry = undefined;
      this.unexplainedInARow = 0;
      return;
    }
    if (outcome.fired === 0 && !c.faults.dead && this.o.brokerFaults?.recent()) {
      this.stats.failures['(during a broker fault)'] =
        (this.stats.failures['(during a broker fault)'] ?? 0) + 1;
    } else if (outcome.fired === 0 && !c.faults.dead) {
      this.unexplainedInARow++;
      const e = outcome.error;
      this.stats.unexplained.push(
        `lane ${this.o.index} ${d.kind}: ${e instanceof Error ? `${e.name}: ${e.message.slice(0, 400)}` : String(e)}`,
      );
    }
    this.pendingRetry = d;
  }

  /** One ESM step: a delivery (maybe a retry), its faults, and what the ESM learns from it. */
  private async step(): Promise<void> {
    const faultsLeft = this.fired < this.o.faultBudget;
    if (this.pendingRetry) {
      const retry = this.pendingRetry;
      const d = this.rnd.chance(0.5)
        ? this.eventOf('retry-same', retry.parts)
        : this.planBatch('retry-recomposed');
      return this.single(d, faultsLeft);
    }
    const kind = this.rnd.weighted<DeliveryKind | 'zombie' | 'delivery-zombie'>({
      batch: 70,
      rewind: 8,
      duplicate: this.succeededEvents.length > 0 ? 6 : 0,
      'in-batch-duplicates': 5,
      concurrent: 5,
      zombie: faultsLeft && !this.skipped('zombie') ? this.weights.zombie : 0,
      'delivery-zombie': faultsLeft && !this.skipped('delivery-zombie') ? this.weights['delivery-zombie'] : 0,
    });
    if (kind === 'zombie') return this.zombie(this.planBatch('batch'), 'zombie');
    if (kind === 'delivery-zombie') return this.zombie(this.planBatch('batch'), 'delivery-zombie');
    if (kind === 'concurrent') return this.concurrent(this.planBatch('concurrent'));
    if (kind === 'duplicate') {
      const old = this.rnd.pick(this.succeededEvents);
      return this.single(this.eventOf('duplicate', old.parts), faultsLeft);
    }
    return this.single(this.planBatch(kind), faultsLeft);
  }

  private async single(d: Delivery, withFaults: boolean): Promise<void> {
    const { c, cold } = this.container();
    // A warm container still reads the tasks it does not hold (new to it, evicted, or dirty).
    const plan = withFaults ? this.planFaults(d, cold || this.rnd.chance(0.3)) : { store: [] };
    const outcome = await this.invoke(c, d, plan);
    await this.settle(d, c, outcome);
  }

  /** Two containers invoked with the same batch at once. */
  private async concurrent(d: Delivery): Promise<void> {
    const a = this.container().c;
    const b = this.container(a).c;
    const [ra, rb] = await Promise.all([this.invoke(a, d, { store: [] }), this.invoke(b, d, { store: [] })]);
    if (ra.ok || rb.ok) this.acknowledge(d);
    else this.pendingRetry = d;
  }

  /**
   * A zombie: the attempt is held while the ESM's retry runs on a new container, then it resumes.
   * `zombie`: held right before its commit of one task (its snapshot written); the retry commits,
   * so its commit must lose and its snapshot (an orphan) must never be loaded. `delivery-zombie`:
   * held in the middle of a delivery of one task (a Kafka transaction open, an S3 data object
   * written, a DynamoDB delivery transaction applied), after its commit; the retry delivers the
   * same epoch and moves on, and what the zombie does next must change no output.
   */
  private async zombie(d: Delivery, kind: 'zombie' | 'delivery-zombie'): Promise<void> {
    const fresh = this.newParts(d);
    if (fresh.length === 0) return this.single(d, true);
    const target = this.rnd.pick(fresh).task.label;
    const op: StoreOp = kind === 'zombie' ? 'commit-write' : this.rnd.pick(this.deliveryHolds);
    const hold: ZombieHold = { task: target, op, reached: gate(), resume: gate() };
    this.stats.faults[kind].planned++;
    const a = this.container().c;
    const pa = this.invoke(a, d, { store: [] }, hold);
    const first = await Promise.race([
      hold.reached.wait.then(() => 'held' as const),
      pa.then(() => 'done' as const),
    ]);
    if (first === 'done') {
      await this.settle(d, a, await pa);
      return;
    }
    if (kind === 'zombie') this.stats.zombies.held++;
    else this.stats.deliveryZombies.held++;
    this.stats.faults[kind].fired++;
    this.stats.faults[kind].surfaced++;
    this.fired++;
    if (hold.key && kind === 'zombie') this.stats.zombieKeys.push(hold.key);
    const b = this.newContainer();
    this.pool.push(b);
    const rb = await this.invoke(b, this.eventOf('retry-same', d.parts), { store: [] });
    hold.resume.open();
    const ra = await pa;
    if (!rb.ok) this.stats.zombies.retryFailed++;
    if (kind === 'delivery-zombie') {
      if (ra.ok) this.stats.deliveryZombies.resumedOk++;
      else this.stats.deliveryZombies.resumedFailed++;
    } else if (hold.commit === 'lost') this.stats.zombies.commitLost++;
    else if (hold.commit === 'won') {
      // Only a violation when the retry committed the task first.
      if (rb.ok) this.stats.zombies.commitWon++;
    } else this.stats.zombies.noCommit++;
    if (ra.ok || rb.ok) this.acknowledge(d);
    else this.pendingRetry = d;
  }

  /**
   * Runs the lane: faulty steps until its fault budget fired and its records were delivered (or a
   * step limit is reached: a run whose skip list leaves no fault that can fire must end too).
   */
  async run(maxSteps = 50 * this.o.faultBudget + 10_000): Promise<void> {
    let steps = 0;
    let lastReport = 0;
    while (
      (this.fired < this.o.faultBudget || this.remainingRecords() > 0) &&
      steps < maxSteps &&
      this.unexplainedInARow < 20
    ) {
      await this.step();
      steps++;
      this.steps++;
      if (this.o.log && this.fired - lastReport >= 250) {
        lastReport = this.fired;
        this.o.log(this.progress());
      }
    }
    this.activity = 'draining';
    await this.drain();
    this.activity = 'done';
  }

  /**
   * The ESM keeps retrying until every task is through: clean invocations, each on a new container
   * (cold restores from the stores), until each task's last record is acknowledged.
   */
  private async drain(): Promise<void> {
    let failures = 0;
    this.pendingRetry = undefined;
    while (this.remainingRecords() > 0 && failures < 8) {
      const parts = this.o.tasks
        .filter((t) => this.acked.get(t.label)! < t.records.length)
        .map((task) => {
          const from = this.acked.get(task.label)!;
          return { task, from, to: Math.min(task.records.length, from + 500) };
        });
      const d = this.eventOf('drain', parts);
      const c = this.newContainer();
      const outcome = await this.invoke(c, d, { store: [] });
      this.retire(c);
      if (outcome.ok) this.acknowledge(d);
      else {
        failures++;
        await this.settle(d, c, outcome);
      }
    }
    for (const t of this.o.tasks) {
      if (this.acked.get(t.label)! < t.records.length) {
        this.stats.stuck.push(
          `${this.o.pipeline}/${t.label} at record ${this.acked.get(t.label)} of ${t.records.length}`,
        );
      }
    }
  }

  /** Closes every container's clients (in-flight requests included: the run is over). */
  close(): void {
    for (const c of this.all) this.release(c);
    this.all = [];
    this.pool = [];
  }
}
