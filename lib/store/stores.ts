import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SavepointStore } from '../checkpoint/savepoints.ts';
import { createDynamoDBClient, createS3Client } from './clients.ts';
import type { DatabaseStores } from './database/DatabaseStores.ts';
import { databaseOptions } from './database/options.ts';
import { DynamoCommitStore } from './dynamodb/DynamoCommitStore.ts';
import { DeferredCommitStore, loadDatabaseStores, type StoreSettings, type Stores } from './runtimeStores.ts';
import { S3SnapshotStore } from './s3/S3SnapshotStore.ts';

export type { StoreSettings, Stores } from './runtimeStores.ts';
export { createRuntimeStores } from './runtimeStores.ts';

export interface AwsStoreOptions {
  bucket: string;
  table: string;
  /** Injected clients (tests count requests through them); default: built from the environment. */
  s3?: S3Client;
  dynamodb?: DynamoDBClient;
}

/** The production stores: snapshots on S3, commits on DynamoDB. */
export function createAwsStores(options: AwsStoreOptions): Stores {
  return {
    snapshots: new S3SnapshotStore({ client: options.s3 ?? createS3Client(), bucket: options.bucket }),
    commits: new DynamoCommitStore({
      client: options.dynamodb ?? createDynamoDBClient(),
      table: options.table,
    }),
  };
}

/** The DynamoDB savepoint store, whose module loads on first use (operator code, off the hot path). */
function dynamoSavepoints(client: DynamoDBClient, table: string): SavepointStore {
  return new DeferredSavepointStore(async () => {
    const { DynamoSavepointStore } = await import('./dynamodb/DynamoSavepointStore.ts');
    return new DynamoSavepointStore({ client, table });
  });
}

/** The savepoint store of the operator commands: DynamoDB, in the commit items' table. */
export function createSavepointStore(options: { table: string; dynamodb?: DynamoDBClient }): SavepointStore {
  return dynamoSavepoints(options.dynamodb ?? createDynamoDBClient(), options.table);
}

/** A savepoint store whose module (and driver) loads on first use. */
class DeferredSavepointStore implements SavepointStore {
  private readonly load: () => Promise<SavepointStore>;
  private loaded: Promise<SavepointStore> | undefined;

  constructor(load: () => Promise<SavepointStore>) {
    this.load = () => {
      this.loaded ??= load();
      this.loaded.catch(() => {
        this.loaded = undefined;
      });
      return this.loaded;
    };
  }

  async create(...args: Parameters<SavepointStore['create']>) {
    return (await this.load()).create(...args);
  }

  async putTask(...args: Parameters<SavepointStore['putTask']>) {
    return (await this.load()).putTask(...args);
  }

  async updateMeta(...args: Parameters<SavepointStore['updateMeta']>) {
    return (await this.load()).updateMeta(...args);
  }

  async read(...args: Parameters<SavepointStore['read']>) {
    return (await this.load()).read(...args);
  }

  async *list(pipeline: string) {
    yield* (await this.load()).list(pipeline);
  }

  async delete(...args: Parameters<SavepointStore['delete']>) {
    return (await this.load()).delete(...args);
  }
}

/** The stores a configuration asks for, with the savepoint store and what operators need. */
export interface ConfiguredStores extends Stores {
  savepoints: SavepointStore;
  /**
   * Creates the commit store's tables when missing (`npx tidemark init`); DynamoDB: the table.
   * Returns what it did, named for the operator.
   */
  ensureCommitStore(): Promise<{ resource: string; result: 'created' | 'exists' }>;
  /** Closes database connections (CLI, tests). */
  close(): Promise<void>;
}

/**
 * Snapshots on S3, and commit items and savepoints in the configured commit store
 * (`TIDEMARK_COMMIT_STORE`, docs/stores.md), with what operators need (creating the store, closing
 * connections). A database store connects on first use.
 */
export function createStores(
  config: StoreSettings,
  clients: { s3?: S3Client; dynamodb?: DynamoDBClient } = {},
): ConfiguredStores {
  const snapshots = new S3SnapshotStore({ client: clients.s3 ?? createS3Client(), bucket: config.bucket });
  const kind = config.commitStore;
  if (kind === 'dynamodb') {
    const dynamodb = clients.dynamodb ?? createDynamoDBClient();
    return {
      snapshots,
      commits: new DynamoCommitStore({ client: dynamodb, table: config.table }),
      savepoints: dynamoSavepoints(dynamodb, config.table),
      async ensureCommitStore() {
        const { ensureTable } = await import('./provision.ts');
        return { resource: `table ${config.table}`, result: await ensureTable(dynamodb, config.table) };
      },
      async close() {
        if (!clients.dynamodb) dynamodb.destroy();
      },
    };
  }
  const options = databaseOptions(config);
  let loaded: Promise<DatabaseStores> | undefined;
  const load = () => {
    loaded ??= loadDatabaseStores(kind, options);
    return loaded;
  };
  return {
    snapshots,
    commits: new DeferredCommitStore(kind, load),
    savepoints: new DeferredSavepointStore(async () => (await load()).savepoints),
    async ensureCommitStore() {
      const what =
        kind === 'redis' ? `redis keys ${config.dbPrefix}:*` : `${kind} tables ${config.dbPrefix}_*`;
      return { resource: what, result: await (await load()).ensureSchema() };
    },
    async close() {
      if (loaded) await (await loaded).close();
    },
  };
}
