/**
 * `sqlOutput`: rows written to a table of the commit store's database (PostgreSQL, MySQL/MariaDB) in
 * the same transaction as the epoch's commit (docs/outputs.md#sql). This module declares the output
 * and encodes emitted values (checked against the declared columns at emit time); the statements are
 * built when the epoch commits (`SqlOutputSink.ts`), in the commit store's dialect, and run by the
 * commit store on its own connection: the sink loads no database client.
 */
import { ENV } from '../../config/env.ts';
import { ConfigurationError } from '../../errors.ts';
import type { EmitContext, OutputDescriptor, SinkEnvironment } from '../../output/types.ts';
import {
  decodeSqlValue,
  encodeSqlValue,
  type ResolvedSqlColumn,
  SQL_COLUMN_TYPES,
  SQL_KEY_TYPES,
  type SqlColumn,
  type SqlColumnType,
  type SqlReadValue,
  type SqlValue,
} from './columns.ts';

/** The commit stores a SQL output writes through (their dialects). */
export type SqlDialectName = 'postgres' | 'mysql';

export const SQL_DIALECTS: readonly SqlDialectName[] = ['postgres', 'mysql'];

/** A row (or a key) as the processor gives it: column name → value; an undefined value is left out. */
export type SqlRow = Readonly<Record<string, unknown>>;

/**
 * One write to the output table:
 * - `{ upsert: row }` inserts the row, or sets the given columns of the row with its key;
 * - `{ insert: row }` inserts the row unless one with its key exists (then nothing); on a table
 *   without a key, always inserts (append);
 * - `{ delete: key }` deletes the row with this key.
 */
export type SqlRowWrite =
  | { readonly upsert: SqlRow }
  | { readonly insert: SqlRow }
  | { readonly delete: SqlRow };

/** A write as a reader gets it back (`decode`): values as `readSqlOutputRows` returns them. */
export type SqlRowWriteRead =
  | { readonly upsert: Record<string, SqlReadValue> }
  | { readonly insert: Record<string, SqlReadValue> }
  | { readonly delete: Record<string, SqlReadValue> };

/** Parts of the output identity a row can carry, and the default column names. */
export const SQL_IDENTITY_COLUMNS = {
  pipeline: 'tidemark_pipeline',
  topic: 'tidemark_topic',
  partition: 'tidemark_partition',
  epoch: 'tidemark_epoch',
  seq: 'tidemark_seq',
} as const;

export type SqlIdentityPart = keyof typeof SQL_IDENTITY_COLUMNS;

/** Types of the identity columns. */
export const SQL_IDENTITY_TYPES: Readonly<Record<SqlIdentityPart, SqlColumnType>> = {
  pipeline: 'text',
  topic: 'text',
  partition: 'integer',
  epoch: 'bigint',
  seq: 'integer',
};

interface SqlOutputCommon {
  /** The table (a name, quoted as given: PostgreSQL folds unquoted names in your DDL to lower case). */
  readonly table: string;
  /**
   * The table's schema: PostgreSQL, a schema of the commit store's database; MySQL, another database
   * of the same server. Default: the connection's (PostgreSQL's search_path, MySQL's database).
   */
  readonly schema?: string;
  /** The columns the output writes, by name: a type, or `{ type, nullable, maxLength, precision, scale }`. */
  readonly columns: Readonly<Record<string, SqlColumnType | SqlColumn>>;
  /**
   * The key: a column or columns forming the table's primary key (or a unique key on exactly them).
   * Needed for upserts and deletes; without it, every write is an insert (an append-only table).
   */
  readonly key?: string | readonly string[];
  /**
   * Columns for the identity of the output that last wrote the row: `true` for all five under their
   * default names (`tidemark_pipeline`, `tidemark_topic`, `tidemark_partition`, `tidemark_epoch`,
   * `tidemark_seq`), or the parts you want with your names (`{ epoch: 'written_epoch' }`). Default none.
   */
  readonly identity?: boolean | Readonly<Partial<Record<SqlIdentityPart, string>>>;
}

/** What `sqlOutput` takes: the table, its columns and key, and either `row` or `write`. */
export type SqlOutputOptions<T> = SqlOutputCommon &
  (
    | {
        /** The row for a value: an upsert (a table with a key) or an insert (without). */
        readonly row: (value: T, ctx: EmitContext) => SqlRow;
        readonly write?: never;
      }
    | {
        /** The write (upsert, insert or delete) for a value. */
        readonly write: (value: T, ctx: EmitContext) => SqlRowWrite;
        readonly row?: never;
      }
  );

/** The options as the sink reads them (`descriptor.options`). */
export type ResolvedSqlOutputOptions = {
  readonly table: string;
  readonly schema: string | undefined;
  /** Declared columns, in declaration order. */
  readonly columns: readonly ResolvedSqlColumn[];
  /** Key columns, in order (empty: an append-only table). */
  readonly key: readonly string[];
  /** Identity columns: part → column name (only the parts asked for). */
  readonly identity: Readonly<Partial<Record<SqlIdentityPart, string>>>;
};

/**
 * An encoded write: the operation and the columns it gives, in declaration order, with their encoded
 * values. Plain data. The sink adds the identity columns when it writes it.
 */
export interface SqlEntry {
  readonly op: 'upsert' | 'insert' | 'delete';
  readonly columns: readonly string[];
  readonly values: readonly SqlValue[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function checkName(option: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigurationError(
      option,
      `sqlOutput: ${option} must be a name of letters, digits and _ (not starting with a digit, at most 63), got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    !(v instanceof Uint8Array) &&
    !(v instanceof Date)
  );
}

function positiveInteger(option: string, v: unknown, max: number): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > max) {
    throw new ConfigurationError(
      option,
      `sqlOutput: ${option} must be an integer from 0 to ${max}, got ${String(v)}`,
    );
  }
  return v as number;
}

function resolveColumn(name: string, declared: SqlColumnType | SqlColumn, isKey: boolean): ResolvedSqlColumn {
  const option = `columns.${name}`;
  const c = typeof declared === 'string' ? { type: declared } : declared;
  if (!isRecord(c) || !SQL_COLUMN_TYPES.includes(c.type as SqlColumnType)) {
    throw new ConfigurationError(
      option,
      `sqlOutput: ${option} must be one of ${SQL_COLUMN_TYPES.join(', ')} (or { type, … }), got ${JSON.stringify(declared)}`,
    );
  }
  const type = c.type as SqlColumnType;
  if (isKey && !SQL_KEY_TYPES.has(type)) {
    throw new ConfigurationError(option, `sqlOutput: key column '${name}' cannot be of type ${type}`);
  }
  if (isKey && c.nullable) {
    throw new ConfigurationError(option, `sqlOutput: key column '${name}' cannot be nullable`);
  }
  if (c.maxLength !== undefined && type !== 'text' && type !== 'bytes') {
    throw new ConfigurationError(option, `sqlOutput: ${option}.maxLength applies to text and bytes only`);
  }
  const maxLength =
    c.maxLength === undefined ? undefined : positiveInteger(`${option}.maxLength`, c.maxLength, 2 ** 30);
  let precision: number | undefined;
  let scale: number | undefined;
  if (type === 'numeric') {
    if (c.precision === undefined || c.scale === undefined) {
      throw new ConfigurationError(
        option,
        `sqlOutput: numeric column '${name}' needs precision and scale (numeric(precision, scale); MySQL's default, (10, 0), would round)`,
      );
    }
    precision = positiveInteger(`${option}.precision`, c.precision, 1000);
    scale = positiveInteger(`${option}.scale`, c.scale, precision);
    if (precision === 0)
      throw new ConfigurationError(option, `sqlOutput: ${option}.precision must be at least 1`);
  } else if (c.precision !== undefined || c.scale !== undefined) {
    throw new ConfigurationError(option, `sqlOutput: ${option}: precision and scale apply to numeric only`);
  }
  return { name, type, nullable: !isKey && c.nullable === true, maxLength, precision, scale };
}

function resolveIdentity(identity: SqlOutputCommon['identity']): Partial<Record<SqlIdentityPart, string>> {
  if (identity === undefined || identity === false) return {};
  if (identity === true) return { ...SQL_IDENTITY_COLUMNS };
  if (!isRecord(identity)) {
    throw new ConfigurationError('identity', 'sqlOutput: identity must be true, false or { part: column }');
  }
  const out: Partial<Record<SqlIdentityPart, string>> = {};
  for (const [part, column] of Object.entries(identity)) {
    if (!(part in SQL_IDENTITY_COLUMNS)) {
      throw new ConfigurationError(
        'identity',
        `sqlOutput: identity.${part} is not a part of the output identity (${Object.keys(SQL_IDENTITY_COLUMNS).join(', ')})`,
      );
    }
    if (column === undefined) continue;
    out[part as SqlIdentityPart] = checkName(`identity.${part}`, column);
  }
  return out;
}

/** Resolves and checks the options (throws `ConfigurationError`). Exported for tests. */
export function resolveSqlOutputOptions<T>(options: SqlOutputOptions<T>): ResolvedSqlOutputOptions {
  if (!isRecord(options)) throw new ConfigurationError('sqlOutput', 'sqlOutput: options are required');
  const table = checkName('table', options.table);
  const schema = options.schema === undefined ? undefined : checkName('schema', options.schema);
  if (!isRecord(options.columns) || Object.keys(options.columns).length === 0) {
    throw new ConfigurationError('columns', 'sqlOutput: columns must declare at least one column');
  }
  const keyList =
    options.key === undefined ? [] : typeof options.key === 'string' ? [options.key] : options.key;
  if (!Array.isArray(keyList) || new Set(keyList).size !== keyList.length) {
    throw new ConfigurationError('key', 'sqlOutput: key must be a column name or a list of distinct ones');
  }
  for (const k of keyList) {
    if (!Object.hasOwn(options.columns, k)) {
      throw new ConfigurationError('key', `sqlOutput: key column '${k}' is not among the columns`);
    }
  }
  const columns = Object.entries(options.columns).map(([name, c]) =>
    resolveColumn(checkName(`columns.${name}`, name), c, keyList.includes(name)),
  );
  const identity = resolveIdentity(options.identity);
  const names = new Set(columns.map((c) => c.name.toLowerCase()));
  for (const column of Object.values(identity)) {
    if (names.has(column.toLowerCase())) {
      throw new ConfigurationError(
        'identity',
        `sqlOutput: identity column '${column}' is also a declared column`,
      );
    }
    names.add(column.toLowerCase());
  }
  if (names.size !== columns.length + Object.keys(identity).length) {
    throw new ConfigurationError(
      'columns',
      'sqlOutput: two columns differ only in case (MySQL sees them as one; PostgreSQL folds unquoted names)',
    );
  }
  if ((typeof options.row === 'function') === (typeof options.write === 'function')) {
    throw new ConfigurationError('sqlOutput', 'sqlOutput: give exactly one of row and write (functions)');
  }
  return { table, schema, columns, key: keyList, identity };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/** Encodes one write (columns checked, values encoded). Exported for tests. */
export function encodeSqlWrite(write: SqlRowWrite, o: ResolvedSqlOutputOptions): SqlEntry {
  if (!isRecord(write)) {
    throw new TypeError(`the write must be { upsert } | { insert } | { delete }, got ${describe(write)}`);
  }
  const ops = (['upsert', 'insert', 'delete'] as const).filter((op) => op in write);
  if (ops.length !== 1) {
    throw new TypeError(
      `the write must have exactly one of upsert, insert, delete (got ${ops.length ? ops.join(', ') : Object.keys(write).join(', ') || 'none'})`,
    );
  }
  const op = ops[0]!;
  if (op !== 'insert' && o.key.length === 0) {
    throw new TypeError(`${op} needs a key: the output declares none (an append-only table takes inserts)`);
  }
  const row = (write as Record<string, unknown>)[op];
  if (!isRecord(row))
    throw new TypeError(`${op}: the row must be an object of columns, got ${describe(row)}`);
  const known = new Set(o.columns.map((c) => c.name));
  for (const name of Object.keys(row)) {
    if (!known.has(name)) throw new TypeError(`${op}: column '${name}' is not declared`);
  }
  const columns: string[] = [];
  const values: SqlValue[] = [];
  for (const c of o.columns) {
    const isKey = o.key.includes(c.name);
    const v = row[c.name];
    if (v === undefined) {
      if (isKey) throw new TypeError(`${op}: key column '${c.name}' is missing`);
      continue;
    }
    if (op === 'delete' && !isKey)
      throw new TypeError(`delete: '${c.name}' is not a key column (a key holds only those)`);
    columns.push(c.name);
    values.push(encodeSqlValue(c, v));
  }
  if (columns.length === 0) throw new TypeError(`${op}: the row gives no column`);
  return { op, columns, values };
}

/** The write an entry stands for, as a reader of the table gets the values back. */
export function decodeSqlEntry(entry: SqlEntry, o: ResolvedSqlOutputOptions): SqlRowWriteRead {
  const types = new Map(o.columns.map((c) => [c.name, c.type]));
  const row: Record<string, SqlReadValue> = {};
  entry.columns.forEach((name, i) => {
    row[name] = decodeSqlValue(types.get(name) ?? 'text', entry.values[i]!);
  });
  return { [entry.op]: row } as SqlRowWriteRead;
}

/** Refuses, at cold start, a commit store the output's rows cannot commit with. */
export function checkSqlCommitStore(env: Pick<SinkEnvironment, 'commitStore'>): SqlDialectName {
  if (env.commitStore === 'postgres' || env.commitStore === 'mysql') return env.commitStore;
  throw new ConfigurationError(
    ENV.commitStore,
    `sqlOutput writes its rows in the epoch's commit transaction, so the commit store must be the database holding the table: set ${ENV.commitStore}=postgres or mysql (with ${ENV.dbUrl}); it is ${env.commitStore}`,
  );
}

/**
 * Declares an output written to a SQL table in the same database transaction as the epoch's commit:
 * the rows and the committed offsets can never disagree, and an attempt that loses its commit (a
 * zombie, a duplicate invocation) writes nothing. Needs the PostgreSQL or MySQL/MariaDB commit store,
 * with the table in its database (checked at cold start).
 */
export function sqlOutput<T>(options: SqlOutputOptions<T>): OutputDescriptor<T, SqlEntry, SqlRowWriteRead> {
  const resolved = resolveSqlOutputOptions(options);
  const toWrite: (value: T, ctx: EmitContext) => SqlRowWrite = options.row
    ? (
        (row) =>
        (value: T, ctx: EmitContext): SqlRowWrite =>
          resolved.key.length > 0 ? { upsert: row(value, ctx) } : { insert: row(value, ctx) }
      )(options.row)
    : options.write!;
  return {
    kind: 'sql',
    // One sink per container serves every SQL output: an epoch's rows of all of them join its commit
    // (each part carries its own options).
    sinkId: 'sql',
    encode: (value: T, ctx: EmitContext): SqlEntry => encodeSqlWrite(toWrite(value, ctx), resolved),
    decode: (entry: SqlEntry) => decodeSqlEntry(entry, resolved),
    check(env: SinkEnvironment) {
      checkSqlCommitStore(env);
    },
    async createSink(env: SinkEnvironment) {
      const { SqlOutputSink } = await import('./SqlOutputSink.ts');
      return new SqlOutputSink(env);
    },
    options: resolved,
  };
}
