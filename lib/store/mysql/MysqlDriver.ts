/**
 * mysql2 behind the SQL stores (MySQL 8, MariaDB 10.6+, Aurora MySQL): a small pool created on first
 * use and kept across invocations, the dialect's statements, and error classification.
 *
 * - InnoDB, `utf8mb4_bin` (Kafka topic names are case-sensitive; a `_ci` collation would make
 *   `Orders` and `orders` one task).
 * - The first commit is a plain INSERT: a duplicate key (1062) means another attempt created the
 *   task first. (`INSERT … ON DUPLICATE KEY UPDATE` cannot tell an insert from a no-op when the
 *   driver's FOUND_ROWS flag is on, as mysql2's is.) MariaDB ≥ 11.6 may answer a stale read-write
 *   with ER_CHECKREAD (1020): also a lost race.
 * - Statements are sent with client-side escaping (no server-side prepares, which pin an RDS Proxy
 *   connection). `innodb_lock_wait_timeout` is set once per connection (a session `SET`: behind RDS
 *   Proxy that pins; set `TIDEMARK_DB_LOCK_TIMEOUT_MS=0` and use the parameter group instead).
 * - IAM auth: RDS asks for the cleartext plugin; the token is sent over TLS only.
 */
import { createPool, type Pool, type PoolConnection } from 'mysql2/promise';
import { StoreError, StoreMissingError } from '../../errors.ts';
import type { ErrorKind } from '../database/commitProtocol.ts';
import { type Endpoint, resolveEndpoint } from '../database/credentials.ts';
import type { ResolvedDatabaseOptions } from '../database/options.ts';
import type { SqlDriver, SqlSession, SqlStatements } from '../sql/SqlDriver.ts';

const TABLE_OPTIONS = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin';

export function mysqlStatements(prefix: string): SqlStatements {
  const commits = `${prefix}_commits`;
  const savepoints = `${prefix}_savepoints`;
  const tasks = `${prefix}_savepoint_tasks`;
  return {
    schema: [
      `CREATE TABLE IF NOT EXISTS ${commits} (
  pipeline VARCHAR(128) NOT NULL,
  topic VARCHAR(249) NOT NULL,
  kafka_partition INT NOT NULL,
  epoch BIGINT NOT NULL,
  committed_offset BIGINT NOT NULL,
  written_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  record LONGTEXT NOT NULL,
  PRIMARY KEY (pipeline, topic, kafka_partition)
) ${TABLE_OPTIONS}`,
      `CREATE TABLE IF NOT EXISTS ${savepoints} (
  pipeline VARCHAR(128) NOT NULL,
  name VARCHAR(128) NOT NULL,
  meta LONGTEXT NOT NULL,
  PRIMARY KEY (pipeline, name)
) ${TABLE_OPTIONS}`,
      `CREATE TABLE IF NOT EXISTS ${tasks} (
  pipeline VARCHAR(128) NOT NULL,
  name VARCHAR(128) NOT NULL,
  topic VARCHAR(249) NOT NULL,
  kafka_partition INT NOT NULL,
  task LONGTEXT NOT NULL,
  PRIMARY KEY (pipeline, name, topic, kafka_partition)
) ${TABLE_OPTIONS}`,
    ],
    probe: `SELECT (SELECT 1 FROM ${commits} LIMIT 0), (SELECT 1 FROM ${savepoints} LIMIT 0), (SELECT 1 FROM ${tasks} LIMIT 0)`,
    insertCommit: `INSERT INTO ${commits} (pipeline, topic, kafka_partition, epoch, committed_offset, record) VALUES (?, ?, ?, ?, ?, ?)`,
    updateCommit: `UPDATE ${commits} SET epoch = ?, committed_offset = ?, record = ?, written_at = CURRENT_TIMESTAMP(3)
WHERE pipeline = ? AND topic = ? AND kafka_partition = ? AND epoch = ?`,
    selectCommit: `SELECT record FROM ${commits} WHERE pipeline = ? AND topic = ? AND kafka_partition = ?`,
    listCommits: `SELECT topic, kafka_partition, record FROM ${commits} WHERE pipeline = ? ORDER BY topic, kafka_partition`,
    insertSavepoint: `INSERT INTO ${savepoints} (pipeline, name, meta) VALUES (?, ?, ?)`,
    upsertSavepoint: `INSERT INTO ${savepoints} (pipeline, name, meta) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE meta = VALUES(meta)`,
    upsertSavepointTask: `INSERT INTO ${tasks} (pipeline, name, topic, kafka_partition, task) VALUES (?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE task = VALUES(task)`,
    selectSavepoint: `SELECT meta FROM ${savepoints} WHERE pipeline = ? AND name = ?`,
    selectSavepointTasks: `SELECT task FROM ${tasks} WHERE pipeline = ? AND name = ?`,
    listSavepoints: `SELECT meta FROM ${savepoints} WHERE pipeline = ?`,
    deleteSavepointTasks: `DELETE FROM ${tasks} WHERE pipeline = ? AND name = ?`,
    deleteSavepoint: `DELETE FROM ${savepoints} WHERE pipeline = ? AND name = ?`,
  };
}

const MISSING = new Set([
  1146, // ER_NO_SUCH_TABLE
  1049, // ER_BAD_DB_ERROR
  1045, // ER_ACCESS_DENIED_ERROR
  1044, // ER_DBACCESS_DENIED_ERROR
  1142, // ER_TABLEACCESS_DENIED_ERROR
  1227, // ER_SPECIFIC_ACCESS_DENIED_ERROR
]);
const CONFLICT = new Set([
  1062, // ER_DUP_ENTRY
  1020, // ER_CHECKREAD (MariaDB ≥ 11.6: the row changed since it was read)
]);
const CONNECTION_ERRNO = new Set([
  1053, // ER_SERVER_SHUTDOWN
  1927, // ER_CONNECTION_KILLED (MariaDB)
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
  4031, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL: disconnected for inactivity)
]);

export function classifyMysqlError(err: unknown): ErrorKind {
  const e = (err ?? {}) as { errno?: number; code?: string; fatal?: boolean };
  if (typeof e.errno === 'number' && MISSING.has(e.errno)) return 'missing';
  if (typeof e.errno === 'number' && CONFLICT.has(e.errno)) return 'conflict';
  if (typeof e.errno === 'number' && CONNECTION_ERRNO.has(e.errno)) return 'connection';
  if (
    e.fatal === true ||
    (typeof e.code === 'string' &&
      /^(PROTOCOL_|ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)/.test(e.code))
  ) {
    return 'connection';
  }
  if (
    err instanceof Error &&
    /connection is in closed state|Can't add new command when connection is in closed state/i.test(
      err.message,
    )
  ) {
    return 'connection';
  }
  return 'other';
}

export class MysqlDriver implements SqlDriver {
  readonly kind = 'mysql' as const;
  readonly statements: SqlStatements;
  private readonly options: ResolvedDatabaseOptions;
  private pool: Promise<Pool> | undefined;
  private endpoint: Endpoint | undefined;

  constructor(options: ResolvedDatabaseOptions) {
    this.options = options;
    this.statements = mysqlStatements(options.prefix);
  }

  private async createPool(): Promise<Pool> {
    const o = this.options;
    const e = await resolveEndpoint('mysql', o);
    this.endpoint = e;
    // A static password is read once per pool (the pool is replaced after a refusal); an IAM token
    // is made for each new connection through the cleartext plugin RDS asks for.
    const password = o.iamAuth ? undefined : await e.password();
    const pool = createPool({
      host: e.host,
      port: e.port,
      ...(e.database ? { database: e.database } : {}),
      ...(e.user ? { user: e.user } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(o.iamAuth
        ? {
            authPlugins: {
              mysql_clear_password: () => async () => Buffer.from(`${(await e.password()) ?? ''}\0`),
            },
          }
        : {}),
      ...(e.tls ? { ssl: e.tls } : {}),
      connectionLimit: o.poolMax,
      maxIdle: o.poolMax,
      idleTimeout: 5 * 60_000,
      connectTimeout: o.connectTimeoutMs,
      enableKeepAlive: true,
      waitForConnections: true,
      queueLimit: 0,
      // Offsets are int64: BIGINT columns come back as strings, never rounded numbers.
      supportBigNumbers: true,
      bigNumberStrings: true,
      charset: 'utf8mb4_bin',
    });
    const lockSeconds = Math.ceil(o.lockTimeoutMs / 1000);
    pool.pool.on('connection', (c) => {
      // An idle pooled connection that dies must not crash the process (the pool drops it).
      c.on('error', () => {});
      // Runs before any other statement of the new connection (the connection queues them).
      if (lockSeconds > 0) c.query(`SET SESSION innodb_lock_wait_timeout = ${lockSeconds}`, () => {});
    });
    return pool;
  }

  private getPool(): Promise<Pool> {
    if (!this.pool) {
      const p = this.createPool();
      this.pool = p;
      p.catch(() => {
        if (this.pool === p) this.pool = undefined;
      });
    }
    return this.pool;
  }

  classify(err: unknown): ErrorKind {
    return classifyMysqlError(err);
  }

  storeError(operation: string, err: unknown): StoreError {
    const kind = classifyMysqlError(err);
    const e = (err ?? {}) as { errno?: number; code?: string };
    const message = err instanceof Error ? err.message : String(err);
    const code = e.code ? `${e.code}${e.errno ? ` ${e.errno}` : ''}: ` : '';
    if (kind === 'missing') {
      if (e.errno === 1045) this.endpoint?.refused();
      const resource = `database ${this.endpoint?.database ?? '?'} or its tables ${this.options.prefix}_* (${code}${message})`;
      return new StoreMissingError('mysql', operation, resource, { cause: err });
    }
    const retriable =
      kind === 'connection' ||
      kind === 'conflict' ||
      e.errno === 1205 || // ER_LOCK_WAIT_TIMEOUT
      e.errno === 1213 || // ER_LOCK_DEADLOCK
      e.errno === 1040 || // ER_CON_COUNT_ERROR
      e.code === 'PROTOCOL_SEQUENCE_TIMEOUT';
    return new StoreError('mysql', operation, `${code}${message}`, { cause: err, retriable });
  }

  reset(): void {
    const old = this.pool;
    this.pool = undefined;
    old?.then((p) => p.end()).catch(() => {});
  }

  async session<T>(fn: (s: SqlSession) => Promise<T>): Promise<T> {
    const conn: PoolConnection = await (await this.getPool()).getConnection();
    let broken = false;
    const timeout = this.options.statementTimeoutMs;
    try {
      return await fn({
        async query(sql, values) {
          try {
            const [r] = await conn.query({ sql, values: values as unknown[] | undefined, timeout });
            if (Array.isArray(r)) return { rows: r as Record<string, unknown>[], affected: r.length };
            return { rows: [], affected: (r as { affectedRows: number }).affectedRows };
          } catch (err) {
            if (classifyMysqlError(err) === 'connection') broken = true;
            throw err;
          }
        },
      });
    } finally {
      if (broken) conn.destroy();
      else conn.release();
    }
  }

  async transaction<T>(fn: (s: SqlSession) => Promise<T>): Promise<T> {
    return this.session(async (s) => {
      await s.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
      await s.query('START TRANSACTION');
      try {
        const out = await fn(s);
        await s.query('COMMIT');
        return out;
      } catch (err) {
        await s.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = undefined;
    if (p) await (await p).end();
  }
}
