import { TestDriver } from 'tidemark/testing';
import { describe, expect, it } from 'vitest';
import { processor } from '../src/processor.ts';

describe('__NAME__', () => {
  it('keeps each account balance exactly once, through redeliveries and restarts', async () => {
    const driver = new TestDriver(processor, { topic: 'deposits', partitions: 2 });
    await driver.send([
      { partition: 0, offset: 100, key: 'acct-1', value: '{"amount":5}' },
      { partition: 0, key: 'acct-1', value: '{"amount":7}' },
      { partition: 1, key: 'acct-2', value: '{"amount":3}' },
    ]);
    expect(driver.state('account', 'acct-1')).toEqual({ balance: 12, deposits: 2 });

    // The event source mapping delivers the batch again: nothing is applied twice.
    await driver.redeliver();
    await driver.restart(); // a cold container restores from the checkpoint
    await driver.send([
      { partition: 0, offset: 101, key: 'acct-1', value: '{"amount":7}' }, // already committed: skipped
      { partition: 0, offset: 102, key: 'acct-1', value: '{"amount":-2}' },
    ]);
    expect(driver.state('account', 'acct-1')).toEqual({ balance: 10, deposits: 3 });
    expect(driver.state('account', 'acct-2')).toEqual({ balance: 3, deposits: 1 });
    expect(driver.state('records', undefined, { partition: 0 })).toBe(3);
  });

  it('sets poison records aside and goes on', async () => {
    const driver = new TestDriver(processor, { topic: 'deposits' });
    await driver.send([
      { key: 'acct-1', value: 'not json' },
      { key: 'acct-1', value: '{"amount":1}' },
    ]);
    expect(driver.quarantined().map((r) => r.error.message)).toEqual(['value is not JSON']);
    expect(driver.state('account', 'acct-1')).toEqual({ balance: 1, deposits: 1 });
  });
});
