/**
 * The balances example with outputs (examples/balancesWithOutputs.ts) through TestDriver: every
 * applied record's update to Kafka, the overdrawn accounts to DynamoDB, nothing for poison records,
 * each output once across a redelivery and a restart.
 */
import { describe, expect, it } from 'vitest';
import {
  BALANCE_UPDATES_TOPIC,
  balancesWithOutputs,
  balancesWithOutputsProcessor,
  overdrawnAccountsOutput,
} from '../../examples/balancesWithOutputs.ts';
import { TestDriver } from '../../lib/testing/index.ts';

const record = (key: string | null, value: string | null) => ({ partition: 0, key, value });
const deposit = (key: string, amount: number) => record(key, JSON.stringify({ amount }));

describe('balances with outputs (examples/balancesWithOutputs.ts)', () => {
  it('emits every applied record’s running total to Kafka, and keeps the overdrawn accounts in DynamoDB', async () => {
    expect(balancesWithOutputs.outputs?.updates.options).toMatchObject({ topic: BALANCE_UPDATES_TOPIC });
    expect(balancesWithOutputs.outputs?.overdrawn.kind).toBe('dynamodb');
    const d = new TestDriver(balancesWithOutputs, { topic: 'transactions' });
    await d.send([
      deposit('a', 5), // 0
      deposit('b', -7), // 1: b overdrawn
      record(null, '{"amount":1}'), // 2: poison, nothing emitted
      deposit('b', 3), // 3: still overdrawn
      deposit('a', -9), // 4: a overdrawn
      record('a', 'not json'), // 5: poison
    ]);
    await d.redeliver();
    await d.restart();
    await d.send([
      deposit('b', 10), // 6: b back above zero: its item goes
      record('a', null), // 7: a closed while overdrawn: its item goes
      deposit('c', 1), // 8
    ]);
    expect(d.outputs('updates').map((o) => o.value)).toEqual([
      { account: 'a', offset: '0', balance: 5, count: 1 },
      { account: 'b', offset: '1', balance: -7, count: 1 },
      { account: 'b', offset: '3', balance: -4, count: 2 },
      { account: 'a', offset: '4', balance: -4, count: 2 },
      { account: 'b', offset: '6', balance: 6, count: 3 },
      { account: 'a', offset: '7', balance: null, count: 0 },
      { account: 'c', offset: '8', balance: 1, count: 1 },
    ]);
    expect(d.outputs('overdrawn').map((o) => o.value)).toEqual([
      { put: { account: 'b', offset: '1', balance: -7, count: 1 } },
      { put: { account: 'b', offset: '3', balance: -4, count: 2 } },
      { put: { account: 'a', offset: '4', balance: -4, count: 2 } },
      { delete: { account: 'b' } },
      { delete: { account: 'a' } },
    ]);
    expect(d.quarantined().map((q) => q.offset)).toEqual([2n, 5n]);
    expect(d.state('account', 'b')).toEqual({ balance: 6, count: 3 });
  });

  it('takes other outputs in code (a table name, a topic)', () => {
    const p = balancesWithOutputsProcessor({ overdrawn: overdrawnAccountsOutput('overdrawn-accounts') });
    expect(p.outputs?.overdrawn.options).toMatchObject({ table: 'overdrawn-accounts' });
  });
});
