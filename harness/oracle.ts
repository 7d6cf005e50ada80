/**
 * The oracle of the harness: what the balances example (and the campaign's ledger) must hold once
 * every record was delivered, computed by a plain fold of the produced records in offset order, each
 * applied once, from the records alone: none of Tidemark's code, none of the processors'. The main
 * job, the fault campaign and the tests compare what the stores hold with it.
 *
 * Contract (examples/balances.ts, with the engine's default state key, `utf8Key`): the key is an
 * account id in UTF-8. No key, or bytes that are not UTF-8 (the engine cannot compute the state
 * key: a poison record), and the record changes nothing; a byte order mark is part of the id, as
 * the engine keeps it. A null value closes the account (balances: deleted; ledger: balance and
 * count reset, history kept). Otherwise the value must be JSON whose `amount` is a safe integer,
 * added to the balance (a balance leaving the safe integer range is poison too), and the account's
 * count goes up by one. In the ESM's raw form, a key or value that is not valid base64 makes the
 * record poison as well. Poison records are quarantined.
 */
import type { RawKafkaRecord } from '../lib/event/types.ts';
import { rawRecord, type TestRecord } from './esm/mskEvent.ts';

export interface AccountBalance {
  balance: number;
  count: number;
}

export interface LedgerEntry extends AccountBalance {
  /** Offsets (decimal strings) of every record applied to the account, in order. */
  offsets: string[];
}

export type Effect =
  | { kind: 'poison' }
  | { kind: 'tombstone'; account: string }
  | { kind: 'deposit'; account: string; amount: number };

// Strict, and keeping a byte order mark, as the engine's `utf8Key` does.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** What one record does, judged from its key and value bytes. */
export function effectOf(key: Uint8Array | null, value: Uint8Array | null): Effect {
  if (key === null) return { kind: 'poison' };
  let account: string;
  try {
    account = UTF8.decode(key);
  } catch {
    return { kind: 'poison' };
  }
  if (value === null) return { kind: 'tombstone', account };
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8'));
  } catch {
    return { kind: 'poison' };
  }
  const amount =
    typeof body === 'object' && body !== null ? (body as { amount?: unknown }).amount : undefined;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) return { kind: 'poison' };
  return { kind: 'deposit', account, amount };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function base64(v: string | null | undefined): Buffer | null | 'bad' {
  if (v === null || v === undefined) return null;
  if (v.length % 4 !== 0 || !BASE64.test(v)) return 'bad';
  return Buffer.from(v, 'base64');
}

/** What one record does, judged from its raw ESM form. */
export function effectOfRaw(raw: Pick<RawKafkaRecord, 'key' | 'value'>): Effect {
  const key = base64(raw.key);
  const value = base64(raw.value);
  if (key === 'bad' || value === 'bad') return { kind: 'poison' };
  return effectOf(key, value);
}

/**
 * One applied record as the fold saw it: the account's balance and count right after it (a
 * tombstone: 0 and 0). What a processor that emits per record must emit (harness/campaign/outputs.ts,
 * the main job's outputs).
 */
export interface AppliedRecord {
  readonly offset: bigint;
  readonly account: string;
  readonly kind: 'deposit' | 'tombstone';
  /** The deposit's amount (0 for a tombstone). */
  readonly amount: number;
  readonly balance: number;
  readonly count: number;
}

/** The fold of one task's records, fed in offset order. */
export class TaskFold {
  records = 0;
  /** Records applied (deposits and tombstones; poison excluded). */
  applied = 0;
  /** Offsets of poison records (decimal strings), in order. */
  readonly poisonOffsets: string[] = [];
  /** Next offset to read after the last record (last offset + 1), or null before any. */
  endOffset: bigint | null = null;
  /** The balances example: tombstones delete the account. */
  readonly balances = new Map<string, AccountBalance>();
  /** The ledger: tombstones reset the balance; every applied offset listed once, in order. */
  readonly ledger = new Map<string, LedgerEntry>();
  /** Every applied record, in offset order. */
  readonly applications: AppliedRecord[] = [];
  private readonly ordered: boolean;

  /** `ordered`: refuse an offset below one already observed (a task's records come in order). */
  constructor(options: { ordered?: boolean } = {}) {
    this.ordered = options.ordered ?? true;
  }

  /** Applies one record's effect; returns what it finally was (a sum out of range makes it poison). */
  observe(offset: bigint, effect: Effect): Effect['kind'] {
    if (this.ordered && this.endOffset !== null && offset < this.endOffset) {
      throw new RangeError(`offset ${offset} observed after ${this.endOffset - 1n}`);
    }
    this.records++;
    this.endOffset = offset + 1n;
    if (effect.kind === 'poison') return this.poison(offset);
    const current = this.balances.get(effect.account);
    const entry = this.ledger.get(effect.account) ?? { balance: 0, count: 0, offsets: [] };
    if (effect.kind === 'tombstone') {
      this.balances.delete(effect.account);
      entry.balance = 0;
      entry.count = 0;
    } else {
      const balance = (current?.balance ?? 0) + effect.amount;
      if (!Number.isSafeInteger(balance)) return this.poison(offset);
      this.balances.set(effect.account, { balance, count: (current?.count ?? 0) + 1 });
      entry.balance = balance;
      entry.count += 1;
    }
    entry.offsets.push(offset.toString());
    this.ledger.set(effect.account, entry);
    this.applications.push({
      offset,
      account: effect.account,
      kind: effect.kind,
      amount: effect.kind === 'deposit' ? effect.amount : 0,
      balance: entry.balance,
      count: entry.count,
    });
    this.applied++;
    return effect.kind;
  }

  private poison(offset: bigint): 'poison' {
    this.poisonOffsets.push(offset.toString());
    return 'poison';
  }
}

// ---------------------------------------------------------------------------------------------
// The main job: records observed as they are produced, per partition.

export interface ExpectedTask {
  partition: number;
  /** Records produced to the partition. */
  records: number;
  /** Records applied (poison excluded; tombstones included). */
  applied: number;
  /** Offsets of poison records (decimal strings), in order. */
  poisonOffsets: string[];
  /** Next offset to read after the last produced record (decimal string), or null if none. */
  endOffset: string | null;
  balances: Map<string, AccountBalance>;
}

export class BalancesOracle {
  private readonly tasks = new Map<number, TaskFold>();

  /** Feeds one produced record (records of a partition must come in offset order). */
  observe(partition: number, offset: bigint, key: Buffer | null, value: Buffer | null): void {
    let t = this.tasks.get(partition);
    if (!t) {
      t = new TaskFold();
      this.tasks.set(partition, t);
    }
    try {
      t.observe(offset, effectOf(key, value));
    } catch (e) {
      throw new RangeError(`partition ${partition}: ${(e as Error).message}`);
    }
  }

  expected(partition: number): ExpectedTask {
    const t = this.tasks.get(partition) ?? new TaskFold();
    return {
      partition,
      records: t.records,
      applied: t.applied,
      poisonOffsets: t.poisonOffsets,
      endOffset: t.endOffset === null ? null : t.endOffset.toString(),
      balances: t.balances,
    };
  }

  get totals(): { records: number; applied: number; poison: number } {
    let records = 0;
    let applied = 0;
    let poison = 0;
    for (const t of this.tasks.values()) {
      records += t.records;
      applied += t.applied;
      poison += t.poisonOffsets.length;
    }
    return { records, applied, poison };
  }
}

// ---------------------------------------------------------------------------------------------
// The fault campaign: a task's whole input at once, and the comparison with what the stores hold.

export interface Expectation {
  /** Next offset to read once everything is applied (last offset + 1). */
  committedOffset: bigint;
  poisonOffsets: Set<string>;
  /** Records applied (deposits and tombstones). */
  applied: number;
  balances: Map<string, AccountBalance>;
  ledger: Map<string, LedgerEntry>;
  /** Records whose generated intent disagrees with the oracle's reading (a harness bug if > 0). */
  disagreements: number;
  /** Every applied record, in offset order (what an emitting processor emits for). */
  applications: readonly AppliedRecord[];
}

/** A task's records as the campaign generates them: the raw ESM form and the generator's intent. */
export interface IntendedRecord {
  readonly offset: bigint;
  readonly raw: RawKafkaRecord;
  /** `deposit`, `tombstone` or `poison-…`. */
  readonly kind: string;
}

export function expectTask(records: readonly IntendedRecord[]): Expectation {
  const sorted = [...records].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  const fold = new TaskFold();
  let disagreements = 0;
  for (const r of sorted) {
    const kind = fold.observe(r.offset, effectOfRaw(r.raw));
    if (kind !== (r.kind.startsWith('poison') ? 'poison' : r.kind)) disagreements++;
  }
  return {
    committedOffset: fold.endOffset ?? 0n,
    poisonOffsets: new Set(fold.poisonOffsets),
    applied: fold.applied,
    balances: fold.balances,
    ledger: fold.ledger,
    disagreements,
    applications: fold.applications,
  };
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

// ---------------------------------------------------------------------------------------------
// Tests: records written by hand.

/**
 * Expected balances after these records, applied in offset order as one stream (whatever their
 * partition): the fold above over the records as the ESM would deliver them.
 */
export function foldBalances(records: readonly TestRecord[]): Map<string, AccountBalance> {
  const sorted = records
    .map((r) => ({ offset: BigInt(r.offset), raw: rawRecord(r) }))
    .sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  const fold = new TaskFold({ ordered: false });
  for (const r of sorted) fold.observe(r.offset, effectOfRaw(r.raw));
  return fold.balances;
}
