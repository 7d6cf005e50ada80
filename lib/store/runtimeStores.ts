/**
 * The stores the handler uses, in a module of their own: the Lambda bundle carries this and the
 * chosen commit store only (no savepoint or provisioning code, whose lazily imported modules would
 * otherwise come along). Operators' stores are in ./stores.ts.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { CommitStore, SnapshotStore, StoredObject } from '../checkpoint/stores.ts';
import type { TidemarkConfig } from '../config/config.ts';
import { type AwsClientKind, ENV } from '../config/env.ts';
import { ConfigurationError } from '../errors.ts';
import { liteAwsSettings } from './aws/environment.ts';
import type { DatabaseStores } from './database/DatabaseStores.ts';
import { databaseOptions, type RedisStoreOptions } from './database/options.ts';
import type { DynamoRequests } from './dynamodb/requests.ts';
import type { S3Requests } from './s3/requests.ts';

export interface Stores {
  snapshots: SnapshotStore;
  commits: CommitStore;
}

export type StoreSettings = Pick<TidemarkConfig, 'bucket' | 'table' | 'commitStore'> &
  Partial<Pick<TidemarkConfig, 'awsClient'>> &
  Parameters<typeof databaseOptions>[0];

/** Why a chosen client cannot be used in this bundle and environment. */
function clientUnavailable(kind: AwsClientKind, service: string, reason: string): ConfigurationError {
  return new ConfigurationError(
    ENV.awsClient,
    kind === 'lite'
      ? `the lightweight ${service} client cannot serve this environment (${reason}) and this bundle holds no AWS SDK client; bundle with awsClient: 'sdk' on the CDK construct`
      : `${ENV.awsClient} is sdk, but this bundle holds only the lightweight ${service} client; bundle with awsClient: 'sdk' on the CDK construct`,
  );
}

/** The S3 client of the handler's snapshot store: the lightweight transport, or the SDK's. */
async function runtimeS3Client(kind: AwsClientKind): Promise<S3Requests | S3Client> {
  let reason = 'TIDEMARK_AWS_CLIENT is sdk';
  if (kind === 'lite') {
    const settings = liteAwsSettings('s3');
    if (!('unsupported' in settings)) return (await import('./aws/s3.ts')).liteS3Requests(settings);
    reason = settings.unsupported;
  }
  // Written out for the bundler to fold, as in runtimeDynamoClient.
  if ((process.env.TIDEMARK_BUNDLED_AWS_CLIENT ?? 'sdk') === 'sdk') {
    return (await import('./s3/client.ts')).createS3Client();
  }
  throw clientUnavailable(kind, 'S3', reason);
}

/** The DynamoDB client of the handler's commit store: the lightweight transport, or the SDK's. */
async function runtimeDynamoClient(kind: AwsClientKind): Promise<DynamoRequests | DynamoDBClient> {
  let reason = 'TIDEMARK_AWS_CLIENT is sdk';
  if (kind === 'lite') {
    const settings = liteAwsSettings('dynamodb');
    if (!('unsupported' in settings)) return (await import('./aws/dynamodb.ts')).liteDynamoRequests(settings);
    reason = settings.unsupported;
  }
  // A bundler that defines `process.env.TIDEMARK_BUNDLED_AWS_CLIENT` as `lite` (the CDK construct
  // does, unless its `awsClient` is `sdk`) leaves this branch as dead code, and the SDK's client out
  // of the bundle. The test must stay written out here for the bundler to fold it.
  if ((process.env.TIDEMARK_BUNDLED_AWS_CLIENT ?? 'sdk') === 'sdk') {
    return (await import('./dynamodb/client.ts')).createDynamoDBClient();
  }
  throw clientUnavailable(kind, 'DynamoDB', reason);
}

/**
 * Loads the module of a database commit store and builds its stores. Each driver loads only when its
 * store is chosen. A bundler that defines `process.env.TIDEMARK_BUNDLED_COMMIT_STORE` (the CDK
 * construct does, to the store the function uses) leaves the other stores' branches as dead code, so
 * their drivers stay out of the bundle; unbundled, every store is available.
 */
export async function loadDatabaseStores(
  kind: Exclude<TidemarkConfig['commitStore'], 'dynamodb'>,
  options: RedisStoreOptions,
): Promise<DatabaseStores> {
  if (kind === 'postgres' && (process.env.TIDEMARK_BUNDLED_COMMIT_STORE ?? 'postgres') === 'postgres') {
    return (await import('./postgres/PostgresStores.ts')).createPostgresStores(options);
  }
  if (kind === 'mysql' && (process.env.TIDEMARK_BUNDLED_COMMIT_STORE ?? 'mysql') === 'mysql') {
    return (await import('./mysql/MysqlStores.ts')).createMysqlStores(options);
  }
  if (kind === 'redis' && (process.env.TIDEMARK_BUNDLED_COMMIT_STORE ?? 'redis') === 'redis') {
    return (await import('./redis/RedisStores.ts')).createRedisStores(options);
  }
  throw new ConfigurationError(
    ENV.commitStore,
    `${ENV.commitStore} is ${kind}, but this bundle was built for the ${process.env.TIDEMARK_BUNDLED_COMMIT_STORE} commit store (set the commit store on the CDK construct, which bundles its driver)`,
  );
}

/** Memoizes a load; a failed one is tried again on the next use. */
function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | undefined;
  return () => {
    if (!loaded) {
      const p = load();
      loaded = p;
      p.catch(() => {
        if (loaded === p) loaded = undefined;
      });
    }
    return loaded;
  };
}

/** A commit store whose module (and driver, or SDK) loads on first use (the handler is built synchronously at cold start). */
export class DeferredCommitStore implements CommitStore {
  readonly kind: string;
  private readonly load: () => Promise<Pick<DatabaseStores, 'commits'>>;

  constructor(kind: string, load: () => Promise<Pick<DatabaseStores, 'commits'>>) {
    this.kind = kind;
    this.load = once(load);
  }

  async read(...args: Parameters<CommitStore['read']>) {
    return (await this.load()).commits.read(...args);
  }

  async commit(...args: Parameters<CommitStore['commit']>) {
    return (await this.load()).commits.commit(...args);
  }

  async *list(pipeline: string) {
    yield* (await this.load()).commits.list(pipeline);
  }

  async probe() {
    return (await this.load()).commits.probe();
  }
}

/** The S3 snapshot store, whose module and SDK client load on first use. */
class DeferredSnapshotStore implements SnapshotStore {
  private readonly load: () => Promise<SnapshotStore>;

  constructor(load: () => Promise<SnapshotStore>) {
    this.load = once(load);
  }

  async put(...args: Parameters<SnapshotStore['put']>) {
    return (await this.load()).put(...args);
  }

  async get(key: string) {
    return (await this.load()).get(key);
  }

  async delete(keys: readonly string[]) {
    return (await this.load()).delete(keys);
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    yield* (await this.load()).list(prefix);
  }

  async copy(fromKey: string, toKey: string): Promise<boolean> {
    const store = await this.load();
    if (store.copy) return store.copy(fromKey, toKey);
    const body = await store.get(fromKey);
    if (!body) return false;
    await store.put(toKey, body, { ifAbsent: false, contentType: 'application/octet-stream' });
    return true;
  }

  async probe() {
    return (await this.load()).probe();
  }
}

/**
 * What the handler needs, and nothing more (the Lambda bundle carries no savepoint or provisioning
 * code): snapshots on S3, and commit items in the configured commit store (`TIDEMARK_COMMIT_STORE`,
 * docs/stores.md). A database store's driver loads, and connects, on first use.
 */
export function createRuntimeStores(
  config: StoreSettings,
  clients: { s3?: S3Client; dynamodb?: DynamoDBClient } = {},
): Stores {
  // The AWS SDK loads on first use, not at cold start: a task whose snapshots all travel inline in
  // its commit item never loads the S3 client at all.
  const snapshots = new DeferredSnapshotStore(async () => {
    const [{ S3SnapshotStore }, client] = await Promise.all([
      import('./s3/S3SnapshotStore.ts'),
      clients.s3 ?? runtimeS3Client(config.awsClient ?? 'lite'),
    ]);
    return new S3SnapshotStore({ client, bucket: config.bucket });
  });
  const kind = config.commitStore;
  if (kind === 'dynamodb') {
    return {
      snapshots,
      commits: new DeferredCommitStore('dynamodb', async () => {
        const [{ DynamoCommitStore }, client] = await Promise.all([
          import('./dynamodb/DynamoCommitStore.ts'),
          clients.dynamodb ?? runtimeDynamoClient(config.awsClient ?? 'lite'),
        ]);
        return { commits: new DynamoCommitStore({ client, table: config.table }) };
      }),
    };
  }
  const options = databaseOptions(config);
  return { snapshots, commits: new DeferredCommitStore(kind, () => loadDatabaseStores(kind, options)) };
}
