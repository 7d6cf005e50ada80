import { describe, expect, it } from 'vitest';
import { latencyModel } from '../../harness/latency.ts';

describe('latency model', () => {
  it('draws a log-normal with the profile’s median and 99th percentile, the same for a seed', () => {
    const draws = (seed: number) => {
      const m = latencyModel({ p50Ms: 6, p99Ms: 20, bytesPerSecond: 100e6 }, seed);
      return Array.from({ length: 20_000 }, () => m.requestMs()).sort((a, b) => a - b);
    };
    const d = draws(7);
    expect(draws(7)).toEqual(d);
    expect(draws(8)).not.toEqual(d);
    expect(d[10_000]).toBeGreaterThan(5.7);
    expect(d[10_000]).toBeLessThan(6.3);
    expect(d[19_800]).toBeGreaterThan(18);
    expect(d[19_800]).toBeLessThan(22);
  });

  it('adds transfer time for a body at the profile’s bandwidth, none without one', () => {
    expect(latencyModel({ p50Ms: 1, p99Ms: 2, bytesPerSecond: 1e6 }, 1).transferMs(1000)).toBe(1);
    expect(latencyModel({ p50Ms: 1, p99Ms: 2 }, 1).transferMs(1000)).toBe(0);
  });
});
