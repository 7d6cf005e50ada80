/**
 * TestDriver: the contract of issue 11 §2 (names exact), on the real engine and memory stores.
 */
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { BatchFailedError, PoisonRecordError } from '../../lib/errors.ts';
import { listState, mapState, taskValueState, valueState } from '../../lib/state/descriptors.ts';
import { defaultPartition, murmur2, TestDriver } from '../../lib/testing/index.ts';

describe('TestDriver', () => {
  it('runs a processor through the engine: committed state, redeliveries skipped, restart restores', async () => {
    const driver = new TestDriver(balances, { topic: 'deposits', partitions: 2 });
    expect(driver.pipeline).toBe('balances');
    const s1 = await driver.send([
      { partition: 0, offset: 1000, key: 'acct-1', value: '{"amount":5}' },
      { partition: 0, key: 'acct-1', value: '{"amount":7}' }, // offset 1001, assigned
      { partition: 1, key: 'acct-2', value: Buffer.from('{"amount":3}') }, // offset 0
    ]);
    expect(s1).toMatchObject({ records: 3, applied: 3, duplicatesSkipped: 0, epochsCommitted: 2 });
    expect(driver.state('account', 'acct-1')).toEqual({ balance: 12, count: 2 });
    expect(driver.state('account', 'acct-2')).toEqual({ balance: 3, count: 1 });
    expect(driver.state('account', 'nobody')).toBeUndefined();
    expect(driver.committed(0)).toEqual({ epoch: 1, offset: 1002n });
    expect(driver.committed(1)).toEqual({ epoch: 1, offset: 1n });

    // A record sent again with an offset already committed is a redelivery: skipped.
    const s2 = await driver.send([{ partition: 0, offset: 1001, key: 'acct-1', value: '{"amount":7}' }]);
    expect(s2).toMatchObject({ applied: 0, duplicatesSkipped: 1, epochsCommitted: 0 });
    expect(driver.state('account', 'acct-1')).toEqual({ balance: 12, count: 2 });

    await driver.restart();
    const s3 = await driver.send([
      { partition: 0, offset: 1000, key: 'acct-1', value: '{"amount":5}' },
      { partition: 0, offset: 1002, key: 'acct-1', value: '{"amount":1}' },
    ]);
    expect(s3).toMatchObject({ applied: 1, duplicatesSkipped: 1 });
    expect(s3.tasks[0]).toMatchObject({ warm: false, epoch: 2, committedOffset: '1003' });
    expect(driver.state('account', 'acct-1')).toEqual({ balance: 13, count: 3 });
  });

  it('assigns partitions like Kafka’s default partitioner when none is given', async () => {
    // Known values of Kafka's Utils.murmur2 (from its own test suite).
    expect(murmur2(Buffer.from('21'))).toBe(-973932308);
    expect(murmur2(Buffer.from('foobar'))).toBe(-790332482);
    expect(murmur2(Buffer.from('a-little-bit-long-string'))).toBe(-985981536);
    expect(murmur2(Buffer.from('a-little-bit-longer-string'))).toBe(-1486304829);
    expect(murmur2(Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'))).toBe(-58897971);
    const driver = new TestDriver(balances, { topic: 'deposits', partitions: 4 });
    await driver.send([{ key: 'acct-9', value: '{"amount":2}' }]);
    const p = defaultPartition(Buffer.from('acct-9'), 4);
    expect(driver.state('account', 'acct-9', { partition: p })).toEqual({ balance: 2, count: 1 });
    expect(driver.committed(p)).toEqual({ epoch: 1, offset: 1n });
  });

  it('shows map and list state as plain data, task state without a key, and refuses an ambiguous key', async () => {
    const processor = defineProcessor({
      state: { tags: mapState<number>(), seen: listState<string>(), total: taskValueState<number>() },
      keyOf: (r) => r.key?.toString('utf8') ?? null,
      process(record, { state }) {
        const v = record.value!.toString('utf8');
        state.tags.put(v, (state.tags.get(v) ?? 0) + 1);
        state.seen.add(v);
        state.total.set((state.total.get() ?? 0) + 1);
      },
    });
    const driver = new TestDriver(processor, { partitions: 2 });
    await driver.send([
      { partition: 0, key: 'k', value: 'a' },
      { partition: 0, key: 'k', value: 'b' },
      { partition: 0, key: 'k', value: 'a' },
      { partition: 1, key: 'k', value: 'z' },
    ]);
    expect(driver.state('tags', 'k', { partition: 0 })).toEqual({ a: 2, b: 1 });
    expect(driver.state('seen', 'k', { partition: 0 })).toEqual(['a', 'b', 'a']);
    expect(driver.state('total', undefined, { partition: 0 })).toBe(3);
    expect(driver.state('total', undefined, { partition: 1 })).toBe(1);
    expect(() => driver.state('tags', 'k')).toThrow(/partitions 0, 1/);
  });

  it('lists quarantined records with their errors; keys, values and headers accept strings, bytes and null', async () => {
    const driver = new TestDriver(balances, { topic: 'deposits' });
    await driver.send([
      { key: 'a', value: '{"amount":1}', headers: { trace: 'x', empty: null } },
      { key: 'a', value: 'not json', headers: [['h', Buffer.from([0xff, 0x00])]] },
      { key: null, value: '{"amount":1}' },
      { key: 'a', value: null }, // tombstone
    ]);
    const q = driver.quarantined();
    expect(q.map((r) => [r.offset, r.error.message])).toEqual([
      [1n, 'value is not JSON'],
      [2n, 'record has no key (an account id is required)'],
    ]);
    expect(q[0]).toMatchObject({ topic: 'deposits', partition: 0, epoch: 1, key: Buffer.from('a') });
    expect(q[0]!.value).toEqual(Buffer.from('not json'));
    expect(q[0]!.headers).toEqual([['h', Buffer.from([0xff, 0x00])]]);
    expect(q[1]!.key).toBeNull();
    expect(driver.state('account', 'a')).toBeUndefined(); // deleted by the tombstone
  });

  it('fails a send with the typed error, commits what it could, and the retry completes', async () => {
    let failOnce = true;
    const processor = defineProcessor({
      state: { n: valueState<number>() },
      process(record, { state }) {
        if (record.value?.toString() === 'flaky' && failOnce) {
          failOnce = false;
          throw Object.assign(new Error('downstream busy'), { retriable: true });
        }
        state.n.set((state.n.get() ?? 0) + 1);
      },
    });
    const driver = new TestDriver(processor);
    const r = await driver.trySend([
      { key: 'k', value: 'ok' },
      { key: 'k', value: 'flaky' },
      { key: 'k', value: 'ok' },
    ]);
    expect(r.ok).toBe(false);
    expect((r as { error: unknown }).error).toBeInstanceOf(BatchFailedError);
    expect(driver.state('n', 'k')).toBe(1);
    await driver.redeliver();
    expect(driver.state('n', 'k')).toBe(3);
  });

  it('needs no UTF-8 key when the processor only uses task state (binary keys, as in AWS’s sample events)', async () => {
    const processor = defineProcessor({
      state: { count: taskValueState<number>() },
      process(_record, { state }) {
        state.count.set((state.count.get() ?? 0) + 1);
      },
    });
    const driver = new TestDriver(processor);
    await driver.send([
      { key: Buffer.from([0xff, 0xfe, 0x00]), value: 'x' },
      { key: Buffer.from([0xc3]), value: 'y' },
    ]);
    expect(driver.state('count')).toBe(2);
    expect(driver.quarantined()).toEqual([]);
    // Reading ctx.key on such a record is what fails it (a poison record), not merely receiving it.
    const reader = defineProcessor({
      state: { count: taskValueState<number>() },
      poisonPolicy: 'quarantine',
      process(_record, ctx) {
        if (ctx.key === 'never') throw new PoisonRecordError('unreachable');
        ctx.state.count.set((ctx.state.count.get() ?? 0) + 1);
      },
    });
    const d2 = new TestDriver(reader);
    await d2.send([
      { key: Buffer.from([0xff]), value: 'x' },
      { key: 'ok', value: 'y' },
    ]);
    expect(d2.state('count')).toBe(1);
    expect(d2.quarantined().map((q) => q.error.message)).toEqual([
      expect.stringMatching(/^state key cannot be computed/),
    ]);
  });
});
