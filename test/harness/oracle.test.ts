import { describe, expect, it } from 'vitest';
import type { CampaignRecord, RecordKind } from '../../../harness/campaign/input.ts';
import { generateTaskRecords } from '../../../harness/campaign/input.ts';
import { compareBalances, compareLedger, effectOf, expectTask } from '../../../harness/campaign/oracle.ts';
import { SeededRandom } from '../../../harness/seededRandom.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function rec(
  offset: number,
  key: string | null,
  value: string | null,
  kind: RecordKind = 'deposit',
): CampaignRecord {
  return {
    offset: BigInt(offset),
    kind,
    raw: {
      topic: 't',
      partition: 0,
      offset,
      timestamp: 0,
      timestampType: 'CREATE_TIME',
      key: key === null ? null : b64(key),
      value,
      headers: [],
    },
  };
}

describe('campaign oracle', () => {
  it('judges each record from its raw form', () => {
    expect(effectOf(rec(0, 'a', b64('{"amount":5}')))).toEqual({ kind: 'deposit', account: 'a', amount: 5 });
    expect(effectOf(rec(0, 'a', null))).toEqual({ kind: 'tombstone', account: 'a' });
    for (const value of [
      b64('{"amount":1.5}'),
      b64('{"amount":"1"}'),
      b64('nope'),
      b64('null'),
      'abc',
      '%%%=',
    ]) {
      expect(effectOf(rec(0, 'a', value)).kind).toBe('poison');
    }
    expect(effectOf(rec(0, null, b64('{"amount":5}'))).kind).toBe('poison');
  });

  it('agrees with the generator on every generated record', () => {
    const records = generateTaskRecords(new SeededRandom(7), 'orders', 1, 3_000, 8);
    expect(expectTask(records).disagreements).toBe(0);
    expect(new Set(records.map((r) => r.kind)).size).toBe(6);
  });

  it('folds in offset order: tombstones delete balances and reset the ledger, poison is counted', () => {
    const e = expectTask([
      rec(3, 'a', b64('{"amount":4}')),
      rec(1, 'a', b64('{"amount":2}')),
      rec(2, 'a', null, 'tombstone'),
      rec(5, null, b64('{"amount":9}'), 'poison-null-key'),
    ]);
    expect(e.committedOffset).toBe(6n);
    expect([...e.poisonOffsets]).toEqual(['5']);
    expect(e.applied).toBe(3);
    expect(Object.fromEntries(e.balances)).toEqual({ a: { balance: 4, count: 1 } });
    expect(Object.fromEntries(e.ledger)).toEqual({ a: { balance: 4, count: 1, offsets: ['1', '2', '3'] } });
  });

  it('counts lost, doubled and unexpected records separately in a ledger', () => {
    const expected = new Map([
      ['a', { balance: 3, count: 2, offsets: ['1', '2'] }],
      ['b', { balance: 1, count: 1, offsets: ['3'] }],
    ]);
    const exact = compareLedger(expected, {
      a: { balance: 3, count: 2, offsets: ['1', '2'] },
      b: { balance: 1, count: 1, offsets: ['3'] },
    });
    expect(exact).toEqual({ lost: 0, doubled: 0, unexpected: 0, inconsistentAccounts: [] });
    // One record lost and another doubled in the same account: both reported, nothing cancels out.
    const broken = compareLedger(expected, {
      a: { balance: 3, count: 2, offsets: ['1', '1'] },
      b: { balance: 1, count: 1, offsets: ['3', '9'] },
    });
    expect(broken).toMatchObject({ lost: 1, doubled: 1, unexpected: 1 });
    expect(broken.inconsistentAccounts.sort()).toEqual(['a', 'b']);
  });

  it('derives lost and doubled records from balances, and sees a swap that leaves the count unchanged', () => {
    const expected = new Map([['a', { balance: 10, count: 2 }]]);
    expect(compareBalances(expected, { a: { balance: 10, count: 2 } })).toMatchObject({
      lost: 0,
      doubled: 0,
    });
    expect(compareBalances(expected, { a: { balance: 3, count: 1 } })).toMatchObject({ lost: 1, doubled: 0 });
    expect(compareBalances(expected, { a: { balance: 17, count: 3 } })).toMatchObject({
      lost: 0,
      doubled: 1,
    });
    expect(compareBalances(expected, { a: { balance: 11, count: 2 } })).toMatchObject({
      lost: 1,
      doubled: 1,
    });
    expect(compareBalances(expected, {})).toMatchObject({ lost: 2 });
  });
});
