/**
 * The balances example with outputs: the same state as examples/balances.ts, and exactly once
 *
 * - to the Kafka topic `balance-updates` (key: the account id; value: JSON `BalanceUpdate`), for
 *   every record applied, the account's running total after it: a changelog of every account, in
 *   offset order per account. Read it with `isolation.level=read_committed`;
 * - to a DynamoDB table keyed by `account` (string), the overdrawn accounts: while an account's
 *   balance is below zero, its item is its latest `BalanceUpdate`; the item is deleted when the
 *   balance is back at zero or above, or the account is closed.
 *
 * Each task-epoch's Kafka records are one transaction, and its DynamoDB writes one per account
 * touched (merged), so the cost grows with the epochs and the accounts that are or were overdrawn,
 * not with every record (docs/outputs.md). Poison records (quarantined) emit nothing.
 *
 * The cluster comes from `TIDEMARK_KAFKA_OUTPUT_*` and the table from `TIDEMARK_DYNAMODB_OUTPUT_TABLE`
 * (docs/configuration.md), unless given in code. A Lambda function that keeps state only is
 * examples/balances.ts (functions/balances.ts): its bundle carries no sink.
 */
import { defineProcessor } from '../lib/checkpoint/processor.ts';
import { PoisonRecordError } from '../lib/errors.ts';
import type { OutputDescriptor } from '../lib/output/types.ts';
import { dynamoOutput } from '../lib/sink/dynamodb/dynamoOutput.ts';
import { kafkaOutput } from '../lib/sink/kafka/kafkaOutput.ts';
import { valueState } from '../lib/state/descriptors.ts';
import { type Account, addToBalance, BALANCES_PIPELINE, depositAmount } from './balances.ts';

/** An account's running total right after one applied record. */
export interface BalanceUpdate {
  account: string;
  /** Offset of the input record that made it (a decimal string: offsets are int64). */
  offset: string;
  /** The balance after the record; null when the record closed the account. */
  balance: number | null;
  /** Deposits since the account was opened (0 when closed). */
  count: number;
}

export const BALANCE_UPDATES_TOPIC = 'balance-updates';

/** The Kafka output: every update, keyed by the account (the record's state key). */
export function balanceUpdatesOutput(topic = BALANCE_UPDATES_TOPIC) {
  return kafkaOutput<BalanceUpdate>({ topic });
}

/** The DynamoDB output: an overdrawn account's item is its latest update; any other update deletes it. */
export function overdrawnAccountsOutput(table?: string) {
  return dynamoOutput<BalanceUpdate>({
    ...(table ? { table } : {}),
    partitionKey: 'account',
    write: (u) => (u.balance !== null && u.balance < 0 ? { put: u } : { delete: { account: u.account } }),
  });
}

/** The processor, with its two outputs (by default the ones above, configured by the environment). */
export function balancesWithOutputsProcessor(
  options: { updates?: OutputDescriptor<BalanceUpdate>; overdrawn?: OutputDescriptor<BalanceUpdate> } = {},
) {
  return defineProcessor({
    state: { account: valueState<Account>() },
    outputs: {
      updates: options.updates ?? balanceUpdatesOutput(),
      overdrawn: options.overdrawn ?? overdrawnAccountsOutput(),
    },
    poisonPolicy: 'quarantine',
    config: { pipeline: BALANCES_PIPELINE },
    process(record, { state, outputs, key }) {
      if (key === null) throw new PoisonRecordError('record has no key (an account id is required)');
      const before = state.account.get();
      let update: BalanceUpdate;
      if (record.value === null) {
        state.account.clear();
        update = { account: key, offset: record.offset.toString(), balance: null, count: 0 };
      } else {
        const after = {
          balance: addToBalance(before?.balance ?? 0, depositAmount(record.value)),
          count: (before?.count ?? 0) + 1,
        };
        state.account.set(after);
        update = { account: key, offset: record.offset.toString(), ...after };
      }
      // Delivered once each, if and when this record's epoch commits (rolled back if it throws).
      outputs.updates.emit(update);
      const overdrawn = update.balance !== null && update.balance < 0;
      if (overdrawn || (before?.balance ?? 0) < 0) outputs.overdrawn.emit(update);
    },
  });
}

export const balancesWithOutputs = balancesWithOutputsProcessor();
