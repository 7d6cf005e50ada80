/**
 * The SQL sink's table of totals judged against the fold (harness/campaign/outputCheck.ts): a table
 * equal to the fold passes, and each way a write can go wrong is named, the events table telling a
 * write that never landed from one that landed twice.
 */
import { describe, expect, it } from 'vitest';
import { CommitLedger } from '../../../harness/campaign/commits.ts';
import {
  accountItemKey,
  type ExpectedOutput,
  type ExpectedTask,
  groupKey,
  judgeSqlTotals,
  type SeenOutput,
  type SqlTotalsRow,
} from '../../../harness/campaign/outputCheck.ts';
import type { CommitRecord } from '../../../lib/checkpoint/stores.ts';

const task = { pipeline: 'p', topic: 'orders', partition: 0 };
const label = 'orders-0';
const key = groupKey('p', label);

// Account a: deposits at 1 and 2 (epoch 1), closed at 3, a deposit at 4 (epoch 2).
const outputs: ExpectedOutput[] = [
  { offset: '1', account: 'a', balance: 10, count: 1 },
  { offset: '2', account: 'a', balance: 15, count: 2 },
  { offset: '3', account: 'a', balance: null, count: 0 },
  { offset: '4', account: 'a', balance: 7, count: 1 },
];
const expected = new Map<string, ExpectedTask>([[key, { id: task, outputs }]]);
const epochOf = (offset: string) => (Number(offset) <= 2 ? 1 : 2);

function ledger(): CommitLedger {
  const l = new CommitLedger();
  for (const [epoch, committedOffset, inv] of [
    [1, 3n, 'inv-1'],
    [2, 5n, 'inv-2'],
  ] as const) {
    l.noteAttempt(`attempt-${epoch}`, inv);
    l.noteRecord({
      ...task,
      epoch,
      committedOffset,
      attempt: `attempt-${epoch}`,
      history: [],
      chain: [],
    } as unknown as CommitRecord);
  }
  return l;
}

/** The events table as the committed attempts wrote it: every output once. */
const events = (offsets = ['1', '2', '3', '4']): SeenOutput[] =>
  offsets.map((offset) => {
    const o = outputs.find((x) => x.offset === offset)!;
    const epoch = epochOf(offset);
    return { pipeline: 'p', epoch, value: { ...o, task: label, inv: `inv-${epoch}` } };
  });

const row = (o: ExpectedOutput, inv = `inv-${epochOf(o.offset)}`): SqlTotalsRow => ({
  pk: accountItemKey('p', label, 'a'),
  account: 'a',
  balance: String(o.balance),
  count: o.count,
  lastOffset: o.offset,
  inv,
  epoch: epochOf(o.offset),
});

const counts = (rows: SqlTotalsRow[], seen = events()) => {
  const v = judgeSqlTotals(rows, seen, expected, ledger());
  return { lost: v.lost, duplicated: v.duplicated, uncommitted: v.uncommitted, unexpected: v.unexpected };
};
const none = { lost: 0, duplicated: 0, uncommitted: 0, unexpected: 0 };

describe('judgeSqlTotals', () => {
  it('passes a table equal to the fold', () => {
    const v = judgeSqlTotals([row(outputs[3]!)], events(), expected, ledger());
    expect({ ...counts([row(outputs[3]!)]), expected: v.expected, seen: v.seen }).toEqual({
      ...none,
      expected: 1,
      seen: 1,
    });
  });

  it('counts a missing row, and an older state whose later write the events table lacks, as lost', () => {
    expect(counts([], events(['1', '2', '3']))).toEqual({ ...none, lost: 1 });
    expect(counts([row(outputs[1]!)], events(['1', '2']))).toEqual({ ...none, lost: 1 });
  });

  it('counts an older state, every write there once or one twice, as duplicated', () => {
    // An epoch's upsert applied again after the account was closed and opened again.
    expect(counts([row(outputs[1]!)])).toEqual({ ...none, duplicated: 1 });
    expect(counts([row(outputs[1]!)], [...events(), ...events(['2'])])).toEqual({ ...none, duplicated: 1 });
  });

  it('counts the last write of an attempt that did not commit, and rows nothing explains', () => {
    expect(counts([row(outputs[3]!, 'zombie')])).toEqual({ ...none, uncommitted: 1 });
    expect(counts([row(outputs[3]!), { ...row(outputs[3]!), pk: 'p/orders-0/b' }])).toEqual({
      ...none,
      unexpected: 1,
    });
    expect(counts([{ ...row(outputs[3]!), balance: '8' }])).toEqual({ ...none, unexpected: 1 });
  });
});
