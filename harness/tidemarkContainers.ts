/**
 * Lambda containers running a Tidemark handler, for the ESM emulator: each container is one
 * handler instance (`createKafkaHandler`, so one warm cache) with its own SDK clients and its own
 * stores, wrapped so the emulator can crash it at a point of the commit protocol or freeze it, and
 * so transient store errors can be injected (see faultyStores.ts). A new container is a cold start.
 */
import type { EngineObserver } from '../lib/checkpoint/observer.ts';
import type { Processor } from '../lib/checkpoint/processor.ts';
import type { TidemarkConfig } from '../lib/config/config.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';
import type { StateDescriptors } from '../lib/state/descriptors.ts';
import { createDynamoDBClient, createS3Client } from '../lib/store/clients.ts';
import { createAwsStores } from '../lib/store/stores.ts';
import type { LambdaContainer } from './esm/esmEmulator.ts';
import {
  ContainerStores,
  CRASH_POINTS,
  type CrashPoint,
  STORE_FAULT_POINTS,
  type StoreFaultPoint,
} from './faultyStores.ts';
import type { SeededRandom } from './seededRandom.ts';

export interface TidemarkContainerOptions<S extends StateDescriptors> {
  processor: Processor<S>;
  /** AWS endpoints, region and credentials (and any TIDEMARK_* tuning). */
  env: Readonly<Record<string, string | undefined>>;
  /** Settings given in code: bucket, table, pipeline, and tuning. */
  config: Partial<TidemarkConfig> & { bucket: string; table: string; pipeline: string };
  observer?: EngineObserver;
  /** Transient store errors: probability per invocation, and where the draws come from. */
  storeFaults?: { rate: number; random: SeededRandom };
}

/** Settings that name where state lives: the job decides them, the environment must not. */
const JOB_OWNED = ['TIDEMARK_BUCKET', 'TIDEMARK_TABLE', 'TIDEMARK_PIPELINE'];

export class TidemarkContainers<S extends StateDescriptors> {
  /** Store errors injected (fired), by point. */
  readonly storeFaults: Record<StoreFaultPoint, number> = {
    'snapshot-put': 0,
    commit: 0,
    'commit-lost-ack': 0,
  };
  private readonly options: TidemarkContainerOptions<S>;
  private readonly env: Record<string, string | undefined>;
  private readonly clients: Array<{ destroy(): void }> = [];

  constructor(options: TidemarkContainerOptions<S>) {
    this.options = options;
    this.env = Object.fromEntries(Object.entries(options.env).filter(([k]) => !JOB_OWNED.includes(k)));
  }

  /** A new container (pass as the emulator's `createContainer`). */
  readonly create = (_id: number): LambdaContainer => {
    const s3 = createS3Client(this.env);
    const dynamodb = createDynamoDBClient(this.env);
    this.clients.push(s3, dynamodb);
    const stores = new ContainerStores(
      createAwsStores({ bucket: this.options.config.bucket, table: this.options.config.table, s3, dynamodb }),
    );
    const handler = createKafkaHandler(this.options.processor, {
      env: this.env,
      config: this.options.config,
      stores,
      observer: this.options.observer,
      telemetry: false,
    });
    const faults = this.options.storeFaults;
    return {
      crashPoints: CRASH_POINTS,
      invoke: async (event, context) => {
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

  /** Closes every container's SDK clients (frozen containers' requests never complete). */
  destroy(): void {
    for (const c of this.clients.splice(0)) c.destroy();
  }
}
