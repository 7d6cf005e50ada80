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
    for (const v of Object.values(value)) freeze(v);
  }
  return value;
}

/**
 * Keyed state of one task, in memory, with no I/O. It knows which keys changed since the last
 * checkpoint and keeps a per-record undo journal so that a record whose processing throws leaves
 * no partial change behind.
 */
export class StateStore {
  private readonly tables = new Map<string, StateTable>();
  private changed = new Map<string, Set<string>>();
  private readonly journal: Array<() => void> = [];
  private key: string | null = null;
  /** True when restored values were upgraded by a `migrate` function (they now differ from their snapshot). */
  migrated = false;

  constructor(descriptors: StateDescriptors, restored: Iterable<StateTable> = []) {
    for (const [name, d] of Object.entries(descriptors)) {
      this.tables.set(name, { name, kind: d.kind, scope: d.scope, version: d.version, data: new Map() });
    }
    for (const t of restored) this.adopt(t, descriptors[t.name]);
  }

  /** Installs restored data, checking kind and migrating older value versions. */
  private adopt(restored: StateTable, d: StateDescriptor | undefined): void {
    if (!d) {
      // State no longer declared by the processor: carried through unchanged so nothing is lost.
      this.tables.set(restored.name, restored);
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
    this.tables.set(restored.name, {
      name: restored.name,
      kind: d.kind,
      scope: d.scope,
      version: d.version,
      data,
    });
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
    for (let i = this.journal.length - 1; i >= 0; i--) this.journal[i]!();
    this.journal.length = 0;
  }

  /** Names and keys changed since the last call (or since creation). */
  takeChanges(): Map<string, Set<string>> {
    const c = this.changed;
    this.changed = new Map();
    return c;
  }

  get changedKeyCount(): number {
    let n = 0;
    for (const s of this.changed.values()) n += s.size;
    return n;
  }

  /** Number of stored (state, key) entries. */
  get keyCount(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.data.size;
    return n;
  }

  /** Every table, declared or carried over from a snapshot. Do not mutate. */
  allTables(): Iterable<StateTable> {
    return this.tables.values();
  }

  table(name: string): StateTable | undefined {
    return this.tables.get(name);
  }

  private markChanged(name: string, key: string): void {
    let s = this.changed.get(name);
    if (!s) {
      s = new Set();
      this.changed.set(name, s);
    }
    s.add(key);
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

  /** Records how to restore `key` of table `t` to what it is now. */
  private remember(t: StateTable, key: string): void {
    const d = t.data;
    if (d.has(key)) {
      const prev = d.get(key);
      this.journal.push(() => d.set(key, prev));
    } else {
      this.journal.push(() => d.delete(key));
    }
  }

  private requireTable(name: string, kind: StateKind): StateTable {
    const t = this.tables.get(name);
    if (!t || t.kind !== kind) throw new StateError(`state '${name}' is not declared as ${kind} state`);
    return t;
  }

  /** Creates the typed handles processors use; they follow the current record's key. */
  handles<S extends StateDescriptors>(descriptors: S): StateHandles<S> {
    const out: Record<string, unknown> = {};
    for (const [name, d] of Object.entries(descriptors)) {
      const t = this.requireTable(name, d.kind);
      out[name] =
        d.kind === 'value' ? this.valueHandle(t) : d.kind === 'map' ? this.mapHandle(t) : this.listHandle(t);
    }
    return Object.freeze(out) as StateHandles<S>;
  }

  private valueHandle(t: StateTable): ValueState<unknown> {
    return {
      // Restored values are frozen on first read rather than at restore time (restore stays O(decode)).
      get: () => freeze(t.data.get(this.keyFor(t))),
      set: (value: unknown) => {
        const k = this.keyFor(t);
        this.remember(t, k);
        if (value === undefined) t.data.delete(k);
        else t.data.set(k, freeze(value));
        this.markChanged(t.name, k);
      },
      clear: () => {
        const k = this.keyFor(t);
        if (!t.data.has(k)) return;
        this.remember(t, k);
        t.data.delete(k);
        this.markChanged(t.name, k);
      },
    };
  }

  private mapHandle(t: StateTable): MapState<unknown> {
    const inner = (): Map<string, unknown> | undefined =>
      t.data.get(this.keyFor(t)) as Map<string, unknown> | undefined;
    const empty = new Map<string, unknown>();
    return {
      get: (mk) => freeze(inner()?.get(mk)),
      has: (mk) => inner()?.has(mk) ?? false,
      put: (mk, value) => {
        if (value === undefined)
          throw new StateError(`map state '${t.name}': value for '${mk}' is undefined`);
        const k = this.keyFor(t);
        let m = t.data.get(k) as Map<string, unknown> | undefined;
        if (!m) {
          this.remember(t, k);
          m = new Map();
          t.data.set(k, m);
        }
        const map = m;
        if (map.has(mk)) {
          const prev = map.get(mk);
          this.journal.push(() => map.set(mk, prev));
        } else {
          this.journal.push(() => map.delete(mk));
        }
        map.set(mk, freeze(value));
        this.markChanged(t.name, k);
      },
      remove: (mk) => {
        const k = this.keyFor(t);
        const map = t.data.get(k) as Map<string, unknown> | undefined;
        if (!map?.has(mk)) return;
        const prev = map.get(mk);
        this.journal.push(() => map.set(mk, prev));
        map.delete(mk);
        if (map.size === 0) {
          this.journal.push(() => t.data.set(k, map));
          t.data.delete(k);
        }
        this.markChanged(t.name, k);
      },
      keys: () => (inner() ?? empty).keys(),
      entries: () => (inner() ?? empty).entries(),
      get size() {
        return inner()?.size ?? 0;
      },
      clear: () => {
        const k = this.keyFor(t);
        if (!t.data.has(k)) return;
        this.remember(t, k);
        t.data.delete(k);
        this.markChanged(t.name, k);
      },
    };
  }

  private listHandle(t: StateTable): ListState<unknown> {
    const none: readonly unknown[] = Object.freeze([]);
    const append = (values: readonly unknown[]) => {
      if (values.length === 0) return;
      const k = this.keyFor(t);
      let list = t.data.get(k) as unknown[] | undefined;
      if (!list) {
        this.remember(t, k);
        list = [];
        t.data.set(k, list);
      } else {
        const arr = list;
        const len = arr.length;
        this.journal.push(() => {
          arr.length = len;
        });
      }
      for (const v of values) list.push(freeze(v));
      this.markChanged(t.name, k);
    };
    return {
      get: () => (t.data.get(this.keyFor(t)) as unknown[] | undefined) ?? none,
      add: (value) => append([value]),
      addAll: (values) => append(values),
      update: (values) => {
        const k = this.keyFor(t);
        this.remember(t, k);
        if (values.length === 0) t.data.delete(k);
        else t.data.set(k, values.map(freeze));
        this.markChanged(t.name, k);
      },
      clear: () => {
        const k = this.keyFor(t);
        if (!t.data.has(k)) return;
        this.remember(t, k);
        t.data.delete(k);
        this.markChanged(t.name, k);
      },
    };
  }
}
