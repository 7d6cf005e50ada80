/**
 * An epoch's SQL outputs as statements (pure: no connection). Per table, the writes are applied in
 * emit order (the sequence numbers, across every output writing the table) and merged into one net
 * effect per row, which is what applying them in order leaves:
 *
 *   a row's net effect = [delete first] then [insert `ins`, or on a conflict set `set`]
 *
 *     write \ before   (nothing)           del                   ins I / set S
 *     upsert R         ins R, set R         del, ins R, set R     ins I⊕R, set S⊕R
 *     insert R         ins R                del, ins R            (unchanged: the row exists)
 *     delete           del                  del                   del (the write is dropped)
 *
 * (`⊕`: later columns replace earlier ones. A column in `set` has the same value in `ins`.) The
 * statements then are, per table in the order tables first appear: one DELETE per chunk of rows to
 * delete, then INSERT … ON CONFLICT/ON DUPLICATE KEY statements grouped by their columns; rows of a
 * table without a key are plain INSERTs in emit order. Rows of one table are distinct within an
 * epoch, so the order between them does not matter; and PostgreSQL's upsert may not touch one row
 * twice in a statement, which the merge rules out.
 */
import type { TaskId } from '../../checkpoint/stores.ts';
import { ConfigurationError } from '../../errors.ts';
import type { Delivery } from '../../output/types.ts';
import type { SqlWrite } from '../../store/sql/SqlDriver.ts';
import { keyValueId, type ResolvedSqlColumn, type SqlColumnType, type SqlValue } from './columns.ts';
import { qualifiedTable, type SqlDialect } from './dialect.ts';
import {
  type ResolvedSqlOutputOptions,
  SQL_IDENTITY_TYPES,
  type SqlEntry,
  type SqlIdentityPart,
} from './sqlOutput.ts';

/** Rows per statement, at most (and parameters: PostgreSQL takes 65,535 per statement). */
export const STATEMENT_MAX_ROWS = 1000;
const STATEMENT_MAX_PARAMS = 60_000;
/** Bytes of values per statement, about (MySQL's max_allowed_packet is 16 MiB or more). */
export const STATEMENT_MAX_BYTES = 1 << 20;

/** A table as the epoch's outputs write it. */
interface TablePlan {
  readonly id: string;
  readonly sql: string;
  readonly key: readonly string[];
  /** Every column written (declared by any output, identity columns included) → its type, in first-seen order. */
  readonly types: Map<string, SqlColumnType>;
  readonly writes: Array<{ seq: number; entry: SqlEntry; identity: Array<[string, SqlValue]> }>;
}

/** A row's net effect in the epoch. */
interface RowEffect {
  readonly key: ReadonlyArray<SqlValue>;
  deleteFirst: boolean;
  ins: Map<string, SqlValue> | undefined;
  set: Map<string, SqlValue> | undefined;
}

function identityValues(
  o: ResolvedSqlOutputOptions,
  task: TaskId,
  epoch: number,
  seq: number,
): Array<[string, SqlValue]> {
  const values: Record<SqlIdentityPart, SqlValue> = {
    pipeline: task.pipeline,
    topic: task.topic,
    partition: task.partition,
    epoch: BigInt(epoch),
    seq,
  };
  return (Object.entries(o.identity) as Array<[SqlIdentityPart, string]>).map(([part, column]) => [
    column,
    values[part],
  ]);
}

function tableId(o: ResolvedSqlOutputOptions): string {
  return `${o.schema ?? ''}.${o.table}`;
}

function sameKey(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => b[i] === k);
}

/** The tables of a delivery, each with its writes in emit order (checks outputs sharing a table agree). */
function tablesOf(d: SqlDialect, delivery: Delivery): TablePlan[] {
  const tables = new Map<string, TablePlan>();
  for (const part of delivery.parts) {
    const o = part.descriptor.options as unknown as ResolvedSqlOutputOptions;
    const id = tableId(o);
    let t = tables.get(id);
    if (!t) {
      t = { id, sql: qualifiedTable(d, o.table, o.schema), key: o.key, types: new Map(), writes: [] };
      tables.set(id, t);
    } else if (!sameKey(t.key, o.key)) {
      throw new ConfigurationError(
        'key',
        `sqlOutput '${part.name}': outputs writing table ${t.sql} must declare the same key (${t.key.join(', ') || 'none'} vs ${o.key.join(', ') || 'none'})`,
      );
    }
    const declared: Array<[string, SqlColumnType]> = [
      ...o.columns.map((c: ResolvedSqlColumn): [string, SqlColumnType] => [c.name, c.type]),
      ...(Object.entries(o.identity) as Array<[SqlIdentityPart, string]>).map(
        ([part, column]): [string, SqlColumnType] => [column, SQL_IDENTITY_TYPES[part]],
      ),
    ];
    for (const [name, type] of declared) {
      const known = t.types.get(name);
      if (known === undefined) t.types.set(name, type);
      else if (known !== type) {
        throw new ConfigurationError(
          'columns',
          `sqlOutput '${part.name}': column '${name}' of table ${t.sql} is declared ${type} here and ${known} by another output`,
        );
      }
    }
    for (const e of part.entries) {
      t.writes.push({
        seq: e.seq,
        entry: e.entry as SqlEntry,
        identity: identityValues(o, delivery.task, delivery.epoch, e.seq),
      });
    }
  }
  for (const t of tables.values()) t.writes.sort((a, b) => a.seq - b.seq);
  return [...tables.values()];
}

/** The net effect of each row written (keyed tables), in the order rows were first written. */
export function mergeRowWrites(
  key: readonly string[],
  types: ReadonlyMap<string, SqlColumnType>,
  writes: ReadonlyArray<{ entry: SqlEntry; identity: ReadonlyArray<[string, SqlValue]> }>,
): RowEffect[] {
  const rows = new Map<string, RowEffect>();
  const keyIndex = new Map(key.map((k, i) => [k, i]));
  const keyTypes = key.map((k) => types.get(k)!);
  for (const { entry, identity } of writes) {
    const keyValues: SqlValue[] = new Array(key.length);
    entry.columns.forEach((c, i) => {
      const k = keyIndex.get(c);
      if (k !== undefined) keyValues[k] = entry.values[i]!;
    });
    // Key values hold no NUL (text is checked at emit time, bytes are base64): a safe separator.
    let id = keyValueId(keyTypes[0]!, keyValues[0]!);
    for (let k = 1; k < key.length; k++) id += `\u0000${keyValueId(keyTypes[k]!, keyValues[k]!)}`;
    let row = rows.get(id);
    if (!row) {
      row = { key: keyValues, deleteFirst: false, ins: undefined, set: undefined };
      rows.set(id, row);
    }
    if (entry.op === 'delete') {
      row.deleteFirst = true;
      row.ins = undefined;
      row.set = undefined;
      continue;
    }
    if (entry.op === 'insert') {
      // Once the row exists (an earlier write in the epoch), an insert changes nothing.
      if (row.ins) continue;
      const ins = new Map<string, SqlValue>();
      for (let i = 0; i < entry.columns.length; i++) ins.set(entry.columns[i]!, entry.values[i]!);
      for (const [c, v] of identity) ins.set(c, v);
      row.ins = ins;
      row.set = new Map();
      continue;
    }
    row.ins ??= new Map();
    row.set ??= new Map();
    const { ins, set } = row;
    for (let i = 0; i < entry.columns.length; i++) {
      const c = entry.columns[i]!;
      ins.set(c, entry.values[i]!);
      if (!keyIndex.has(c)) set.set(c, entry.values[i]!);
    }
    for (const [c, v] of identity) {
      ins.set(c, v);
      set.set(c, v);
    }
  }
  return [...rows.values()];
}

/** Splits rows into chunks of at most `maxRows`, and about `STATEMENT_MAX_BYTES` of values. */
function chunks<R>(rows: readonly R[], columns: number, size: (r: R) => number): R[][] {
  const maxRows = Math.max(
    1,
    Math.min(STATEMENT_MAX_ROWS, Math.floor(STATEMENT_MAX_PARAMS / Math.max(1, columns))),
  );
  const out: R[][] = [];
  let current: R[] = [];
  let bytes = 0;
  for (const r of rows) {
    const b = size(r);
    if (current.length > 0 && (current.length >= maxRows || bytes + b > STATEMENT_MAX_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(r);
    bytes += b;
  }
  if (current.length > 0) out.push(current);
  return out;
}

function valueBytes(v: SqlValue): number {
  if (typeof v === 'string') return Buffer.byteLength(v) + 4;
  if (v instanceof Uint8Array) return 2 * v.byteLength + 4;
  return 24;
}

/** Column names in the table's column order (`position`: each column's place in it). */
function ordered(position: ReadonlyMap<string, number>, names: Iterable<string>): string[] {
  return [...names].sort((a, b) => position.get(a)! - position.get(b)!);
}

/** The statements of one delivery (every SQL output of one task-epoch), in the dialect given. */
export function sqlStatements(d: SqlDialect, delivery: Delivery): SqlWrite[] {
  const out: SqlWrite[] = [];
  for (const t of tablesOf(d, delivery)) {
    const position = new Map([...t.types.keys()].map((c, i) => [c, i]));
    const insert = (
      columns: readonly string[],
      rows: ReadonlyArray<ReadonlyMap<string, SqlValue>>,
      tail: string,
    ) => {
      for (const chunk of chunks(rows, columns.length, (r) =>
        columns.reduce((n, c) => n + valueBytes(r.get(c)!), 0),
      )) {
        const params: unknown[] = [];
        const tuples = chunk.map(
          (r) => `(${columns.map((c) => d.value(r.get(c)!, t.types.get(c)!, params)).join(', ')})`,
        );
        out.push({
          sql: `INSERT INTO ${t.sql} (${columns.map(d.quote).join(', ')}) VALUES ${tuples.join(', ')}${tail ? ` ${tail}` : ''}`,
          values: params,
        });
      }
    };
    if (t.key.length === 0) {
      // Append-only: inserts in emit order, consecutive rows of the same columns in one statement.
      let run: Array<Map<string, SqlValue>> = [];
      let runColumns: string[] = [];
      for (const w of t.writes) {
        const row = new Map([
          ...w.entry.columns.map((c, i): [string, SqlValue] => [c, w.entry.values[i]!]),
          ...w.identity,
        ]);
        const columns = ordered(position, row.keys());
        if (run.length > 0 && columns.join('\u0000') !== runColumns.join('\u0000')) {
          insert(runColumns, run, '');
          run = [];
        }
        runColumns = columns;
        run.push(row);
      }
      if (run.length > 0) insert(runColumns, run, '');
      continue;
    }
    const rows = mergeRowWrites(t.key, t.types, t.writes);
    const deletes = rows.filter((r) => r.deleteFirst);
    const keyTypes = t.key.map((k) => t.types.get(k)!);
    for (const chunk of chunks(deletes, t.key.length, (r) =>
      r.key.reduce((n: number, v) => n + valueBytes(v), 0),
    )) {
      const params: unknown[] = [];
      let where: string;
      if (t.key.length === 1) {
        const k = d.quote(t.key[0]!);
        where = `${k} IN (${chunk.map((r) => d.value(r.key[0]!, keyTypes[0]!, params)).join(', ')})`;
      } else {
        where = chunk
          .map(
            (r) =>
              `(${t.key.map((k, i) => `${d.quote(k)} = ${d.value(r.key[i]!, keyTypes[i]!, params)}`).join(' AND ')})`,
          )
          .join(' OR ');
      }
      out.push({ sql: `DELETE FROM ${t.sql} WHERE ${where}`, values: params });
    }
    // Upserts, grouped by the columns they insert and set.
    const groups = new Map<string, { ins: string[]; set: string[]; rows: Array<Map<string, SqlValue>> }>();
    for (const r of rows) {
      if (!r.ins) continue;
      const ins = ordered(position, r.ins.keys());
      const set = ordered(position, r.set!.keys());
      const shape = `${ins.join(',')}|${set.join(',')}`;
      let g = groups.get(shape);
      if (!g) {
        g = { ins, set, rows: [] };
        groups.set(shape, g);
      }
      g.rows.push(r.ins);
    }
    for (const g of groups.values()) insert(g.ins, g.rows, d.onConflict(t.key, g.set));
  }
  return out;
}
