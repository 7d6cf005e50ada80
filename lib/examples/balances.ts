/**
 * The balances example: each record's key is an account id (UTF-8), its value JSON
 * `{"amount": <safe integer>}`. A record adds `amount` to the account's balance and 1 to its count;
 * a tombstone (null value) deletes the account. Null keys, values that are not JSON and amounts that
 * are not safe integers are poison records, quarantined.
 */
import { defineProcessor } from '../checkpoint/processor.ts';
import { PoisonRecordError } from '../errors.ts';
import { valueState } from '../state/descriptors.ts';

export interface Account {
  balance: number;
  count: number;
}

export const BALANCES_PIPELINE = 'balances';

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
    let body: unknown;
    try {
      body = JSON.parse(record.value.toString('utf8'));
    } catch {
      throw new PoisonRecordError('value is not JSON');
    }
    const amount = (body as { amount?: unknown } | null)?.amount;
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) {
      throw new PoisonRecordError('amount is not a safe integer');
    }
    const current = state.account.get();
    const balance = (current?.balance ?? 0) + amount;
    if (!Number.isSafeInteger(balance))
      throw new PoisonRecordError('balance would leave the safe integer range');
    state.account.set({ balance, count: (current?.count ?? 0) + 1 });
  },
});
