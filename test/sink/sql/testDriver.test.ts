/**
 * A SQL output under `TestDriver` (tidemark/testing): what a processor's author sees of it without a
 * database — each write once, decoded as a reader of the table would get the values back — and, fed
 * to `SqlOutputModel`, the table those writes leave.
 */
import { describe, expect, it } from 'vitest';
import { defineProcessor } from '../../../lib/checkpoint/processor.ts';
import { SqlOutputModel, sqlOutput } from '../../../lib/sink/sql/index.ts';
import { valueState } from '../../../lib/state/descriptors.ts';
import { TestDriver } from '../../../lib/testing/index.ts';

const counts = sqlOutput<{ id: string; count: number | null; at: number }>({
  table: 'click_counts',
  key: 'id',
  columns: { id: { type: 'text', maxLength: 8 }, count: 'bigint', last_click: 'timestamp' },
  write: (c) =>
    c.count === null
      ? { delete: { id: c.id } }
      : { upsert: { id: c.id, count: BigInt(c.count), last_click: c.at } },
});

const counters = defineProcessor({
  state: { count: valueState<number>() },
  poisonPolicy: 'quarantine',
  outputs: { counts },
  process(record, { state, outputs, key }) {
    if (record.value === null) {
      state.count.clear();
      outputs.counts.emit({ id: key!, count: null, at: 0 });
      return;
    }
    const count = (state.count.get() ?? 0) + 1;
    state.count.set(count);
    // A key the column cannot hold (over 8 characters) fails the record: rolled back, quarantined.
    outputs.counts.emit({
      id: record.value.toString() === 'long' ? 'a-very-long-id' : key!,
      count,
      at: Number(record.timestamp),
    });
  },
});

describe('sqlOutput under TestDriver', () => {
  it('shows each write once, decoded, across a redelivery and a restart; a value the table cannot take is quarantined', async () => {
    const driver = new TestDriver(counters, { topic: 'clicks' });
    await driver.send([
      { key: 'a', value: 'x', timestamp: 1000 },
      { key: 'a', value: 'long', timestamp: 2000 },
      { key: 'b', value: 'x', timestamp: 3000 },
      { key: 'a', value: null, timestamp: 4000 },
    ]);
    await driver.redeliver();
    await driver.restart();
    await driver.send([{ key: 'b', value: 'x', timestamp: 5000 }]);
    const received = driver.outputs('counts');
    expect(received.map((o) => [o.id, o.value])).toEqual([
      ['test/clicks/0/1/0', { upsert: { id: 'a', count: 1n, last_click: new Date(1000) } }],
      ['test/clicks/0/1/1', { upsert: { id: 'b', count: 1n, last_click: new Date(3000) } }],
      ['test/clicks/0/1/2', { delete: { id: 'a' } }],
      ['test/clicks/0/2/0', { upsert: { id: 'b', count: 2n, last_click: new Date(5000) } }],
    ]);
    expect(driver.quarantined().map((q) => q.offset)).toEqual([1n]);
    // The table these writes leave.
    const table = new SqlOutputModel(counts);
    for (const o of received) table.apply(o.value as never);
    expect(table.rows()).toEqual([{ id: 'b', count: 2n, last_click: new Date(5000) }]);
    await driver.close();
  });
});
