/**
 * What differs between PostgreSQL and MySQL/MariaDB for the SQL output: identifier quoting,
 * placeholders, how a value travels, the upsert clause, and the column types of the DDL helper.
 *
 *                      PostgreSQL                          MySQL / MariaDB
 *   identifiers        "name"                              `name`
 *   placeholders       $1, $2, …                           ?
 *   upsert             ON CONFLICT (key) DO UPDATE SET     ON DUPLICATE KEY UPDATE c = VALUES(c)
 *                      c = EXCLUDED.c (DO NOTHING: none)   (k = k: none)
 *   numeric            a parameter (typed by its column)   an inline literal (a quoted string would
 *                                                          be compared as a double in WHERE)
 *   timestamp          ISO 8601 with Z (timestamptz)       'YYYY-MM-DD hh:mm:ss.mmm' UTC (DATETIME)
 *
 * (MySQL 8.0.20+ deprecates `VALUES(c)` in ON DUPLICATE KEY UPDATE in favour of a row alias, which
 * MariaDB does not have: `VALUES(c)` works on both, with a deprecation note on MySQL.)
 */
import { ConfigurationError } from '../../errors.ts';
import type { ResolvedSqlColumn, SqlColumnType, SqlValue } from './columns.ts';
import type { SqlDialectName } from './sqlOutput.ts';

export interface SqlDialect {
  readonly name: SqlDialectName;
  /** A quoted identifier. */
  quote(identifier: string): string;
  /** Adds a value to `params` and returns its SQL: a placeholder, or an inline literal. */
  value(v: SqlValue, type: SqlColumnType, params: unknown[]): string;
  /** The clause after `INSERT … VALUES …` that makes it an upsert setting `set` (none: insert unless present). */
  onConflict(key: readonly string[], set: readonly string[]): string;
}

/** A value as the drivers take it (`pg` and `mysql2` both write a Buffer as binary). */
function driverValue(v: SqlValue): unknown {
  return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
}

const NUMERIC_LITERAL = /^-?\d+(\.\d+)?$/;

export const postgresDialect: SqlDialect = {
  name: 'postgres',
  quote: (id) => `"${id.replaceAll('"', '""')}"`,
  value(v, _type, params) {
    params.push(driverValue(v));
    return `$${params.length}`;
  },
  onConflict(key, set) {
    const target = `ON CONFLICT (${key.map(postgresDialect.quote).join(', ')})`;
    if (set.length === 0) return `${target} DO NOTHING`;
    return `${target} DO UPDATE SET ${set.map((c) => `${postgresDialect.quote(c)} = EXCLUDED.${postgresDialect.quote(c)}`).join(', ')}`;
  },
};

export const mysqlDialect: SqlDialect = {
  name: 'mysql',
  quote: (id) => `\`${id.replaceAll('`', '``')}\``,
  value(v, type, params) {
    if (v === null) return 'NULL';
    if (type === 'numeric') {
      // Checked at emit time (canonical decimal); a literal keeps DECIMAL comparisons exact.
      if (typeof v !== 'string' || !NUMERIC_LITERAL.test(v))
        throw new TypeError(`not a decimal: ${String(v)}`);
      return v;
    }
    if (type === 'timestamp') {
      params.push((v as string).replace('T', ' ').replace(/Z$/, ''));
      return '?';
    }
    params.push(driverValue(v));
    return '?';
  },
  onConflict(key, set) {
    const q = mysqlDialect.quote;
    if (set.length === 0) return `ON DUPLICATE KEY UPDATE ${q(key[0]!)} = ${q(key[0]!)}`;
    return `ON DUPLICATE KEY UPDATE ${set.map((c) => `${q(c)} = VALUES(${q(c)})`).join(', ')}`;
  },
};

export function sqlDialect(name: SqlDialectName): SqlDialect {
  return name === 'postgres' ? postgresDialect : mysqlDialect;
}

/** The (possibly schema-qualified) table, quoted. */
export function qualifiedTable(d: SqlDialect, table: string, schema: string | undefined): string {
  return schema === undefined ? d.quote(table) : `${d.quote(schema)}.${d.quote(table)}`;
}

/** Longest key in MySQL/InnoDB: 3072 bytes (768 utf8mb4 characters). */
const MYSQL_KEY_BYTES = 3072;

/** The SQL type of a column in a dialect (the DDL helper's choice; your own table may differ). */
export function columnSqlType(d: SqlDialectName, c: ResolvedSqlColumn, isKey: boolean): string {
  if (d === 'postgres') {
    switch (c.type) {
      case 'text':
        return c.maxLength === undefined ? 'text' : `varchar(${c.maxLength})`;
      case 'integer':
        return 'integer';
      case 'bigint':
        return 'bigint';
      case 'double':
        return 'double precision';
      case 'numeric':
        return `numeric(${c.precision}, ${c.scale})`;
      case 'boolean':
        return 'boolean';
      case 'timestamp':
        return 'timestamptz(3)';
      case 'json':
        return 'jsonb';
      case 'bytes':
        return 'bytea';
    }
  }
  switch (c.type) {
    case 'text':
      if (!isKey) return 'LONGTEXT';
      if (c.maxLength === undefined || c.maxLength * 4 > MYSQL_KEY_BYTES) {
        throw new ConfigurationError(
          `columns.${c.name}.maxLength`,
          `sqlOutput: on MySQL a text key column needs maxLength of at most ${MYSQL_KEY_BYTES / 4} (VARCHAR; InnoDB keys hold ${MYSQL_KEY_BYTES} bytes)`,
        );
      }
      return `VARCHAR(${c.maxLength})`;
    case 'integer':
      return 'INT';
    case 'bigint':
      return 'BIGINT';
    case 'double':
      return 'DOUBLE';
    case 'numeric':
      if (c.precision! > 65 || c.scale! > 30) {
        throw new ConfigurationError(
          `columns.${c.name}.precision`,
          `sqlOutput: MySQL's DECIMAL holds a precision up to 65 and a scale up to 30, got (${c.precision}, ${c.scale})`,
        );
      }
      return `DECIMAL(${c.precision}, ${c.scale})`;
    case 'boolean':
      return 'BOOLEAN';
    case 'timestamp':
      return 'DATETIME(3)';
    case 'json':
      return 'JSON';
    case 'bytes':
      if (!isKey) return 'LONGBLOB';
      if (c.maxLength === undefined || c.maxLength > MYSQL_KEY_BYTES) {
        throw new ConfigurationError(
          `columns.${c.name}.maxLength`,
          `sqlOutput: on MySQL a bytes key column needs maxLength of at most ${MYSQL_KEY_BYTES} (VARBINARY)`,
        );
      }
      return `VARBINARY(${c.maxLength})`;
  }
}
