/**
 * The commit protocol the database stores share, around their own compare-and-set primitive:
 *
 *   attempt ── won ──────────────────────────────────────────────▶ done
 *      │ lost (0 rows, duplicate key, Lua said no)
 *      └──▶ read the winner with a separate statement ───────────▶ CommitConflictError(winner)
 *      │ connection lost (dead socket after a Lambda freeze, server restart, reset):
 *      │ the write may or may not have been applied, so read the item (on a new connection)
 *      ├──▶ the item is this very write ─────────────────────────▶ done (its answer was lost)
 *      ├──▶ the item is what we expected (untouched) ─────────────▶ attempt once more (still fenced)
 *      └──▶ the item moved on (someone else won) ─────────────────▶ CommitConflictError(winner)
 *
 * The winner is read with its own statement, never in the statement (or transaction) that lost: a
 * loser's snapshot may predate the winner's commit (PostgreSQL's `UPDATE … RETURNING` combined with
 * a SELECT returned the stale row under a race; InnoDB's REPEATABLE READ keeps showing the old one).
 */
import { sameCommitRecord } from '../../checkpoint/commitRecordJson.ts';
import type { CommitRecord } from '../../checkpoint/stores.ts';
import { CommitConflictError, type StoreError, TidemarkError } from '../../errors.ts';

/** How a driver error is to be taken. */
export type ErrorKind =
  /** The database, table or user does not exist or is not allowed (not retriable). */
  | 'missing'
  /** The connection is gone or unusable; an in-flight write's outcome is unknown. */
  | 'connection'
  /** The compare-and-set lost (duplicate key on the first commit, a serialization failure). */
  | 'conflict'
  | 'other';

export interface StoreConnection {
  classify(err: unknown): ErrorKind;
  /** The Tidemark error for a failed operation. */
  storeError(operation: string, err: unknown): StoreError;
  /** Drops every pooled connection (some may be dead too); the next call connects again. */
  reset(): void;
}

/** Runs `fn`; after a lost connection, once more on a new one. Errors become `StoreError`s. */
export async function withReconnect<T>(
  conn: StoreConnection,
  operation: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TidemarkError) throw err;
    if (conn.classify(err) !== 'connection') throw conn.storeError(operation, err);
    conn.reset();
  }
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TidemarkError) throw err;
    if (conn.classify(err) === 'connection') conn.reset();
    throw conn.storeError(operation, err);
  }
}

/**
 * One commit through `attempt` (the store's compare-and-set: resolves `won` or `lost`, throws driver
 * errors), with the winner read by `read` on a loss and an unknown outcome resolved as drawn above.
 */
export async function commitResolvingOutcome(
  conn: StoreConnection,
  next: CommitRecord,
  expectedEpoch: number,
  attempt: () => Promise<'won' | 'lost'>,
  read: () => Promise<CommitRecord | undefined>,
): Promise<void> {
  for (let tries = 1; ; tries++) {
    let outcome: 'won' | 'lost';
    try {
      outcome = await attempt();
    } catch (err) {
      if (err instanceof TidemarkError) throw err;
      const kind = conn.classify(err);
      if (kind === 'conflict') outcome = 'lost';
      else if (kind !== 'connection') throw conn.storeError('commit', err);
      else {
        conn.reset();
        const stored = await read();
        if (stored && sameCommitRecord(stored, next)) return;
        const untouched = expectedEpoch === 0 ? stored === undefined : stored?.epoch === expectedEpoch;
        if (!untouched) throw new CommitConflictError(expectedEpoch, stored, { cause: err });
        if (tries >= 2) throw conn.storeError('commit', err);
        continue;
      }
    }
    if (outcome === 'won') return;
    throw new CommitConflictError(expectedEpoch, await read());
  }
}
