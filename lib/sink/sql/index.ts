/**
 * `tidemark/sql`: rows written to a PostgreSQL or MySQL/MariaDB table in the same transaction as the
 * epoch's commit (see docs/outputs.md#sql). Needs the database commit store of that database. The
 * output loads no database client; `readSqlOutputRows` loads the commit store's driver when called.
 */
export type {
  ResolvedSqlColumn,
  SqlColumn,
  SqlColumnType,
  SqlReadValue,
  SqlValue,
} from './columns.ts';
export { type SqlOutputDescriptor, sqlOutputTableDdl } from './ddl.ts';
export { SqlOutputModel, type SqlReadRow, sortSqlRows, sqlRowKey } from './model.ts';
export { type ReadSqlOutputOptions, readSqlOutputRows } from './reader.ts';
export {
  decodeSqlEntry,
  type ResolvedSqlOutputOptions,
  SQL_IDENTITY_COLUMNS,
  type SqlDialectName,
  type SqlEntry,
  type SqlIdentityPart,
  type SqlOutputOptions,
  type SqlRow,
  type SqlRowWrite,
  type SqlRowWriteRead,
  sqlOutput,
} from './sqlOutput.ts';
