/**
 * The expected outcome of the balances pipeline, computed on its own from what was produced: a
 * plain fold per partition, in offset order, written from the example's contract (README/balances
 * docs) without any of Tidemark's code. The main job compares every task's committed state with it.
 *
 * Contract: the key is an account id in UTF-8 (no key, or bytes that are not UTF-8: poison); a null
 * value closes the account (deletes it); otherwise the value must be a JSON object whose `amount`
 * is a safe integer (else poison), added to the balance (a balance leaving the safe integer range
 * is poison too), and the account's count goes up by one. Poison records change nothing and are
 * quarantined.
 */

import type { TestRecord } from './esm/mskEvent.ts';

export interface AccountBalance {
  balance: number;
  count: number;
}

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

const UTF8 = new TextDecoder('utf-8', { fatal: true });

type Classified =
  | { kind: 'poison' }
  | { kind: 'close'; account: string }
  | { kind: 'add'; account: string; amount: number };

function classify(key: Buffer | null, value: Buffer | null): Classified {
  if (key === null) return { kind: 'poison' };
  let account: string;
  try {
    account = UTF8.decode(key);
  } catch {
    return { kind: 'poison' };
  }
  if (value === null) return { kind: 'close', account };
  let body: unknown;
  try {
    body = JSON.parse(value.toString('utf8'));
  } catch {
    return { kind: 'poison' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { kind: 'poison' };
  const amount = (body as Record<string, unknown>).amount;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) return { kind: 'poison' };
  return { kind: 'add', account, amount };
}

export class BalancesOracle {
  private readonly tasks = new Map<number, ExpectedTask>();

  /** Feeds one produced record (records of a partition must come in offset order). */
  observe(partition: number, offset: bigint, key: Buffer | null, value: Buffer | null): void {
    let t = this.tasks.get(partition);
    if (!t) {
      t = { partition, records: 0, applied: 0, poisonOffsets: [], endOffset: null, balances: new Map() };
      this.tasks.set(partition, t);
    }
    if (t.endOffset !== null && offset < BigInt(t.endOffset)) {
      throw new RangeError(`partition ${partition}: offset ${offset} observed after ${t.endOffset}`);
    }
    t.records++;
    t.endOffset = (offset + 1n).toString();
    const c = classify(key, value);
    if (c.kind === 'poison') {
      t.poisonOffsets.push(offset.toString());
      return;
    }
    if (c.kind === 'close') {
      t.balances.delete(c.account);
      t.applied++;
      return;
    }
    const current = t.balances.get(c.account);
    const balance = (current?.balance ?? 0) + c.amount;
    if (!Number.isSafeInteger(balance)) {
      t.poisonOffsets.push(offset.toString());
      return;
    }
    t.balances.set(c.account, { balance, count: (current?.count ?? 0) + 1 });
    t.applied++;
  }

  expected(partition: number): ExpectedTask {
    return (
      this.tasks.get(partition) ?? {
        partition,
        records: 0,
        applied: 0,
        poisonOffsets: [],
        endOffset: null,
        balances: new Map(),
      }
    );
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

/** Expected balances: a plain fold of records in offset order (tombstones delete, poison skipped). */
export function foldBalances(records: TestRecord[]): Map<string, { balance: number; count: number }> {
  const m = new Map<string, { balance: number; count: number }>();
  const sorted = [...records].sort((a, b) => (BigInt(a.offset) < BigInt(b.offset) ? -1 : 1));
  for (const r of sorted) {
    if (r.key === null || r.key === undefined) continue;
    const key = typeof r.key === 'string' ? r.key : Buffer.from(r.key).toString('utf8');
    if (r.value === null || r.value === undefined) {
      m.delete(key);
      continue;
    }
    const amount = typeof r.value === 'object' ? (r.value as { amount?: unknown }).amount : undefined;
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) continue;
    const cur = m.get(key);
    m.set(key, { balance: (cur?.balance ?? 0) + amount, count: (cur?.count ?? 0) + 1 });
  }
  return m;
}
