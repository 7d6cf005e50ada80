/**
 * Settings of the database commit stores (PostgreSQL, MySQL/MariaDB, Redis), as their constructors
 * take them; `databaseOptions` maps the resolved configuration onto them (lib/config/config.ts has
 * every setting's meaning and default).
 */
import {
  type DatabaseTls,
  DEFAULTS,
  type RedisDurability,
  type TidemarkConfig,
} from '../../config/config.ts';

export interface DatabaseStoreOptions {
  /** Connection URL (`postgres://…`, `mysql://…`, `redis://…`, `rediss://…`). */
  url?: string;
  /** Secrets Manager secret (RDS JSON form) with the credentials, and the host when the URL lacks one. */
  secret?: string;
  /** Authenticate with an RDS IAM auth token instead of a password. */
  iamAuth?: boolean;
  tls?: DatabaseTls;
  tlsCaFile?: string;
  /** Table prefix (SQL) or key prefix (Redis). */
  prefix?: string;
  poolMax?: number;
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
  /** Reads a secret's string (tests; default: Secrets Manager, loaded on first use). */
  readSecret?: (secretId: string) => Promise<string>;
  /** Makes an RDS IAM auth token (tests; default: `@aws-sdk/rds-signer`, loaded on first use). */
  signToken?: (endpoint: { host: string; port: number; user: string }) => Promise<string>;
}

export interface RedisStoreOptions extends DatabaseStoreOptions {
  /** Required: what the operator acknowledges about durability (docs/stores.md). */
  durability?: RedisDurability;
  cluster?: boolean;
}

/** Options with every default applied. */
export interface ResolvedDatabaseOptions extends DatabaseStoreOptions {
  tls: DatabaseTls;
  prefix: string;
  poolMax: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
}

export function withDefaults(o: DatabaseStoreOptions): ResolvedDatabaseOptions {
  return {
    ...o,
    tls: o.tls ?? DEFAULTS.dbTls,
    prefix: o.prefix ?? DEFAULTS.dbPrefix,
    poolMax: o.poolMax ?? DEFAULTS.dbPoolMax,
    connectTimeoutMs: o.connectTimeoutMs ?? DEFAULTS.dbConnectTimeoutMs,
    statementTimeoutMs: o.statementTimeoutMs ?? DEFAULTS.dbStatementTimeoutMs,
    lockTimeoutMs: o.lockTimeoutMs ?? DEFAULTS.dbLockTimeoutMs,
  };
}

/** The store options a resolved configuration asks for. */
export function databaseOptions(
  c: Pick<
    TidemarkConfig,
    | 'dbUrl'
    | 'dbSecret'
    | 'dbIamAuth'
    | 'dbTls'
    | 'dbTlsCaFile'
    | 'dbPrefix'
    | 'dbPoolMax'
    | 'dbConnectTimeoutMs'
    | 'dbStatementTimeoutMs'
    | 'dbLockTimeoutMs'
    | 'redisDurability'
    | 'redisCluster'
  >,
): RedisStoreOptions {
  return {
    ...(c.dbUrl ? { url: c.dbUrl } : {}),
    ...(c.dbSecret ? { secret: c.dbSecret } : {}),
    iamAuth: c.dbIamAuth,
    tls: c.dbTls,
    ...(c.dbTlsCaFile ? { tlsCaFile: c.dbTlsCaFile } : {}),
    prefix: c.dbPrefix,
    poolMax: c.dbPoolMax,
    connectTimeoutMs: c.dbConnectTimeoutMs,
    statementTimeoutMs: c.dbStatementTimeoutMs,
    lockTimeoutMs: c.dbLockTimeoutMs,
    ...(c.redisDurability ? { durability: c.redisDurability } : {}),
    cluster: c.redisCluster,
  };
}
