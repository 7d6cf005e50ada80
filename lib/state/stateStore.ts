import { StateError } from '../errors.ts';
import type {
  ListState,
  MapState,
  StateDescriptor,
  StateDescriptors,
  StateHandles,
  StateKind,
  StateScope,
  ValueState,
} from './descriptors.ts';

/** The key under which task-scoped state is stored. */
export const TASK_KEY = '';

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
  changed: Set<string>;
}

/**
 * Keyed state of one task, in memory, with no I/O. It knows which keys changed since the last
 * checkpoint and keeps a per-record undo journal so that a record whose processing throws leaves
 * no partial change behind. (Hot path: the journal is a flat array and change sets hang off each
 * table, so a write allocates nothing but what the value itself needs.)
 */
export class StateStore {
  private readonly slots = new Map<string, Slot>();
  private readonly journal: unknown[] = [];
  private key: string | null = null;
  /** True when restored values were upgraded by a `migrate` function (they now differ from their snapshot). */
  migrated = false;

  constructor(descriptors: StateDescriptors, restored: Iterable<StateTable> = []) {
    for (const [name, d] of Object.entries(descriptors)) {
      this.install({ name, kind: d.kind, scope: d.scope, version: d.version, data: new Map() });
    }
    for (const t of restored) this.adopt(t, descriptors[t.name]);
  }

  private install(table: StateTable): void {
    this.slots.set(table.name, { table, changed: new Set() });
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
    this.journal.length = 0;
  }

  /** Keeps the current record's changes. */
  commitRecord(): void {
    this.journal.length = 0;
  }

  /** Undoes every change made since `beginRecord`. */
  rollbackRecord(): void {
    const j = this.journal;
    for (let i = j.length - 5; i >= 0; i -= 5) {
      if (j[i] === UNDO_TRUNCATE) {
        (j[i + 1] as unknown[]).length = j[i + 2] as number;
      } else if (j[i + 4]) {
        (j[i + 1] as Map<string, unknown>).set(j[i + 2] as string, j[i + 3]);
      } else {
        (j[i + 1] as Map<string, unknown>).delete(j[i + 2] as string);
      }
    }
    j.length = 0;
  }

  /** Names and keys changed since the last call (or since creation). */
  takeChanges(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const [name, slot] of this.slots) {
      if (slot.changed.size === 0) continue;
      out.set(name, slot.changed);
      slot.changed = new Set();
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
    const had = map.has(key);
    this.journal.push(UNDO_ENTRY, map, key, had ? map.get(key) : undefined, had);
  }

  private requireSlot(name: string, kind: StateKind): Slot {
    const s = this.slots.get(name);
    if (!s || s.table.kind !== kind) throw new StateError(`state '${name}' is not declared as ${kind} state`);
    return s;
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
    return {
      get: () => data.get(this.keyFor(t)),
      set: (value: unknown) => {
        const k = this.keyFor(t);
        this.remember(data, k);
        if (value === undefined) data.delete(k);
        else data.set(k, freeze(value));
        s.changed.add(k);
      },
      clear: () => {
        const k = this.keyFor(t);
        if (!data.has(k)) return;
        this.remember(data, k);
        data.delete(k);
        s.changed.add(k);
      },
    };
  }

  private mapHandle(s: Slot): MapState<unknown> {
    const t = s.table;
    const data = t.data;
    const inner = (): Map<string, unknown> | undefined =>
      data.get(this.keyFor(t)) as Map<string, unknown> | undefined;
    const empty = new Map<string, unknown>();
    return {
      get: (mk) => inner()?.get(mk),
      has: (mk) => inner()?.has(mk) ?? false,
      put: (mk, value) => {
        if (value === undefined)
          throw new StateError(`map state '${t.name}': value for '${mk}' is undefined`);
        const k = this.keyFor(t);
        let map = data.get(k) as Map<string, unknown> | undefined;
        if (!map) {
          this.remember(data, k);
          map = new Map();
          data.set(k, map);
        }
        this.remember(map, mk);
        map.set(mk, freeze(value));
        s.changed.add(k);
      },
      remove: (mk) => {
        const k = this.keyFor(t);
        const map = data.get(k) as Map<string, unknown> | undefined;
        if (!map?.has(mk)) return;
        this.remember(map, mk);
        map.delete(mk);
        if (map.size === 0) {
          this.remember(data, k);
          data.delete(k);
        }
        s.changed.add(k);
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
      },
    };
  }

  private listHandle(s: Slot): ListState<unknown> {
    const t = s.table;
    const data = t.data;
    const none: readonly unknown[] = Object.freeze([]);
    const append = (values: readonly unknown[]) => {
      if (values.length === 0) return;
      const k = this.keyFor(t);
      let list = data.get(k) as unknown[] | undefined;
      if (!list || Object.isFrozen(list)) {
        // New, or restored (decoded lists are frozen): copy on first write.
        this.remember(data, k);
        list = list ? [...list] : [];
        data.set(k, list);
      } else {
        this.journal.push(UNDO_TRUNCATE, list, list.length, undefined, undefined);
      }
      for (const v of values) list.push(freeze(v));
      s.changed.add(k);
    };
    return {
      get: () => (data.get(this.keyFor(t)) as unknown[] | undefined) ?? none,
      add: (value) => append([value]),
      addAll: (values) => append(values),
      update: (values) => {
        const k = this.keyFor(t);
        this.remember(data, k);
        if (values.length === 0) data.delete(k);
        else data.set(k, values.map(freeze));
        s.changed.add(k);
      },
      clear: () => {
        const k = this.keyFor(t);
        if (!data.has(k)) return;
        this.remember(data, k);
        data.delete(k);
        s.changed.add(k);
      },
    };
  }
}
