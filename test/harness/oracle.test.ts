import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import type { CampaignRecord, RecordKind } from '../../harness/campaign/input.ts';
import { generateTaskRecords } from '../../harness/campaign/input.ts';
import { mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import {
  compareBalances,
  compareLedger,
  effectOf,
  effectOfRaw,
  expectTask,
  foldBalances,
} from '../../harness/oracle.ts';
import { SeededRandom } from '../../harness/seededRandom.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

const b64 = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s) : s).toString('base64');

function rec(
  offset: number,
  key: string | Buffer | null,
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

const NOT_UTF8 = Buffer.from([0x61, 0xff, 0x62]);
const BOM_KEY = Buffer.from([0xef, 0xbb, 0xbf, 0x61]);

describe('the oracle', () => {
  it('judges each record from its raw form', () => {
    expect(effectOfRaw(rec(0, 'a', b64('{"amount":5}')).raw)).toEqual({
      kind: 'deposit',
      account: 'a',
      amount: 5,
    });
    expect(effectOfRaw(rec(0, 'a', null).raw)).toEqual({ kind: 'tombstone', account: 'a' });
    for (const value of [
      b64('{"amount":1.5}'),
      b64('{"amount":"1"}'),
      b64('nope'),
      b64('null'),
      'abc',
      '%%%=',
    ]) {
      expect(effectOfRaw(rec(0, 'a', value).raw).kind).toBe('poison');
    }
    expect(effectOfRaw(rec(0, null, b64('{"amount":5}')).raw).kind).toBe('poison');
  });

  it("reads keys as the engine's default key function does: not UTF-8 is poison, a BOM is kept", () => {
    const amount = Buffer.from('{"amount":1}');
    expect(effectOf(NOT_UTF8, amount)).toEqual({ kind: 'poison' });
    expect(effectOf(NOT_UTF8, null)).toEqual({ kind: 'poison' });
    expect(effectOf(BOM_KEY, amount)).toEqual({ kind: 'deposit', account: '\uFEFFa', amount: 1 });
    // An encoded U+FFFD is valid UTF-8: an ordinary account id.
    expect(effectOf(Buffer.from('a\uFFFD', 'utf8'), amount)).toMatchObject({ account: 'a\uFFFD' });
  });

  it('agrees with the balances example run by the engine, whatever the keys and values (property)', async () => {
    const key = fc.constantFrom<TestRecord['key']>(
      'a',
      'b',
      '',
      null,
      NOT_UTF8,
      BOM_KEY,
      Buffer.from([0xc3]),
    );
    const value = fc.oneof(
      fc.integer({ min: -1000, max: 1000 }).map((amount) => ({ amount })),
      fc.constantFrom<TestRecord['value']>(null, 'not json', { amount: 1.5 }, { amount: '1' }, [1], {
        amount: Number.MAX_SAFE_INTEGER,
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 30 }), async (pairs) => {
        const records: TestRecord[] = pairs.map(([k, v], offset) => ({ offset, key: k, value: v }));
        const stores = { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() };
        const config = loadConfig(
          {},
          { bucket: 'b', table: 't', pipeline: 'balances', poisonPolicy: 'quarantine' },
        );
        await new EpochEngine({ processor: balances, config, ...stores }).processEvent(mskEvent(records));
        const task = await inspectTask(stores, { pipeline: 'balances', topic: 'orders', partition: 0 });
        expect(task.state.account ?? {}).toEqual(Object.fromEntries(foldBalances(records)));
      }),
      { numRuns: 60 },
    );
  });

  it('agrees with the generator on every generated record', () => {
    const records = generateTaskRecords(new SeededRandom(7), 'orders', 1, 3_000, 8);
    expect(expectTask(records).disagreements).toBe(0);
    expect(new Set(records.map((r) => r.kind)).size).toBe(7);
  });

  it('folds in offset order: tombstones delete balances and reset the ledger, poison is counted', () => {
    const e = expectTask([
      rec(3, 'a', b64('{"amount":4}')),
      rec(1, 'a', b64('{"amount":2}')),
      rec(2, 'a', null, 'tombstone'),
      rec(5, null, b64('{"amount":9}'), 'poison-null-key'),
      rec(6, NOT_UTF8, b64('{"amount":9}'), 'poison-key-not-utf8'),
    ]);
    expect(e.committedOffset).toBe(7n);
    expect([...e.poisonOffsets]).toEqual(['5', '6']);
    expect(e.applied).toBe(3);
    expect(e.disagreements).toBe(0);
    expect(Object.fromEntries(e.balances)).toEqual({ a: { balance: 4, count: 1 } });
    expect(Object.fromEntries(e.ledger)).toEqual({ a: { balance: 4, count: 1, offsets: ['1', '2', '3'] } });
  });

  it('makes a deposit that would leave the safe integer range poison, in both folds', () => {
    const big = String(Number.MAX_SAFE_INTEGER);
    const e = expectTask([
      rec(0, 'a', b64(`{"amount":${big}}`)),
      rec(1, 'a', b64('{"amount":1}'), 'poison-bad-amount'),
    ]);
    expect([...e.poisonOffsets]).toEqual(['1']);
    expect(e.ledger.get('a')).toEqual({ balance: Number.MAX_SAFE_INTEGER, count: 1, offsets: ['0'] });
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
