import { StateError } from '../errors.ts';
import { ChangeSet } from './changeSet.ts';
import type {
  ListState,
  MapState,
  StateDescriptor,
  StateDescriptors,
  StateHandles,
  StateKind,
  StateScope,
  TtlOptions,
  ValueState,
} from './descriptors.ts';
import { TimeQueue } from './timeQueue.ts';

/** The key under which task-scoped state is stored. */
export const TASK_KEY = '';

/** Names of Tidemark's own tables (timers, time, TTL deadlines) start with this; user state may not. */
export const INTERNAL_STATE_PREFIX = 'tidemark:';

/** The table holding the TTL deadlines of state `name` (key → deadline in ms). */
export function ttlTableName(name: string): string {
  return `${INTERNAL_STATE_PREFIX}ttl:${name}`;
}

/**
 * One named state's data. `value` tables map key → value; `map` tables map key → Map(mapKey →
 * value); `list` tables map key → array. Empty maps and lists are never stored.
 */
export interface StateTable {
  readonly name: string;
  readonly kind: StateKind;
  readonly scope: StateScope;
  readonly version: number;
  readonly data: Map<string, unknown>;
}

/** Freezes plain objects and arrays (deeply) so stored values cannot change behind the journal's back. */
function freeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  if (Array.isArray(value)) {
    Object.freeze(value);
    for (const v of value) freeze(v);
    return value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    Object.freeze(value);
    const o = value as Record<string, unknown>;
    for (const k in o) {
      const v = o[k];
      if (typeof v === 'object' && v !== null) freeze(v);
    }
  }
  return value;
}

/** Undo journal operations (the journal is a flat array: op, target, key, previous value, had). */
const UNDO_ENTRY = 0; // target: Map of a table's data or a map state's inner map
const UNDO_TRUNCATE = 1; // target: a list; key: its previous length

/** A table and the keys changed in it since the last checkpoint. */
interface Slot {
  table: StateTable;
  changed: ChangeSet;
  /** The state's TTL, when its entries expire. */
  ttl?: TtlIndex;
}

/**
 * The expiry index of a state with a TTL: its deadlines table (key → deadline, in the snapshot like
 * any table) and a heap over the deadlines. Every key with a deadline has a heap entry at or before
 * its deadline; entries that no longer match (renewed, cleared, rolled back) are skipped or pushed
 * again when they come up, so an expiry pass pops only what is due.
 */
interface TtlIndex {
  readonly spec: Readonly<Required<TtlOptions>>;
  /** The state's own slot. */
  readonly state: Slot;
  /** The deadlines table's slot. */
  readonly slot: Slot;
  readonly queue: TimeQueue;
}

/**
 * Keyed state of one task, in memory, with no I/O. It knows which keys changed since the last
 * checkpoint and keeps a per-record undo journal so that a record whose processing throws leaves
 * no partial change behind. (Hot path: the journal is a flat array and change sets hang off each
 * table, so a write allocates nothing but what the value itself needs.)
 */
export class StateStore {
  private readonly slots = new Map<string, Slot>();
  private journal: unknown[] = [];
  /**
   * Entries of the journal in use (it is never truncated: truncating an array and growing it again
   * at every record costs more than the record's own state writes).
   */
  private journalSize = 0;
  private key: string | null = null;
  private readonly ttls: TtlIndex[] = [];
  /** True when restored values were upgraded by a `migrate` function (they now differ from their snapshot). */
  migrated = false;
  /** The task's processing time (ms): what processing-time TTL compares deadlines with. */
  processingTime = Number.NEGATIVE_INFINITY;
  /** The task's watermark (ms): what event-time TTL compares deadlines with. */
  watermark = Number.NEGATIVE_INFINITY;
  /** Event time of the record or timer being processed: what event-time TTL stamps writes with. */
  eventTime = Number.NEGATIVE_INFINITY;

  /**
   * `descriptors` may include Tidemark's own tables (names starting with `tidemark:`), which the
   * engine declares; a state with a TTL gets its deadlines table here.
   */
  constructor(descriptors: StateDescriptors, restored: Iterable<StateTable> = []) {
    for (const [name, d] of Object.entries(descriptors)) {
      this.install({ name, kind: d.kind, scope: d.scope, version: d.version, data: new Map() });
      if (d.ttl) {
        const tn = ttlTableName(name);
        this.install({ name: tn, kind: 'value', scope: d.scope, version: 1, data: new Map() });
      }
    }
    for (const t of restored) this.adopt(t, descriptors[t.name]);
    for (const [name, d] of Object.entries(descriptors)) {
      if (!d.ttl) continue;
      const slot = this.slots.get(ttlTableName(name))!;
      const state = this.slots.get(name)!;
      const index: TtlIndex = { spec: d.ttl, state, slot, queue: new TimeQueue() };
      const deadlines = slot.table.data as Map<string, number>;
      index.queue.reset([...deadlines.values()], [...deadlines.keys()]);
      state.ttl = index;
      this.ttls.push(index);
    }
  }

  /** Whether any state declares a TTL. */
  get hasTtl(): boolean {
    return this.ttls.length > 0;
  }

  private install(table: StateTable): void {
    this.slots.set(table.name, { table, changed: new ChangeSet() });
  }

  /** Installs restored data, checking kind and migrating older value versions. */
  private adopt(restored: StateTable, d: StateDescriptor | undefined): void {
    if (!d) {
      // State no longer declared by the processor: carried through unchanged so nothing is lost.
      this.install(restored);
      return;
    }
    if (restored.kind !== d.kind || restored.scope !== d.scope) {
      throw new StateError(
        `state '${restored.name}' was saved as ${restored.scope}-scoped ${restored.kind} state but is declared as ${d.scope}-scoped ${d.kind}`,
      );
    }
    if (restored.version > d.version) {
      throw new StateError(
        `state '${restored.name}' was saved with version ${restored.version}, newer than the declared version ${d.version}`,
      );
    }
    let data = restored.data;
    if (restored.version < d.version) {
      const migrate = d.migrate;
      if (!migrate) {
        throw new StateError(
          `state '${restored.name}' was saved with version ${restored.version}; declare migrate() to upgrade it to ${d.version}`,
        );
      }
      const from = restored.version;
      this.migrated = true;
      const up = (v: unknown): unknown => freeze(migrate(v, from));
      data = new Map();
      for (const [k, v] of restored.data) {
        if (d.kind === 'value') data.set(k, up(v));
        else if (d.kind === 'list') data.set(k, (v as unknown[]).map(up));
        else data.set(k, new Map([...(v as Map<string, unknown>)].map(([mk, mv]) => [mk, up(mv)])));
      }
    }
    this.install({ name: restored.name, kind: d.kind, scope: d.scope, version: d.version, data });
  }

  /** Sets the key that keyed state handles read and write (the current record's key). */
  beginRecord(key: string | null): void {
    this.key = key;
    this.resetJournal();
  }

  /** Changes the key keyed state follows, within the same record (a timer firing after it). */
  setKey(key: string | null): void {
    this.key = key;
  }

  /** Keeps the current record's changes. */
  commitRecord(): void {
    this.resetJournal();
  }

  private resetJournal(): void {
    // A record that wrote a lot leaves a large journal: let it go rather than hold its old values.
    if (this.journalSize > 4096) this.journal = [];
    this.journalSize = 0;
  }

  private journalPush(op: number, target: unknown, key: unknown, previous: unknown, had: unknown): void {
    const j = this.journal;
    let n = this.journalSize;
    j[n++] = op;
    j[n++] = target;
    j[n++] = key;
    j[n++] = previous;
    j[n++] = had;
    this.journalSize = n;
  }

  /** Undoes every change made since `beginRecord`. */
  rollbackRecord(): void {
    this.rollbackTo(0);
  }

  /** A point of the current record to roll back to (`rollbackTo`), e.g. before a timer fires. */
  mark(): number {
    return this.journalSize;
  }

  /** Undoes every change made since `mark` returned `mark`. */
  rollbackTo(mark: number): void {
    const j = this.journal;
    for (let i = this.journalSize - 5; i >= mark; i -= 5) {
      if (j[i] === UNDO_TRUNCATE) {
        (j[i + 1] as unknown[]).length = j[i + 2] as number;
      } else if (j[i + 4]) {
        (j[i + 1] as Map<string, unknown>).set(j[i + 2] as string, j[i + 3]);
      } else {
        (j[i + 1] as Map<string, unknown>).delete(j[i + 2] as string);
      }
      j[i + 1] = j[i + 3] = undefined; // hold nothing of what was undone
    }
    this.journalSize = mark;
  }

  /** Names and keys changed since the last call (or since creation), each key once. */
  takeChanges(): Map<string, readonly string[]> {
    const out = new Map<string, readonly string[]>();
    for (const [name, slot] of this.slots) {
      if (slot.changed.size === 0) continue;
      out.set(name, slot.changed.take());
    }
    return out;
  }

  get changedKeyCount(): number {
    let n = 0;
    for (const s of this.slots.values()) n += s.changed.size;
    return n;
  }

  /** Number of stored (state, key) entries. */
  get keyCount(): number {
    let n = 0;
    for (const s of this.slots.values()) n += s.table.data.size;
    return n;
  }

  /** Every table, declared or carried over from a snapshot. Do not mutate. */
  *allTables(): Iterable<StateTable> {
    for (const s of this.slots.values()) yield s.table;
  }

  table(name: string): StateTable | undefined {
    return this.slots.get(name)?.table;
  }

  private keyFor(t: StateTable): string {
    if (t.scope === 'task') return TASK_KEY;
    if (this.key === null) {
      throw new StateError(
        `keyed state '${t.name}' used by a record without a key (use task state, or give the record a key)`,
      );
    }
    return this.key;
  }

  /** Journals how to restore `key` of `map` (a table's data or an inner map) to what it is now. */
  private remember(map: Map<string, unknown>, key: string): void {
    // One lookup for a key that holds a value (stored values are never undefined).
    const previous = map.get(key);
    this.journalPush(UNDO_ENTRY, map, key, previous, previous !== undefined || map.has(key));
  }

  private requireSlot(name: string, kind: StateKind): Slot {
    const s = this.slots.get(name);
    if (!s || s.table.kind !== kind) throw new StateError(`state '${name}' is not declared as ${kind} state`);
    return s;
  }

  /** A table's entry (Tidemark's own tables; user state goes through handles). */
  getEntry(name: string, key: string): unknown {
    return this.slots.get(name)?.table.data.get(key);
  }

  /** Sets a table's entry, journaled and tracked like a handle's write. */
  putEntry(name: string, key: string, value: unknown): void {
    const s = this.slots.get(name);
    if (!s) throw new StateError(`state '${name}' is not declared`);
    this.remember(s.table.data, key);
    s.table.data.set(key, freeze(value));
    s.changed.add(key);
  }

  /** Deletes a table's entry, journaled and tracked like a handle's write. */
  deleteEntry(name: string, key: string): void {
    const s = this.slots.get(name);
    if (!s?.table.data.has(key)) return;
    this.remember(s.table.data, key);
    s.table.data.delete(key);
    s.changed.add(key);
  }

  // TTL. Reads of an expired entry see nothing; a write to one starts from nothing; `expire` removes
  // the entries whose deadline passed (popping the expiry heaps: no scan).

  private clockOf(ttl: TtlIndex): number {
    return ttl.spec.time === 'event' ? this.watermark : this.processingTime;
  }

  private expired(ttl: TtlIndex, k: string): boolean {
    const d = ttl.slot.table.data.get(k) as number | undefined;
    return d !== undefined && d <= this.clockOf(ttl);
  }

  /** Before a write to `k`: an expired entry is dropped first, so the write starts from nothing. */
  private purgeExpired(s: Slot, k: string): void {
    const ttl = s.ttl;
    if (!ttl || !this.expired(ttl, k)) return;
    const data = s.table.data;
    if (data.has(k)) {
      this.remember(data, k);
      data.delete(k);
      s.changed.add(k);
    }
  }

  /** After a write to `k` (or a read that renews): its new deadline, or none once the entry is gone. */
  private renew(s: Slot, k: string): void {
    const ttl = s.ttl!;
    const deadlines = ttl.slot.table.data as Map<string, number>;
    const old = deadlines.get(k);
    if (!s.table.data.has(k)) {
      if (old === undefined) return;
      this.remember(deadlines as Map<string, unknown>, k);
      deadlines.delete(k);
      ttl.slot.changed.add(k);
      return;
    }
    const stamp =
      ttl.spec.time === 'event'
        ? Number.isFinite(this.eventTime)
          ? this.eventTime
          : this.watermark
        : this.processingTime;
    if (!Number.isFinite(stamp)) return; // no clock yet: the entry gets its deadline at its next write
    const deadline = stamp + ttl.spec.ms;
    if (old === deadline) return;
    this.remember(deadlines as Map<string, unknown>, k);
    deadlines.set(k, deadline);
    ttl.slot.changed.add(k);
    // The heap keeps one entry at or before each deadline: push only when the deadline moves earlier
    // (or is new); a later deadline is pushed again when its old entry comes up.
    if (old === undefined || deadline < old) ttl.queue.push(deadline, k);
  }

  /** The earliest deadline of entries that expire on `time`, or undefined (for ticks and the commit item). */
  nextExpiry(time: 'processing' | 'event'): number | undefined {
    let next: number | undefined;
    for (const ttl of this.ttls) {
      if (ttl.spec.time !== time) continue;
      const deadlines = ttl.slot.table.data as Map<string, number>;
      for (;;) {
        const t = ttl.queue.peekTime();
        if (t === undefined) break;
        const k = ttl.queue.peekId()!;
        const d = deadlines.get(k);
        if (d === t) {
          if (next === undefined || t < next) next = t;
          break;
        }
        ttl.queue.pop();
        if (d !== undefined) ttl.queue.push(d, k);
      }
    }
    return next;
  }

  /**
   * Removes every entry whose deadline passed at the current clocks (tracked like writes, so the next
   * delta deletes them). Returns how many were removed.
   */
  expire(): number {
    let removed = 0;
    for (const ttl of this.ttls) {
      const clock = this.clockOf(ttl);
      const deadlines = ttl.slot.table.data as Map<string, number>;
      const s = ttl.state;
      for (;;) {
        const t = ttl.queue.peekTime();
        if (t === undefined || t > clock) break;
        const k = ttl.queue.peekId()!;
        ttl.queue.pop();
        const d = deadlines.get(k);
        if (d === undefined) continue; // cleared or rolled back since
        if (d !== t) {
          ttl.queue.push(d, k); // renewed since: its entry comes up again later
          continue;
        }
        this.deleteEntry(s.table.name, k);
        this.deleteEntry(ttl.slot.table.name, k);
        removed++;
      }
      // Garbage (renewals pushed earlier deadlines) is bounded: rebuild when it dominates.
      if (ttl.queue.size > 2 * deadlines.size + 1024) {
        ttl.queue.reset([...deadlines.values()], [...deadlines.keys()]);
      }
    }
    return removed;
  }

  /** Creates the typed handles processors use; they follow the current record's key. */
  handles<S extends StateDescriptors>(descriptors: S): StateHandles<S> {
    const out: Record<string, unknown> = {};
    for (const [name, d] of Object.entries(descriptors)) {
      const s = this.requireSlot(name, d.kind);
      out[name] =
        d.kind === 'value' ? this.valueHandle(s) : d.kind === 'map' ? this.mapHandle(s) : this.listHandle(s);
    }
    return Object.freeze(out) as StateHandles<S>;
  }

  // Restored values come out of the snapshot decoder frozen, and written values are frozen on
  // write: reads hand out stored values as they are.

  private valueHandle(s: Slot): ValueState<unknown> {
    const t = s.table;
    const data = t.data;
    const ttl = s.ttl;
    return {
      get: () => {
        const k = this.keyFor(t);
        if (ttl) {
          if (this.expired(ttl, k)) return undefined;
          if (ttl.spec.refresh === 'onReadAndWrite') this.renew(s, k);
        }
        return data.get(k);
      },
      set: (value: unknown) => {
        const k = this.keyFor(t);
        if (ttl) this.purgeExpired(s, k);
        this.remember(data, k);
        if (value === undefined) data.delete(k);
        else data.set(k, freeze(value));
        s.changed.add(k);
        if (ttl) this.renew(s, k);
      },
      clear: () => {
        const k = this.keyFor(t);
        if (!data.has(k)) return;
        this.remember(data, k);
        data.delete(k);
        s.changed.add(k);
        if (ttl) this.renew(s, k);
      },
    };
  }

  private mapHandle(s: Slot): MapState<unknown> {
    const t = s.table;
    const data = t.data;
    const ttl = s.ttl;
    const inner = (): Map<string, unknown> | undefined => {
      const k = this.keyFor(t);
      if (ttl) {
        if (this.expired(ttl, k)) return undefined;
        if (ttl.spec.refresh === 'onReadAndWrite') this.renew(s, k);
      }
      return data.get(k) as Map<string, unknown> | undefined;
    };
    const empty = new Map<string, unknown>();
    return {
      get: (mk) => inner()?.get(mk),
      has: (mk) => inner()?.has(mk) ?? false,
      put: (mk, value) => {
        if (value === undefined)
          throw new StateError(`map state '${t.name}': value for '${mk}' is undefined`);
        const k = this.keyFor(t);
        if (ttl) this.purgeExpired(s, k);
        let map = data.get(k) as Map<string, unknown> | undefined;
        if (!map) {
          this.remember(data, k);
          map = new Map();
          data.set(k, map);
        }
        this.remember(map, mk);
        map.set(mk, freeze(value));
        s.changed.add(k);
        if (ttl) this.renew(s, k);
      },
      remove: (mk) => {
        const k = this.keyFor(t);
        if (ttl) this.purgeExpired(s, k);
        const map = data.get(k) as Map<string, unknown> | undefined;
        if (!map?.has(mk)) return;
        this.remember(map, mk);
        map.delete(mk);
        if (map.size === 0) {
          this.remember(data, k);
          data.delete(k);
        }
        s.changed.add(k);
        if (ttl) this.renew(s, k);
      },
      keys: () => (inner() ?? empty).keys(),
      entries: () => (inner() ?? empty).entries(),
      get size() {
        return inner()?.size ?? 0;
      },
      clear: () => {
        const k = this.keyFor(t);
        if (!data.has(k)) return;
        this.remember(data, k);
        data.delete(k);
        s.changed.add(k);
        if (ttl) this.renew(s, k);
      },
    };
  }

  private listHandle(s: Slot): ListState<unknown> {
    const t = s.table;
    const data = t.data;
    const ttl = s.ttl;
    const none: readonly unknown[] = Object.freeze([]);
    const append = (values: readonly unknown[]) => {
      if (values.length === 0) return;
      const k = this.keyFor(t);
      if (ttl) this.purgeExpired(s, k);
      let list = data.get(k) as unknown[] | undefined;
      if (!list || Object.isFrozen(list)) {
        // New, or restored (decoded lists are frozen): copy on first write.
        this.remember(data, k);
        list = list ? [...list] : [];
        data.set(k, list);
      } else {
        this.journalPush(UNDO_TRUNCATE, list, list.length, undefined, undefined);
      }
      for (const v of values) list.push(freeze(v));
      s.changed.add(k);
      if (ttl) this.renew(s, k);
    };
    return {
      get: () => {
        const k = this.keyFor(t);
        if (ttl) {
          if (this.expired(ttl, k)) return none;
          if (ttl.spec.refresh === 'onReadAndWrite') this.renew(s, k);
        }
        return (data.get(k) as unknown[] | undefined) ?? none;
      },
      add: (value) => append([value]),
      addAll: (values) => append(values),
      update: (values) => {
        const k = this.keyFor(t);
        this.remember(data, k);
        if (values.length === 0) data.delete(k);
        else data.set(k, values.map(freeze));
        s.changed.add(k);
        if (ttl) this.renew(s, k);
      },
      clear: () => {
        const k = this.keyFor(t);
        if (!data.has(k)) return;
        this.remember(data, k);
        data.delete(k);
        s.changed.add(k);
        if (ttl) this.renew(s, k);
      },
    };
  }
}
