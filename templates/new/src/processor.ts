/**
 * The __NAME__ pipeline: per-account balances from deposit records.
 *
 * Each record's key is an account id, its value JSON `{"amount": <integer>}`. The processor keeps one
 * balance per account (keyed state) and a count of all records of its partition (task state). A value
 * that is not such JSON is a poison record: with the `quarantine` policy it is set aside in S3 and the
 * partition goes on.
 */
import { defineProcessor, PoisonRecordError, taskValueState, valueState } from 'tidemark';

export interface Account {
  balance: number;
  deposits: number;
}

export const processor = defineProcessor({
  state: {
    account: valueState<Account>(),
    records: taskValueState<number>(),
  },
  poisonPolicy: 'quarantine',
  config: { pipeline: '__NAME__' },
  process(record, { state, key }) {
    if (key === null) throw new PoisonRecordError('a deposit needs a key (the account id)');
    state.records.set((state.records.get() ?? 0) + 1);
    if (record.value === null) {
      state.account.clear(); // a tombstone closes the account
      return;
    }
    let amount: unknown;
    try {
      amount = (JSON.parse(record.value.toString('utf8')) as { amount?: unknown }).amount;
    } catch {
      throw new PoisonRecordError('value is not JSON');
    }
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) {
      throw new PoisonRecordError('amount is not an integer');
    }
    const a = state.account.get();
    state.account.set({ balance: (a?.balance ?? 0) + amount, deposits: (a?.deposits ?? 0) + 1 });
  },
});
