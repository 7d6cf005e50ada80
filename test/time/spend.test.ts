/**
 * The windowed example (examples/spend.ts) through TestDriver: per-account spend per minute with 10 s
 * of allowed lateness, emitted once per window; late records counted; idle partitions closed by ticks.
 */
import { describe, expect, it } from 'vitest';
import { SPEND_OUTPUT_TOPIC, spend, spendProcessor } from '../../examples/spend.ts';
import { TestDriver } from '../../lib/testing/index.ts';

const deposit = (account: string, amount: number, timestamp: number) => ({
  partition: 0,
  key: account,
  value: JSON.stringify({ amount }),
  timestamp,
});

describe('spend per minute (examples/spend.ts)', () => {
  it('emits one result per account and minute when the window closes, 10 s after its end', async () => {
    expect(spend.outputs?.windows.options).toMatchObject({ topic: SPEND_OUTPUT_TOPIC });
    const d = new TestDriver(spend, { topic: 'deposits' });
    await d.send([
      deposit('a', 5, 1_000),
      deposit('b', 7, 2_000),
      deposit('a', 3, 59_999),
      deposit('a', 1, 61_000),
    ]);
    await d.send([deposit('a', 2, 55_000), deposit('b', 1, 69_999)]); // 55 s: within lateness
    expect(d.outputs('windows')).toEqual([]); // the watermark is 69,998: [0, 60 s) closes at 69,999
    await d.send([deposit('c', 1, 70_000)]);
    expect(d.outputs('windows').map((o) => o.value)).toEqual([
      { account: 'a', start: 0, end: 60_000, total: 10, count: 3 },
      { account: 'b', start: 0, end: 60_000, total: 7, count: 1 },
    ]);
    await d.send([
      deposit('a', 100, 30_000),
      { partition: 0, key: 'a', value: 'not json', timestamp: 71_000 },
    ]);
    expect(d.state('spend.late')).toBe(1); // 30 s arrived behind a closed window: dropped, counted
    expect(d.quarantined()).toHaveLength(1);
  });

  it("closes an idle partition's windows at ticks (idle advance after 30 s)", async () => {
    const d = new TestDriver(spend, { topic: 'deposits' });
    d.setTime(1_000);
    await d.send([deposit('a', 5, 1_000)]);
    d.setTime(60_000);
    await d.tick();
    expect(d.outputs('windows')).toEqual([]);
    d.setTime(70_000); // watermark 999 + 69 s = 69,999: the window closes
    expect((await d.tick()).timersFired).toBe(1);
    expect(d.outputs('windows').map((o) => o.value)).toEqual([
      { account: 'a', start: 0, end: 60_000, total: 5, count: 1 },
    ]);
    expect(d.watermark()).toBe(69_999);
  });

  it('without idle advance, a tick leaves event time alone', async () => {
    const d = new TestDriver(spendProcessor({ idleAdvanceAfterMs: null }), { topic: 'deposits' });
    d.setTime(1_000);
    await d.send([deposit('a', 5, 1_000)]);
    d.setTime(600_000);
    expect((await d.tick()).tasks).toEqual([]);
    expect(d.outputs('windows')).toEqual([]);
  });
});
