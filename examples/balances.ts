/**
 * The balances example: each record's key is an account id (UTF-8), its value JSON
 * `{"amount": <safe integer>}`. A record adds `amount` to the account's balance and 1 to its count;
 * a tombstone (null value) deletes the account. Null keys, values that are not JSON and amounts that
 * are not safe integers are poison records, quarantined.
 */
import { defineProcessor } from '../lib/checkpoint/processor.ts';
import { PoisonRecordError } from '../lib/errors.ts';
import { valueState } from '../lib/state/descriptors.ts';

export interface Account {
  balance: number;
  count: number;
}

export const BALANCES_PIPELINE = 'balances';

/**
 * The amount a deposit record carries. Throws `PoisonRecordError` when the value is not JSON or the
 * amount is not a safe integer. (Tombstones, null values, are for the caller to handle.)
 */
export function depositAmount(value: Buffer): number {
  let body: unknown;
  try {
    body = JSON.parse(value.toString('utf8'));
  } catch {
    throw new PoisonRecordError('value is not JSON');
  }
  const amount = (body as { amount?: unknown } | null)?.amount;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) {
    throw new PoisonRecordError('amount is not a safe integer');
  }
  return amount;
}

/** `balance + amount`, refusing (as a poison record) a result outside the safe integer range. */
export function addToBalance(balance: number, amount: number): number {
  const sum = balance + amount;
  if (!Number.isSafeInteger(sum)) throw new PoisonRecordError('balance would leave the safe integer range');
  return sum;
}

export const balances = defineProcessor({
  state: { account: valueState<Account>() },
  poisonPolicy: 'quarantine',
  config: { pipeline: BALANCES_PIPELINE },
  process(record, { state, key }) {
    if (key === null) throw new PoisonRecordError('record has no key (an account id is required)');
    if (record.value === null) {
      state.account.clear();
      return;
    }
    const amount = depositAmount(record.value);
    const current = state.account.get();
    state.account.set({
      balance: addToBalance(current?.balance ?? 0, amount),
      count: (current?.count ?? 0) + 1,
    });
  },
});
