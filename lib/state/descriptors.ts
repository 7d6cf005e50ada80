/**
 * Declarations of named state, in the manner of Flink's state descriptors. A processor declares
 * its state once (`state: { account: valueState<Account>() }`); the engine then hands it handles
 * scoped to the key of the record being processed (`scope: 'key'`, the default) or shared by the
 * whole task, i.e. one topic-partition (`scope: 'task'`).
 */

export type StateKind = 'value' | 'map' | 'list';
export type StateScope = 'key' | 'task';

/**
 * Time to live of a state's entries (docs/time.md#state-ttl). Each key's entry (its value, its whole
 * map or its whole list) gets a deadline when written: the write's time plus `ms`. From the deadline
 * on the entry is never returned (reads see nothing, writes start from nothing), and the next
 * checkpoint removes it from the snapshot through an expiry index (no scan of the state).
 */
export interface TtlOptions {
  /** How long an entry lives after its last write (or read, with `refresh: 'onReadAndWrite'`), in ms. */
  readonly ms: number;
  /**
   * `processing` (default): the task's processing time, the wall clock read when an epoch or a tick
   * starts. `event`: the write is stamped with the event time of the record (or timer) being processed,
   * and the entry expires once the task's watermark reaches the deadline (needs `time` on the processor).
   */
  readonly time?: 'processing' | 'event';
  /** `onWrite` (default): writes renew the deadline. `onReadAndWrite`: reads renew it too (a read then writes). */
  readonly refresh?: 'onWrite' | 'onReadAndWrite';
}

export interface StateOptions {
  /**
   * Version of the value schema. Stored in every snapshot; when a snapshot holds an older version,
   * `migrate` is called for each value on restore. Default 1.
   */
  version?: number;
  /** Upgrades a value written under `fromVersion`; required to restore snapshots of older versions. */
  migrate?: (value: unknown, fromVersion: number) => unknown;
  /** Entries expire this long after their last write (see `TtlOptions`). Default: never. */
  ttl?: TtlOptions;
}

export interface StateDescriptor<K extends StateKind = StateKind, T = unknown> {
  readonly kind: K;
  readonly scope: StateScope;
  readonly version: number;
  readonly migrate: ((value: unknown, fromVersion: number) => unknown) | undefined;
  /** Time to live of the entries, if they expire. */
  readonly ttl?: Readonly<Required<TtlOptions>> | undefined;
  /** Type carrier only; never set. */
  readonly __type?: T;
}

function descriptor<K extends StateKind, T>(
  kind: K,
  scope: StateScope,
  options: StateOptions,
): StateDescriptor<K, T> {
  const version = options.version ?? 1;
  if (!Number.isSafeInteger(version) || version < 1)
    throw new RangeError('state version must be a positive integer');
  const t = options.ttl;
  if (t === undefined) return Object.freeze({ kind, scope, version, migrate: options.migrate });
  if (!Number.isSafeInteger(t.ms) || t.ms < 1)
    throw new RangeError('state ttl.ms must be a positive integer');
  if (t.time !== undefined && t.time !== 'processing' && t.time !== 'event') {
    throw new RangeError(`state ttl.time must be 'processing' or 'event'`);
  }
  if (t.refresh !== undefined && t.refresh !== 'onWrite' && t.refresh !== 'onReadAndWrite') {
    throw new RangeError(`state ttl.refresh must be 'onWrite' or 'onReadAndWrite'`);
  }
  const ttl = Object.freeze({ ms: t.ms, time: t.time ?? 'processing', refresh: t.refresh ?? 'onWrite' });
  return Object.freeze({ kind, scope, version, migrate: options.migrate, ttl });
}

/** One value per record key. */
export function valueState<T>(options: StateOptions = {}): StateDescriptor<'value', T> {
  return descriptor('value', 'key', options);
}
/** A map (string keys) per record key. */
export function mapState<V>(options: StateOptions = {}): StateDescriptor<'map', V> {
  return descriptor('map', 'key', options);
}
/** A list per record key. */
export function listState<T>(options: StateOptions = {}): StateDescriptor<'list', T> {
  return descriptor('list', 'key', options);
}
/** One value for the whole task (topic-partition), whatever the record key. */
export function taskValueState<T>(options: StateOptions = {}): StateDescriptor<'value', T> {
  return descriptor('value', 'task', options);
}
/** One map for the whole task. */
export function taskMapState<V>(options: StateOptions = {}): StateDescriptor<'map', V> {
  return descriptor('map', 'task', options);
}
/** One list for the whole task. */
export function taskListState<T>(options: StateOptions = {}): StateDescriptor<'list', T> {
  return descriptor('list', 'task', options);
}

export type StateDescriptors = Readonly<Record<string, StateDescriptor>>;

export interface ValueState<T> {
  /** The current value, or `undefined`. Values are frozen: build a new one and `set` it. */
  get(): T | undefined;
  set(value: T): void;
  clear(): void;
}

export interface MapState<V> {
  get(mapKey: string): V | undefined;
  has(mapKey: string): boolean;
  put(mapKey: string, value: V): void;
  remove(mapKey: string): void;
  keys(): IterableIterator<string>;
  entries(): IterableIterator<[string, V]>;
  readonly size: number;
  clear(): void;
}

export interface ListState<T> {
  /** The current list (empty when none). Read-only: use `add`, `addAll` or `update`. */
  get(): readonly T[];
  add(value: T): void;
  addAll(values: readonly T[]): void;
  update(values: readonly T[]): void;
  clear(): void;
}

export type StateHandle<D> =
  D extends StateDescriptor<'value', infer T>
    ? ValueState<T>
    : D extends StateDescriptor<'map', infer V>
      ? MapState<V>
      : D extends StateDescriptor<'list', infer T>
        ? ListState<T>
        : never;

export type StateHandles<S extends StateDescriptors> = { readonly [K in keyof S]: StateHandle<S[K]> };
