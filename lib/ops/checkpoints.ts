import { randomBytes } from 'node:crypto';
import { nextCommit } from '../checkpoint/commitItem.ts';
import { loadCheckpoint } from '../checkpoint/restore.ts';
import type {
  CheckpointSummary,
  CommitRecord,
  CommitStore,
  SnapshotStore,
  TaskId,
} from '../checkpoint/stores.ts';
import { DEFAULTS } from '../config/config.ts';
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
  options: { now?: () => number; retainedCheckpoints?: number } | (() => number) = {},
): Promise<RollbackResult> {
  const { now = Date.now, retainedCheckpoints } = typeof options === 'function' ? { now: options } : options;
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
    retainedCheckpoints,
    now,
  });
  return {
    from: { epoch: current.epoch, committedOffset: current.committedOffset.toString() },
    to: { epoch: next.epoch, committedOffset: next.committedOffset.toString(), restoredEpoch: toEpoch },
  };
}

/**
 * Makes `target` (a committed offset and a verified chain) the task's current checkpoint with a
 * fenced commit: epoch = current + 1 on condition that the stored epoch is still the current one (or,
 * for a task with no commit item, epoch 1 on condition that none exists). The retained history
 * follows the engine's one rule (`historyAfter`): the replaced checkpoint goes first, so it stays
 * retained and can be rolled back to. A commit that loses the race changes nothing and becomes an
 * `OperationError` (run again). Shared by rollback, savepoint restore and bootstrap. The replaced
 * commit's outbox, if any, is not carried over: records from the installed offset are processed
 * again, and emit their outputs again.
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
    /** Checkpoints kept, the current one included (the pipeline's `TIDEMARK_RETAINED_CHECKPOINTS`). */
    retainedCheckpoints?: number;
    now?: () => number;
  },
): Promise<CommitRecord> {
  const now = options.now ?? Date.now;
  const next = nextCommit(
    task,
    current,
    {
      committedOffset: target.committedOffset,
      chain: target.chain,
      updatedAt: new Date(now()).toISOString(),
      attempt: `${options.attempt}-${randomBytes(4).toString('hex')}`,
      applied: current ? 0 : (options.counters?.applied ?? 0),
      quarantined: current ? 0 : (options.counters?.quarantined ?? 0),
    },
    options.retainedCheckpoints ?? DEFAULTS.retainedCheckpoints,
    options.dropFromHistory,
  );
  try {
    await commits.commit(next, current?.epoch ?? 0);
  } catch (err) {
    if (err instanceof CommitConflictError) {
      const stored = err.current;
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
