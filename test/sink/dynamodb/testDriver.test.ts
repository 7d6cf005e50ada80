/**
 * A DynamoDB output under `TestDriver` (tidemark/testing): what a processor's author sees of it
 * without a table — each output once, as the write a reader of the table would see it do.
 */
import { describe, expect, it } from 'vitest';
import { defineProcessor } from '../../../lib/checkpoint/processor.ts';
import { dynamoOutput } from '../../../lib/sink/dynamodb/index.ts';
import { valueState } from '../../../lib/state/descriptors.ts';
import { TestDriver } from '../../../lib/testing/index.ts';

const counters = defineProcessor({
  state: { count: valueState<number>() },
  poisonPolicy: 'quarantine',
  outputs: {
    counts: dynamoOutput<{ id: string; count: number | null }>({
      table: 'counts',
      partitionKey: 'id',
      write: (c) => (c.count === null ? { delete: { id: c.id } } : { put: { id: c.id, count: c.count } }),
    }),
  },
  process(record, { state, outputs, key }) {
    if (record.value === null) {
      state.count.clear();
      outputs.counts.emit({ id: key!, count: null });
      return;
    }
    const count = (state.count.get() ?? 0) + 1;
    state.count.set(count);
    // A value the table cannot take (an empty key) fails the record, rolled back and quarantined.
    outputs.counts.emit({ id: record.value.toString() === 'no-id' ? '' : key!, count });
  },
});

describe('dynamoOutput under TestDriver', () => {
  it('shows each write once, decoded, across a redelivery; a value that cannot be written is quarantined', async () => {
    const driver = new TestDriver(counters, { topic: 'clicks' });
    await driver.send([
      { key: 'a', value: 'x' },
      { key: 'a', value: 'no-id' },
      { key: 'b', value: 'x' },
      { key: 'a', value: null },
    ]);
    await driver.redeliver();
    expect(driver.outputs('counts').map((o) => [o.id, o.value])).toEqual([
      ['test/clicks/0/1/0', { put: { id: 'a', count: 1 } }],
      ['test/clicks/0/1/1', { put: { id: 'b', count: 1 } }],
      ['test/clicks/0/1/2', { delete: { id: 'a' } }],
    ]);
    expect(driver.quarantined().map((q) => q.offset)).toEqual([1n]);
    await driver.close();
  });
});
