/**
 * Which snapshot objects may be deleted, and when.
 *
 * Rules (see docs/checkpoints.md):
 * 1. An object referenced by a retained checkpoint of a task (the commit item's chain, or the chain
 *    of a checkpoint in its history) is never deleted. Savepoints hold their own copies, under their
 *    own prefix, which task GC never touches.
 * 2. Objects of checkpoints that left the retention window are deleted by the engine right after
 *    the commit that subsumed them (the keys are known: no listing).
 * 3. Any other object under a task's snapshot prefix is an orphan of an attempt that never committed
 *    (a crash, a zombie). It is deleted only once older than a safety age, because an attempt may be
 *    between its snapshot PUT and its commit: only then can nothing reference it any more.
 *
 * Why this is safe under concurrent commits: a commit references only objects that the commit it
 * replaces already referenced, or objects written by its own attempt (new, so younger than the
 * safety age). A rollback may only target a retained checkpoint, and is fenced like any commit.
 * So a GC that reads the commit items first and lists objects afterwards never deletes an object a
 * concurrent commit can still come to reference.
 */
import type { CheckpointSummary, CommitRecord, SnapshotStore } from './stores.ts';

/**
 * Object keys referenced by a commit item: its chain, the chains of its retained history, its outbox.
 * Inline links are not objects (their bytes are in the item): they are left out.
 */
export function retainedKeys(
  commit: Pick<CommitRecord, 'chain' | 'history' | 'outbox'> | undefined,
): Set<string> {
  const keys = new Set<string>();
  if (!commit) return keys;
  const chains: ReadonlyArray<Pick<CheckpointSummary, 'chain'>> = [commit, ...commit.history];
  for (const c of chains) for (const r of c.chain) if (!r.inline) keys.add(r.key);
  if (commit.outbox?.key) keys.add(commit.outbox.key);
  return keys;
}

/** Keys `prev` retained that `next` no longer does, restricted to the task's own prefix. */
export function subsumedKeys(prev: CommitRecord, next: CommitRecord, taskPrefix: string): string[] {
  const keep = retainedKeys(next);
  return [...retainedKeys(prev)].filter((k) => !keep.has(k) && k.startsWith(taskPrefix));
}

export interface SweepResult {
  listed: number;
  deleted: string[];
}

/**
 * Deletes the orphans under one task's snapshot prefix: objects not retained by `commit` and older
 * than `minAgeMs` (by the store's last-modified time).
 */
export async function sweepTaskOrphans(
  snapshots: SnapshotStore,
  taskPrefix: string,
  commit: Pick<CommitRecord, 'chain' | 'history' | 'outbox'> | undefined,
  minAgeMs: number,
  now: number = Date.now(),
): Promise<SweepResult> {
  const keep = retainedKeys(commit);
  const orphans: string[] = [];
  let listed = 0;
  for await (const o of snapshots.list(taskPrefix)) {
    listed++;
    if (!keep.has(o.key) && now - o.lastModified.getTime() >= minAgeMs) orphans.push(o.key);
  }
  if (orphans.length > 0) await snapshots.delete(orphans);
  return { listed, deleted: orphans };
}
