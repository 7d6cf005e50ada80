/** Smoke of the event-time benchmark (bench/time.ts): it runs and reports every figure. No time is asserted. */
import { expect, it } from 'vitest';
import { benchTime, TIME_BENCH_PROFILES, timeTables } from '../../bench/time.ts';

it('measures windowed vs plain processing and a task full of timers', async () => {
  const r = await benchTime('smoke');
  expect(r.throughput.map((t) => t.processor)).toEqual(['balances', 'spend (windowed)']);
  for (const t of r.throughput) {
    expect(t.records).toBe(TIME_BENCH_PROFILES.smoke.records);
    expect(t.recordsPerSecond).toBeGreaterThan(0);
    expect(t.snapshotBytesPerEpoch).toBeGreaterThan(0);
  }
  expect(r.throughput[1]!.windowResults).toBeGreaterThan(0);
  expect(r.timers).toHaveLength(1);
  const t = r.timers[0]!;
  expect(t.fired).toBe(TIME_BENCH_PROFILES.smoke.timers[0]);
  expect(t.fullSnapshotBytes).toBeGreaterThan(t.deltaBytes1pct);
  expect(timeTables(r).split('\n')).toHaveLength(4 + 1 + 2 + 1);
}, 120_000);
