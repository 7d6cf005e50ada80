import { randomBytes } from 'node:crypto';
import { loadCheckpoint } from '../checkpoint/restore.ts';
import type {
  CheckpointSummary,
  CommitRecord,
  CommitStore,
  SnapshotStore,
  TaskId,
} from '../checkpoint/stores.ts';
import { CommitConflictError, OperationError } from '../errors.ts';

export interface CheckpointListing {
  epoch: number;
  committedOffset: string;
  updatedAt: string;
  current: boolean;
  chain: Array<{ key: string; kind: 'full' | 'delta'; epoch: number; bytes: number }>;
}

/** A task's retained checkpoints, newest first (the current one first). */
export async function listCheckpoints(commits: CommitStore, task: TaskId): Promise<CheckpointListing[]> {
  const c = await commits.read(task);
  if (!c) return [];
  const show = (s: CheckpointSummary, current: boolean): CheckpointListing => ({
    epoch: s.epoch,
    committedOffset: s.committedOffset.toString(),
    updatedAt: s.updatedAt,
    current,
    chain: s.chain.map((r) => ({ key: r.key, kind: r.kind, epoch: r.epoch, bytes: r.bytes })),
  });
  return [show(c, true), ...c.history.map((h) => show(h, false))];
}

export interface RollbackResult {
  from: { epoch: number; committedOffset: string };
  to: { epoch: number; committedOffset: string; restoredEpoch: number };
}

/**
 * Makes a retained checkpoint the task's current one again, with a new epoch and a fenced commit
 * (it fails if the task commits meanwhile). The current checkpoint stays retained, so a roll
 * forward is possible. The target chain is loaded and verified first: a broken checkpoint is never
 * made current. Records at and after the restored offset are processed again when delivered: the
 * consumer group must be rewound to that offset for the ESM to re-deliver them.
 */
export async function rollbackTask(
  stores: { snapshots: SnapshotStore; commits: CommitStore },
  task: TaskId,
  toEpoch: number,
  now: () => number = Date.now,
): Promise<RollbackResult> {
  const current = await stores.commits.read(task);
  if (!current)
    throw new OperationError(`task ${task.topic}-${task.partition} of ${task.pipeline} has no checkpoint`);
  const target = current.history.find((h) => h.epoch === toEpoch);
  if (!target) {
    const available = current.history.map((h) => h.epoch).join(', ') || 'none';
    throw new OperationError(
      `epoch ${toEpoch} is not a retained checkpoint of ${task.topic}-${task.partition} (current ${current.epoch}; retained: ${available})`,
    );
  }
  await loadCheckpoint(stores.snapshots, task, target, {});
  const next = await installCheckpoint(stores.commits, task, current, target, {
    attempt: 'rollback',
    dropFromHistory: toEpoch,
    now,
  });
  return {
    from: { epoch: current.epoch, committedOffset: current.committedOffset.toString() },
    to: { epoch: next.epoch, committedOffset: next.committedOffset.toString(), restoredEpoch: toEpoch },
  };
}

/** A checkpoint's summary without the extra fields of a commit item. */
export function summaryOf(c: CheckpointSummary): CheckpointSummary {
  return { epoch: c.epoch, committedOffset: c.committedOffset, chain: c.chain, updatedAt: c.updatedAt };
}

/**
 * Makes `target` (a committed offset and a verified chain) the task's current checkpoint with a
 * fenced commit: epoch = current + 1 on condition that the stored epoch is still the current one (or,
 * for a task with no commit item, epoch 1 on condition that none exists). The replaced checkpoint
 * goes first in the history, so it stays retained and can be rolled back to. A commit that loses
 * the race changes nothing and becomes an `OperationError` (run again). Shared by rollback, savepoint
 * restore and bootstrap.
 */
export async function installCheckpoint(
  commits: CommitStore,
  task: TaskId,
  current: CommitRecord | undefined,
  target: Pick<CheckpointSummary, 'committedOffset' | 'chain'>,
  options: {
    /** Attempt id prefix, recorded in the commit item (`rollback`, `restore`, `bootstrap`). */
    attempt: string;
    /** A retained epoch to leave out of the history (the one a rollback makes current again). */
    dropFromHistory?: number;
    /** Counters of a task that has no commit item yet. */
    counters?: { applied: number; quarantined: number };
    now?: () => number;
  },
): Promise<CommitRecord> {
  const now = options.now ?? Date.now;
  const history = current
    ? [summaryOf(current), ...current.history.filter((h) => h.epoch !== options.dropFromHistory)].slice(
        0,
        Math.max(current.history.length, 1),
      )
    : [];
  const next: CommitRecord = {
    ...task,
    epoch: (current?.epoch ?? 0) + 1,
    committedOffset: target.committedOffset,
    chain: target.chain,
    updatedAt: new Date(now()).toISOString(),
    quarantined: current?.quarantined ?? options.counters?.quarantined ?? 0,
    applied: current?.applied ?? options.counters?.applied ?? 0,
    attempt: `${options.attempt}-${randomBytes(4).toString('hex')}`,
    history,
  };
  try {
    await commits.commit(next, current?.epoch ?? 0);
  } catch (err) {
    if (err instanceof CommitConflictError) {
      const stored = err.current as CommitRecord | undefined;
      throw new OperationError(
        current
          ? `task ${task.topic}-${task.partition} committed epoch ${stored?.epoch ?? current.epoch + 1} meanwhile; nothing changed, run again`
          : `task ${task.topic}-${task.partition} committed epoch ${stored?.epoch ?? 1} meanwhile; nothing changed`,
        { cause: err },
      );
    }
    throw err;
  }
  return next;
}
