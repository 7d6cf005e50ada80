/**
 * Verification of the main job: every task's committed checkpoint, read through the public
 * inspect path (`inspectTask`, what `npx tidemark inspect` prints), against the oracle.
 */
import { quarantinePrefix } from '../lib/checkpoint/layout.ts';
import type { CommitStore, SnapshotStore } from '../lib/checkpoint/stores.ts';
import { inspectTask } from '../lib/ops/inspect.ts';
import type { AccountBalance, ExpectedTask } from './oracle.ts';

export interface TaskVerdict {
  partition: number;
  ok: boolean;
  problems: string[];
  epoch: number;
  committedOffset: string | null;
  accounts: number;
  applied: number;
  quarantined: number;
}

function sameBalance(a: unknown, b: AccountBalance): boolean {
  if (typeof a !== 'object' || a === null) return false;
  const x = a as Record<string, unknown>;
  return Object.keys(x).length === 2 && x.balance === b.balance && x.count === b.count;
}

const show = (v: unknown) => JSON.stringify(v) ?? 'undefined';

export async function verifyTask(
  stores: { snapshots: SnapshotStore; commits: CommitStore },
  where: { pipeline: string; topic: string; prefix: string },
  expected: ExpectedTask,
): Promise<TaskVerdict> {
  const task = { pipeline: where.pipeline, topic: where.topic, partition: expected.partition };
  const r = await inspectTask(stores, task);
  const problems: string[] = [];
  if (r.committedOffset !== expected.endOffset) {
    problems.push(
      `committed offset ${r.committedOffset ?? 'none'}, expected ${expected.endOffset ?? 'none'}`,
    );
  }
  if (r.applied !== expected.applied)
    problems.push(`applied ${r.applied} records, expected ${expected.applied}`);
  if (r.quarantined !== expected.poisonOffsets.length) {
    problems.push(`quarantined ${r.quarantined} records, expected ${expected.poisonOffsets.length}`);
  }
  const actual = r.state.account ?? {};
  const names = Object.keys(r.state).filter((n) => n !== 'account');
  if (names.length > 0) problems.push(`unexpected state ${names.join(', ')}`);
  let mismatched = 0;
  for (const [account, want] of expected.balances) {
    if (!sameBalance(actual[account], want)) {
      if (++mismatched <= 3)
        problems.push(`account ${account}: ${show(actual[account])}, expected ${show(want)}`);
    }
  }
  for (const account of Object.keys(actual)) {
    if (!expected.balances.has(account)) {
      if (++mismatched <= 3) problems.push(`account ${account}: ${show(actual[account])}, expected none`);
    }
  }
  if (mismatched > 3) problems.push(`… ${mismatched} accounts differ in all`);
  const found: string[] = [];
  for await (const o of stores.snapshots.list(quarantinePrefix(where.prefix, task))) {
    const m = /\/(\d{20})\.json$/.exec(o.key);
    if (m) found.push(BigInt(m[1]!).toString());
  }
  const want = new Set(expected.poisonOffsets);
  const missing = expected.poisonOffsets.filter((o) => !found.includes(o));
  const extra = found.filter((o) => !want.has(o));
  if (missing.length > 0)
    problems.push(`no quarantine object for offset(s) ${missing.slice(0, 5).join(', ')}`);
  if (extra.length > 0)
    problems.push(`quarantine objects for unexpected offset(s) ${extra.slice(0, 5).join(', ')}`);
  return {
    partition: expected.partition,
    ok: problems.length === 0,
    problems,
    epoch: r.epoch,
    committedOffset: r.committedOffset,
    accounts: Object.keys(actual).length,
    applied: r.applied,
    quarantined: r.quarantined,
  };
}
