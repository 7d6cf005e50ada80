/**
 * The DDL helper: a `CREATE TABLE IF NOT EXISTS` for a SQL output's table in a dialect, with the
 * declared columns, the identity columns asked for, and the key as primary key. Your own table may
 * differ (more columns with defaults, other types that take the same values, indexes); see
 * docs/outputs.md#sql for what it must have.
 */
import { ConfigurationError } from '../../errors.ts';
import type { OutputDescriptor } from '../../output/types.ts';
import { columnSqlType, qualifiedTable, sqlDialect } from './dialect.ts';
import {
  type ResolvedSqlOutputOptions,
  SQL_IDENTITY_TYPES,
  type SqlDialectName,
  type SqlIdentityPart,
} from './sqlOutput.ts';

/** A `sqlOutput` descriptor, whatever its value type. */
export type SqlOutputDescriptor = Pick<OutputDescriptor, 'kind' | 'options'>;

/** The resolved options of a `sqlOutput` descriptor (throws for another kind of output). */
export function sqlOutputOptions(output: SqlOutputDescriptor): ResolvedSqlOutputOptions {
  if (output?.kind !== 'sql') {
    throw new ConfigurationError('output', `not a sqlOutput (kind ${String(output?.kind)})`);
  }
  return output.options as unknown as ResolvedSqlOutputOptions;
}

/** `CREATE TABLE IF NOT EXISTS …` for the output's table (MySQL: InnoDB, utf8mb4 with a binary collation). */
export function sqlOutputTableDdl(output: SqlOutputDescriptor, dialect: SqlDialectName): string {
  const o = sqlOutputOptions(output);
  const d = sqlDialect(dialect);
  const lines = o.columns.map((c) => {
    const isKey = o.key.includes(c.name);
    return `  ${d.quote(c.name)} ${columnSqlType(dialect, c, isKey)}${c.nullable ? '' : ' NOT NULL'}`;
  });
  for (const [part, column] of Object.entries(o.identity) as Array<[SqlIdentityPart, string]>) {
    const type = columnSqlType(
      dialect,
      {
        name: column,
        type: SQL_IDENTITY_TYPES[part],
        nullable: true,
        maxLength: undefined,
        precision: undefined,
        scale: undefined,
      },
      false,
    );
    lines.push(`  ${d.quote(column)} ${type}`);
  }
  if (o.key.length > 0) lines.push(`  PRIMARY KEY (${o.key.map(d.quote).join(', ')})`);
  const options = dialect === 'mysql' ? ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin' : '';
  return `CREATE TABLE IF NOT EXISTS ${qualifiedTable(d, o.table, o.schema)} (\n${lines.join(',\n')}\n)${options}`;
}
