/**
 * Latencies of AWS services as users meet them, for the latency proxy (./latencyProxy.ts):
 * each response is held back by a time drawn from a log-normal distribution fixed by its median and
 * its 99th percentile, plus its bytes at a given bandwidth. Seeded: a run draws the same latencies.
 * The figures and their sources are in docs/performance.md ("AWS-latency profile").
 */
import { SeededRandom } from './seededRandom.ts';

export interface LatencyModel {
  /** Milliseconds to hold back the response to one request. */
  requestMs(): number;
  /** Transfer time of a body of `bytes`, in milliseconds (0 for none). */
  transferMs(bytes: number): number;
}

export interface LatencyProfile {
  /** Median added latency per request, ms. */
  p50Ms: number;
  /** 99th percentile, ms. */
  p99Ms: number;
  /** Bandwidth of one connection, bytes per second (undefined: no transfer time). */
  bytesPerSecond?: number;
}

const Z99 = 2.3263478740408408;

/** Log-normal latencies with the profile's median and 99th percentile. */
export function latencyModel(profile: LatencyProfile, seed: number): LatencyModel {
  const rng = new SeededRandom(seed);
  const random = () => rng.float();
  const mu = Math.log(profile.p50Ms);
  const sigma = Math.log(profile.p99Ms / profile.p50Ms) / Z99;
  return {
    requestMs() {
      // Box–Muller: one standard normal draw.
      const u = Math.max(random(), Number.MIN_VALUE);
      const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
      return Math.exp(mu + sigma * z);
    },
    transferMs: (bytes) => (profile.bytesPerSecond ? (bytes / profile.bytesPerSecond) * 1000 : 0),
  };
}
