/**
 * The stores of one emulated Lambda container, wrapped so that faults can be injected from outside
 * the engine:
 * - a crash at a point of the commit protocol (before or after the snapshot PUT, before or after the
 *   commit write): when a request reaches that point the container freezes, as if its process had
 *   died there; requests already on the wire complete, nothing else ever runs;
 * - `freeze()`: the container was stopped (timeout, crash at a random moment);
 * - a transient store error (S3 503, DynamoDB 500): the next request at a point fails with a
 *   retriable `StoreError`; `commit-lost-ack` applies the commit and then reports the error, as
 *   when the response to a successful write is lost.
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

export class ContainerStores {
  readonly snapshots: SnapshotStore;
  readonly commits: CommitStore;
  private frozen = false;
  private crashAt: { point: CrashPoint; fired: () => void } | undefined;
  private errorAt: { point: StoreFaultPoint; fired: () => void } | undefined;

  constructor(inner: { snapshots: SnapshotStore; commits: CommitStore }) {
    this.snapshots = this.wrapSnapshots(inner.snapshots);
    this.commits = this.wrapCommits(inner.commits);
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

  private wrapSnapshots(inner: SnapshotStore): SnapshotStore {
    return {
      put: async (key: string, body: Uint8Array, options?: { ifAbsent?: boolean; contentType?: string }) => {
        const isSnapshot = epochOfSnapshotKey(key) !== undefined;
        await this.gate(isSnapshot ? 'before-snapshot-put' : undefined);
        const error = isSnapshot ? this.injected('snapshot-put') : undefined;
        if (error) throw error;
        await inner.put(key, body, options);
        await this.gate(isSnapshot ? 'after-snapshot-put' : undefined);
      },
      get: async (key: string) => {
        await this.gate(undefined);
        const r = await inner.get(key);
        await this.gate(undefined);
        return r;
      },
      delete: async (keys: readonly string[]) => {
        await this.gate(undefined);
        await inner.delete(keys);
      },
      list: (prefix: string): AsyncIterable<StoredObject> => {
        const self = this;
        return {
          async *[Symbol.asyncIterator]() {
            await self.gate(undefined);
            for await (const o of inner.list(prefix)) {
              yield o;
              await self.gate(undefined);
            }
          },
        };
      },
      probe: async () => {
        await this.gate(undefined);
        await inner.probe();
      },
    };
  }

  private wrapCommits(inner: CommitStore): CommitStore {
    return {
      read: async (task: TaskId) => {
        await this.gate(undefined);
        const r = await inner.read(task);
        await this.gate(undefined);
        return r;
      },
      commit: async (next: CommitRecord, expectedEpoch: number) => {
        await this.gate('before-commit');
        const before = this.injected('commit');
        if (before) throw before;
        await inner.commit(next, expectedEpoch);
        await this.gate('after-commit');
        const lostAck = this.injected('commit-lost-ack');
        if (lostAck) throw lostAck;
      },
      list: (pipeline: string) => inner.list(pipeline),
      probe: async () => {
        await this.gate(undefined);
        await inner.probe();
      },
    };
  }
}
