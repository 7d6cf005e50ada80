import { ConfigurationError } from '../errors.ts';
import { DEFAULT_PREFIX, PIPELINE_ID_PATTERN, prefixProblem } from './definitions.ts';
import {
  AWS_CLIENTS,
  type AwsClientKind,
  COMMIT_STORES,
  type CommitStoreKind,
  ENV,
  OTHER_ENV_NAMES,
  OTHER_ENV_PREFIXES,
  REDIS_DURABILITY,
  type RedisDurability,
} from './env.ts';

export type { CommitStoreKind, RedisDurability } from './env.ts';

/** What happens to a record the processor cannot handle (see docs/configuration.md). */
export type PoisonPolicy = 'fail' | 'quarantine';
export type SnapshotCompression = 'zstd' | 'none';
export type SnapshotMode = 'incremental' | 'full';
/** `require`: TLS with the server's certificate verified; `no-verify`: TLS, unverified; `off`: plain TCP. */
export type DatabaseTls = 'require' | 'no-verify' | 'off';

/**
 * Every Tidemark setting, with its default. This is the one place where settings are defined.
 * Precedence when a setting is given in several places: environment variable > value passed in
 * code (`createKafkaHandler(processor, { config })`) > processor definition > default below.
 */
export interface TidemarkConfig {
  /** S3 bucket holding snapshots and quarantined records. Env `TIDEMARK_BUCKET`. Required. */
  bucket: string;
  /**
   * DynamoDB table holding commit items and savepoints (`pk`/`sk` strings). Env `TIDEMARK_TABLE`.
   * Required with the DynamoDB commit store; empty with the others.
   */
  table: string;
  /** Pipeline id: one deployed processor, one ESM and its consumer group. Env `TIDEMARK_PIPELINE`. Required. */
  pipeline: string;
  /** Key prefix of every object the pipeline writes in the bucket. Env `TIDEMARK_PREFIX`. Default `tidemark`. */
  prefix: string;
  /** An epoch ends after this many applied records. Env `TIDEMARK_EPOCH_MAX_RECORDS`. Default 10,000 (the ESM's largest batch). */
  epochMaxRecords: number;
  /** An epoch ends once its records' key+value bytes reach this. Env `TIDEMARK_EPOCH_MAX_BYTES`. Default 8 MiB. */
  epochMaxBytes: number;
  /**
   * Time kept in reserve to snapshot and commit. An epoch is cut short when the invocation's
   * remaining time falls below max(this, 3 × the slowest checkpoint seen by this container), and no
   * epoch starts below it. Env `TIDEMARK_TIME_RESERVE_MS`. Default 5,000 ms.
   */
  timeReserveMs: number;
  /** `quarantine` sets poison records aside in S3 and goes on; `fail` fails the invocation. Env `TIDEMARK_POISON_POLICY`. Default `fail`. */
  poisonPolicy: PoisonPolicy;
  /** Committed checkpoints kept per task (the newest included); older snapshots are deleted after a commit. Env `TIDEMARK_RETAINED_CHECKPOINTS`. Default 3. */
  retainedCheckpoints: number;
  /** Tasks whose state a warm container keeps in memory (least recently used evicted). Env `TIDEMARK_WARM_CACHE_MAX_TASKS`. Default 64. */
  warmCacheMaxTasks: number;
  /** Tasks of one batch processed at the same time. Env `TIDEMARK_TASK_CONCURRENCY`. Default 8. */
  taskConcurrency: number;
  /** Compression of snapshot bodies. Env `TIDEMARK_SNAPSHOT_COMPRESSION`. Default `zstd`. */
  compression: SnapshotCompression;
  /**
   * `incremental`: an epoch writes only the keys it changed (a delta chained to a full snapshot);
   * `full`: every epoch writes the whole state. Env `TIDEMARK_SNAPSHOT_MODE`. Default `incremental`.
   */
  snapshotMode: SnapshotMode;
  /** A chain is compacted into a new full snapshot once it holds this many deltas. Env `TIDEMARK_COMPACT_AFTER_DELTAS`. Default 16. */
  compactAfterDeltas: number;
  /**
   * …or once its deltas' bytes exceed this fraction of the full snapshot's bytes, so restoring never
   * reads more than (1 + ratio) × a full snapshot. Env `TIDEMARK_COMPACT_DELTA_RATIO`. Default 0.5.
   */
  compactDeltaRatio: number;
  /**
   * Snapshot objects no commit references are deleted only when older than this: an attempt may be
   * between its snapshot PUT and its commit. Must exceed the function timeout by a wide margin.
   * Env `TIDEMARK_ORPHAN_MIN_AGE_SECONDS`. Default 3,600 s.
   */
  orphanMinAgeSeconds: number;
  /**
   * Every this many epochs of a task, after the commit, the engine lists the task's snapshot
   * objects (one LIST) and deletes orphans of attempts that never committed. Env
   * `TIDEMARK_SWEEP_EVERY_EPOCHS`. Default 100.
   */
  sweepEveryEpochs: number;
  /**
   * An epoch's outbox (its outputs awaiting delivery) travels inside the commit item when its encoded
   * size is at most this, else it is written as an object next to the snapshot (one more PUT). Keep it
   * well under the commit store's item limit (DynamoDB: 400 KB). Env `TIDEMARK_OUTBOX_INLINE_MAX_BYTES`.
   * Default 16,384.
   */
  outboxInlineMaxBytes: number;
  /**
   * A snapshot (an epoch's delta, or the full snapshot of a small state) of at most this many encoded
   * bytes travels inside the commit item instead of being written to S3: the epoch then costs one
   * durable request. 0 writes every snapshot to S3. Env `TIDEMARK_SNAPSHOT_INLINE_MAX_BYTES`.
   * Default 16,384.
   */
  snapshotInlineMaxBytes: number;
  /**
   * Inline snapshot bytes one commit item may carry, its current chain and its retained checkpoints
   * together (DynamoDB bills a write per started KB of the whole item, and an item holds 400 KB at
   * most). A chain's own inline links take at most half of it; an epoch that would exceed either
   * writes its snapshot to S3, merging the chain's inline links into it. At most 262,144.
   * Env `TIDEMARK_COMMIT_INLINE_MAX_BYTES`. Default 131,072.
   */
  commitInlineMaxBytes: number;
  /**
   * The event source mapping has `ReportBatchItemFailures` on: when some tasks of a batch fail and
   * others commit, the invocation succeeds and names the failed tasks' records, so only those are
   * delivered again. Only with the mapping setting (the CDK construct sets both): a mapping without
   * it would take the response as success and skip the failed records. Env
   * `TIDEMARK_REPORT_BATCH_ITEM_FAILURES`. Default false.
   */
  reportBatchItemFailures: boolean;
  /**
   * Where commit items and savepoints live: `dynamodb`, `postgres` (PostgreSQL, Aurora PostgreSQL),
   * `mysql` (MySQL, MariaDB, Aurora MySQL) or `redis` (MemoryDB, ElastiCache, Redis, Valkey); see
   * docs/stores.md. Snapshots stay in S3 whichever it is. Env `TIDEMARK_COMMIT_STORE`. Default `dynamodb`.
   */
  commitStore: CommitStoreKind;
  /**
   * The client of the handler's snapshots in S3 and commits in DynamoDB: `lite` (a small SigV4
   * transport; credentials from the environment, which is where Lambda puts the execution role's)
   * or `sdk` (the AWS SDK v3, every credential source, FIPS and dual-stack endpoints). `lite` falls
   * back to the SDK where it cannot serve the environment and the SDK is in the bundle; the CDK
   * construct bundles only the chosen one (docs/performance.md, cold start). Operators' commands and
   * sinks always use the SDK. Env `TIDEMARK_AWS_CLIENT`. Default `lite`.
   */
  awsClient: AwsClientKind;
  /**
   * Connection URL of the database commit store (`postgres://user@host:5432/db`,
   * `mysql://user@host:3306/db`, `redis://host:6379`, `rediss://…` for TLS). A password in it is
   * used as is (local runs); in AWS use `dbSecret` or `dbIamAuth`. Env `TIDEMARK_DB_URL`.
   */
  dbUrl: string | undefined;
  /**
   * Secrets Manager secret (name or ARN) holding the database credentials, in the RDS JSON form
   * (`username`, `password`, and optionally `host`, `port`, `dbname`, which fill what `dbUrl` lacks).
   * Env `TIDEMARK_DB_SECRET`.
   */
  dbSecret: string | undefined;
  /**
   * Authenticate with an RDS IAM auth token (RDS, Aurora, RDS Proxy) for the URL's user instead of a
   * password. Env `TIDEMARK_DB_IAM_AUTH`. Default false.
   */
  dbIamAuth: boolean;
  /** TLS to the database: `require`, `no-verify` or `off`. Env `TIDEMARK_DB_TLS`. Default `require`. */
  dbTls: DatabaseTls;
  /** PEM file of extra CAs to trust (e.g. the RDS CA bundle). Env `TIDEMARK_DB_TLS_CA_FILE`. */
  dbTlsCaFile: string | undefined;
  /**
   * Prefix of the tables (SQL: `<prefix>_commits`, …) or keys (Redis) the store uses: lower-case
   * letters, digits and `_`. Env `TIDEMARK_DB_PREFIX`. Default `tidemark`.
   */
  dbPrefix: string;
  /** Connections one container opens at most. Env `TIDEMARK_DB_POOL_MAX`. Default 2. */
  dbPoolMax: number;
  /** Connecting gives up after this. Env `TIDEMARK_DB_CONNECT_TIMEOUT_MS`. Default 3,000 ms. */
  dbConnectTimeoutMs: number;
  /**
   * A statement (or Redis command) gives up after this, on the server where it can (PostgreSQL
   * `statement_timeout`) and in the client (a dead socket). Keep it well below the function timeout.
   * Env `TIDEMARK_DB_STATEMENT_TIMEOUT_MS`. Default 10,000 ms.
   */
  dbStatementTimeoutMs: number;
  /**
   * A commit waits this long at most for a row lock held by a concurrent attempt (PostgreSQL
   * `lock_timeout`, InnoDB `innodb_lock_wait_timeout`, rounded up to seconds). 0 leaves the server's
   * setting (no session setting: nothing pins an RDS Proxy connection). Env `TIDEMARK_DB_LOCK_TIMEOUT_MS`. Default 5,000 ms.
   */
  dbLockTimeoutMs: number;
  /**
   * Required with the Redis commit store: what its durability is (`memorydb`, `elasticache-sync`,
   * `accept-loss`; docs/stores.md). The store refuses to start without it. Env `TIDEMARK_REDIS_DURABILITY`.
   */
  redisDurability: RedisDurability | undefined;
  /** Talk the Redis cluster protocol (MemoryDB, ElastiCache cluster mode). Env `TIDEMARK_REDIS_CLUSTER`. Default false. */
  redisCluster: boolean;
}

export const DEFAULTS = {
  prefix: DEFAULT_PREFIX,
  epochMaxRecords: 10_000,
  epochMaxBytes: 8 * 1024 * 1024,
  timeReserveMs: 5_000,
  poisonPolicy: 'fail',
  retainedCheckpoints: 3,
  warmCacheMaxTasks: 64,
  taskConcurrency: 8,
  compression: 'zstd',
  snapshotMode: 'incremental',
  compactAfterDeltas: 16,
  compactDeltaRatio: 0.5,
  orphanMinAgeSeconds: 3_600,
  sweepEveryEpochs: 100,
  outboxInlineMaxBytes: 16_384,
  snapshotInlineMaxBytes: 16_384,
  commitInlineMaxBytes: 131_072,
  reportBatchItemFailures: false,
  commitStore: 'dynamodb',
  awsClient: 'lite',
  dbIamAuth: false,
  dbTls: 'require',
  dbPrefix: 'tidemark',
  dbPoolMax: 2,
  dbConnectTimeoutMs: 3_000,
  dbStatementTimeoutMs: 10_000,
  dbLockTimeoutMs: 5_000,
  redisCluster: false,
} as const satisfies Partial<TidemarkConfig>;

const REQUIRED = ['bucket', 'pipeline'] as const;

function positiveInt(setting: string, raw: string | number): number {
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigurationError(
      setting,
      `${setting} must be a positive integer, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

function positiveNumber(setting: string, raw: string | number): number {
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isFinite(n) || n <= 0) {
    throw new ConfigurationError(setting, `${setting} must be a positive number, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function nonNegativeInt(setting: string, raw: string | number): number {
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new ConfigurationError(
      setting,
      `${setting} must be a non-negative integer, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/** Inline snapshot bytes a commit item may carry at most (DynamoDB items hold 400 KB). */
export const MAX_COMMIT_INLINE_BYTES = 262_144;

function atMost(setting: string, n: number, max: number): number {
  if (n > max) throw new ConfigurationError(setting, `${setting} must be at most ${max}, got ${n}`);
  return n;
}

function bool(setting: string, raw: string | number | boolean): boolean {
  if (typeof raw === 'boolean') return raw;
  const v = String(raw).trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigurationError(setting, `${setting} must be true or false, got ${JSON.stringify(raw)}`);
}

function oneOf<T extends string>(setting: string, raw: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigurationError(
      setting,
      `${setting} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`,
    );
  }
  return raw as T;
}

/** Levenshtein distance (a few dozen short names: a library would add weight to every bundle for this). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * Refuses a `TIDEMARK_*` environment variable that Tidemark does not know (a typo would otherwise
 * leave the setting at its default without a word), naming the closest known one.
 */
export function checkEnvNames(env: Readonly<Record<string, string | undefined>>): void {
  const known: readonly string[] = [...Object.values(ENV), ...OTHER_ENV_NAMES];
  for (const name of Object.keys(env)) {
    if (!name.startsWith('TIDEMARK_') || env[name] === undefined || known.includes(name)) continue;
    if (OTHER_ENV_PREFIXES.some((p) => name.startsWith(p))) continue;
    let closest = known[0]!;
    let best = Number.POSITIVE_INFINITY;
    for (const k of known) {
      const d = editDistance(name, k);
      if (d < best) [closest, best] = [k, d];
    }
    throw new ConfigurationError(
      name,
      `unknown environment variable ${name}: did you mean ${closest}? Tidemark reads ${Object.values(ENV).join(', ')} (docs/configuration.md)`,
    );
  }
}

/**
 * Resolves the configuration from the environment and values given in code, validating every
 * field. A missing required setting fails with a `ConfigurationError` naming the variable, and so
 * does a `TIDEMARK_*` variable Tidemark does not know (`checkEnvNames`).
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
  given: Partial<TidemarkConfig> = {},
): TidemarkConfig {
  checkEnvNames(env);
  const pick = (key: keyof TidemarkConfig): string | number | undefined => {
    const fromEnv = env[ENV[key]];
    if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv.trim();
    const fromCode = given[key];
    if (fromCode !== undefined)
      return typeof fromCode === 'boolean' ? String(fromCode) : (fromCode as string | number);
    return (DEFAULTS as Partial<Record<keyof TidemarkConfig, string | number | boolean>>)[key] as
      | string
      | number
      | undefined;
  };
  const optional = (key: keyof TidemarkConfig): string | undefined => {
    const v = pick(key);
    return v === undefined || v === '' ? undefined : String(v);
  };
  for (const key of REQUIRED) {
    if (pick(key) === undefined) {
      throw new ConfigurationError(
        ENV[key],
        `missing required setting ${ENV[key]} (the ${key} Tidemark stores ${key === 'pipeline' ? 'checkpoints under' : 'checkpoints in'})`,
      );
    }
  }
  const commitStore = oneOf(ENV.commitStore, String(pick('commitStore')), COMMIT_STORES);
  if (commitStore === 'dynamodb' && pick('table') === undefined) {
    throw new ConfigurationError(
      ENV.table,
      `missing required setting ${ENV.table} (the table Tidemark stores checkpoints in)`,
    );
  }
  const config: TidemarkConfig = {
    bucket: String(pick('bucket')),
    table: String(pick('table') ?? ''),
    pipeline: String(pick('pipeline')),
    prefix: String(pick('prefix')),
    epochMaxRecords: positiveInt(ENV.epochMaxRecords, pick('epochMaxRecords')!),
    epochMaxBytes: positiveInt(ENV.epochMaxBytes, pick('epochMaxBytes')!),
    timeReserveMs: positiveInt(ENV.timeReserveMs, pick('timeReserveMs')!),
    poisonPolicy: oneOf(ENV.poisonPolicy, String(pick('poisonPolicy')), ['fail', 'quarantine'] as const),
    retainedCheckpoints: positiveInt(ENV.retainedCheckpoints, pick('retainedCheckpoints')!),
    warmCacheMaxTasks: positiveInt(ENV.warmCacheMaxTasks, pick('warmCacheMaxTasks')!),
    taskConcurrency: positiveInt(ENV.taskConcurrency, pick('taskConcurrency')!),
    compression: oneOf(ENV.compression, String(pick('compression')), ['zstd', 'none'] as const),
    snapshotMode: oneOf(ENV.snapshotMode, String(pick('snapshotMode')), ['incremental', 'full'] as const),
    compactAfterDeltas: positiveInt(ENV.compactAfterDeltas, pick('compactAfterDeltas')!),
    compactDeltaRatio: positiveNumber(ENV.compactDeltaRatio, pick('compactDeltaRatio')!),
    orphanMinAgeSeconds: positiveInt(ENV.orphanMinAgeSeconds, pick('orphanMinAgeSeconds')!),
    sweepEveryEpochs: positiveInt(ENV.sweepEveryEpochs, pick('sweepEveryEpochs')!),
    outboxInlineMaxBytes: positiveInt(ENV.outboxInlineMaxBytes, pick('outboxInlineMaxBytes')!),
    snapshotInlineMaxBytes: nonNegativeInt(ENV.snapshotInlineMaxBytes, pick('snapshotInlineMaxBytes')!),
    commitInlineMaxBytes: atMost(
      ENV.commitInlineMaxBytes,
      nonNegativeInt(ENV.commitInlineMaxBytes, pick('commitInlineMaxBytes')!),
      MAX_COMMIT_INLINE_BYTES,
    ),
    reportBatchItemFailures: bool(ENV.reportBatchItemFailures, pick('reportBatchItemFailures')!),
    commitStore,
    awsClient: oneOf(ENV.awsClient, String(pick('awsClient')), AWS_CLIENTS),
    dbUrl: optional('dbUrl'),
    dbSecret: optional('dbSecret'),
    dbIamAuth: bool(ENV.dbIamAuth, pick('dbIamAuth')!),
    dbTls: oneOf(ENV.dbTls, String(pick('dbTls')), ['require', 'no-verify', 'off'] as const),
    dbTlsCaFile: optional('dbTlsCaFile'),
    dbPrefix: String(pick('dbPrefix')),
    dbPoolMax: positiveInt(ENV.dbPoolMax, pick('dbPoolMax')!),
    dbConnectTimeoutMs: positiveInt(ENV.dbConnectTimeoutMs, pick('dbConnectTimeoutMs')!),
    dbStatementTimeoutMs: positiveInt(ENV.dbStatementTimeoutMs, pick('dbStatementTimeoutMs')!),
    dbLockTimeoutMs: nonNegativeInt(ENV.dbLockTimeoutMs, pick('dbLockTimeoutMs')!),
    redisDurability: optional('redisDurability') as RedisDurability | undefined,
    redisCluster: bool(ENV.redisCluster, pick('redisCluster')!),
  };
  validateCommitStore(config);
  if (!PIPELINE_ID_PATTERN.test(config.pipeline)) {
    throw new ConfigurationError(
      ENV.pipeline,
      `${ENV.pipeline} must match ${PIPELINE_ID_PATTERN}, got ${JSON.stringify(config.pipeline)}`,
    );
  }
  const prefixIssue = prefixProblem(config.prefix);
  if (prefixIssue) throw new ConfigurationError(ENV.prefix, `${ENV.prefix} ${prefixIssue}`);
  return config;
}

/**
 * The checks of the database commit stores' settings (also used by the CLI, which resolves only the
 * store settings): a connection to go to, a safe table or key prefix, and for Redis the operator's
 * acknowledgement of what its durability is.
 */
export function validateCommitStore(
  config: Pick<
    TidemarkConfig,
    'commitStore' | 'dbUrl' | 'dbSecret' | 'dbPrefix' | 'redisDurability' | 'dbIamAuth'
  >,
): void {
  if (config.commitStore === 'dynamodb') return;
  if (!/^[a-z][a-z0-9_]{0,39}$/.test(config.dbPrefix)) {
    throw new ConfigurationError(
      ENV.dbPrefix,
      `${ENV.dbPrefix} must be lower-case letters, digits and _ (at most 40, starting with a letter), got ${JSON.stringify(config.dbPrefix)}`,
    );
  }
  if (!config.dbUrl && !config.dbSecret) {
    throw new ConfigurationError(
      ENV.dbUrl,
      `the ${config.commitStore} commit store needs ${ENV.dbUrl} (or ${ENV.dbSecret}, a secret naming host and port)`,
    );
  }
  if (config.commitStore === 'redis') {
    if (config.dbIamAuth) {
      throw new ConfigurationError(
        ENV.dbIamAuth,
        `${ENV.dbIamAuth} is for PostgreSQL and MySQL (RDS, Aurora)`,
      );
    }
    if (config.redisDurability === undefined) {
      throw new ConfigurationError(
        ENV.redisDurability,
        `the Redis commit store needs ${ENV.redisDurability}: memorydb or elasticache-sync (acknowledged writes survive a failover: exactly once), or accept-loss (asynchronous replication can lose acknowledged commits: at least once); see docs/stores.md`,
      );
    }
    oneOf(ENV.redisDurability, config.redisDurability, REDIS_DURABILITY);
  }
}
