/**
 * The Iceberg sink's fault campaign: a seeded stream per partition, delivered as the Kafka ESM does
 * (batches of several partitions, retries that start again from the acknowledged offset with another
 * composition, rewinds, duplicate deliveries on two containers at once) to real handlers
 * (`createKafkaHandler`) whose processor emits rows to an `icebergOutput`, on DynamoDB Local and the
 * S3 server, while scheduled committers (`createIcebergCommitter`) run beside them and race. The
 * table's catalog is Iceberg's DynamoDB catalog (default), the S3 Hadoop layout or the REST
 * catalog stand-in (harness/servers/icebergRest.ts).
 *
 * Faults, one planned list drawn from the seed (a planned fault that found nothing to hit goes back
 * to the list, so the count fired is the count asked for):
 *
 *   - pipeline containers: dying before or after the snapshot PUT or the commit write, store
 *     errors and a commit whose response is lost, dying before the first data file PUT, after one
 *     (the others on the wire complete), before or after the staged-epoch record's PUT, S3 errors
 *     and lost S3 responses on the sink's requests, zombies paused at their commit (a retry commits;
 *     they lose) and zombies paused between their commit and their delivery (a retry delivers, a
 *     committer commits and cleans up; then the zombie stages the epoch again), duplicate
 *     deliveries and cold starts;
 *   - committers: dying after writing manifests and before the swap, right after writing the new
 *     metadata file, right after the swap, before deleting the staged records (each followed by
 *     another committer taking over), the swap's response lost (it landed), an unknown outcome (it
 *     did not), the DynamoDB SDK retrying an UpdateItem that landed (its condition then fails against
 *     its own write), another engine committing just before the swap (a real conflict), S3 errors on
 *     the committer's requests, the conditional PUT of a new metadata file answered 409 while its
 *     first attempt is still being written (S3's answer to an SDK retry that meets it), two or three committers racing on the same staged epochs (held until
 *     all have prepared on the same table version, so the race is certain), and a committer paused
 *     before its swap while another commits, then resumed.
 *
 * A dead container never runs anything again: every later call of its stores, file IO and catalog
 * waits forever; requests already on the wire complete. A third of the committers also expire
 * snapshots (keeping 3), so expiration commits race too.
 *
 * Judged at the end, after clean committer runs: the table is read by icebird (an Iceberg reader no
 * one here wrote: metadata, manifests, Parquet) and its data files by DuckDB, and compared with an
 * independent fold of the input:
 *
 *   - every applied record's row exactly once: **lost** and **duplicated** rows counted separately,
 *     rows with wrong values (the running balance per account shows a record applied twice upstream);
 *   - **rows from uncommitted attempts**: every row carries the id of the invocation that produced
 *     it; it must be the one whose commit (recorded as it landed in DynamoDB) covers the row's offset;
 *   - no staged epoch left, every task's commit at the end of its input, DuckDB agreeing with icebird.
 */
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { BatchSummary } from '../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import type { CommitRecord, CommitStore, TaskId } from '../../lib/checkpoint/stores.ts';
import { PoisonRecordError, StoreError } from '../../lib/errors.ts';
import { buildEvent, deliveredOffset, encodeRecord } from '../../lib/event/encode.ts';
import type { RawKafkaRecord } from '../../lib/event/types.ts';
import { createKafkaHandler, type KafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import type { OutputDescriptor } from '../../lib/output/types.ts';
import type { IcebergCatalog, LoadedTable, TableIdentifier } from '../../lib/sink/iceberg/catalog.ts';
import {
  createIcebergCommitter,
  type IcebergCommitRun,
  type IcebergCommitterHandler,
} from '../../lib/sink/iceberg/committerHandler.ts';
import { DynamoDbIcebergCatalog } from '../../lib/sink/iceberg/DynamoDbIcebergCatalog.ts';
import { type IcebergFileIO, S3FileIO } from '../../lib/sink/iceberg/fileIO.ts';
import { icebergOutput } from '../../lib/sink/iceberg/icebergOutput.ts';
import { RestIcebergCatalog } from '../../lib/sink/iceberg/RestIcebergCatalog.ts';
import { S3HadoopCatalog } from '../../lib/sink/iceberg/S3HadoopCatalog.ts';
import { defineIcebergTable } from '../../lib/sink/iceberg/schema.ts';
import { valueState } from '../../lib/state/descriptors.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { createAwsStores } from '../../lib/store/stores.ts';
import { ContainerStores, type CrashPoint, type StoreFaultPoint } from '../faultyStores.ts';
import { queryParquetWithDuckDB, readIcebergOutput } from '../iceberg.ts';
import { SeededRandom } from '../seededRandom.ts';
import { type RestCatalogStandIn, startRestCatalog } from '../servers/icebergRest.ts';

export const ICEBERG_PIPELINE_FAULTS = [
  'crash-before-snapshot-put',
  'crash-after-snapshot-put',
  'crash-before-commit',
  'crash-after-commit',
  'store-error',
  'crash-before-data-put',
  'crash-mid-data-put',
  'crash-before-stage',
  'crash-after-stage',
  's3-error',
  's3-lost-response',
  'zombie-commit',
  'zombie-deliver',
  'duplicate',
  'cold-start',
] as const;
export type IcebergPipelineFault = (typeof ICEBERG_PIPELINE_FAULTS)[number];

export const ICEBERG_COMMITTER_FAULTS = [
  'committer-crash-before-swap',
  'committer-crash-after-metadata',
  'committer-crash-after-swap',
  'committer-crash-before-cleanup',
  'committer-lost-response',
  'committer-unknown-outcome',
  'committer-sdk-retry',
  'catalog-conflict',
  'committer-s3-error',
  'committer-put-in-flight',
  'committer-race',
  'committer-zombie',
] as const;
export type IcebergCommitterFault = (typeof ICEBERG_COMMITTER_FAULTS)[number];
export type IcebergFault = IcebergPipelineFault | IcebergCommitterFault;

export const ICEBERG_CAMPAIGN_CATALOGS = ['dynamodb', 's3', 'rest'] as const;
export type IcebergCampaignCatalog = (typeof ICEBERG_CAMPAIGN_CATALOGS)[number];

export interface IcebergCampaignOptions {
  seed: number;
  /** Partitions (tasks). */
  partitions: number;
  /** Faults to fire in all (pipeline and committers). */
  faults: number;
  /** Records per partition at least (the stream goes on while planned faults are left). Default 60. */
  minRecords?: number;
  /** Share of pipeline invocations carrying a fault. Default 0.4. */
  faultRate?: number;
  /** Share of the planned faults that are the committers'. Default 0.3. */
  committerShare?: number;
  /** The table's catalog. Default `dynamodb`. */
  catalog?: IcebergCampaignCatalog;
  /** Servers (the standard AWS variables plus TIDEMARK_BUCKET / TIDEMARK_TABLE). */
  env: Readonly<Record<string, string | undefined>>;
  log?: (line: string) => void;
  /**
   * Self-check of the judge: the rows icebird read are altered before judging (one row dropped, one
   * row twice, one row attributed to an invocation that did not commit it); the report must show it.
   */
  sabotage?: 'lose-row' | 'duplicate-row' | 'uncommitted-row';
}

export interface IcebergCampaignReport {
  seed: number;
  catalog: IcebergCampaignCatalog;
  partitions: number;
  records: number;
  poison: number;
  durationMs: number;
  invocations: { total: number; ok: number; failed: number; crashed: number; containers: number };
  deliveries: { batches: number; rewinds: number; multiPartition: number };
  committer: {
    runs: number;
    ok: number;
    failed: number;
    crashed: number;
    takeovers: number;
    races: number;
    /** Swaps that met a conflict (attempts beyond the first, summed). */
    retriedAttempts: number;
    snapshots: number;
    epochsCommitted: number;
    cleaned: number;
    expiredSnapshots: number;
    foreignCommits: number;
  };
  faults: Record<IcebergFault, number>;
  faultsPlanned: number;
  faultsFired: number;
  /** Planned faults that never found anything to hit (dropped at the end). */
  faultsUnfired: number;
  rowsExpected: number;
  rowsRead: number;
  lost: number;
  duplicated: number;
  wrong: number;
  uncommitted: number;
  duckdbAgrees: boolean;
  /** The committers stopped making progress (25 failed runs in a row): the run was cut short. */
  wedged: boolean;
  /** Why the table could not be read, if it could not. */
  readError?: string;
  stagedLeft: number;
  unfinishedTasks: number;
  snapshotsInTable: number;
  dataFiles: number;
  passed: boolean;
  replay: string;
}

const TOPIC = 'deposits.v1-eu';
const NAMESPACE = 'campaign';
const TABLE_NAME = 'movements';
const CLUSTER =
  'arn:aws:kafka:us-east-1:123456789012:cluster/campaign/00000000-0000-0000-0000-000000000000-1';
const T0 = 1_780_000_000_000;
const ACCOUNTS = 9;
const NEVER = new Promise<never>(() => {});

const schema = defineIcebergTable({
  columns: [
    { name: 'account', type: 'string', required: true },
    { name: 'part', type: 'int', required: true },
    { name: 'offset', type: 'long', required: true },
    { name: 'amount', type: 'long', required: true },
    { name: 'balance', type: 'long', required: true },
    { name: 'ts', type: 'timestamptz', required: true },
    { name: 'attempt', type: 'string', required: true },
  ],
  partitionBy: [{ column: 'account', transform: 'bucket[3]' }],
});

interface Row {
  account: string;
  part: number;
  offset: bigint;
  amount: number;
  balance: number;
  ts: Date;
  attempt: string;
}

interface Input {
  key: string;
  /** A JSON deposit, or a value that is not JSON (poison). */
  value: string;
}

function nextInput(r: SeededRandom): Input {
  const key = `acct-${r.int(0, ACCOUNTS - 1)}`;
  if (r.chance(0.03)) return { key, value: `not json ${r.int(0, 99)}` };
  return { key, value: JSON.stringify({ amount: r.int(-500, 1000) }) };
}

/** The processor of one container: rows carry the id of the invocation that produced them. */
function ledger(output: OutputDescriptor<Row>, attempt: () => string) {
  return defineProcessor({
    state: { balance: valueState<number>() },
    outputs: { rows: output },
    poisonPolicy: 'quarantine',
    process(record, { state, outputs, key }) {
      let amount: number;
      try {
        amount = (JSON.parse(record.value!.toString('utf8')) as { amount: number }).amount;
      } catch {
        throw new PoisonRecordError('value is not JSON');
      }
      const balance = (state.balance.get() ?? 0) + amount;
      state.balance.set(balance);
      outputs.rows.emit({
        account: key!,
        part: record.partition,
        offset: record.offset,
        amount,
        balance,
        ts: new Date(record.timestamp),
        attempt: attempt(),
      });
    },
  });
}

class Gate {
  private release!: () => void;
  readonly opened = new Promise<void>((r) => {
    this.release = r;
  });
  private reachedResolve!: () => void;
  readonly reached = new Promise<void>((r) => {
    this.reachedResolve = r;
  });
  isReached = false;
  arrive(): Promise<void> {
    this.isReached = true;
    this.reachedResolve();
    return this.opened;
  }
  open(): void {
    this.release();
  }
}

/** The file IO with at most `n` GETs at once (the judge downloads every data file). */
function limited(io: IcebergFileIO, n: number): IcebergFileIO {
  let active = 0;
  const queue: Array<() => void> = [];
  return {
    put: (uri, body, options) => io.put(uri, body, options),
    list: (prefix) => io.list(prefix),
    delete: (uris) => io.delete(uris),
    get: async (uri) => {
      if (active >= n) await new Promise<void>((r) => queue.push(r));
      active++;
      try {
        return await io.get(uri);
      } finally {
        active--;
        queue.shift()?.();
      }
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How a file IO request is classified for faults. */
type IoOp =
  | 'data-put'
  | 'stage-put'
  | 'stage-get'
  | 'metadata-put'
  | 'manifest-put'
  | 'other-put'
  | 'other-get'
  | 'list'
  | 'delete-staged'
  | 'delete';

function classifyPut(uri: string, ifAbsent: boolean): IoOp {
  if (uri.endsWith('.parquet')) return 'data-put';
  if (uri.includes('/staged/')) return ifAbsent ? 'stage-put' : 'other-put';
  if (uri.endsWith('.metadata.json')) return 'metadata-put';
  if (uri.endsWith('.avro')) return 'manifest-put';
  return 'other-put';
}

function injectedS3Error(op: string): StoreError {
  return new StoreError('s3', op, 'InternalError: We encountered an internal error (injected)', {
    retriable: true,
  });
}

/** Something that can die: every call made after its death waits forever. */
abstract class Mortal {
  dead = false;
  private dieResolve!: () => void;
  readonly died = new Promise<void>((r) => {
    this.dieResolve = r;
  });

  kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.dieResolve();
    this.onKill();
  }

  protected onKill(): void {}

  /** Runs `call` unless dead; a result coming back after death is never seen. */
  async guard<T>(call: () => Promise<T>): Promise<T> {
    if (this.dead) return NEVER;
    const out = await call();
    if (this.dead) return NEVER;
    return out;
  }
}

/** A catalog whose calls stop when its owner died; `commitTable` goes through `swap` (the faults). */
function mortalCatalog(
  owner: Mortal,
  inner: IcebergCatalog,
  swap?: (
    base: LoadedTable,
    commit: () => ReturnType<IcebergCatalog['commitTable']>,
  ) => ReturnType<IcebergCatalog['commitTable']>,
): IcebergCatalog {
  return {
    ...(inner.managesMetadataFiles ? { managesMetadataFiles: true } : {}),
    loadTable: (id) => owner.guard(() => inner.loadTable(id)),
    defaultLocation: (id) => owner.guard(() => inner.defaultLocation(id)),
    createTable: (id, m) => owner.guard(() => inner.createTable(id, m)),
    commitTable: (base, m) => {
      const commit = () => owner.guard(() => inner.commitTable(base, m));
      return swap ? owner.guard(() => swap(base, commit)) : commit();
    },
  };
}

type PipelineArm =
  | { kind: 'engine-crash'; point: CrashPoint; fault: IcebergPipelineFault }
  | { kind: 'engine-error'; point: StoreFaultPoint }
  | {
      kind: 'crash-before-data-put' | 'crash-mid-data-put' | 'crash-before-stage' | 'crash-after-stage';
    }
  | { kind: 's3-error'; op: IoOp }
  | { kind: 's3-lost-response'; op: IoOp }
  | { kind: 'hold-commit'; gate: Gate }
  | { kind: 'hold-deliver'; gate: Gate };

interface LandedCommit {
  epoch: number;
  committedOffset: bigint;
  attempt: string;
}

/** Shared by every container and committer of a run. */
interface World {
  pipeline: string;
  env: Readonly<Record<string, string | undefined>>;
  io: S3FileIO;
  /** A fresh catalog over the given file IO (the campaign's catalog kind; DynamoDB: its own client if given). */
  catalog: (io: IcebergFileIO, ddb?: DynamoDBClient) => IcebergCatalog;
  /** A DynamoDB client of its own (a committer container's), when the catalog is DynamoDB's. */
  newDynamoClient: (() => DynamoDBClient) | undefined;
  /** Landed engine commits per partition, in epoch order. */
  landed: Map<number, LandedCommit[]>;
  baseStores: ReturnType<typeof createAwsStores>;
}

const outputOptions = { table: `${NAMESPACE}.${TABLE_NAME}`, schema, maxRowsPerFile: 6 } as const;

/** A pipeline container: a handler over the real stores and an Iceberg output, both wrapped for faults. */
class PipelineContainer extends Mortal {
  readonly id: string;
  readonly handler: KafkaHandler;
  readonly stores: ContainerStores;
  busy = false;
  invocation = '';
  private arm: PipelineArm | undefined;
  fired: IcebergPipelineFault | undefined;
  private commitGate: Gate | undefined;

  constructor(
    world: World,
    id: string,
    config: { epochMaxRecords: number; inline: boolean; concurrency: number },
  ) {
    super();
    this.id = id;
    const self = this;
    const recording: CommitStore = {
      kind: world.baseStores.commits.kind,
      read: (task) => world.baseStores.commits.read(task),
      async commit(next: CommitRecord, expected, attached) {
        const gate = self.commitGate;
        if (gate) {
          self.commitGate = undefined;
          self.fired = 'zombie-commit';
          await gate.arrive();
        }
        const attempt = self.invocation;
        await world.baseStores.commits.commit(next, expected, attached);
        if (next.epoch > expected) {
          const list = world.landed.get(next.partition) ?? [];
          list.push({ epoch: next.epoch, committedOffset: next.committedOffset, attempt });
          world.landed.set(next.partition, list);
        }
      },
      list: (p) => world.baseStores.commits.list(p),
      probe: () => world.baseStores.commits.probe(),
    };
    this.stores = new ContainerStores({ snapshots: world.baseStores.snapshots, commits: recording });
    const io: IcebergFileIO = {
      put: (uri, body, o) =>
        this.io(classifyPut(uri, o?.ifAbsent === true), () => world.io.put(uri, body, o)),
      get: (uri) => this.io(uri.includes('/staged/') ? 'stage-get' : 'other-get', () => world.io.get(uri)),
      list: (prefix) => this.io('list', () => world.io.list(prefix)),
      delete: (uris) => this.io('delete', () => world.io.delete(uris)),
    };
    const catalog = mortalCatalog(this, world.catalog(io));
    const output = icebergOutput<Row>({ ...outputOptions, io, catalog: () => catalog });
    this.handler = createKafkaHandler(
      ledger(output, () => this.invocation),
      {
        env: {},
        config: {
          bucket: world.env.TIDEMARK_BUCKET!,
          table: world.env.TIDEMARK_TABLE!,
          pipeline: world.pipeline,
          epochMaxRecords: config.epochMaxRecords,
          taskConcurrency: config.concurrency,
          ...(config.inline ? {} : { snapshotInlineMaxBytes: 0 }),
        },
        stores: { snapshots: this.stores.snapshots, commits: this.stores.commits },
        telemetry: false,
      },
    ) as unknown as KafkaHandler;
  }

  protected override onKill(): void {
    this.stores.freeze();
  }

  private async io<T>(op: IoOp, call: () => Promise<T>): Promise<T> {
    if (this.dead) return NEVER;
    const a = this.arm;
    const fire = (f: IcebergPipelineFault) => {
      this.arm = undefined;
      this.fired = f;
    };
    if (a) {
      if (a.kind === 'hold-deliver' && op === 'stage-get') {
        fire('zombie-deliver');
        await a.gate.arrive();
      } else if (a.kind === 's3-error' && a.op === op) {
        fire('s3-error');
        throw injectedS3Error(op);
      } else if (a.kind === 's3-lost-response' && a.op === op) {
        fire('s3-lost-response');
        await call();
        throw injectedS3Error(op);
      } else if (
        (a.kind === 'crash-before-data-put' && op === 'data-put') ||
        (a.kind === 'crash-before-stage' && op === 'stage-put')
      ) {
        fire(a.kind);
        this.kill();
        return NEVER;
      } else if (
        (a.kind === 'crash-mid-data-put' && op === 'data-put') ||
        (a.kind === 'crash-after-stage' && op === 'stage-put')
      ) {
        fire(a.kind);
        await call();
        this.kill();
        return NEVER;
      }
    }
    return this.guard(call);
  }

  /** One invocation; resolves with its outcome, or 'crashed' if the container died during it. */
  async invoke(event: unknown, invocation: string, arm?: PipelineArm): Promise<'ok' | 'failed' | 'crashed'> {
    this.busy = true;
    this.invocation = invocation;
    this.arm = arm;
    this.fired = undefined;
    if (arm?.kind === 'engine-crash') {
      void this.stores.armCrash(arm.point).then(() => {
        this.fired = arm.fault;
        this.kill();
      });
    } else if (arm?.kind === 'engine-error') {
      void this.stores.armError(arm.point).then(() => {
        this.fired = 'store-error';
      });
    } else if (arm?.kind === 'hold-commit') this.commitGate = arm.gate;
    const outcome = this.handler(event, { awsRequestId: invocation }).then(
      (_summary: BatchSummary) => 'ok' as const,
      () => 'failed' as const,
    );
    const r = await Promise.race([outcome, this.died.then(() => 'crashed' as const)]);
    this.arm = undefined;
    this.commitGate = undefined;
    this.stores.disarm();
    this.busy = false;
    return r;
  }
}

type CommitterArm =
  | { kind: 'crash-before-swap' | 'crash-after-swap' | 'lost-response' | 'unknown-outcome' | 'conflict' }
  | { kind: 'crash-after-metadata' | 'crash-before-cleanup' }
  | { kind: 'put-in-flight'; lands: boolean }
  | { kind: 's3-error'; op: IoOp }
  | { kind: 'sdk-retry'; superseded: boolean }
  | { kind: 'hold'; gate: Gate };

/** All racers wait at their first swap until every racer still running has arrived. */
class Barrier {
  private waiting = 0;
  private pending: number;
  private readonly gate = new Gate();
  constructor(n: number) {
    this.pending = n;
  }
  arrive(): Promise<void> {
    this.waiting++;
    this.check();
    return this.gate.opened;
  }
  leave(): void {
    this.pending--;
    this.check();
  }
  private check(): void {
    if (this.waiting >= this.pending) this.gate.open();
  }
}

/** A committer container: `createIcebergCommitter` over a faulty file IO and catalog. */
class CommitterContainer extends Mortal {
  readonly id: string;
  readonly handler: IcebergCommitterHandler;
  busy = false;
  private arm: CommitterArm | undefined;
  fired: IcebergCommitterFault | undefined;
  barrier: Barrier | undefined;
  private arrived = false;
  /** Armed by `sdk-retry`: the next catalog UpdateItem that lands answers as lost, and the SDK retries it. */
  private sdkRetry: { superseded: boolean; id: TableIdentifier } | undefined;
  lastRun: IcebergCommitRun | undefined;
  private readonly world: World;
  private readonly ddb: DynamoDBClient | undefined;
  foreignCommits = 0;

  constructor(world: World, id: string, expire: boolean) {
    super();
    this.id = id;
    this.world = world;
    const io: IcebergFileIO = {
      put: (uri, body, o) =>
        this.io(classifyPut(uri, o?.ifAbsent === true), () => world.io.put(uri, body, o)),
      get: (uri) => this.io(uri.includes('/staged/') ? 'stage-get' : 'other-get', () => world.io.get(uri)),
      list: (prefix) => this.io('list', () => world.io.list(prefix)),
      delete: (uris) =>
        this.io(uris.some((u) => u.includes('/staged/')) ? 'delete-staged' : 'delete', () =>
          world.io.delete(uris),
        ),
    };
    this.ddb = world.newDynamoClient?.();
    if (this.ddb) this.installSdkRetry(this.ddb);
    const catalog = mortalCatalog(this, world.catalog(io, this.ddb), (base, commit) =>
      this.swap(base, commit),
    );
    const output = icebergOutput<Row>({ ...outputOptions, io, catalog: () => catalog });
    this.handler = createIcebergCommitter([output as OutputDescriptor], {
      env: world.env,
      pipeline: world.pipeline,
      expire: expire ? { maxSnapshotAgeMs: 0, minSnapshotsToKeep: 3, minExpired: 3 } : false,
      log: (entry) => {
        this.lastRun = entry as unknown as IcebergCommitRun;
      },
    });
  }

  /** The committer's catalog UpdateItem, when armed, lands and then loses its response: the SDK retries it. */
  private installSdkRetry(client: DynamoDBClient): void {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (this.dead) return NEVER;
        const out = await next(args);
        const armed = this.sdkRetry;
        if (armed && (context as { commandName?: string }).commandName === 'UpdateItemCommand') {
          this.sdkRetry = undefined;
          this.fired = 'committer-sdk-retry';
          // Sometimes another writer commits on top before the SDK's retry goes out.
          if (armed.superseded) await this.foreignCommit(armed.id);
          // Retriable for the SDK: it sends the request again, whose condition now fails against
          // the write its first attempt made.
          throw Object.assign(new Error('read ECONNRESET (injected after the write)'), {
            name: 'TimeoutError',
            code: 'ECONNRESET',
            $metadata: {},
          });
        }
        return out;
      },
      // After the retry middleware: each SDK attempt passes here.
      { step: 'finalizeRequest', name: 'icebergCampaignSdkRetry', priority: 'low' },
    );
  }

  /** Releases the committer's own client. */
  close(): void {
    this.ddb?.destroy();
  }

  private async io<T>(op: IoOp, call: () => Promise<T>): Promise<T> {
    if (this.dead) return NEVER;
    const a = this.arm;
    if (a) {
      if (a.kind === 's3-error' && a.op === op) {
        this.arm = undefined;
        this.fired = 'committer-s3-error';
        throw injectedS3Error(op);
      }
      if (a.kind === 'crash-before-cleanup' && op === 'delete-staged') {
        this.arm = undefined;
        this.fired = 'committer-crash-before-cleanup';
        this.kill();
        return NEVER;
      }
      if (a.kind === 'put-in-flight' && op === 'metadata-put') {
        // The conditional PUT of the new metadata file timed out on the client while S3 was still
        // writing it; the SDK's retry meets the first attempt in flight and S3 answers it 409
        // ConditionalRequestConflict, which the file IO reports as "exists". The first attempt
        // lands a moment later, or never (its body was cut short: S3 keeps no object).
        this.arm = undefined;
        this.fired = 'committer-put-in-flight';
        if (a.lands)
          void sleep(300)
            .then(call)
            .catch(() => undefined);
        return false as T;
      }
      if (a.kind === 'crash-after-metadata' && op === 'metadata-put') {
        this.arm = undefined;
        this.fired = 'committer-crash-after-metadata';
        await call();
        this.kill();
        return NEVER;
      }
    }
    return this.guard(call);
  }

  /** The catalog swap, with this committer's fault. */
  private async swap(
    base: LoadedTable,
    commit: () => ReturnType<IcebergCatalog['commitTable']>,
  ): ReturnType<IcebergCatalog['commitTable']> {
    if (this.barrier && !this.arrived) {
      this.arrived = true;
      await this.barrier.arrive();
    }
    const a = this.arm;
    if (!a) return commit();
    const fire = (f: IcebergCommitterFault) => {
      this.arm = undefined;
      this.fired = f;
    };
    switch (a.kind) {
      case 'hold':
        fire('committer-zombie');
        await a.gate.arrive();
        return commit();
      case 'crash-before-swap':
        fire('committer-crash-before-swap');
        this.kill();
        return NEVER;
      case 'crash-after-swap': {
        const out = await commit();
        if (out.status !== 'committed') return out; // only a swap that landed counts
        fire('committer-crash-after-swap');
        this.kill();
        return NEVER;
      }
      case 'lost-response': {
        const out = await commit();
        if (out.status !== 'committed') return out;
        fire('committer-lost-response');
        throw Object.assign(new Error('socket hang up after the swap (injected)'), { retriable: true });
      }
      case 'unknown-outcome':
        fire('committer-unknown-outcome');
        throw Object.assign(new Error('503 before the swap (injected)'), { retriable: true });
      case 'conflict': {
        fire('catalog-conflict');
        await this.foreignCommit(base.identifier);
        return commit();
      }
      case 'sdk-retry':
        this.arm = undefined;
        this.sdkRetry = { superseded: a.superseded, id: base.identifier };
        try {
          return await commit();
        } finally {
          this.sdkRetry = undefined;
        }
      default:
        return commit();
    }
  }

  /** Another engine's commit (a table property changes), through a clean catalog. */
  private async foreignCommit(id: TableIdentifier): Promise<void> {
    const catalog = this.world.catalog(this.world.io);
    const current = await catalog.loadTable(id);
    if (!current) return;
    const n = Number(current.metadata.properties?.['campaign.foreign-commits'] ?? 0) + 1;
    const now = Date.now();
    const out = await catalog.commitTable(current, {
      ...current.metadata,
      'last-updated-ms': now,
      properties: { ...current.metadata.properties, 'campaign.foreign-commits': String(n) },
      'metadata-log': [
        ...(current.metadata['metadata-log'] ?? []),
        { 'metadata-file': current.metadataLocation, 'timestamp-ms': current.metadata['last-updated-ms'] },
      ],
    });
    if (out.status === 'committed') this.foreignCommits++;
  }

  /** One run; 'crashed' if the container died during it. */
  async run(arm?: CommitterArm, barrier?: Barrier): Promise<'ok' | 'failed' | 'crashed'> {
    this.busy = true;
    this.arm = arm;
    this.fired = undefined;
    this.lastRun = undefined;
    this.barrier = barrier;
    this.arrived = false;
    const outcome = this.handler().then(
      () => 'ok' as const,
      () => 'failed' as const,
    );
    const r = await Promise.race([outcome, this.died.then(() => 'crashed' as const)]);
    if (barrier && !this.arrived) barrier.leave();
    this.barrier = undefined;
    this.arm = undefined;
    this.busy = false;
    return r;
  }
}

/** The catalog of the run, on its own file IO. */
async function catalogFactory(
  kind: IcebergCampaignCatalog,
  env: Readonly<Record<string, string | undefined>>,
  io: S3FileIO,
  ddb: DynamoDBClient,
  run: string,
): Promise<{
  catalog: World['catalog'];
  newDynamoClient: World['newDynamoClient'];
  readEnv: Record<string, string | undefined>;
  close: () => Promise<void>;
}> {
  const bucket = env.TIDEMARK_BUCKET!;
  const warehouse = `s3://${bucket}/iceberg-campaign/${run}`;
  if (kind === 'dynamodb') {
    const tableName = `iceberg-campaign-${run}`;
    const setup = new DynamoDbIcebergCatalog({ client: ddb, io, warehouse, tableName });
    await setup.ensureCatalogTable();
    return {
      catalog: (fileIo, client) => {
        const c = new DynamoDbIcebergCatalog({ client: client ?? ddb, io: fileIo, warehouse, tableName });
        return {
          loadTable: (id) => c.loadTable(id),
          defaultLocation: (id) => c.defaultLocation(id),
          commitTable: (base, m) => c.commitTable(base, m),
          createTable: async (id, m) => {
            await c.createNamespace(id.namespace);
            return c.createTable(id, m);
          },
        };
      },
      readEnv: {
        ...env,
        TIDEMARK_ICEBERG_CATALOG: 'dynamodb',
        TIDEMARK_ICEBERG_WAREHOUSE: warehouse,
        TIDEMARK_ICEBERG_CATALOG_TABLE: tableName,
      },
      newDynamoClient: () => createDynamoDBClient(env),
      close: async () => {},
    };
  }
  if (kind === 's3') {
    return {
      catalog: (fileIo) => new S3HadoopCatalog({ io: fileIo, warehouse }),
      newDynamoClient: undefined,
      readEnv: { ...env, TIDEMARK_ICEBERG_CATALOG: 's3', TIDEMARK_ICEBERG_WAREHOUSE: warehouse },
      close: async () => {},
    };
  }
  const rest: RestCatalogStandIn = await startRestCatalog({ io, warehouse });
  return {
    catalog: () => new RestIcebergCatalog({ uri: rest.uri, warehouse: 'lake' }),
    newDynamoClient: undefined,
    readEnv: {
      ...env,
      TIDEMARK_ICEBERG_CATALOG: 'rest',
      TIDEMARK_ICEBERG_REST_URI: rest.uri,
      TIDEMARK_ICEBERG_WAREHOUSE: 'lake',
    },
    close: () => rest.close(),
  };
}

function eventOf(
  parts: ReadonlyArray<{ partition: number; records: readonly Input[]; from: number }>,
): unknown {
  return buildEvent(
    { eventSource: 'aws:kafka', eventSourceArn: CLUSTER, bootstrapServers: 'b-1.campaign:9098' },
    parts.map(({ partition, records, from }) => ({
      topic: TOPIC,
      partition,
      records: records.map(
        (r, i): RawKafkaRecord =>
          encodeRecord({
            topic: TOPIC,
            partition,
            offset: deliveredOffset(BigInt(from + i)),
            timestamp: T0 + (from + i) * 1000,
            timestampType: 'CREATE_TIME',
            key: Buffer.from(r.key),
            value: Buffer.from(r.value),
            headers: [],
          }),
      ),
    })),
  );
}

/** The expected rows of a partition: every record once, in offset order, balances per account. */
function fold(partition: number, input: readonly Input[]): { rows: Map<string, string>; poison: number } {
  const rows = new Map<string, string>();
  const balances = new Map<string, number>();
  let poison = 0;
  input.forEach((r, offset) => {
    let amount: number;
    try {
      amount = (JSON.parse(r.value) as { amount: number }).amount;
    } catch {
      poison++;
      return;
    }
    const balance = (balances.get(r.key) ?? 0) + amount;
    balances.set(r.key, balance);
    rows.set(`${partition}|${offset}`, `${r.key}|${amount}|${balance}|${T0 + offset * 1000}`);
  });
  return { rows, poison };
}

export async function runIcebergCampaign(options: IcebergCampaignOptions): Promise<IcebergCampaignReport> {
  const started = performance.now();
  const random = new SeededRandom(options.seed);
  const kind = options.catalog ?? 'dynamodb';
  const run = `${(options.seed >>> 0).toString(36)}-${randomUUID().slice(0, 8)}`;
  const pipeline = `ice-campaign-${run}`;
  const faultRate = options.faultRate ?? 0.4;
  const minRecords = options.minRecords ?? 60;
  const log = options.log ?? (() => {});
  const s3 = createS3Client(options.env);
  const ddb = createDynamoDBClient(options.env);
  const io = new S3FileIO({ client: s3 });
  const baseStores = createAwsStores({
    bucket: options.env.TIDEMARK_BUCKET!,
    table: options.env.TIDEMARK_TABLE!,
    s3,
    dynamodb: ddb,
  });
  const cat = await catalogFactory(kind, options.env, io, ddb, run);
  const world: World = {
    pipeline,
    env: cat.readEnv,
    io,
    catalog: cat.catalog,
    newDynamoClient: cat.newDynamoClient,
    landed: new Map(),
    baseStores,
  };

  // The plan: every fault kind drawn from the seed (the SDK retry of a catalog UpdateItem only
  // exists with the DynamoDB catalog; a REST catalog writes its metadata files itself).
  const committerKinds = ICEBERG_COMMITTER_FAULTS.filter(
    (f) =>
      (f !== 'committer-sdk-retry' || kind === 'dynamodb') &&
      (f !== 'committer-put-in-flight' || kind !== 'rest') &&
      (f !== 'committer-crash-after-metadata' || kind !== 'rest'),
  );
  const planRandom = random.derive('plan');
  const committerCount = Math.round(options.faults * (options.committerShare ?? 0.3));
  // Every kind at least once when the plan is long enough, the rest drawn; in a seeded order.
  const plan = <F extends string>(kinds: readonly F[], n: number): F[] =>
    planRandom.shuffle(
      Array.from({ length: n }, (_, i) => (i < kinds.length ? kinds[i]! : planRandom.pick(kinds))),
    );
  const committerPlan = plan(committerKinds, committerCount);
  const pipelinePlan = plan(ICEBERG_PIPELINE_FAULTS, options.faults - committerCount);
  let pipelineInFlight = 0;
  let committerInFlight = 0;
  let unfired = 0;
  const faults = Object.fromEntries(
    [...ICEBERG_PIPELINE_FAULTS, ...ICEBERG_COMMITTER_FAULTS].map((f) => [f, 0]),
  ) as Record<IcebergFault, number>;
  const faultsLeft = () =>
    pipelinePlan.length + pipelineInFlight + committerPlan.length + committerInFlight > 0;

  const stats: IcebergCampaignReport['invocations'] = {
    total: 0,
    ok: 0,
    failed: 0,
    crashed: 0,
    containers: 0,
  };
  const deliveries: IcebergCampaignReport['deliveries'] = { batches: 0, rewinds: 0, multiPartition: 0 };
  const cstats: IcebergCampaignReport['committer'] = {
    runs: 0,
    ok: 0,
    failed: 0,
    crashed: 0,
    takeovers: 0,
    races: 0,
    retriedAttempts: 0,
    snapshots: 0,
    epochsCommitted: 0,
    cleaned: 0,
    expiredSnapshots: 0,
    foreignCommits: 0,
  };

  // Pipeline containers.
  const containers: PipelineContainer[] = [];
  const containerRandom = random.derive('containers');
  const container = (fresh = false): PipelineContainer => {
    const idle = containers.filter((c) => !c.dead && !c.busy);
    if (!fresh && idle.length > 0 && !containerRandom.chance(0.1)) return containerRandom.pick(idle);
    const c = new PipelineContainer(world, `c${containers.length + 1}`, {
      epochMaxRecords: containerRandom.int(2, 12),
      inline: containerRandom.chance(0.5),
      concurrency: containerRandom.int(1, 4),
    });
    containers.push(c);
    stats.containers++;
    return c;
  };
  let invocationSeq = 0;
  const invoke = async (c: PipelineContainer, event: unknown, arm?: PipelineArm) => {
    stats.total++;
    const outcome = await c.invoke(event, `${c.id}/i${++invocationSeq}`, arm);
    stats[outcome === 'ok' ? 'ok' : outcome]++;
    return outcome;
  };

  // Committer containers.
  const committers: CommitterContainer[] = [];
  const committerRandom = random.derive('committers');
  const committer = (fresh = false): CommitterContainer => {
    const idle = committers.filter((c) => !c.dead && !c.busy);
    if (!fresh && idle.length > 0 && !committerRandom.chance(0.2)) return committerRandom.pick(idle);
    const c = new CommitterContainer(world, `k${committers.length + 1}`, committerRandom.chance(0.3));
    committers.push(c);
    return c;
  };
  /** Committer runs that failed in a row: a table no committer can commit to any more stops the run. */
  let failStreak = 0;
  let wedged = false;
  const runCommitter = async (c: CommitterContainer, arm?: CommitterArm, barrier?: Barrier) => {
    cstats.runs++;
    const outcome = await c.run(arm, barrier);
    cstats[outcome === 'ok' ? 'ok' : outcome]++;
    if (outcome === 'failed' && ++failStreak >= 25 && !wedged) {
      wedged = true;
      log(`25 committer runs in a row failed, last: ${c.lastRun?.error}; stopping`);
    } else if (outcome === 'ok') failStreak = 0;
    const r = c.lastRun;
    if (r && outcome !== 'crashed') {
      cstats.retriedAttempts += Math.max(0, r.attempts - 1);
      if (r.snapshotId !== undefined) cstats.snapshots++;
      cstats.epochsCommitted += r.epochs;
      cstats.cleaned += r.cleaned;
      cstats.expiredSnapshots += r.expiredSnapshots;
    }
    return outcome;
  };

  /** One pipeline delivery, maybe carrying the next planned fault; true when it succeeded. */
  const deliver = async (event: () => unknown, r: SeededRandom): Promise<boolean> => {
    if (pipelinePlan.length === 0 || !r.chance(faultRate))
      return (await invoke(container(), event())) === 'ok';
    const fault = pipelinePlan.shift()!;
    pipelineInFlight++;
    let fired = false;
    let ok = false;
    try {
      if (fault === 'cold-start') {
        fired = true;
        ok = (await invoke(container(true), event())) === 'ok';
      } else if (fault === 'duplicate') {
        fired = true;
        const [a, b] = await Promise.all([
          invoke(container(true), event()),
          invoke(container(true), event()),
        ]);
        ok = a === 'ok' || b === 'ok';
      } else if (fault === 'zombie-commit' || fault === 'zombie-deliver') {
        // A container paused at its commit (or between its commit and its delivery); the ESM gives
        // up on it and delivers again elsewhere (and, for a paused delivery, a committer commits and
        // cleans up); then the paused one resumes.
        const gate = new Gate();
        const zombie = container(true);
        const paused = invoke(
          zombie,
          event(),
          fault === 'zombie-commit' ? { kind: 'hold-commit', gate } : { kind: 'hold-deliver', gate },
        );
        const reached = await Promise.race([gate.reached.then(() => true), paused.then(() => false)]);
        if (!reached) ok = (await paused) === 'ok';
        else {
          fired = true;
          let retry = await invoke(container(true), event());
          if (retry !== 'ok') retry = await invoke(container(true), event());
          if (fault === 'zombie-deliver') await runCommitter(committer(true));
          gate.open();
          await paused;
          ok = retry === 'ok';
        }
      } else {
        const arm: PipelineArm =
          fault === 'crash-before-snapshot-put'
            ? { kind: 'engine-crash', point: 'before-snapshot-put', fault }
            : fault === 'crash-after-snapshot-put'
              ? { kind: 'engine-crash', point: 'after-snapshot-put', fault }
              : fault === 'crash-before-commit'
                ? { kind: 'engine-crash', point: 'before-commit', fault }
                : fault === 'crash-after-commit'
                  ? { kind: 'engine-crash', point: 'after-commit', fault }
                  : fault === 'store-error'
                    ? {
                        kind: 'engine-error',
                        point: r.pick(['snapshot-put', 'commit', 'commit-lost-ack'] as const),
                      }
                    : fault === 's3-error'
                      ? { kind: 's3-error', op: r.pick(['data-put', 'stage-put', 'stage-get'] as const) }
                      : fault === 's3-lost-response'
                        ? { kind: 's3-lost-response', op: r.pick(['data-put', 'stage-put'] as const) }
                        : { kind: fault as 'crash-before-data-put' };
        const c = container(true);
        ok = (await invoke(c, event(), arm)) === 'ok';
        fired = c.fired !== undefined;
      }
    } finally {
      pipelineInFlight--;
      if (fired) faults[fault]++;
      else pipelinePlan.unshift(fault);
    }
    return ok;
  };

  // The input: a seeded stream per partition, generated as far as the run goes.
  const tasks = Array.from({ length: options.partitions }, (_, p) => ({
    partition: p,
    gen: random.derive(`input-${p}`),
    input: [] as Input[],
    acked: 0,
  }));
  const extend = (t: (typeof tasks)[number], to: number) => {
    while (t.input.length < to) t.input.push(nextInput(t.gen));
  };

  // Each poller (an ESM poller) owns two partitions or more, so batches mix partitions.
  const pollerCount = Math.max(1, Math.min(Math.floor(options.partitions / 2), 3));
  let pollersRunning = pollerCount;
  const poller = async (index: number) => {
    const r = random.derive(`poller-${index}`);
    const own = tasks.filter((t) => t.partition % pollerCount === index);
    try {
      for (;;) {
        const extending = faultsLeft() && !wedged;
        const open = own.filter((t) => extending || t.acked < Math.max(t.input.length, minRecords));
        if (open.length === 0) break;
        const chosen = r.shuffle(open).slice(0, r.int(1, Math.min(3, open.length)));
        const parts = chosen.map((t) => {
          const rewind = r.chance(0.1) && t.acked > 0;
          if (rewind) deliveries.rewinds++;
          const from = rewind ? Math.max(0, t.acked - r.int(1, 15)) : t.acked;
          let end = t.acked + r.int(1, 25);
          if (extending) extend(t, end);
          else if (t.input.length < minRecords) extend(t, Math.min(end, minRecords));
          end = Math.min(end, t.input.length);
          return { t, from, end };
        });
        const live = parts.filter((p) => p.end > p.from);
        if (live.length === 0) continue;
        deliveries.batches++;
        if (live.length > 1) deliveries.multiPartition++;
        const ok = await deliver(
          () =>
            eventOf(
              live.map(({ t, from, end }) => ({
                partition: t.partition,
                records: t.input.slice(from, end),
                from,
              })),
            ),
          r,
        );
        if (ok) for (const p of live) p.t.acked = Math.max(p.t.acked, p.end);
      }
    } finally {
      pollersRunning--;
    }
  };

  /** One committer round: a clean run, or the next planned committer fault (crashes are taken over). */
  const committerRound = async (r: SeededRandom) => {
    if (committerPlan.length === 0 || !r.chance(0.85)) {
      await runCommitter(committer());
      return;
    }
    const fault = committerPlan.shift()!;
    committerInFlight++;
    let fired = false;
    try {
      if (fault === 'committer-race') {
        const n = r.int(2, 3);
        const racers = Array.from({ length: n }, () => committer(true));
        const barrier = new Barrier(n);
        cstats.races++;
        await Promise.all(racers.map((c) => runCommitter(c, undefined, barrier)));
        fired = racers.some((c) => c.lastRun && c.lastRun.attempts > 1);
      } else if (fault === 'committer-zombie') {
        const gate = new Gate();
        const zombie = committer(true);
        const paused = runCommitter(zombie, { kind: 'hold', gate });
        const reached = await Promise.race([gate.reached.then(() => true), paused.then(() => false)]);
        if (reached) {
          fired = true;
          await runCommitter(committer(true));
          gate.open();
        }
        await paused;
      } else {
        const arm: CommitterArm =
          fault === 'committer-s3-error'
            ? {
                kind: 's3-error',
                op: r.pick(['list', 'stage-get', 'manifest-put', 'delete-staged'] as const),
              }
            : fault === 'catalog-conflict'
              ? { kind: 'conflict' }
              : fault === 'committer-sdk-retry'
                ? { kind: 'sdk-retry', superseded: r.chance(0.5) }
                : fault === 'committer-put-in-flight'
                  ? { kind: 'put-in-flight', lands: r.chance(0.5) }
                  : { kind: fault.slice('committer-'.length) as 'crash-before-swap' };
        const c = committer(true);
        const outcome = await runCommitter(c, arm);
        fired = c.fired !== undefined;
        cstats.foreignCommits += c.foreignCommits;
        c.foreignCommits = 0;
        if (outcome === 'crashed') {
          // Another committer takes over at once (a manual run, or the next schedule).
          cstats.takeovers++;
          await runCommitter(committer());
        }
      }
    } finally {
      committerInFlight--;
      if (fired) faults[fault]++;
      else committerPlan.unshift(fault);
    }
  };

  let unfiredStreak = 0;
  const committerLoop = async () => {
    const r = random.derive('committer-loop');
    while ((pollersRunning > 0 || committerPlan.length > 0) && !wedged) {
      await sleep(r.int(0, 100));
      const before = committerPlan.length;
      await committerRound(r);
      if (pollersRunning === 0 && committerPlan.length >= before && before > 0) {
        // Nothing is staged any more for the fault to hit.
        if (++unfiredStreak > 10) {
          unfired += committerPlan.length;
          committerPlan.length = 0;
        }
      } else unfiredStreak = 0;
    }
  };

  const progress = setInterval(() => {
    log(
      `invocations ${stats.total}, committer runs ${cstats.runs}, faults fired ${Object.values(faults).reduce((a, b) => a + b, 0)}/${options.faults}`,
    );
  }, 10_000);
  try {
    await Promise.all([...Array.from({ length: pollerCount }, (_, i) => poller(i)), committerLoop()]);
  } finally {
    clearInterval(progress);
  }
  unfired += pipelinePlan.length;
  log(`stream delivered: ${stats.total} invocations, ${cstats.runs} committer runs`);

  // The end: clean committer runs until nothing is staged.
  const clean = icebergOutput<Row>({ ...outputOptions });
  const loaded = await world
    .catalog(io)
    .loadTable({ namespace: NAMESPACE, name: TABLE_NAME })
    .catch(() => undefined); // a broken table: the judge says so
  const stagedPrefix = `${loaded?.metadata.location}/tidemark/${pipeline}/staged/`;
  for (let i = 0; i < 5; i++) {
    await runCommitter(committer(true));
    if ((await io.list(stagedPrefix)).length === 0) break;
  }

  // Judge.
  let readError: string | undefined;
  const table = await readIcebergOutput(clean, { env: world.env, pipeline }).catch((err: unknown) => {
    readError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return { rows: [], staged: [], dataFiles: [], metadata: { snapshots: [] } };
  });
  const staged = table.staged;
  const rows = [...table.rows];
  if (options.sabotage === 'lose-row') rows.splice(random.int(0, rows.length - 1), 1);
  if (options.sabotage === 'duplicate-row') rows.push(rows[random.int(0, rows.length - 1)]!);
  if (options.sabotage === 'uncommitted-row') {
    const i = random.int(0, rows.length - 1);
    rows[i] = { ...rows[i], attempt: 'c0/i0' };
  }
  const expected = new Map<string, string>();
  let poison = 0;
  let unfinishedTasks = 0;
  for (const t of tasks) {
    const f = fold(t.partition, t.input);
    for (const [k, v] of f.rows) expected.set(k, v);
    poison += f.poison;
    const commit = await baseStores.commits.read({
      pipeline,
      topic: TOPIC,
      partition: t.partition,
    } as TaskId);
    if (!commit || commit.committedOffset !== BigInt(t.input.length) || t.acked !== t.input.length)
      unfinishedTasks++;
  }
  const seen = new Map<string, number>();
  let wrong = 0;
  let uncommitted = 0;
  for (const row of rows) {
    const k = `${row.part}|${row.offset}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
    const value = `${row.account}|${row.amount}|${row.balance}|${(row.ts as Date).getTime()}`;
    if (expected.get(k) !== value) wrong++;
    const offset = BigInt(row.offset as bigint);
    const covering = (world.landed.get(Number(row.part)) ?? []).find((c) => c.committedOffset > offset);
    if (!covering || covering.attempt !== row.attempt) uncommitted++;
  }
  let lost = 0;
  let duplicated = 0;
  for (const k of expected.keys()) if (!seen.has(k)) lost++;
  for (const n of seen.values()) duplicated += Math.max(0, n - 1);

  // DuckDB over the data files the table lists: the same rows as icebird.
  const duck = await queryParquetWithDuckDB(
    limited(io, 8),
    table.dataFiles,
    `SELECT part || '|' || "offset" || '|' || account || '|' || amount || '|' || balance || '|' || epoch_ms(ts) || '|' || attempt AS r FROM t`,
  );
  const asText = (rs: readonly Record<string, unknown>[]) =>
    rs
      .map(
        (r) =>
          `${r.part}|${r.offset}|${r.account}|${r.amount}|${r.balance}|${(r.ts as Date).getTime()}|${r.attempt}`,
      )
      .sort();
  const duckRows = duck.map((r) => String(r.r)).sort();
  const icebirdRows = asText(table.rows);
  const duckdbAgrees =
    duckRows.length === icebirdRows.length && duckRows.every((r, i) => r === icebirdRows[i]);

  const faultsFired = Object.values(faults).reduce((a, b) => a + b, 0);
  const report: IcebergCampaignReport = {
    seed: options.seed,
    catalog: kind,
    partitions: options.partitions,
    records: tasks.reduce((n, t) => n + t.input.length, 0),
    poison,
    durationMs: Math.round(performance.now() - started),
    invocations: stats,
    deliveries,
    committer: cstats,
    faults,
    faultsPlanned: options.faults,
    faultsFired,
    faultsUnfired: unfired,
    rowsExpected: expected.size,
    rowsRead: rows.length,
    lost,
    duplicated,
    wrong,
    uncommitted,
    duckdbAgrees,
    stagedLeft: staged.length,
    wedged,
    ...(readError ? { readError } : {}),
    unfinishedTasks,
    snapshotsInTable: table.metadata.snapshots?.length ?? 0,
    dataFiles: table.dataFiles.length,
    passed: false,
    replay: `node harness/campaign/icebergMain.ts --seed ${options.seed} --faults ${options.faults} --partitions ${options.partitions} --min-records ${minRecords} --catalog ${kind}`,
  };
  report.passed =
    lost === 0 &&
    duplicated === 0 &&
    wrong === 0 &&
    uncommitted === 0 &&
    duckdbAgrees &&
    report.stagedLeft === 0 &&
    unfinishedTasks === 0 &&
    !wedged &&
    readError === undefined &&
    expected.size > 0;

  for (const c of containers) if (!c.dead) await c.handler.runtime.engine.close();
  for (const c of committers) c.close();
  await cat.close();
  s3.destroy();
  ddb.destroy();
  return report;
}

/** The report as a few lines of text. */
export function formatIcebergReport(r: IcebergCampaignReport): string {
  const faults = Object.entries(r.faults)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(' · ');
  const c = r.committer;
  return [
    `Iceberg campaign, seed ${r.seed}, ${r.catalog} catalog: ${r.records} records (${r.poison} poison) over ${r.partitions} partitions in ${(r.durationMs / 1000).toFixed(1)} s`,
    `pipeline: ${r.invocations.total} invocations (${r.invocations.ok} ok, ${r.invocations.failed} failed, ${r.invocations.crashed} crashed) on ${r.invocations.containers} containers; ${r.deliveries.batches} batches (${r.deliveries.multiPartition} of several partitions, ${r.deliveries.rewinds} rewinds)`,
    `committers: ${c.runs} runs (${c.ok} ok, ${c.failed} failed, ${c.crashed} crashed, ${c.takeovers} taken over), ${c.races} races, ${c.retriedAttempts} swaps retried after a conflict or unknown outcome, ${c.foreignCommits} foreign commits; ${c.snapshots} snapshots adding ${c.epochsCommitted} epochs, ${c.cleaned} staged records cleaned, ${c.expiredSnapshots} snapshots expired`,
    `faults fired ${r.faultsFired} of ${r.faultsPlanned} planned (${r.faultsUnfired} found nothing to hit): ${faults}`,
    `table: ${r.rowsRead} rows read by icebird (${r.rowsExpected} expected), ${r.dataFiles} data files, ${r.snapshotsInTable} snapshots kept; DuckDB ${r.duckdbAgrees ? 'agrees' : 'DISAGREES'}`,
    `lost ${r.lost}, duplicated ${r.duplicated}, wrong ${r.wrong}, from uncommitted attempts ${r.uncommitted}; staged left ${r.stagedLeft}; unfinished tasks ${r.unfinishedTasks}`,
    ...(r.wedged ? ['WEDGED: the committers stopped making progress'] : []),
    ...(r.readError ? [`the table could not be read: ${r.readError}`] : []),
    r.passed
      ? 'VERIFIED: every applied record exactly once in the table, only committed attempts'
      : `FAILED (replay: ${r.replay})`,
  ].join('\n');
}
