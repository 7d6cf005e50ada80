/**
 * Small statistics for benchmark repeats. Benchmarks never assert a time: every figure is reported
 * as min / median / max over repeats, and comparisons are ratios measured side by side in one run.
 */

export interface Spread {
  min: number;
  median: number;
  max: number;
  /** Number of repeats the spread is taken over. */
  n: number;
}

export function spread(samples: readonly number[]): Spread {
  if (samples.length === 0) return { min: Number.NaN, median: Number.NaN, max: Number.NaN, n: 0 };
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length };
}

/** Applies `f` to each bound of a spread (for monotonic `f`: swaps bounds when it decreases). */
export function mapSpread(x: Spread, f: (v: number) => number): Spread {
  const a = f(x.min);
  const b = f(x.max);
  return { min: Math.min(a, b), median: f(x.median), max: Math.max(a, b), n: x.n };
}

/** Runs `fn` and returns how long it took, in milliseconds (monotonic clock). */
export async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

/**
 * Runs `fn` and returns its wall time and the process's CPU time over it (user + system, every
 * thread: the garbage collector's helpers too), in milliseconds. For work that does no I/O, CPU time
 * is what a busy shared machine leaves least changed: time spent waiting for a core is not in it.
 */
export async function timedCpu<T>(
  fn: () => Promise<T> | T,
): Promise<{ ms: number; cpuMs: number; value: T }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = await fn();
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { ms, cpuMs: (used.user + used.system) / 1000, value };
}
