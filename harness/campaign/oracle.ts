/**
 * The oracle: what the state of each task must be once every record was delivered, computed by a
 * plain fold of the input in offset order, each record applied once — independently of the
 * processors' code. Then the comparison of what the stores hold (read back through the public
 * inspect path) with it, counting lost and double-applied records separately.
 */
import type { CampaignRecord } from './input.ts';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export type Effect =
  | { kind: 'poison' }
  | { kind: 'tombstone'; account: string }
  | { kind: 'deposit'; account: string; amount: number };

function base64(v: string | null | undefined): Buffer | null | 'bad' {
  if (v === null || v === undefined) return null;
  if (v.length % 4 !== 0 || !BASE64.test(v)) return 'bad';
  return Buffer.from(v, 'base64');
}

/** What one delivered record does to the state, judged from its raw ESM form alone. */
export function effectOf(record: CampaignRecord): Effect {
  const key = base64(record.raw.key);
  const value = base64(record.raw.value);
  if (key === 'bad' || value === 'bad' || key === null) return { kind: 'poison' };
  const account = key.toString('utf8');
  if (value === null) return { kind: 'tombstone', account };
  let body: unknown;
  try {
    body = JSON.parse(value.toString('utf8'));
  } catch {
    return { kind: 'poison' };
  }
  const amount =
    typeof body === 'object' && body !== null ? (body as { amount?: unknown }).amount : undefined;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) return { kind: 'poison' };
  return { kind: 'deposit', account, amount };
}

export interface Expectation {
  /** Next offset to read once everything is applied (last offset + 1). */
  committedOffset: bigint;
  poisonOffsets: Set<string>;
  /** Records applied (deposits and tombstones). */
  applied: number;
  /** The balances example: tombstones delete the account. */
  balances: Map<string, { balance: number; count: number }>;
  /** The ledger: tombstones reset the balance; every applied offset is listed once, in order. */
  ledger: Map<string, { balance: number; count: number; offsets: string[] }>;
  /** Records whose generated intent disagrees with the oracle's reading (a harness bug if > 0). */
  disagreements: number;
}

export function expectTask(records: readonly CampaignRecord[]): Expectation {
  const sorted = [...records].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  const e: Expectation = {
    committedOffset: (sorted[sorted.length - 1]?.offset ?? -1n) + 1n,
    poisonOffsets: new Set(),
    applied: 0,
    balances: new Map(),
    ledger: new Map(),
    disagreements: 0,
  };
  for (const r of sorted) {
    const effect = effectOf(r);
    const intended = r.kind.startsWith('poison') ? 'poison' : r.kind;
    if (effect.kind !== intended) e.disagreements++;
    if (effect.kind === 'poison') {
      e.poisonOffsets.add(r.offset.toString());
      continue;
    }
    e.applied++;
    const ledger = e.ledger.get(effect.account) ?? { balance: 0, count: 0, offsets: [] };
    ledger.offsets.push(r.offset.toString());
    if (effect.kind === 'tombstone') {
      e.balances.delete(effect.account);
      ledger.balance = 0;
      ledger.count = 0;
    } else {
      const b = e.balances.get(effect.account) ?? { balance: 0, count: 0 };
      e.balances.set(effect.account, { balance: b.balance + effect.amount, count: b.count + 1 });
      ledger.balance += effect.amount;
      ledger.count += 1;
    }
    e.ledger.set(effect.account, ledger);
  }
  return e;
}

export interface StateComparison {
  /** Records whose effect is missing. */
  lost: number;
  /** Extra applications of records (a record applied n times counts n-1). */
  doubled: number;
  /** Applications of records that should not be there at all (poison, another account's). */
  unexpected: number;
  /** Accounts whose values disagree although the applied records match (or cannot be explained). */
  inconsistentAccounts: string[];
}

/** Ledger state (`state.entry`) against the expectation: exact, record by record. */
export function compareLedger(
  expected: Expectation['ledger'],
  actual: Record<string, unknown> | undefined,
): StateComparison {
  const out: StateComparison = { lost: 0, doubled: 0, unexpected: 0, inconsistentAccounts: [] };
  const accounts = new Set([...expected.keys(), ...Object.keys(actual ?? {})]);
  for (const account of accounts) {
    const exp = expected.get(account);
    const act = (actual?.[account] ?? undefined) as
      | { balance?: unknown; count?: unknown; offsets?: unknown }
      | undefined;
    const actOffsets = Array.isArray(act?.offsets) ? (act.offsets as unknown[]).map(String) : [];
    const seen = new Map<string, number>();
    for (const o of actOffsets) seen.set(o, (seen.get(o) ?? 0) + 1);
    const expSet = new Set(exp?.offsets ?? []);
    for (const o of expSet) {
      const n = seen.get(o) ?? 0;
      if (n === 0) out.lost++;
      else out.doubled += n - 1;
    }
    for (const [o, n] of seen) if (!expSet.has(o)) out.unexpected += n;
    const sameOffsets =
      actOffsets.length === (exp?.offsets.length ?? 0) && actOffsets.every((o, i) => o === exp?.offsets[i]);
    if (
      !sameOffsets ||
      act?.balance !== (exp?.balance ?? act?.balance) ||
      act?.count !== (exp?.count ?? act?.count)
    ) {
      out.inconsistentAccounts.push(account);
    }
  }
  return out;
}

/**
 * Balances state (`state.account`) against the expectation. Per account, a count above the
 * expected one is that many doubled records, below it that many lost ones; equal counts with a
 * different balance mean at least one of each (amounts are drawn from 2^31 values, so a lost and a
 * doubled record cannot leave the balance unchanged in practice).
 */
export function compareBalances(
  expected: Expectation['balances'],
  actual: Record<string, unknown> | undefined,
): StateComparison {
  const out: StateComparison = { lost: 0, doubled: 0, unexpected: 0, inconsistentAccounts: [] };
  const accounts = new Set([...expected.keys(), ...Object.keys(actual ?? {})]);
  for (const account of accounts) {
    const exp = expected.get(account);
    const act = actual?.[account] as { balance?: unknown; count?: unknown } | undefined;
    const expCount = exp?.count ?? 0;
    const actCount = typeof act?.count === 'number' ? act.count : 0;
    if (actCount > expCount) out.doubled += actCount - expCount;
    if (actCount < expCount) out.lost += expCount - actCount;
    if (actCount === expCount && (act?.balance ?? 0) !== (exp?.balance ?? 0)) {
      out.lost++;
      out.doubled++;
    }
    if (actCount !== expCount || (act?.balance ?? 0) !== (exp?.balance ?? 0))
      out.inconsistentAccounts.push(account);
  }
  return out;
}
