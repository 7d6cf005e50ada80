/**
 * Lambda containers running a Tidemark handler, for the ESM emulator: each container is one
 * handler instance (`createKafkaHandler`, so one warm cache) with its own SDK clients, its own
 * stores (the commit store the configuration names: DynamoDB, or a database with its own
 * connections) and its own sinks, wrapped so the emulator can crash it at a point of the commit
 * protocol or freeze it, and so transient store errors can be injected (see faultyStores.ts). A
 * frozen container sends nothing more: no store request, no output delivery. A new container is a
 * cold start.
 */
import type { EngineObserver } from '../lib/checkpoint/observer.ts';
import type { Processor } from '../lib/checkpoint/processor.ts';
import { loadConfig, type TidemarkConfig } from '../lib/config/config.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';
import { defaultSinkProvider, type SinkProvider } from '../lib/output/router.ts';
import type { Delivery, OutputDescriptors, Sink } from '../lib/output/types.ts';
import type { StateDescriptors } from '../lib/state/descriptors.ts';
import { liteDynamoRequests } from '../lib/store/aws/dynamodb.ts';
import { liteAwsSettings } from '../lib/store/aws/environment.ts';
import { liteS3Requests } from '../lib/store/aws/s3.ts';
import { createDynamoDBClient, createS3Client } from '../lib/store/clients.ts';
import { DynamoCommitStore } from '../lib/store/dynamodb/DynamoCommitStore.ts';
import { S3SnapshotStore } from '../lib/store/s3/S3SnapshotStore.ts';
import { createStores } from '../lib/store/stores.ts';
import type { CommitLedger } from './campaign/commits.ts';
import type { LambdaContainer } from './esm/esmEmulator.ts';
import {
  ContainerStores,
  CRASH_POINTS,
  type CrashPoint,
  STORE_FAULT_POINTS,
  type StoreFaultPoint,
} from './faultyStores.ts';
import { LedgerCommitStore, tagOutputs } from './jobOutputs.ts';
import type { SeededRandom } from './seededRandom.ts';

/** The lightweight clients of the local servers, from the job's AWS environment. */
function liteClients(env: Readonly<Record<string, string | undefined>>) {
  const dynamo = liteAwsSettings('dynamodb', env);
  const s3 = liteAwsSettings('s3', env);
  if ('unsupported' in dynamo) throw new Error(`the job's AWS environment: ${dynamo.unsupported}`);
  if ('unsupported' in s3) throw new Error(`the job's AWS environment: ${s3.unsupported}`);
  return { dynamodb: liteDynamoRequests(dynamo), s3: liteS3Requests(s3) };
}

export interface TidemarkContainerOptions<S extends StateDescriptors, O extends OutputDescriptors> {
  processor: Processor<S, O>;
  /**
   * AWS endpoints, region and credentials, the commit store (`TIDEMARK_COMMIT_STORE`,
   * `TIDEMARK_DB_*`), the outputs' settings, and any TIDEMARK_* tuning.
   */
  env: Readonly<Record<string, string | undefined>>;
  /** Settings given in code: bucket, table, pipeline, and tuning. */
  config: Partial<TidemarkConfig> & { bucket: string; table: string; pipeline: string };
  observer?: EngineObserver;
  /** Transient store errors: probability per invocation, and where the draws come from. */
  storeFaults?: { rate: number; random: SeededRandom };
  /**
   * Records every commit and the invocation that made it (see jobOutputs.ts), and tags every
   * emitted value with its task and invocation, so outputs can be traced to the committed attempt.
   */
  ledger?: CommitLedger;
}

/** Settings that name where state lives: the job decides them, the environment must not. */
const JOB_OWNED = ['TIDEMARK_BUCKET', 'TIDEMARK_TABLE', 'TIDEMARK_PIPELINE'];

/** A promise that never settles: what a frozen container waits on. */
const FOREVER = new Promise<never>(() => {});

/** A container's sink: a frozen container starts no delivery and never learns how one ended. */
class ContainerSink implements Sink {
  private readonly inner: Sink;
  private readonly frozen: () => boolean;

  constructor(inner: Sink, frozen: () => boolean) {
    this.inner = inner;
    this.frozen = frozen;
  }

  get needsSettle(): boolean | undefined {
    return this.inner.needsSettle;
  }

  attach(delivery: Delivery) {
    return this.inner.attach?.(delivery);
  }

  async deliver(delivery: Delivery): Promise<void> {
    if (this.frozen()) await FOREVER;
    await this.inner.deliver(delivery);
    if (this.frozen()) await FOREVER;
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}

/** Settles when `p` settles or after `ms`; never rejects. */
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

export class TidemarkContainers<S extends StateDescriptors, O extends OutputDescriptors = OutputDescriptors> {
  /** Store errors injected (fired), by point. */
  readonly storeFaults: Record<StoreFaultPoint, number> = {
    'snapshot-put': 0,
    commit: 0,
    'commit-lost-ack': 0,
  };
  private readonly options: TidemarkContainerOptions<S, O>;
  private readonly env: Record<string, string | undefined>;
  /** The stores' settings (commit store and its connection), resolved once. */
  private readonly storeConfig: TidemarkConfig;
  /** What `destroy` releases: clients, database connections, sinks. */
  private readonly resources: Array<() => Promise<void> | void> = [];

  constructor(options: TidemarkContainerOptions<S, O>) {
    this.options = options;
    this.env = Object.fromEntries(Object.entries(options.env).filter(([k]) => !JOB_OWNED.includes(k)));
    this.storeConfig = loadConfig(this.env, options.config);
  }

  /** A new container (pass as the emulator's `createContainer`). */
  readonly create = (_id: number): LambdaContainer => {
    const s3 = createS3Client(this.env);
    const dynamodb = createDynamoDBClient(this.env);
    const configured = createStores(this.storeConfig, { s3, dynamodb });
    // The handler's own clients, as on Lambda: the lightweight transport unless TIDEMARK_AWS_CLIENT
    // is sdk (the SDK clients above still serve savepoints and provisioning).
    const lite = this.storeConfig.awsClient === 'lite' ? liteClients(this.env) : undefined;
    const own = lite
      ? {
          ...configured,
          snapshots: new S3SnapshotStore({ client: lite.s3, bucket: this.storeConfig.bucket }),
          commits:
            this.storeConfig.commitStore === 'dynamodb'
              ? new DynamoCommitStore({ client: lite.dynamodb, table: this.storeConfig.table })
              : configured.commits,
        }
      : configured;
    this.resources.push(
      () => own.close(),
      () => {
        s3.destroy();
        dynamodb.destroy();
      },
    );
    // The request id of the invocation the container runs (one at a time).
    let invocation = '';
    const current = () => invocation;
    const ledger = this.options.ledger;
    const stores = new ContainerStores({
      snapshots: own.snapshots,
      commits: ledger ? new LedgerCommitStore(own.commits, ledger, current) : own.commits,
    });
    const sinks: SinkProvider = async (descriptor, env) => {
      const sink = new ContainerSink(await defaultSinkProvider(descriptor, env), () => stores.isFrozen);
      this.resources.push(() => sink.close());
      return sink;
    };
    const handler = createKafkaHandler(
      ledger ? tagOutputs(this.options.processor, current) : this.options.processor,
      {
        env: this.env,
        config: this.options.config,
        stores,
        sinks,
        observer: this.options.observer,
        telemetry: false,
      },
    );
    const faults = this.options.storeFaults;
    return {
      crashPoints: CRASH_POINTS,
      invoke: async (event, context) => {
        invocation = context.awsRequestId;
        if (faults?.random.chance(faults.rate)) {
          const point = faults.random.pick(STORE_FAULT_POINTS);
          void stores.armError(point).then(() => {
            this.storeFaults[point]++;
          });
        }
        try {
          return await handler(event, context);
        } finally {
          if (!stores.isFrozen) stores.disarm();
        }
      },
      armCrash: (point) => stores.armCrash(point as CrashPoint),
      disarm: () => stores.disarm(),
      kill: () => stores.freeze(),
    };
  };

  get storeFaultCount(): number {
    return Object.values(this.storeFaults).reduce((a, b) => a + b, 0);
  }

  /**
   * Closes every container's sinks, database connections and SDK clients (frozen containers'
   * requests never complete: each release is bounded). Idempotent.
   */
  async destroy(): Promise<void> {
    await Promise.all(this.resources.splice(0).map((r) => bounded(Promise.resolve().then(r), 5_000)));
  }
}
