/**
 * Names of the environment variables Tidemark reads. Shared with the CDK construct, which sets
 * them on the function; nothing else lives here so `cdk/` can import it without runtime code.
 */
export const ENV = {
  bucket: 'TIDEMARK_BUCKET',
  table: 'TIDEMARK_TABLE',
  pipeline: 'TIDEMARK_PIPELINE',
  prefix: 'TIDEMARK_PREFIX',
  epochMaxRecords: 'TIDEMARK_EPOCH_MAX_RECORDS',
  epochMaxBytes: 'TIDEMARK_EPOCH_MAX_BYTES',
  timeReserveMs: 'TIDEMARK_TIME_RESERVE_MS',
  poisonPolicy: 'TIDEMARK_POISON_POLICY',
  retainedCheckpoints: 'TIDEMARK_RETAINED_CHECKPOINTS',
  warmCacheMaxTasks: 'TIDEMARK_WARM_CACHE_MAX_TASKS',
  taskConcurrency: 'TIDEMARK_TASK_CONCURRENCY',
  compression: 'TIDEMARK_SNAPSHOT_COMPRESSION',
  snapshotMode: 'TIDEMARK_SNAPSHOT_MODE',
  compactAfterDeltas: 'TIDEMARK_COMPACT_AFTER_DELTAS',
  compactDeltaRatio: 'TIDEMARK_COMPACT_DELTA_RATIO',
  orphanMinAgeSeconds: 'TIDEMARK_ORPHAN_MIN_AGE_SECONDS',
  sweepEveryEpochs: 'TIDEMARK_SWEEP_EVERY_EPOCHS',
  outboxInlineMaxBytes: 'TIDEMARK_OUTBOX_INLINE_MAX_BYTES',
  snapshotInlineMaxBytes: 'TIDEMARK_SNAPSHOT_INLINE_MAX_BYTES',
  commitInlineMaxBytes: 'TIDEMARK_COMMIT_INLINE_MAX_BYTES',
  reportBatchItemFailures: 'TIDEMARK_REPORT_BATCH_ITEM_FAILURES',
  /** Bucket of `s3Output` outputs that name none (read by the S3 sink, not by `loadConfig`). */
  s3OutputBucket: 'TIDEMARK_S3_OUTPUT_BUCKET',
  /** Table of `dynamoOutput` outputs that name none (read by the DynamoDB sink, not by `loadConfig`). */
  dynamodbOutputTable: 'TIDEMARK_DYNAMODB_OUTPUT_TABLE',
  /** Connection of `kafkaOutput` outputs whose cluster options give no brokers (read by the Kafka sink). */
  kafkaOutputBrokers: 'TIDEMARK_KAFKA_OUTPUT_BROKERS',
  kafkaOutputTls: 'TIDEMARK_KAFKA_OUTPUT_TLS',
  kafkaOutputCaFile: 'TIDEMARK_KAFKA_OUTPUT_CA_FILE',
  kafkaOutputSaslMechanism: 'TIDEMARK_KAFKA_OUTPUT_SASL_MECHANISM',
  kafkaOutputSecret: 'TIDEMARK_KAFKA_OUTPUT_SECRET',
  kafkaOutputUsername: 'TIDEMARK_KAFKA_OUTPUT_USERNAME',
  kafkaOutputPassword: 'TIDEMARK_KAFKA_OUTPUT_PASSWORD',
  /** Catalog of `icebergOutput` tables (read by the Iceberg sink and committer, not by `loadConfig`). */
  icebergCatalog: 'TIDEMARK_ICEBERG_CATALOG',
  icebergWarehouse: 'TIDEMARK_ICEBERG_WAREHOUSE',
  icebergCatalogTable: 'TIDEMARK_ICEBERG_CATALOG_TABLE',
  icebergRestUri: 'TIDEMARK_ICEBERG_REST_URI',
  icebergRestSigning: 'TIDEMARK_ICEBERG_REST_SIGNING',
  commitStore: 'TIDEMARK_COMMIT_STORE',
  awsClient: 'TIDEMARK_AWS_CLIENT',
  dbUrl: 'TIDEMARK_DB_URL',
  dbSecret: 'TIDEMARK_DB_SECRET',
  dbIamAuth: 'TIDEMARK_DB_IAM_AUTH',
  dbTls: 'TIDEMARK_DB_TLS',
  dbTlsCaFile: 'TIDEMARK_DB_TLS_CA_FILE',
  dbPrefix: 'TIDEMARK_DB_PREFIX',
  dbPoolMax: 'TIDEMARK_DB_POOL_MAX',
  dbConnectTimeoutMs: 'TIDEMARK_DB_CONNECT_TIMEOUT_MS',
  dbStatementTimeoutMs: 'TIDEMARK_DB_STATEMENT_TIMEOUT_MS',
  dbLockTimeoutMs: 'TIDEMARK_DB_LOCK_TIMEOUT_MS',
  redisDurability: 'TIDEMARK_REDIS_DURABILITY',
  redisCluster: 'TIDEMARK_REDIS_CLUSTER',
} as const;

/**
 * Clients of the handler's S3 snapshots and DynamoDB commits (`TIDEMARK_AWS_CLIENT`): `lite`, a small
 * SigV4 transport that loads in a few milliseconds (credentials from the environment, as Lambda
 * gives them), or `sdk`, the AWS SDK v3 (any credential source). Shared with the CDK construct.
 */
export const AWS_CLIENTS = ['lite', 'sdk'] as const;
export type AwsClientKind = (typeof AWS_CLIENTS)[number];

/** The commit stores Tidemark has (`TIDEMARK_COMMIT_STORE`); shared with the CDK construct. */
export const COMMIT_STORES = ['dynamodb', 'postgres', 'mysql', 'redis'] as const;
export type CommitStoreKind = (typeof COMMIT_STORES)[number];

/**
 * What a Redis commit store's operator acknowledges about its durability (`TIDEMARK_REDIS_DURABILITY`,
 * docs/stores.md): `memorydb` and `elasticache-sync` keep every acknowledged write through a failover
 * (exactly once); `accept-loss` (ElastiCache without synchronous durability, self-hosted Redis) can
 * lose acknowledged commits, which makes processing at-least-once.
 */
export const REDIS_DURABILITY = ['memorydb', 'elasticache-sync', 'accept-loss'] as const;
export type RedisDurability = (typeof REDIS_DURABILITY)[number];

/** The Iceberg catalogs the Iceberg sink speaks (`TIDEMARK_ICEBERG_CATALOG`); shared with the CDK construct. */
export const ICEBERG_CATALOGS = ['dynamodb', 's3', 'rest'] as const;
export type IcebergCatalogKind = (typeof ICEBERG_CATALOGS)[number];

export type EnvName = (typeof ENV)[keyof typeof ENV];

/**
 * The other `TIDEMARK_*` variables in use, none of them a setting of the function: the operator
 * commands' Kafka connection, the commit store a bundle was built for (defined by the CDK
 * construct's bundler), and the development harness (test servers, fuzzers, the fault campaign).
 */
export const OTHER_ENV_NAMES = [
  'TIDEMARK_KAFKA_BROKERS',
  'TIDEMARK_KAFKA_USERNAME',
  'TIDEMARK_KAFKA_PASSWORD',
  'TIDEMARK_BUNDLED_COMMIT_STORE',
  'TIDEMARK_BUNDLED_AWS_CLIENT',
  'TIDEMARK_TEST_POSTGRES_URL',
  'TIDEMARK_TEST_MYSQL_URL',
  'TIDEMARK_TEST_REDIS_URL',
  'TIDEMARK_FC_SEED',
  'TIDEMARK_FC_PATH',
  'TIDEMARK_FUZZ_RUNS',
  'TIDEMARK_CAMPAIGN_SEED',
  'TIDEMARK_CAMPAIGN_FAULTS',
  'TIDEMARK_CAMPAIGN_RECORDS',
  'TIDEMARK_STORE_CAMPAIGN_FAULTS',
  'TIDEMARK_WINDOW_CAMPAIGN_SEED',
  'TIDEMARK_WINDOW_CAMPAIGN_RECORDS',
  'TIDEMARK_ICEBERG_CAMPAIGN_SEED',
  'TIDEMARK_ICEBERG_CAMPAIGN_FAULTS',
  'TIDEMARK_ICEBERG_CAMPAIGN_CATALOG',
] as const;

/** Families of `TIDEMARK_*` variables read by tools that check their own (the CDK app's settings). */
export const OTHER_ENV_PREFIXES = ['TIDEMARK_DEPLOY_'] as const;
