/**
 * The two small storage interfaces the engine depends on, and the commit item they exchange.
 * Implementations: `lib/store/s3` and `lib/store/dynamodb` (production), `lib/store/memory` (tests).
 */
import type { SnapshotKind } from '../state/snapshotCodec.ts';

/** A task: one topic-partition of one pipeline. */
export interface TaskId {
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
}

/** A snapshot object as a commit item references it. */
export interface SnapshotRef {
  readonly key: string;
  readonly bytes: number;
  /** CRC-32 of the object (its trailer), 8 hex digits. */
  readonly checksum: string;
  readonly kind: SnapshotKind;
  readonly epoch: number;
  readonly entries: number;
}

/** A retained checkpoint: enough to restore it (its chain) and to know what it covers. */
export interface CheckpointSummary {
  readonly epoch: number;
  readonly committedOffset: bigint;
  /** The snapshot objects to load, oldest first: a full snapshot, then deltas (if any). */
  readonly chain: readonly SnapshotRef[];
  readonly updatedAt: string;
}

/**
 * The commit item: the single source of truth of a task's progress. Epoch E (1, 2, 3, …) says
 * that every record with offset < `committedOffset` has been applied exactly once to the state held
 * by `chain`. Written only by a conditional write that expects epoch E-1.
 */
export interface CommitRecord extends TaskId, CheckpointSummary {
  /** Records set aside under the quarantine policy, in total. */
  readonly quarantined: number;
  /** Records applied, in total (quarantined ones excluded). */
  readonly applied: number;
  /** Attempt id of the invocation that committed it. */
  readonly attempt: string;
  /** Older retained checkpoints, newest first (the current one excluded). */
  readonly history: readonly CheckpointSummary[];
}

export interface CommitStore {
  /** The task's commit item (strongly consistent), or undefined when the task never committed. */
  read(task: TaskId): Promise<CommitRecord | undefined>;
  /**
   * Writes `next` if and only if the stored epoch is `expectedEpoch` (or no item exists and
   * `expectedEpoch` is 0). Otherwise throws `CommitConflictError` carrying the stored item.
   */
  commit(next: CommitRecord, expectedEpoch: number): Promise<void>;
  /** Every commit item of a pipeline (operations; not on the processing path). */
  list(pipeline: string): AsyncIterable<CommitRecord>;
  /** Throws `StoreMissingError` when the table does not exist, `StoreError` when unreachable. */
  probe(): Promise<void>;
}

export interface StoredObject {
  readonly key: string;
  readonly size: number;
  readonly lastModified: Date;
}

export interface SnapshotStore {
  /**
   * Creates an object. With `ifAbsent` (the default) the write is conditional (`If-None-Match: *`)
   * and throws `ObjectExistsError` when the key exists.
   */
  put(key: string, body: Uint8Array, options?: { ifAbsent?: boolean; contentType?: string }): Promise<void>;
  /** The object's bytes, or undefined when it does not exist. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Deletes objects; missing keys are not an error. */
  delete(keys: readonly string[]): Promise<void>;
  /** Objects under a prefix, in key order. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /**
   * Copies an object (server-side where the backend can), overwriting `toKey`. Returns false when
   * `fromKey` does not exist. Optional: operations fall back to get + put (`copyObject` in
   * lib/ops/savepoints.ts).
   */
  copy?(fromKey: string, toKey: string): Promise<boolean>;
  /** Throws `StoreMissingError` when the bucket does not exist, `StoreError` when unreachable. */
  probe(): Promise<void>;
}
