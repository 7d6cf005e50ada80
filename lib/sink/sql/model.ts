/**
 * What a SQL output's table should hold, computed in memory: the writes applied one by one, in order,
 * with the semantics the sink gives them (upsert: insert or set the given columns; insert: unless the
 * key exists; delete). A reference for tests and the fault campaign's oracle, to compare with
 * `readSqlOutputRows` (both give rows in the same order and value forms).
 */
import type { OutputId } from '../../output/types.ts';
import { decodeSqlValue, encodeSqlValue, keyValueId, type SqlReadValue } from './columns.ts';
import { type SqlOutputDescriptor, sqlOutputOptions } from './ddl.ts';
import {
  encodeSqlWrite,
  type ResolvedSqlOutputOptions,
  type SqlIdentityPart,
  type SqlRowWrite,
} from './sqlOutput.ts';

/** A row as read back: column → value (`Date` for timestamps, parsed JSON, `Uint8Array`, bigint for bigint). */
export type SqlReadRow = Record<string, SqlReadValue>;

function canonical(v: unknown): unknown {
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (v instanceof Date) return { $date: v.toISOString() };
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * The identity of a row: its key (one string per key, equal exactly when the database sees one key),
 * or, in a table without a key, all its values.
 */
export function sqlRowKey(output: SqlOutputDescriptor, row: SqlReadRow): string {
  return rowKey(sqlOutputOptions(output), row);
}

function rowKey(o: ResolvedSqlOutputOptions, row: SqlReadRow): string {
  if (o.key.length === 0) return JSON.stringify(canonical(row));
  return JSON.stringify(
    o.key.map((k) => {
      const c = o.columns.find((x) => x.name === k)!;
      return keyValueId(c.type, encodeSqlValue({ ...c, nullable: false, maxLength: undefined }, row[k]));
    }),
  );
}

/** Rows in the order `readSqlOutputRows` and `SqlOutputModel.rows` give them (by `sqlRowKey`). */
export function sortSqlRows(output: SqlOutputDescriptor, rows: readonly SqlReadRow[]): SqlReadRow[] {
  const o = sqlOutputOptions(output);
  return rows
    .map((r) => [rowKey(o, r), r] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, r]) => r);
}

export class SqlOutputModel {
  private readonly o: ResolvedSqlOutputOptions;
  private readonly output: SqlOutputDescriptor;
  private readonly keyed = new Map<string, SqlReadRow>();
  private readonly appended: SqlReadRow[] = [];

  constructor(output: SqlOutputDescriptor) {
    this.output = output;
    this.o = sqlOutputOptions(output);
  }

  /**
   * Applies a write (checked and normalized as the sink does; throws what would fail the record).
   * With `id`, the identity columns the output declares are set as the sink sets them.
   */
  apply(write: SqlRowWrite, id?: OutputId): void {
    const entry = encodeSqlWrite(write, this.o);
    const types = new Map(this.o.columns.map((c) => [c.name, c.type]));
    const row: SqlReadRow = {};
    entry.columns.forEach((name, i) => {
      row[name] = decodeSqlValue(types.get(name)!, entry.values[i]!);
    });
    if (entry.op !== 'delete' && id) {
      for (const [part, column] of Object.entries(this.o.identity) as Array<[SqlIdentityPart, string]>) {
        row[column] = part === 'epoch' ? BigInt(id.epoch) : id[part];
      }
    }
    if (this.o.key.length === 0) {
      this.appended.push(row);
      return;
    }
    const k = rowKey(this.o, row);
    const existing = this.keyed.get(k);
    if (entry.op === 'delete') this.keyed.delete(k);
    else if (entry.op === 'upsert') this.keyed.set(k, { ...existing, ...row });
    else if (!existing) this.keyed.set(k, row);
  }

  /**
   * The rows, every declared column present (null when never written: the table's default is taken
   * to be null), identity columns only with `identity: true`.
   */
  rows(options: { identity?: boolean } = {}): SqlReadRow[] {
    const identityColumns = options.identity ? Object.values(this.o.identity) : [];
    const full = (r: SqlReadRow): SqlReadRow =>
      Object.fromEntries(
        [...this.o.columns.map((c) => c.name), ...identityColumns].map((c) => [c, r[c] ?? null]),
      );
    return sortSqlRows(this.output, [...this.keyed.values(), ...this.appended].map(full));
  }
}
