/**
 * Building a commit item, and the one rule for the retained history every writer of commit items
 * shares (the engine's epoch commits, and rollback, savepoint restore and bootstrap in `lib/ops`):
 * the replaced checkpoint goes first, then its own history, at most `retainedCheckpoints - 1` entries
 * in all (so `retainedCheckpoints` checkpoints are restorable, the current one included). Inline
 * links (snapshots inside the item) stay in it as long as a retained checkpoint references them.
 */
import type { CheckpointSummary, CommitRecord } from './stores.ts';

/** A checkpoint's summary without the extra fields of a commit item. */
export function summaryOf(c: CheckpointSummary): CheckpointSummary {
  return { epoch: c.epoch, committedOffset: c.committedOffset, chain: c.chain, updatedAt: c.updatedAt };
}

/**
 * The history of the commit item that replaces `current`. `drop` leaves one retained epoch out (the
 * one a rollback makes current again, which would otherwise be listed twice).
 */
export function historyAfter(
  current: CommitRecord | undefined,
  retainedCheckpoints: number,
  drop?: number,
): CheckpointSummary[] {
  if (!current) return [];
  const older = drop === undefined ? current.history : current.history.filter((h) => h.epoch !== drop);
  return [summaryOf(current), ...older].slice(0, Math.max(0, retainedCheckpoints - 1));
}

/**
 * Bytes of the inline links (snapshots carried inside the commit item) of these chains, each link
 * counted once: chains of retained checkpoints share their older links with the current one.
 */
export function inlineBytes(checkpoints: Iterable<Pick<CheckpointSummary, 'chain'>>): number {
  const seen = new Set<string>();
  let n = 0;
  for (const c of checkpoints) {
    for (const r of c.chain) {
      if (r.inline === undefined || seen.has(r.key)) continue;
      seen.add(r.key);
      n += r.inline.length;
    }
  }
  return n;
}

/** The fields that change from one commit item to the next; the rest follows from `prev`. */
export type CommitChange = Pick<CommitRecord, 'committedOffset' | 'chain' | 'updatedAt' | 'attempt'> &
  Partial<Pick<CommitRecord, 'outbox'>> & {
    /** Records applied / quarantined by this commit (added to the task's totals). */
    applied: number;
    quarantined: number;
  };

/** The commit item for epoch `prev.epoch + 1` (or 1). */
export function nextCommit(
  task: Pick<CommitRecord, 'pipeline' | 'topic' | 'partition'>,
  prev: CommitRecord | undefined,
  change: CommitChange,
  retainedCheckpoints: number,
  drop?: number,
): CommitRecord {
  const next: CommitRecord = {
    pipeline: task.pipeline,
    topic: task.topic,
    partition: task.partition,
    epoch: (prev?.epoch ?? 0) + 1,
    committedOffset: change.committedOffset,
    chain: change.chain,
    updatedAt: change.updatedAt,
    quarantined: (prev?.quarantined ?? 0) + change.quarantined,
    applied: (prev?.applied ?? 0) + change.applied,
    attempt: change.attempt,
    history: historyAfter(prev, retainedCheckpoints, drop),
  };
  return change.outbox ? { ...next, outbox: change.outbox } : next;
}
