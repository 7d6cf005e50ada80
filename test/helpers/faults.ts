import type {
  CommitRecord,
  CommitStore,
  SnapshotStore,
  StoredObject,
  TaskId,
} from '../../lib/checkpoint/stores.ts';

/** The error a simulated crash throws (never a Tidemark error: it stands for the process dying). */
export class SimulatedCrash extends Error {
  constructor(where: string) {
    super(`simulated crash ${where}`);
    this.name = 'SimulatedCrash';
  }
}

type Hook = (key: string) => void | Promise<void>;

/** Wraps a SnapshotStore with hooks around snapshot PUTs (fault injection without touching the engine). */
export class HookedSnapshotStore implements SnapshotStore {
  beforePut?: Hook;
  afterPut?: Hook;
  readonly inner: SnapshotStore;
  constructor(inner: SnapshotStore) {
    this.inner = inner;
  }
  async put(key: string, body: Uint8Array, options?: { ifAbsent?: boolean; contentType?: string }) {
    await this.beforePut?.(key);
    await this.inner.put(key, body, options);
    await this.afterPut?.(key);
  }
  get(key: string) {
    return this.inner.get(key);
  }
  delete(keys: readonly string[]) {
    return this.inner.delete(keys);
  }
  list(prefix: string): AsyncIterable<StoredObject> {
    return this.inner.list(prefix);
  }
  probe() {
    return this.inner.probe();
  }
}

type CommitHook = (next: CommitRecord, expectedEpoch: number) => void | Promise<void>;

/** Wraps a CommitStore with hooks around the conditional commit. */
export class HookedCommitStore implements CommitStore {
  beforeCommit?: CommitHook;
  afterCommit?: CommitHook;
  readonly inner: CommitStore;
  constructor(inner: CommitStore) {
    this.inner = inner;
  }
  read(task: TaskId) {
    return this.inner.read(task);
  }
  async commit(next: CommitRecord, expectedEpoch: number) {
    await this.beforeCommit?.(next, expectedEpoch);
    await this.inner.commit(next, expectedEpoch);
    await this.afterCommit?.(next, expectedEpoch);
  }
  list(pipeline: string) {
    return this.inner.list(pipeline);
  }
  probe() {
    return this.inner.probe();
  }
}

/** A promise you resolve from outside (to pause an attempt at a chosen step). */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}
