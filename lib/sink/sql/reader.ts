/**
 * Reads a SQL output's table back, in the value forms `decode` and `SqlOutputModel` use (timestamps
 * as `Date`, parsed JSON, bigint for bigint columns, canonical decimal strings, `Uint8Array`), in
 * `sqlRowKey` order: what a test or the fault campaign's oracle compares with a reference fold. It
 * connects with the commit stores' drivers (loaded on first use), through the same settings.
 */
import type { DatabaseStoreOptions } from '../../store/database/options.ts';
import type { SqlDriver } from '../../store/sql/SqlDriver.ts';
import { canonicalDecimal, type SqlColumnType, type SqlReadValue } from './columns.ts';
import { type SqlOutputDescriptor, sqlOutputOptions } from './ddl.ts';
import { qualifiedTable, sqlDialect } from './dialect.ts';
import type { SqlReadRow } from './model.ts';
import { sortSqlRows } from './model.ts';
import { SQL_IDENTITY_TYPES, type SqlDialectName, type SqlIdentityPart } from './sqlOutput.ts';

export interface ReadSqlOutputOptions extends DatabaseStoreOptions {
  /** Which database: `postgres` or `mysql` (the commit store's kind). */
  readonly store: SqlDialectName;
  /** Also return the identity columns the output declares (default false). */
  readonly identity?: boolean;
  /** Only rows matching this condition (SQL in the dialect, no parameters), e.g. a tenant's. */
  readonly where?: string;
}

/** The SELECT expression of a column, giving a value `fromDatabase` can normalize whatever the driver's settings. */
function selectExpression(store: SqlDialectName, column: string, type: SqlColumnType): string {
  const d = sqlDialect(store);
  const c = d.quote(column);
  if (store === 'postgres') {
    if (type === 'timestamp')
      return `to_char(${c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ${c}`;
    if (type === 'numeric' || type === 'bigint' || type === 'json') return `${c}::text AS ${c}`;
    return c;
  }
  if (type === 'timestamp') return `DATE_FORMAT(${c}, '%Y-%m-%dT%H:%i:%s.%f') AS ${c}`;
  if (type === 'numeric' || type === 'bigint' || type === 'json') return `CAST(${c} AS CHAR) AS ${c}`;
  return c;
}

function fromDatabase(type: SqlColumnType, v: unknown): SqlReadValue {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'timestamp': {
      // MySQL gives microseconds and no zone (the sink writes UTC); PostgreSQL milliseconds and Z.
      const s = String(v);
      return new Date(s.endsWith('Z') ? s : `${s.slice(0, 23)}Z`);
    }
    case 'numeric': {
      const m = /^([+-]?)(\d+)(?:\.(\d+))?$/.exec(String(v));
      return m ? canonicalDecimal(m[1]!, m[2]!, m[3] ?? '') : String(v);
    }
    case 'bigint':
      return BigInt(String(v));
    case 'json':
      return JSON.parse(String(v));
    case 'boolean':
      return typeof v === 'boolean' ? v : Number(v) !== 0;
    case 'integer':
    case 'double':
      return Number(v);
    case 'bytes': {
      const b = v as Uint8Array;
      return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    }
    default:
      return v;
  }
}

async function driverFor(options: ReadSqlOutputOptions): Promise<SqlDriver> {
  const { withDefaults } = await import('../../store/database/options.ts');
  if (options.store === 'postgres') {
    const { PostgresDriver } = await import('../../store/postgres/PostgresDriver.ts');
    return new PostgresDriver(withDefaults(options));
  }
  const { MysqlDriver } = await import('../../store/mysql/MysqlDriver.ts');
  return new MysqlDriver(withDefaults(options));
}

/**
 * Every row of the output's table (or those matching `where`): the declared columns (and, with
 * `identity`, the identity columns), values normalized, sorted by `sqlRowKey`. Pass `driver` to use
 * an open connection pool instead of the connection settings.
 */
export async function readSqlOutputRows(
  output: SqlOutputDescriptor,
  options: ReadSqlOutputOptions,
  driver?: SqlDriver,
): Promise<SqlReadRow[]> {
  const o = sqlOutputOptions(output);
  const d = sqlDialect(options.store);
  const columns: Array<[string, SqlColumnType]> = [
    ...o.columns.map((c): [string, SqlColumnType] => [c.name, c.type]),
    ...(options.identity
      ? (Object.entries(o.identity) as Array<[SqlIdentityPart, string]>).map(
          ([part, column]): [string, SqlColumnType] => [column, SQL_IDENTITY_TYPES[part]],
        )
      : []),
  ];
  const sql = `SELECT ${columns.map(([c, t]) => selectExpression(options.store, c, t)).join(', ')} FROM ${qualifiedTable(d, o.table, o.schema)}${options.where ? ` WHERE ${options.where}` : ''}`;
  const own = driver ? undefined : await driverFor(options);
  try {
    const r = await (driver ?? own)!.session((s) => s.query(sql));
    const rows = r.rows.map((raw) =>
      Object.fromEntries(columns.map(([c, t]) => [c, fromDatabase(t, raw[c])])),
    );
    return sortSqlRows(output, rows);
  } finally {
    await own?.close();
  }
}
