/**
 * What the SQL commit and savepoint stores need from a database driver (node-postgres, mysql2): a
 * pooled connection, a transaction, the dialect's statements, and error classification. The stores'
 * behaviour lives in `SqlCommitStore` and `SqlSavepointStore`; a driver is mapping only.
 */
import type { StoreConnection } from '../database/commitProtocol.ts';

export interface SqlResult {
  readonly rows: ReadonlyArray<Record<string, unknown>>;
  /** Rows the statement matched (UPDATE), inserted (INSERT) or deleted (DELETE). */
  readonly affected: number;
}

export interface SqlSession {
  query(sql: string, values?: readonly unknown[]): Promise<SqlResult>;
}

/**
 * The statements of one dialect, parameters in the order given. Tables are
 * `<prefix>_commits`, `<prefix>_savepoints` and `<prefix>_savepoint_tasks` (docs/stores.md).
 */
export interface SqlStatements {
  /** `CREATE TABLE IF NOT EXISTS …`, one per statement. */
  readonly schema: readonly string[];
  /** Reads nothing, fails when a table is missing. */
  readonly probe: string;
  /** (pipeline, topic, partition, epoch, committedOffset, record): 1 row, or 0 / a duplicate key when the task exists. */
  readonly insertCommit: string;
  /** (epoch, committedOffset, record, pipeline, topic, partition, expectedEpoch): 1 row when the stored epoch was the expected one. */
  readonly updateCommit: string;
  /** (pipeline, topic, partition) → `record`. */
  readonly selectCommit: string;
  /** (pipeline) → `record`, every task of the pipeline. */
  readonly listCommits: string;
  /** (pipeline, name, meta): 1 row, or 0 / a duplicate key when the name is taken. */
  readonly insertSavepoint: string;
  /** (pipeline, name, meta): insert or replace. */
  readonly upsertSavepoint: string;
  /** (pipeline, name, topic, partition, task): insert or replace. */
  readonly upsertSavepointTask: string;
  /** (pipeline, name) → `meta`. */
  readonly selectSavepoint: string;
  /** (pipeline, name) → `task`. */
  readonly selectSavepointTasks: string;
  /** (pipeline) → `meta`. */
  readonly listSavepoints: string;
  /** (pipeline, name). */
  readonly deleteSavepointTasks: string;
  /** (pipeline, name). */
  readonly deleteSavepoint: string;
}

export interface SqlDriver extends StoreConnection {
  readonly kind: 'postgres' | 'mysql';
  readonly statements: SqlStatements;
  /** Runs `fn` on one pooled connection, in autocommit mode. */
  session<T>(fn: (s: SqlSession) => Promise<T>): Promise<T>;
  /** Runs `fn` in one transaction (READ COMMITTED); rolled back when `fn` throws. */
  transaction<T>(fn: (s: SqlSession) => Promise<T>): Promise<T>;
  /** Closes every connection (CLI, tests). */
  close(): Promise<void>;
}

/** A statement attached to a commit (`AttachedWrites.writes` for the SQL stores). */
export interface SqlWrite {
  /** The dialect's placeholders: `$1, $2, …` on PostgreSQL, `?` on MySQL. */
  readonly sql: string;
  readonly values?: readonly unknown[];
}

export function isSqlWrite(w: unknown): w is SqlWrite {
  return (
    typeof w === 'object' &&
    w !== null &&
    typeof (w as SqlWrite).sql === 'string' &&
    ((w as SqlWrite).values === undefined || Array.isArray((w as SqlWrite).values))
  );
}
