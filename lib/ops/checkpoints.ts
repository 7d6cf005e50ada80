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
  const summary = (c: CheckpointSummary): CheckpointSummary => ({
    epoch: c.epoch,
    committedOffset: c.committedOffset,
    chain: c.chain,
    updatedAt: c.updatedAt,
  });
  const next: CommitRecord = {
    ...task,
    epoch: current.epoch + 1,
    committedOffset: target.committedOffset,
    chain: target.chain,
    updatedAt: new Date(now()).toISOString(),
    quarantined: current.quarantined,
    applied: current.applied,
    attempt: `rollback-${randomBytes(4).toString('hex')}`,
    history: [summary(current), ...current.history.filter((h) => h.epoch !== toEpoch)].slice(
      0,
      Math.max(current.history.length, 1),
    ),
  };
  try {
    await stores.commits.commit(next, current.epoch);
  } catch (err) {
    if (err instanceof CommitConflictError) {
      throw new OperationError(
        `task committed epoch ${current.epoch + 1} meanwhile; nothing changed, run again`,
        { cause: err },
      );
    }
    throw err;
  }
  return {
    from: { epoch: current.epoch, committedOffset: current.committedOffset.toString() },
    to: { epoch: next.epoch, committedOffset: next.committedOffset.toString(), restoredEpoch: toEpoch },
  };
}
