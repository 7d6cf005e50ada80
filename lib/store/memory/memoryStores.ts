/**
 * In-memory `SnapshotStore` and `CommitStore` for unit tests and benchmarks: the same contracts as
 * the S3 and DynamoDB stores (conditional create, conditional commit returning the stored item),
 * with no I/O. Every call is asynchronous, as the real ones are.
 */
import type {
  CommitRecord,
  CommitStore,
  SnapshotStore,
  StoredObject,
  TaskId,
} from '../../checkpoint/stores.ts';
import { CommitConflictError, ConfigurationError, ObjectExistsError } from '../../errors.ts';
import type { AttachedWrites } from '../../output/types.ts';

function taskKey(task: TaskId): string {
  return `${task.pipeline}\u0000${task.topic}\u0000${task.partition}`;
}

export class MemorySnapshotStore implements SnapshotStore {
  readonly objects = new Map<string, { body: Buffer; lastModified: Date }>();
  /** Request counts by operation, for tests that count I/O. */
  readonly calls = { put: 0, get: 0, delete: 0, list: 0, copy: 0 };

  async put(key: string, body: Uint8Array, options: { ifAbsent?: boolean } = {}): Promise<void> {
    this.calls.put++;
    await Promise.resolve();
    if ((options.ifAbsent ?? true) && this.objects.has(key)) throw new ObjectExistsError(key);
    this.objects.set(key, { body: Buffer.from(body), lastModified: new Date() });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.calls.get++;
    await Promise.resolve();
    const o = this.objects.get(key);
    return o ? Buffer.from(o.body) : undefined;
  }

  async delete(keys: readonly string[]): Promise<void> {
    this.calls.delete++;
    await Promise.resolve();
    for (const k of keys) this.objects.delete(k);
  }

  async copy(fromKey: string, toKey: string): Promise<boolean> {
    this.calls.copy++;
    await Promise.resolve();
    const o = this.objects.get(fromKey);
    if (!o) return false;
    this.objects.set(toKey, { body: Buffer.from(o.body), lastModified: new Date() });
    return true;
  }

  async probe(): Promise<void> {}

  async *list(prefix: string): AsyncIterable<StoredObject> {
    this.calls.list++;
    await Promise.resolve();
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const key of keys) {
      const o = this.objects.get(key);
      if (o) yield { key, size: o.body.length, lastModified: o.lastModified };
    }
  }
}

/**
 * A copy of a commit item, as a store keeps it apart from the writer's object: objects and arrays
 * are copied, bytes (inline snapshots and outboxes, never mutated) are shared. Hand-written rather
 * than `structuredClone`, which would copy every inline byte at every commit and read.
 */
function copyRecord<T>(value: T): T {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(copyRecord) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = copyRecord(v);
  return out as T;
}

export class MemoryCommitStore implements CommitStore {
  readonly kind = 'memory';
  readonly items = new Map<string, CommitRecord>();
  readonly calls = { read: 0, commit: 0, list: 0 };

  async read(task: TaskId): Promise<CommitRecord | undefined> {
    this.calls.read++;
    await Promise.resolve();
    const item = this.items.get(taskKey(task));
    return item ? copyRecord(item) : undefined;
  }

  /**
   * Attached writes of the `memory` store are functions, run with the commit as one atomic step
   * (the memory sinks of `tidemark/testing` use them to model outputs that commit with the epoch).
   */
  async commit(next: CommitRecord, expectedEpoch: number, attached?: AttachedWrites): Promise<void> {
    this.calls.commit++;
    if (attached && attached.store !== this.kind) {
      throw new ConfigurationError(
        'TIDEMARK_COMMIT_STORE',
        `outputs attached writes for ${attached.store} to a commit in ${this.kind}`,
      );
    }
    await Promise.resolve();
    const key = taskKey(next);
    const current = this.items.get(key);
    if ((current?.epoch ?? 0) !== expectedEpoch || (expectedEpoch === 0 && current)) {
      throw new CommitConflictError(expectedEpoch, current ? copyRecord(current) : undefined);
    }
    this.items.set(key, copyRecord(next));
    for (const write of attached?.writes ?? []) (write as () => void)();
  }

  async probe(): Promise<void> {}

  async *list(pipeline: string): AsyncIterable<CommitRecord> {
    this.calls.list++;
    await Promise.resolve();
    for (const item of this.items.values()) if (item.pipeline === pipeline) yield copyRecord(item);
  }
}
