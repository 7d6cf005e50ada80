/**
 * The SQL sink's two tables in the fault campaign (outputs.ts declares the outputs), in the database
 * of the run's PostgreSQL or MySQL/MariaDB commit store:
 *
 * - `<events>`: append-only (no key), one row per applied record: the output's task, offset,
 *   account, balance and count after it (null balance: a tombstone), the invocation that emitted it,
 *   and the five identity columns. No key on purpose: a row written twice (an epoch's rows applied
 *   again, a zombie's, a losing attempt's) stays two rows and a row never written is missing, so the
 *   judge counts every write. A primary key on the output's stable id would turn a doubled write
 *   into a silent no-op (insert unless present) or a failed commit, and hide it.
 * - `<totals>`: one row per account, keyed `<pipeline>/<task>/<account>`, upserted by every deposit
 *   (balance, count, last offset, invocation, identity) and deleted by a tombstone: what a user's
 *   table of current values looks like. Judged equal to the fold's final state.
 *
 * The tables are created with the DDL helper (`sqlOutputTableDdl`) through the commit store's driver.
 * They are read back with the database's own client (node-postgres, mysql2) and a plain SELECT,
 * sharing no code with the sink's statements, its codec or its reader.
 */
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { Delivery } from '../../lib/output/types.ts';
import { sqlDialect } from '../../lib/sink/sql/dialect.ts';
import {
  type SqlDialectName,
  type SqlOutputDescriptor,
  sqlOutputTableDdl,
} from '../../lib/sink/sql/index.ts';
import { sqlStatements } from '../../lib/sink/sql/statements.ts';
import { withDefaults } from '../../lib/store/database/options.ts';
import { MysqlDriver } from '../../lib/store/mysql/MysqlDriver.ts';
import { PostgresDriver } from '../../lib/store/postgres/PostgresDriver.ts';
import type { SqlDriver } from '../../lib/store/sql/SqlDriver.ts';
import type { CampaignOutput, SeenOutput, SqlTotalsRow } from './outputCheck.ts';

export interface SqlTargets {
  /** The commit store's kind: the tables' dialect. */
  readonly store: SqlDialectName;
  /** The commit store's database. */
  readonly url: string;
  /** Table names (the run's own). */
  readonly events: string;
  readonly totals: string;
}

/** A driver of the commit stores' kind on the run's database (DDL, the self-check's replay). */
function driverOf(t: SqlTargets): SqlDriver {
  const o = withDefaults({ url: t.url, tls: 'off', poolMax: 1, connectTimeoutMs: 5_000 });
  return t.store === 'postgres' ? new PostgresDriver(o) : new MysqlDriver(o);
}

/** Creates the outputs' tables (`CREATE TABLE IF NOT EXISTS`, the DDL helper's). */
export async function createSqlTables(t: SqlTargets, outputs: readonly SqlOutputDescriptor[]): Promise<void> {
  const driver = driverOf(t);
  try {
    await driver.session(async (s) => {
      for (const o of outputs) await s.query(sqlOutputTableDdl(o, t.store));
    });
  } finally {
    await driver.close();
  }
}

/**
 * The self-check's broken sink: applies a delivery's statements once more, in a transaction of its
 * own, outside any commit (as a sink that wrote its rows after the commit, and again on a retry).
 */
export async function applySqlDelivery(t: SqlTargets, delivery: Delivery): Promise<void> {
  const driver = driverOf(t);
  try {
    await driver.transaction(async (s) => {
      for (const w of sqlStatements(sqlDialect(t.store), delivery)) await s.query(w.sql, w.values ?? []);
    });
  } finally {
    await driver.close();
  }
}

type Row = Record<string, unknown>;

/** Runs one SELECT with the database's own client (a connection of its own). */
async function select(t: SqlTargets, sql: string): Promise<Row[]> {
  if (t.store === 'postgres') {
    const c = new pg.Client({ connectionString: t.url });
    await c.connect();
    try {
      return (await c.query(sql)).rows as Row[];
    } finally {
      await c.end();
    }
  }
  const c = await mysql.createConnection({ uri: t.url, supportBigNumbers: true, bigNumberStrings: true });
  try {
    return (await c.query(sql))[0] as Row[];
  } finally {
    await c.end();
  }
}

/** `CAST(column AS <text>)`: bigint columns read as decimal text, whatever the client's settings. */
function asText(t: SqlTargets, column: string): string {
  return t.store === 'postgres'
    ? `"${column}"::text AS "${column}"`
    : `CAST(\`${column}\` AS CHAR) AS \`${column}\``;
}

function quote(t: SqlTargets, name: string): string {
  return t.store === 'postgres' ? `"${name}"` : `\`${name}\``;
}

/**
 * Every row of the events table, in the order the rows were emitted (task, epoch, sequence number):
 * as `SeenOutput`s named by their identity columns, a lane per task identity (the order check).
 */
export async function readSqlEvents(t: SqlTargets): Promise<SeenOutput[]> {
  const q = (c: string) => quote(t, c);
  const rows = await select(
    t,
    `SELECT ${q('task')}, ${asText(t, 'kafka_offset')}, ${q('account')}, ${asText(t, 'balance')}, ${q('count')}, ${q('inv')}, ${q('tidemark_pipeline')}, ${q('tidemark_topic')}, ${q('tidemark_partition')}, ${asText(t, 'tidemark_epoch')}, ${q('tidemark_seq')} FROM ${q(t.events)}`,
  );
  const key = (r: Row) =>
    [
      String(r.tidemark_pipeline),
      String(r.tidemark_topic),
      String(r.tidemark_partition).padStart(10, '0'),
    ].join('\u0000');
  rows.sort(
    (a, b) =>
      (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) ||
      Number(a.tidemark_epoch) - Number(b.tidemark_epoch) ||
      Number(a.tidemark_seq) - Number(b.tidemark_seq),
  );
  return rows.map((r) => {
    const value: CampaignOutput = {
      task: String(r.task),
      offset: String(r.kafka_offset),
      account: String(r.account),
      balance: r.balance === null ? null : Number(r.balance),
      count: Number(r.count),
      inv: String(r.inv),
    };
    return {
      pipeline: String(r.tidemark_pipeline),
      epoch: Number(r.tidemark_epoch),
      value,
      lane: `${String(r.tidemark_topic)}/${String(r.tidemark_partition)}`,
    };
  });
}

/** Every row of the totals table. */
export async function readSqlTotals(t: SqlTargets): Promise<SqlTotalsRow[]> {
  const q = (c: string) => quote(t, c);
  const rows = await select(
    t,
    `SELECT ${q('pk')}, ${q('account')}, ${asText(t, 'balance')}, ${q('count')}, ${asText(t, 'last_offset')}, ${q('inv')}, ${asText(t, 'tidemark_epoch')} FROM ${q(t.totals)}`,
  );
  return rows.map((r) => ({
    pk: String(r.pk),
    account: String(r.account),
    balance: String(r.balance),
    count: Number(r.count),
    lastOffset: String(r.last_offset),
    inv: String(r.inv),
    epoch: Number(r.tidemark_epoch),
  }));
}
