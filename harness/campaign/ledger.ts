/**
 * The campaign's own processor: the balances example plus, per account, the offsets of every record
 * applied to it, in order. It makes lost and double-applied records countable separately and
 * exactly (a record counted twice and another lost cannot cancel out). Tombstones reset the balance
 * but keep the history. Poison records (null key, value not JSON, amount not a safe integer) are
 * quarantined, as in the balances example.
 */

import { addToBalance, depositAmount } from '../../examples/balances.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { PoisonRecordError } from '../../lib/errors.ts';
import { valueState } from '../../lib/state/descriptors.ts';

export interface LedgerEntry {
  balance: number;
  count: number;
  /** Offsets (decimal strings) of every record applied to this account, deposits and tombstones. */
  offsets: string[];
}

export const LEDGER_PIPELINE = 'ledger';

export const ledger = defineProcessor({
  state: { entry: valueState<LedgerEntry>() },
  poisonPolicy: 'quarantine',
  config: { pipeline: LEDGER_PIPELINE },
  process(record, { state, key }) {
    if (key === null) throw new PoisonRecordError('record has no key (an account id is required)');
    const current = state.entry.get();
    const offsets = [...(current?.offsets ?? []), record.offset.toString()];
    if (record.value === null) {
      state.entry.set({ balance: 0, count: 0, offsets });
      return;
    }
    const amount = depositAmount(record.value);
    const balance = addToBalance(current?.balance ?? 0, amount);
    state.entry.set({ balance, count: (current?.count ?? 0) + 1, offsets });
  },
});
