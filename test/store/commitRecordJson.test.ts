import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeCommitRecord,
  encodeCommitRecord,
  MalformedRecordError,
  sameCommitRecord,
} from '../../lib/checkpoint/commitRecordJson.ts';
import type { CommitRecord } from '../../lib/checkpoint/stores.ts';
import { CommitConflictError, StoreError } from '../../lib/errors.ts';
import { commitResolvingOutcome, type ErrorKind } from '../../lib/store/database/commitProtocol.ts';
import { record } from './commitStore.contract.ts';

const int64 = fc.bigInt({ min: 0n, max: 2n ** 63n - 1n });
const ref = fc.record({
  key: fc.string(),
  bytes: fc.nat(),
  checksum: fc.stringMatching(/^[0-9a-f]{8}$/),
  kind: fc.constantFrom('full' as const, 'delta' as const),
  epoch: fc.nat(),
  entries: fc.nat(),
});
const summary = fc.record({
  epoch: fc.nat(),
  committedOffset: int64,
  chain: fc.array(ref, { maxLength: 4 }),
  updatedAt: fc.string(),
});
const commitRecord = fc
  .record({
    pipeline: fc.string({ minLength: 1 }),
    topic: fc.string({ minLength: 1 }),
    partition: fc.nat(),
    quarantined: fc.nat(),
    applied: fc.nat(),
    attempt: fc.string(),
    history: fc.array(summary, { maxLength: 3 }),
    // Fields a later version may add: a watermark, an outbox with inline bytes.
    watermark: fc.option(int64, { nil: undefined }),
    outbox: fc.option(
      fc.record({
        epoch: fc.nat(),
        count: fc.nat(),
        inline: fc.uint8Array({ maxLength: 64 }),
        settled: fc.boolean(),
      }),
      { nil: undefined },
    ),
  })
  .chain((r) => summary.map((s) => ({ ...s, ...r })));

function withoutUndefined(o: object): object {
  return JSON.parse(
    JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? [...v] : v)),
  );
}

describe('commit item JSON (lib/checkpoint/commitRecordJson.ts)', () => {
  it('round-trips any commit item, added fields included (property; the seed is printed on failure)', () => {
    fc.assert(
      fc.property(commitRecord, (r) => {
        const back = decodeCommitRecord(encodeCommitRecord(r as unknown as CommitRecord));
        expect(withoutUndefined(back)).toEqual(withoutUndefined(r));
        expect(back.committedOffset).toBe(r.committedOffset);
        if (r.outbox) expect((back as unknown as typeof r).outbox!.inline).toBeInstanceOf(Uint8Array);
        expect(sameCommitRecord(back, r as unknown as CommitRecord)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('writes offsets as decimal strings, never JSON numbers', () => {
    const text = encodeCommitRecord(record('p', 2, 2n ** 63n - 1n));
    expect(text).toContain('"committedOffset":{"$bigint":"9223372036854775807"}');
    expect(text).not.toMatch(/:\s*9223372036854775807/);
  });

  it('tells an in-place rewrite from the item it replaces (same epoch and attempt)', () => {
    const a = record('p', 3, 30n);
    expect(sameCommitRecord(a, { ...a })).toBe(true);
    expect(sameCommitRecord(a, { ...a, applied: a.applied + 1 })).toBe(false);
    const reordered = Object.fromEntries(Object.entries(a).reverse()) as unknown as CommitRecord;
    expect(sameCommitRecord(a, reordered)).toBe(true);
  });

  it('refuses malformed documents', () => {
    const good = JSON.parse(encodeCommitRecord(record('p', 1, 1n)));
    for (const bad of [
      'not json',
      JSON.stringify({ ...good, committedOffset: 5 }),
      JSON.stringify({ ...good, epoch: '1' }),
      JSON.stringify({ ...good, chain: [{ ...good.chain[0], kind: 'half' }] }),
      JSON.stringify({ ...good, extra: { $set: [] } }),
      JSON.stringify({ ...good, committedOffset: { $bigint: '1.5' } }),
    ]) {
      expect(() => decodeCommitRecord(bad), bad).toThrow(MalformedRecordError);
    }
  });
});

describe('commitResolvingOutcome (lib/store/database/commitProtocol.ts)', () => {
  const lost = Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
  function connection() {
    let resets = 0;
    return {
      conn: {
        classify: (err: unknown): ErrorKind => (err === lost ? 'connection' : 'other'),
        storeError: (op: string, err: unknown) => new StoreError('postgres', op, String(err), { cause: err }),
        reset: () => {
          resets++;
        },
      },
      resets: () => resets,
    };
  }
  const mine = record('p', 2, 20n);
  const before = record('p', 1, 10n);

  it('takes a write whose answer was lost, and that the read finds applied, for a success (no second attempt)', async () => {
    const { conn, resets } = connection();
    let attempts = 0;
    await commitResolvingOutcome(
      conn,
      mine,
      1,
      async () => {
        attempts++;
        throw lost;
      },
      async () => mine,
    );
    expect(attempts).toBe(1);
    expect(resets()).toBe(1);
  });

  it('attempts once more when the read finds the item untouched, and gives up after that', async () => {
    const { conn } = connection();
    let attempts = 0;
    await commitResolvingOutcome(
      conn,
      mine,
      1,
      async () => {
        attempts++;
        if (attempts === 1) throw lost;
        return 'won';
      },
      async () => before,
    );
    expect(attempts).toBe(2);
    attempts = 0;
    const err = await commitResolvingOutcome(
      conn,
      mine,
      1,
      async () => {
        attempts++;
        throw lost;
      },
      async () => before,
    ).catch((e: unknown) => e);
    expect(attempts).toBe(2);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).retriable).toBe(true);
  });

  it('reports the winner when the item moved on meanwhile, and when the compare-and-set lost', async () => {
    const { conn } = connection();
    const other = record('p', 2, 21n, { attempt: 'zombie' });
    const a = await commitResolvingOutcome(
      conn,
      mine,
      1,
      async () => Promise.reject(lost),
      async () => other,
    ).catch((e: unknown) => e);
    expect((a as CommitConflictError).current).toEqual(other);
    const b = await commitResolvingOutcome(
      conn,
      mine,
      1,
      async () => 'lost',
      async () => other,
    ).catch((e: unknown) => e);
    expect(b).toBeInstanceOf(CommitConflictError);
    expect((b as CommitConflictError).current).toEqual(other);
    // A first commit whose task appeared meanwhile (created by someone else).
    const c = await commitResolvingOutcome(
      conn,
      record('p', 1, 1n),
      0,
      async () => Promise.reject(lost),
      async () => before,
    ).catch((e: unknown) => e);
    expect(c).toBeInstanceOf(CommitConflictError);
  });
});
