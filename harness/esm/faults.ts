/**
 * Faults the ESM emulator injects from outside the function, as Lambda and the Kafka event source
 * mapping can produce them:
 * - crash: the container dies during an invocation (at a point the container names, e.g. just
 *   before its checkpoint commit, or at a random moment); nothing runs in it any more, the ESM sees
 *   a failed invocation and retries the batch on a new container;
 * - timeout: the invocation gets a short deadline (`getRemainingTimeInMillis()` counts down to it)
 *   and is stopped there if it is still running;
 * - duplicate: a batch is delivered again after it succeeded (the offset commit was lost), or to
 *   two containers at once;
 * - rebatch: a failed batch's records are cut into different batches for the retry.
 */
import type { SeededRandom } from '../seededRandom.ts';

export const ESM_FAULT_KINDS = ['crash', 'timeout', 'duplicate', 'rebatch'] as const;
export type EsmFaultKind = (typeof ESM_FAULT_KINDS)[number];

/** Crash at a random moment of the invocation rather than at a named point. */
export const ANYTIME = 'anytime';

/** How an invocation is disturbed (at most one fault per invocation). */
export type InvocationFault =
  | { kind: 'crash'; point: string; delayMs: number }
  | { kind: 'timeout'; timeoutMs: number }
  | { kind: 'duplicate'; mode: 'redeliver' | 'concurrent' };

export interface EsmFaults {
  /**
   * The fault for the next invocation, if any. `crashPoints` are the points the container can
   * crash at; `typicalMs` is how long invocations have been taking.
   */
  forInvocation(crashPoints: readonly string[], typicalMs: number): InvocationFault | undefined;
  /** Whether the retry of a failed batch is cut differently. */
  rebatch(): boolean;
}

/** Probability of each fault per invocation (`rebatch`: per failed batch). */
export type EsmFaultRates = Record<EsmFaultKind, number>;

export const NO_FAULTS: EsmFaults = {
  forInvocation: () => undefined,
  rebatch: () => false,
};

export interface RandomEsmFaultOptions {
  /** Deadlines of `timeout` faults are drawn from [min, max] ms. */
  shortTimeoutMs: readonly [number, number];
}

/** Faults drawn at the given rates from a seeded stream. */
export class RandomEsmFaults implements EsmFaults {
  private readonly rates: EsmFaultRates;
  private readonly random: SeededRandom;
  private readonly options: RandomEsmFaultOptions;

  constructor(rates: EsmFaultRates, random: SeededRandom, options: RandomEsmFaultOptions) {
    this.rates = rates;
    this.random = random;
    this.options = options;
  }

  forInvocation(crashPoints: readonly string[], typicalMs: number): InvocationFault | undefined {
    const r = this.random.float();
    let edge = this.rates.crash;
    if (r < edge) {
      const point = this.random.pick([...crashPoints, ANYTIME]);
      return { kind: 'crash', point, delayMs: Math.round(this.random.float() * Math.max(1, typicalMs)) };
    }
    edge += this.rates.timeout;
    if (r < edge) {
      const [min, max] = this.options.shortTimeoutMs;
      return { kind: 'timeout', timeoutMs: this.random.int(min, max) };
    }
    edge += this.rates.duplicate;
    if (r < edge) return { kind: 'duplicate', mode: this.random.chance(0.5) ? 'redeliver' : 'concurrent' };
    return undefined;
  }

  rebatch(): boolean {
    return this.random.chance(this.rates.rebatch);
  }
}
