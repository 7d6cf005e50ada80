/**
 * node-postgres (`pg`) behind the SQL stores: a small pool created on first use and kept across
 * invocations of a warm Lambda container, the dialect's statements, and error classification.
 *
 * - Connections open lazily; after any lost connection (a dead socket after a freeze, a server that
 *   restarted or killed the session) the whole pool is replaced, so no other dead socket is reused.
 * - `statement_timeout` and `lock_timeout` travel as startup parameters (no `SET` statement), and a
 *   client-side read timeout a little longer catches sockets that died silently.
 * - The password comes from the URL, a Secrets Manager secret, or a fresh RDS IAM token per connection.
 * - Parameters go through the extended protocol with unnamed statements (no named prepares, which
 *   would pin an RDS Proxy connection).
 */
import pg from 'pg';
import { StoreError, StoreMissingError } from '../../errors.ts';
import type { ErrorKind } from '../database/commitProtocol.ts';
import { type Endpoint, resolveEndpoint } from '../database/credentials.ts';
import type { ResolvedDatabaseOptions } from '../database/options.ts';
import type { SqlDriver, SqlResult, SqlSession, SqlStatements } from '../sql/SqlDriver.ts';

/** The dialect's statements for tables named `<prefix>_…` (the prefix is validated: `[a-z][a-z0-9_]*`). */
export function postgresStatements(prefix: string): SqlStatements {
  const commits = `${prefix}_commits`;
  const savepoints = `${prefix}_savepoints`;
  const tasks = `${prefix}_savepoint_tasks`;
  return {
    schema: [
      `CREATE TABLE IF NOT EXISTS ${commits} (
  pipeline text NOT NULL,
  topic text NOT NULL,
  kafka_partition integer NOT NULL,
  epoch bigint NOT NULL,
  committed_offset bigint NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  record jsonb NOT NULL,
  PRIMARY KEY (pipeline, topic, kafka_partition)
)`,
      `CREATE TABLE IF NOT EXISTS ${savepoints} (
  pipeline text NOT NULL,
  name text NOT NULL,
  meta jsonb NOT NULL,
  PRIMARY KEY (pipeline, name)
)`,
      `CREATE TABLE IF NOT EXISTS ${tasks} (
  pipeline text NOT NULL,
  name text NOT NULL,
  topic text NOT NULL,
  kafka_partition integer NOT NULL,
  task jsonb NOT NULL,
  PRIMARY KEY (pipeline, name, topic, kafka_partition)
)`,
    ],
    probe: `SELECT (SELECT 1 FROM ${commits} LIMIT 0), (SELECT 1 FROM ${savepoints} LIMIT 0), (SELECT 1 FROM ${tasks} LIMIT 0)`,
    insertCommit: `INSERT INTO ${commits} (pipeline, topic, kafka_partition, epoch, committed_offset, record)
VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (pipeline, topic, kafka_partition) DO NOTHING`,
    updateCommit: `UPDATE ${commits} SET epoch = $1, committed_offset = $2, record = $3::jsonb, written_at = now()
WHERE pipeline = $4 AND topic = $5 AND kafka_partition = $6 AND epoch = $7`,
    selectCommit: `SELECT record FROM ${commits} WHERE pipeline = $1 AND topic = $2 AND kafka_partition = $3`,
    listCommits: `SELECT topic, kafka_partition, record FROM ${commits} WHERE pipeline = $1 ORDER BY topic, kafka_partition`,
    insertSavepoint: `INSERT INTO ${savepoints} (pipeline, name, meta) VALUES ($1, $2, $3::jsonb) ON CONFLICT (pipeline, name) DO NOTHING`,
    upsertSavepoint: `INSERT INTO ${savepoints} (pipeline, name, meta) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (pipeline, name) DO UPDATE SET meta = EXCLUDED.meta`,
    upsertSavepointTask: `INSERT INTO ${tasks} (pipeline, name, topic, kafka_partition, task) VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (pipeline, name, topic, kafka_partition) DO UPDATE SET task = EXCLUDED.task`,
    selectSavepoint: `SELECT meta FROM ${savepoints} WHERE pipeline = $1 AND name = $2`,
    selectSavepointTasks: `SELECT task FROM ${tasks} WHERE pipeline = $1 AND name = $2`,
    listSavepoints: `SELECT meta FROM ${savepoints} WHERE pipeline = $1`,
    deleteSavepointTasks: `DELETE FROM ${tasks} WHERE pipeline = $1 AND name = $2`,
    deleteSavepoint: `DELETE FROM ${savepoints} WHERE pipeline = $1 AND name = $2`,
  };
}

const MISSING = new Set([
  '42P01', // undefined_table
  '3D000', // invalid_catalog_name: no such database
  '28P01', // invalid_password
  '28000', // invalid_authorization_specification
  '42501', // insufficient_privilege
]);
const CONFLICT = new Set(['23505', '40001']); // unique_violation, serialization_failure
const CONNECTION_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown (the session was terminated)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);

function codeOf(err: unknown): string | undefined {
  return (err as { code?: unknown } | null)?.code as string | undefined;
}

export function classifyPostgresError(err: unknown): ErrorKind {
  const code = codeOf(err);
  if (code && MISSING.has(code)) return 'missing';
  if (code && CONFLICT.has(code)) return 'conflict';
  if (code?.startsWith('08') || (code && CONNECTION_CODES.has(code))) return 'connection';
  const message = err instanceof Error ? err.message : '';
  if (
    /Connection terminated|connection timeout|Query read timeout|not queryable|timeout exceeded when trying to connect|Client was closed|ended by the other party/i.test(
      message,
    )
  ) {
    return 'connection';
  }
  return 'other';
}

export class PostgresDriver implements SqlDriver {
  readonly kind = 'postgres' as const;
  readonly statements: SqlStatements;
  private readonly options: ResolvedDatabaseOptions;
  private pool: Promise<pg.Pool> | undefined;
  private endpoint: Endpoint | undefined;

  constructor(options: ResolvedDatabaseOptions) {
    this.options = options;
    this.statements = postgresStatements(options.prefix);
  }

  private async createPool(): Promise<pg.Pool> {
    const o = this.options;
    const e = await resolveEndpoint('postgres', o);
    this.endpoint = e;
    const pool = new pg.Pool({
      host: e.host,
      port: e.port,
      database: e.database ?? 'postgres',
      ...(e.user ? { user: e.user } : {}),
      password: async () => (await e.password()) ?? '',
      ssl: e.tls ?? false,
      max: o.poolMax,
      connectionTimeoutMillis: o.connectTimeoutMs,
      // Kept across invocations; a connection idle this long is closed by us, before a proxy does.
      idleTimeoutMillis: 5 * 60_000,
      // A CLI or test process may exit while connections are idle.
      allowExitOnIdle: true,
      keepAlive: true,
      application_name: 'tidemark',
      statement_timeout: o.statementTimeoutMs,
      ...(o.lockTimeoutMs > 0 ? { lock_timeout: o.lockTimeoutMs } : {}),
      query_timeout: o.statementTimeoutMs + 2_000,
    });
    // A pooled idle connection that dies (server restart, killed session) is dropped by the pool;
    // without a listener the error would crash the process.
    pool.on('error', () => {});
    return pool;
  }

  private getPool(): Promise<pg.Pool> {
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
    return classifyPostgresError(err);
  }

  storeError(operation: string, err: unknown): StoreError {
    const kind = classifyPostgresError(err);
    const code = codeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    if (kind === 'missing') {
      if (code === '28P01' || code === '28000') this.endpoint?.refused();
      const resource = `database ${this.endpoint?.database ?? 'postgres'} or its tables ${this.options.prefix}_* (${code}: ${message})`;
      return new StoreMissingError('postgres', operation, resource, { cause: err });
    }
    const retriable = kind === 'connection' || kind === 'conflict' || /^(40|53|55|57)/.test(code ?? '');
    return new StoreError('postgres', operation, `${code ? `${code}: ` : ''}${message}`, {
      cause: err,
      retriable,
    });
  }

  reset(): void {
    const old = this.pool;
    this.pool = undefined;
    old?.then((p) => p.end()).catch(() => {});
  }

  async session<T>(fn: (s: SqlSession) => Promise<T>): Promise<T> {
    const client = await (await this.getPool()).connect();
    let broken: unknown;
    // A checked-out client whose connection dies emits 'error' (the pool listens to idle ones only):
    // without a listener that would crash the process, e.g. while a transaction sends its ROLLBACK.
    const onError = (err: unknown) => {
      broken ??= err;
    };
    client.on('error', onError);
    try {
      return await fn({
        async query(sql, values) {
          try {
            const r = await client.query(sql, values as unknown[] | undefined);
            return { rows: r.rows, affected: r.rowCount ?? 0 } satisfies SqlResult;
          } catch (err) {
            if (classifyPostgresError(err) === 'connection') broken = err;
            throw err;
          }
        },
      });
    } finally {
      client.off('error', onError);
      // A connection that failed is destroyed, not returned to the pool.
      client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);
    }
  }

  async transaction<T>(fn: (s: SqlSession) => Promise<T>): Promise<T> {
    return this.session(async (s) => {
      await s.query('BEGIN ISOLATION LEVEL READ COMMITTED');
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
