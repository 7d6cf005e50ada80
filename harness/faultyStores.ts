/**
 * Fault injection at the engine's store interfaces, without touching the engine: the stores it is
 * given are wrapped.
 *
 * - `HookedSnapshotStore` / `HookedCommitStore`: hooks before and after every request, and around
 *   the two writes of the commit protocol (the snapshot PUT, the conditional commit). Tests set
 *   them to pause an attempt at a chosen step (`gate`), throw (`SimulatedCrash`), or look.
 * - `ContainerStores`: the stores of one emulated Lambda container, built on those hooks:
 *   - a crash at a point of the commit protocol (before or after the snapshot PUT, before or after
 *     the commit write): when a request reaches that point the container freezes, as if its process
 *     had died there; requests already on the wire complete, nothing else ever runs;
 *   - `freeze()`: the container was stopped (timeout, crash at a random moment);
 *   - a transient store error (S3 503, DynamoDB 500): the next request at a point fails with a
 *     retriable `StoreError`; `commit-lost-ack` applies the commit and then reports the error, as
 *     when the response to a successful write is lost.
 */
import { epochOfSnapshotKey } from '../lib/checkpoint/layout.ts';
import type {
  CommitRecord,
  CommitStore,
  SnapshotStore,
  StoredObject,
  TaskId,
} from '../lib/checkpoint/stores.ts';
import { StoreError } from '../lib/errors.ts';

/** The error a simulated crash throws (never a Tidemark error: it stands for the process dying). */
export class SimulatedCrash extends Error {
  constructor(where: string) {
    super(`simulated crash ${where}`);
    this.name = 'SimulatedCrash';
  }
}

/** A promise you resolve from outside (to pause an attempt at a chosen step). */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

type Hook<A extends unknown[]> = ((...args: A) => void | Promise<void>) | undefined;
type PutOptions = Parameters<SnapshotStore['put']>[2];
type CommitArgs = Parameters<CommitStore['commit']>;

/**
 * A SnapshotStore with hooks. `beforeRequest`/`afterRequest` run around every request (a listing:
 * before it and after each object it yields); `beforePut`/`afterPut` around a PUT, inside them.
 */
export class HookedSnapshotStore implements SnapshotStore {
  beforeRequest?: Hook<[operation: 'put' | 'get' | 'delete' | 'list' | 'probe']>;
  afterRequest?: Hook<[operation: 'put' | 'get' | 'delete' | 'list' | 'probe']>;
  beforePut?: Hook<[key: string]>;
  afterPut?: Hook<[key: string]>;
  readonly inner: SnapshotStore;

  constructor(inner: SnapshotStore) {
    this.inner = inner;
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    await this.beforeRequest?.('put');
    await this.beforePut?.(key);
    await this.inner.put(key, body, options);
    await this.afterPut?.(key);
    await this.afterRequest?.('put');
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    await this.beforeRequest?.('get');
    const out = await this.inner.get(key);
    await this.afterRequest?.('get');
    return out;
  }

  async delete(keys: readonly string[]): Promise<void> {
    await this.beforeRequest?.('delete');
    await this.inner.delete(keys);
    await this.afterRequest?.('delete');
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    await this.beforeRequest?.('list');
    for await (const o of this.inner.list(prefix)) {
      yield o;
      await this.afterRequest?.('list');
    }
  }

  async probe(): Promise<void> {
    await this.beforeRequest?.('probe');
    await this.inner.probe();
    await this.afterRequest?.('probe');
  }
}

/**
 * A CommitStore with hooks. `beforeRequest`/`afterRequest` run around every read, commit and probe;
 * `beforeCommit`/`afterCommit` around the conditional commit, inside them.
 */
export class HookedCommitStore implements CommitStore {
  beforeRequest?: Hook<[operation: 'read' | 'commit' | 'probe']>;
  afterRequest?: Hook<[operation: 'read' | 'commit' | 'probe']>;
  beforeCommit?: Hook<[next: CommitRecord, expectedEpoch: number]>;
  afterCommit?: Hook<[next: CommitRecord, expectedEpoch: number]>;
  readonly inner: CommitStore;

  constructor(inner: CommitStore) {
    this.inner = inner;
  }

  /** The wrapped store's kind (stores that carry one). */
  get kind(): string {
    return (this.inner as { kind?: string }).kind ?? 'hooked';
  }

  async read(task: TaskId): Promise<CommitRecord | undefined> {
    await this.beforeRequest?.('read');
    const out = await this.inner.read(task);
    await this.afterRequest?.('read');
    return out;
  }

  async commit(...args: CommitArgs): Promise<void> {
    const [next, expectedEpoch] = args;
    await this.beforeRequest?.('commit');
    await this.beforeCommit?.(next, expectedEpoch);
    await this.inner.commit(...args);
    await this.afterCommit?.(next, expectedEpoch);
    await this.afterRequest?.('commit');
  }

  list(pipeline: string): AsyncIterable<CommitRecord> {
    return this.inner.list(pipeline);
  }

  async probe(): Promise<void> {
    await this.beforeRequest?.('probe');
    await this.inner.probe();
    await this.afterRequest?.('probe');
  }
}

export const CRASH_POINTS = [
  'before-snapshot-put',
  'after-snapshot-put',
  'before-commit',
  'after-commit',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export const STORE_FAULT_POINTS = ['snapshot-put', 'commit', 'commit-lost-ack'] as const;
export type StoreFaultPoint = (typeof STORE_FAULT_POINTS)[number];

const never = <T>(): Promise<T> => new Promise<T>(() => {});

/** The stores of one emulated Lambda container: crashes, freezing and transient errors (see above). */
export class ContainerStores {
  readonly snapshots: HookedSnapshotStore;
  readonly commits: HookedCommitStore;
  private frozen = false;
  private crashAt: { point: CrashPoint; fired: () => void } | undefined;
  private errorAt: { point: StoreFaultPoint; fired: () => void } | undefined;

  constructor(inner: { snapshots: SnapshotStore; commits: CommitStore }) {
    const snapshots = new HookedSnapshotStore(inner.snapshots);
    // A frozen container never gets an answer, nor sends anything more.
    snapshots.beforeRequest = () => this.gate(undefined);
    snapshots.afterRequest = () => this.gate(undefined);
    snapshots.beforePut = async (key) => {
      const isSnapshot = epochOfSnapshotKey(key) !== undefined;
      if (!isSnapshot) return;
      await this.gate('before-snapshot-put');
      const error = this.injected('snapshot-put');
      if (error) throw error;
    };
    snapshots.afterPut = async (key) => {
      if (epochOfSnapshotKey(key) !== undefined) await this.gate('after-snapshot-put');
    };
    const commits = new HookedCommitStore(inner.commits);
    commits.beforeRequest = () => this.gate(undefined);
    commits.afterRequest = () => this.gate(undefined);
    commits.beforeCommit = async () => {
      await this.gate('before-commit');
      const error = this.injected('commit');
      if (error) throw error;
    };
    commits.afterCommit = async () => {
      await this.gate('after-commit');
      const lostAck = this.injected('commit-lost-ack');
      if (lostAck) throw lostAck;
    };
    this.snapshots = snapshots;
    this.commits = commits;
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /** Nothing in this container runs any more: every request from now on waits forever. */
  freeze(): void {
    this.frozen = true;
    this.crashAt = undefined;
    this.errorAt = undefined;
  }

  /** The container freezes when a request next reaches `point`. Resolves then. */
  armCrash(point: CrashPoint): Promise<void> {
    return new Promise<void>((fired) => {
      this.crashAt = { point, fired };
    });
  }

  /** The next request at `point` fails with a retriable store error. Resolves when it fired. */
  armError(point: StoreFaultPoint): Promise<void> {
    return new Promise<void>((fired) => {
      this.errorAt = { point, fired };
    });
  }

  disarm(): void {
    this.crashAt = undefined;
    this.errorAt = undefined;
  }

  /** Waits forever when frozen or when `point` is the armed crash point. */
  private async gate(point: CrashPoint | undefined): Promise<void> {
    if (this.frozen) return never();
    const crash = this.crashAt;
    if (point && crash?.point === point) {
      this.freeze();
      crash.fired();
      return never();
    }
  }

  private injected(point: StoreFaultPoint): StoreError | undefined {
    const e = this.errorAt;
    if (e?.point !== point) return undefined;
    this.errorAt = undefined;
    e.fired();
    return point === 'snapshot-put'
      ? new StoreError('s3', 'put', 'SlowDown: Please reduce your request rate (injected)')
      : new StoreError('dynamodb', 'commit', 'InternalServerError (injected)');
  }
}
