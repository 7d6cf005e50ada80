/**
 * A restored state table that is a `Map`, but is not built as one.
 *
 * Building a JavaScript `Map` of a million string keys costs 0.3–0.45 s on its own (each key made a
 * string, hashed and inserted), more than reading, checking and decompressing the snapshot. A
 * restored table instead keeps the snapshot's columns as they decode: the keys as one string with
 * their start offsets, the values as one array or as typed columns that make a row's value when it
 * is asked for (`RowValues`: values that are numbers, or objects of one shape whose fields are
 * numbers, see ./snapshotCodec.ts), and an open-addressing index over the keys (a seeded hash,
 * ./stringHash.ts) built with typed arrays. A key becomes a `Map` entry of its own when it is first
 * read or written ("materialized on access"); what no record touches stays in the columns. (A row
 * of typed columns not yet materialized makes a new, equal, frozen value each time it is iterated.)
 *
 * It is a `Map` subclass with every method of `Map` (the state store, the snapshot encoder, deltas,
 * inspection and export use it as a `Map`): entries written, deleted or read since the restore live
 * in the `Map` itself, and a column row is "gone" once its key lives there or was deleted. Iteration
 * yields the column rows still there, then the `Map`'s own entries. Only value and list tables are
 * kept this way (map-state values are rebuilt as `Map`s at decoding).
 *
 * Hand-written on purpose: no library offers a lazily built `Map` over typed columns.
 */
import { hashRange, hashString } from './stringHash.ts';

/** Values of rows made on demand (from typed columns): `valueAt(row)` makes row `row`'s value. */
export interface RowValues<V> {
  readonly length: number;
  valueAt(row: number): V;
}

export class ColumnarTable<V = unknown> extends Map<string, V> {
  #joined = '';
  /** Start of row i's key in #joined; #starts[rows] is the end. */
  #starts: Uint32Array = new Uint32Array(1);
  /**
   * The values, row by row: the decoded array itself (frozen) until enough rows are gone, then a
   * copy in which gone rows hold nothing (see #drop).
   */
  #values: readonly V[] = [];
  #valuesOwned = false;
  /** The values, when they are made on demand (then #values is empty): nothing to clear as rows go. */
  #made: RowValues<V> | null = null;
  /** Two int32 per slot: row + 1 (0: empty), then the key's hash (compared before the key). */
  #slots: Int32Array = new Int32Array(0);
  /** 1 once row i's key lives in the Map itself, or was deleted. */
  #gone: Uint8Array = new Uint8Array(0);
  /** Rows not gone. */
  #live = 0;

  /**
   * A table of the rows (`keys` joined, `lengths` in UTF-16 units, `values` in the same order, as an
   * array or made on demand; the table keeps `values` and never changes it). `scratch`, when given, is
   * memory the caller no longer needs (it may overlap `lengths`, read before it is written) where
   * the index is built when it holds three int32 per row; otherwise it is allocated.
   * Throws when the lengths do not add up to the keys or a key appears twice.
   */
  static fromColumns<V>(
    joined: string,
    lengths: Uint32Array,
    values: readonly V[] | RowValues<V>,
    scratch?: Int32Array,
  ): ColumnarTable<V> {
    const rows = lengths.length;
    if (values.length !== rows) throw new Error('keys and values differ in count');
    const table = new ColumnarTable<V>();
    const starts = new Uint32Array(rows + 1);
    let pos = 0;
    for (let i = 0; i < rows; i++) {
      starts[i] = pos;
      pos += lengths[i]!;
    }
    starts[rows] = pos;
    if (pos !== joined.length) throw new Error('keys do not match their lengths');
    let capacity = 16;
    while (capacity < rows * 2) capacity *= 2;
    const mask = capacity - 1;
    const own = scratch !== undefined && scratch.length >= rows * 3;
    const hashes = own ? scratch.subarray(0, rows) : new Int32Array(rows);
    for (let r = 0; r < rows; r++) hashes[r] = hashRange(joined, starts[r]!, starts[r + 1]!);
    // Rows are inserted in the order of their home slot (a counting sort on its top bits), so the
    // writes sweep the index once instead of landing anywhere in it: with a million keys the index
    // is far larger than the CPU's caches, and random writes cost a cache miss each.
    const shift = Math.max(0, Math.log2(capacity) - 11);
    const counts = new Uint32Array((capacity >>> shift) + 1);
    for (let r = 0; r < rows; r++) counts[((hashes[r]! & mask) >>> shift) + 1]!++;
    for (let b = 1; b < counts.length; b++) counts[b]! += counts[b - 1]!;
    // The rows in that order, each with its hash (read in sequence below).
    const order = own ? scratch.subarray(rows, rows * 3) : new Int32Array(rows * 2);
    for (let r = 0; r < rows; r++) {
      const h = hashes[r]!;
      const o = counts[(h & mask) >>> shift]!++ << 1;
      order[o] = r;
      order[o + 1] = h;
    }
    const slots = new Int32Array(capacity * 2);
    for (let n = 0; n < rows * 2; n += 2) {
      const r = order[n]!;
      const h = order[n + 1]!;
      let i = h & mask;
      for (;;) {
        const s = i << 1;
        const other = slots[s]! - 1;
        if (other < 0) {
          slots[s] = r + 1;
          slots[s + 1] = h;
          break;
        }
        if (slots[s + 1] === h && sameKey(joined, starts, other, starts[r]!, starts[r + 1]!))
          throw new Error('a key appears twice');
        i = (i + 1) & mask;
      }
    }
    table.#joined = joined;
    table.#starts = starts;
    if (Array.isArray(values)) table.#values = values as readonly V[];
    else table.#made = values as RowValues<V>;
    table.#slots = slots;
    table.#gone = new Uint8Array(rows);
    table.#live = rows;
    return table;
  }

  /** The column row of `key` that is not gone, or -1. */
  #row(key: string): number {
    if (this.#live === 0) return -1;
    const slots = this.#slots;
    const mask = (slots.length >>> 1) - 1;
    const joined = this.#joined;
    const starts = this.#starts;
    const h = hashString(key) | 0;
    let i = h & mask;
    for (;;) {
      const s = i << 1;
      const r = slots[s]! - 1;
      if (r < 0) return -1;
      if (slots[s + 1] === h) {
        const from = starts[r]!;
        if (starts[r + 1]! - from === key.length && joined.startsWith(key, from)) {
          return this.#gone[r] ? -1 : r;
        }
      }
      i = (i + 1) & mask;
    }
  }

  /**
   * Marks a row gone; the columns go once no row is left in them. A gone row's value must not stay
   * alive through the columns (the Map may replace it): once an eighth of the rows are gone the table
   * copies the values without them, and clears each row that goes after that. (Copying at once would
   * add a copy of every value to each restore, most of whose rows no record ever touches.)
   */
  #drop(r: number): void {
    this.#gone[r] = 1;
    if (--this.#live === 0) {
      this.#release();
      return;
    }
    if (this.#made) return;
    if (this.#valuesOwned) (this.#values as V[])[r] = undefined as V;
    else if (this.#gone.length - this.#live >= this.#gone.length >>> 3) {
      const gone = this.#gone;
      const values = Array.from(this.#values);
      for (let i = 0; i < values.length; i++) if (gone[i]) values[i] = undefined as V;
      this.#values = values;
      this.#valuesOwned = true;
    }
  }

  #release(): void {
    this.#joined = '';
    this.#starts = new Uint32Array(1);
    this.#values = [];
    this.#valuesOwned = false;
    this.#made = null;
    this.#slots = new Int32Array(0);
    this.#gone = new Uint8Array(0);
    this.#live = 0;
  }

  /** Moves a row into the Map itself (once read or written). */
  #materialize(key: string, r: number): V {
    const v = this.#valueAt(r);
    this.#drop(r);
    super.set(key, v);
    return v;
  }

  #valueAt(r: number): V {
    return this.#made ? this.#made.valueAt(r) : this.#values[r]!;
  }

  override get(key: string): V | undefined {
    const v = super.get(key);
    if (v !== undefined || this.#live === 0 || super.has(key)) return v;
    const r = this.#row(key);
    return r < 0 ? undefined : this.#materialize(key, r);
  }

  override has(key: string): boolean {
    return super.has(key) || this.#row(key) >= 0;
  }

  override set(key: string, value: V): this {
    if (this.#live > 0 && !super.has(key)) {
      const r = this.#row(key);
      if (r >= 0) this.#drop(r);
    }
    return super.set(key, value);
  }

  override delete(key: string): boolean {
    const inMap = super.delete(key);
    const r = inMap ? -1 : this.#row(key);
    if (r >= 0) this.#drop(r);
    return inMap || r >= 0;
  }

  override clear(): void {
    super.clear();
    this.#release();
  }

  override get size(): number {
    return this.#live + super.size;
  }

  /** Column rows still there, then the Map's own entries. */
  override *entries(): MapIterator<[string, V]> {
    const rows = this.#gone.length;
    for (let r = 0; r < rows; r++) {
      if (this.#gone[r]) continue;
      yield [this.#joined.slice(this.#starts[r]!, this.#starts[r + 1]!), this.#valueAt(r)];
    }
    yield* super.entries();
  }

  override *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  override *values(): MapIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  override [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  override forEach(callback: (value: V, key: string, map: Map<string, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }
}

function sameKey(joined: string, starts: Uint32Array, r: number, from: number, to: number): boolean {
  const a = starts[r]!;
  const n = to - from;
  if (starts[r + 1]! - a !== n) return false;
  for (let i = 0; i < n; i++) if (joined.charCodeAt(a + i) !== joined.charCodeAt(from + i)) return false;
  return true;
}
