/**
 * Helpers of the SQL output sink's tests: a database per dialect (the servers test/globalSetup.ts
 * started, a user and table prefix of the suite's own), an admin connection for DDL and inspection,
 * and epochs committed through the sink and the commit store as the engine does it.
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { CommitRecord, TaskId } from '../../../lib/checkpoint/stores.ts';
import type { EmitContext, OutputDescriptor, OutputPart } from '../../../lib/output/types.ts';
import {
  type SqlDialectName,
  type SqlOutputDescriptor,
  sqlOutputTableDdl,
} from '../../../lib/sink/sql/index.ts';
import { SqlOutputSink } from '../../../lib/sink/sql/SqlOutputSink.ts';
import { record } from '../../store/commitStore.contract.ts';
import { type DatabaseBackend, mariadbBackend, postgresBackend } from '../../store/databases.ts';

export const DIALECTS: Array<[string, SqlDialectName, () => Promise<DatabaseBackend>]> = [
  ['PostgreSQL', 'postgres', postgresBackend],
  ['MariaDB', 'mysql', mariadbBackend],
];

export interface Admin {
  query(sql: string): Promise<Array<Record<string, unknown>>>;
  end(): Promise<void>;
}

/** A superuser connection to the server the backend is on (DDL, inspection). */
export async function adminOf(dialect: SqlDialectName): Promise<Admin> {
  if (dialect === 'postgres') {
    const c = new pg.Client({ connectionString: process.env.TIDEMARK_TEST_POSTGRES_URL! });
    await c.connect();
    return { query: async (sql) => (await c.query(sql)).rows, end: () => c.end() };
  }
  const c = await mysql.createConnection({
    uri: process.env.TIDEMARK_TEST_MYSQL_URL!,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  return {
    query: async (sql) => (await c.query(sql))[0] as Array<Record<string, unknown>>,
    end: () => c.end(),
  };
}

export const uniqueName = (prefix: string) => `${prefix}_${randomBytes(4).toString('hex')}`;

/** Creates the output's table with the DDL helper. */
export async function createTable(admin: Admin, output: SqlOutputDescriptor, dialect: SqlDialectName) {
  await admin.query(sqlOutputTableDdl(output, dialect));
}

/** The task the contract's `record()` commits. */
export const contractTask = (pipeline: string): TaskId => ({ pipeline, topic: 'orders.v1-eu', partition: 7 });

/** Values of one output for one epoch: the part the engine would hand the sink. */
export function part<T>(
  name: string,
  descriptor: OutputDescriptor<T>,
  values: readonly T[],
  firstSeq = 0,
): OutputPart {
  const ctx: EmitContext = { pipeline: 'p', topic: 't', partition: 0, offset: 0n, key: null };
  return {
    name,
    descriptor: descriptor as OutputDescriptor,
    entries: values.map((v, i) => ({ seq: firstSeq + i, entry: descriptor.encode(v, ctx) })),
  };
}

/**
 * Commits epoch `epoch` of the contract task (expecting `epoch - 1`) with the parts attached, as the
 * engine does: the sink's `attach`, then the commit store's `commit`.
 */
export async function commitEpoch(
  b: DatabaseBackend,
  dialect: SqlDialectName,
  pipeline: string,
  epoch: number,
  parts: OutputPart[],
  extra: Partial<CommitRecord> = {},
): Promise<void> {
  const sink = new SqlOutputSink({ pipeline, env: {}, commitStore: dialect });
  const attached = sink.attach({
    task: contractTask(pipeline),
    epoch,
    committedOffset: BigInt(epoch * 10),
    parts,
  });
  await b.commits.commit(record(pipeline, epoch, BigInt(epoch * 10), extra), epoch - 1, attached);
}
