/**
 * The two small storage interfaces the engine depends on, and the commit item they exchange.
 * Implementations: `lib/store/s3` and `lib/store/dynamodb` (production), `lib/store/memory` (tests).
 */
import type { AttachedWrites } from '../output/types.ts';
import type { SnapshotKind } from '../state/snapshotCodec.ts';

/** A task: one topic-partition of one pipeline. */
export interface TaskId {
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
}

/**
 * A link of a checkpoint's chain as a commit item references it: a snapshot object in S3, or a
 * small snapshot carried inside the commit item itself (`inline`). An inline link still has the key
 * it would have as an object (unique to its attempt): it names the link in errors and listings, and
 * is where a savepoint writes its copy. No object exists under it.
 */
export interface SnapshotRef {
  readonly key: string;
  readonly bytes: number;
  /** CRC-32 of the object (its trailer), 8 hex digits. */
  readonly checksum: string;
  readonly kind: SnapshotKind;
  readonly epoch: number;
  readonly entries: number;
  /** The snapshot's bytes, when it travels inside the commit item instead of S3. */
  readonly inline?: Uint8Array;
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
 * The outputs of the epoch a commit item commits, pending delivery (see `lib/output/types.ts`): an
 * encoded outbox, inline when small, else an object written like a snapshot (attempt-unique key).
 * Only the current commit item's outbox can be undelivered: the next epoch commits after delivering it.
 */
export interface OutboxRef {
  /** The epoch whose outputs these are (the commit item's own epoch). */
  readonly epoch: number;
  /** Outputs in the outbox. */
  readonly count: number;
  /** Encoded size. */
  readonly bytes: number;
  /** CRC-32 of the encoded outbox (its trailer), 8 hex digits. */
  readonly checksum: string;
  /** The object holding the outbox, when it is not inline. */
  readonly key?: string;
  /** The encoded outbox itself, when small enough to travel in the commit item. */
  readonly inline?: Uint8Array;
  /**
   * Set by a later write of the same epoch once every sink delivered the outbox (only for sinks whose
   * own record of delivery can expire; see `Sink.needsSettle`). A settled outbox is never re-delivered.
   */
  readonly settled?: boolean;
}

/**
 * What a commit item says about its task's time (docs/time.md), for ticks and operators: both
 * follow from the checkpoint's state, which holds the clocks and timers themselves.
 */
export interface TaskTimeSummary {
  /** The task's watermark (ms), once it has one. */
  readonly watermark?: number;
  /** Wall time (ms) from which a scheduled tick has work for the task (due timers, expiring state). */
  readonly dueAt?: number;
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
  /** This epoch's outputs awaiting delivery, if it emitted any that did not commit with it. */
  readonly outbox?: OutboxRef;
  /** The task's watermark and next due time, for processors that use time. */
  readonly time?: TaskTimeSummary;
}

export interface CommitStore {
  /** Which store this is (`dynamodb`, `memory`, `postgres`, …): sinks offer attached writes by kind. */
  readonly kind: string;
  /** The task's commit item (strongly consistent), or undefined when the task never committed. */
  read(task: TaskId): Promise<CommitRecord | undefined>;
  /**
   * Writes `next` if and only if the stored epoch is `expectedEpoch` (or no item exists and
   * `expectedEpoch` is 0). Otherwise throws `CommitConflictError` carrying the stored item.
   * `next.epoch` is normally `expectedEpoch + 1`; it equals `expectedEpoch` when a commit item is
   * rewritten in place (an outbox marked settled). `attached` are writes that must commit in the
   * same transaction (outputs bound to this store, see `Sink.attach`); a store that does not
   * understand them (`attached.store` is not its kind) throws `ConfigurationError`.
   */
  commit(next: CommitRecord, expectedEpoch: number, attached?: AttachedWrites): Promise<void>;
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
