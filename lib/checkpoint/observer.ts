/**
 * What the engine reports while it works. Every hook is optional; the Powertools adapter in
 * `lib/observability` turns them into structured logs and CloudWatch metrics, tests count them.
 */
import type { RecordRef } from '../errors.ts';
import type { Timer } from '../state/timers.ts';
import type { TaskId } from './stores.ts';

export interface EpochCommittedInfo {
  task: TaskId;
  epoch: number;
  committedOffset: bigint;
  /** Records applied in this epoch (quarantined ones excluded). */
  applied: number;
  quarantined: number;
  /** Snapshot PUT + commit write, in ms. */
  checkpointMs: number;
  /** Whole epoch (apply + checkpoint), in ms. */
  epochMs: number;
  snapshotBytes: number;
  snapshotKind: 'full' | 'delta';
  /** True when the snapshot travelled inside the commit item (no S3 PUT). */
  snapshotInline?: boolean;
  stateKeys: number;
  changedKeys: number;
  /** Timestamp (ms since epoch) of the newest record applied in this epoch, if any. */
  newestRecordTimestamp: number | undefined;
  /** Outputs the epoch committed (attached to the commit or in its outbox). */
  outputs: number;
  /** Encoded size of the epoch's outbox (0 when none). */
  outboxBytes: number;
}

export interface OutputsDeliveredInfo {
  task: TaskId;
  epoch: number;
  /** Outputs in the delivered outbox (some may have been delivered before, by an earlier attempt). */
  outputs: number;
  durationMs: number;
}

export interface TaskRestoredInfo {
  task: TaskId;
  epoch: number;
  /** Why state was loaded: a cold container, or a lost commit race. */
  reason: 'cold' | 'conflict';
  durationMs: number;
  bytes: number;
  stateKeys: number;
}

export interface EngineObserver {
  batchStarted?(info: { records: number; tasks: number; requestId: string | undefined }): void;
  warmHit?(task: TaskId): void;
  taskRestored?(info: TaskRestoredInfo): void;
  duplicatesSkipped?(task: TaskId, count: number): void;
  recordQuarantined?(task: TaskId, record: RecordRef, error: unknown): void;
  /** A timer's callback failed for good under the quarantine policy: the timer was dropped and set aside. */
  timerQuarantined?(task: TaskId, timer: Timer, error: unknown): void;
  epochCommitted?(info: EpochCommittedInfo): void;
  outputsDelivered?(info: OutputsDeliveredInfo): void;
  commitConflict?(task: TaskId, expectedEpoch: number, winnerEpoch: number | undefined): void;
  taskFailed?(task: TaskId, error: unknown): void;
  cleanupFailed?(task: TaskId, keys: readonly string[], error: unknown): void;
}

/** One observer that forwards every event to each of `observers`, in order. */
export function combineObservers(...observers: Array<EngineObserver | undefined>): EngineObserver {
  const list = observers.filter((o): o is EngineObserver => o !== undefined);
  const hooks = new Set(list.flatMap((o) => Object.keys(o))) as Set<keyof EngineObserver>;
  const out: Record<string, (...args: unknown[]) => void> = {};
  for (const hook of hooks) {
    out[hook] = (...args: unknown[]) => {
      for (const o of list) (o[hook] as ((...a: unknown[]) => void) | undefined)?.(...args);
    };
  }
  return out as EngineObserver;
}
