/**
 * Declarations of named state, in the manner of Flink's state descriptors. A processor declares
 * its state once (`state: { account: valueState<Account>() }`); the engine then hands it handles
 * scoped to the key of the record being processed (`scope: 'key'`, the default) or shared by the
 * whole task, i.e. one topic-partition (`scope: 'task'`).
 */

export type StateKind = 'value' | 'map' | 'list';
export type StateScope = 'key' | 'task';

export interface StateOptions {
  /**
   * Version of the value schema. Stored in every snapshot; when a snapshot holds an older version,
   * `migrate` is called for each value on restore. Default 1.
   */
  version?: number;
  /** Upgrades a value written under `fromVersion`; required to restore snapshots of older versions. */
  migrate?: (value: unknown, fromVersion: number) => unknown;
}

export interface StateDescriptor<K extends StateKind = StateKind, T = unknown> {
  readonly kind: K;
  readonly scope: StateScope;
  readonly version: number;
  readonly migrate: ((value: unknown, fromVersion: number) => unknown) | undefined;
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
  return Object.freeze({ kind, scope, version, migrate: options.migrate });
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
