/**
 * Savepoints: named, retained copies of every task's checkpoint of a pipeline, made by an operator
 * and restorable later (see docs/operations.md). A savepoint holds its own copies of the snapshot
 * objects, under `<prefix>/<pipeline>/savepoints/<name>/`, which no GC ever touches, and one item
 * per task plus a meta item in the table (layout in ./layout.ts).
 *
 * Consistency: tasks share no state, so a savepoint needs no barrier across partitions. Each task's
 * entry is one committed checkpoint, a (state, committed offset) pair that the commit protocol made
 * consistent; entries of different tasks may come from different moments. Restoring every task to its
 * own pair, and the consumer group to the same offsets, is what makes a restore exact.
 */
import type { SnapshotRef } from './stores.ts';

export type SavepointStatus = 'creating' | 'complete';

/** The savepoint's meta item: written first (names are unique), completed last. */
export interface SavepointMeta {
  readonly pipeline: string;
  readonly name: string;
  /** `creating` until every task entry is written; restore refuses anything else than `complete`. */
  readonly status: SavepointStatus;
  readonly createdAt: string;
  readonly completedAt: string | null;
  /** Partition count of every topic the savepoint covers. */
  readonly topics: Readonly<Record<string, number>>;
  /**
   * Where the partition counts come from: `kafka` (topic metadata, exact) or `commits` (the highest
   * partition with a commit item, plus one: a lower bound when the newest partitions never committed).
   */
  readonly layoutSource: 'kafka' | 'commits';
  /** Task entries written. */
  readonly tasks: number;
  /** Bytes of the snapshot objects the savepoint holds. */
  readonly bytes: number;
}

/** One task of a savepoint. */
export interface SavepointTask {
  readonly pipeline: string;
  readonly name: string;
  readonly topic: string;
  readonly partition: number;
  /**
   * `committed`: a copy of the task's checkpoint; `not-started`: the partition existed (per the
   * layout) but had never committed, so restoring it means an empty state from the partition's
   * earliest offset.
   */
  readonly status: 'committed' | 'not-started';
  /** Epoch of the task's checkpoint when the savepoint was taken (0 when not started). */
  readonly epoch: number;
  /** Next offset to read; null when not started. */
  readonly committedOffset: bigint | null;
  /** The savepoint's own copies of the chain (same bytes, keys under the savepoint prefix). */
  readonly chain: readonly SnapshotRef[];
  readonly sourceUpdatedAt: string | null;
  readonly applied: number;
  readonly quarantined: number;
}

export interface Savepoint {
  readonly meta: SavepointMeta;
  /** Ordered by topic, then partition. */
  readonly tasks: readonly SavepointTask[];
}

export interface SavepointStore {
  /**
   * Writes the meta item if no savepoint of that name exists in the pipeline; otherwise throws
   * `OperationError` naming it.
   */
  create(meta: SavepointMeta): Promise<void>;
  putTask(task: SavepointTask): Promise<void>;
  /** Replaces the meta item (used to mark the savepoint complete). */
  updateMeta(meta: SavepointMeta): Promise<void>;
  /** The savepoint (strongly consistent), or undefined. */
  read(pipeline: string, name: string): Promise<Savepoint | undefined>;
  /** Meta items of a pipeline's savepoints, in no particular order. */
  list(pipeline: string): AsyncIterable<SavepointMeta>;
  /** Removes the meta item and every task item (objects are the caller's business). */
  delete(pipeline: string, name: string): Promise<void>;
}

/** Savepoint names end up in S3 keys and DynamoDB keys: the pipeline id's alphabet. */
export const SAVEPOINT_NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

export function compareTasks(
  a: { topic: string; partition: number },
  b: { topic: string; partition: number },
): number {
  return a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition;
}
