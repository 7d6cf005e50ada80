/**
 * Seeded randomness for the fault campaign: every decision the campaign takes (the input stream,
 * batch compositions, which fault goes where) comes from one of these, so a seed replays the same
 * schedule. Streams are forked by label, so adding a decision in one lane does not shift another's.
 */
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

export class SeededRandom {
  private readonly rng: ReturnType<typeof xoroshiro128plus>;
  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed;
    this.rng = xoroshiro128plus(seed);
  }

  /** An independent stream derived from this seed and a label (stable whatever else was drawn). */
  fork(label: string): SeededRandom {
    let h = this.seed ^ 0x9e3779b9;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
    return new SeededRandom(h | 0);
  }

  /** An integer in [from, to], both included. */
  int(from: number, to: number): number {
    return uniformInt(this.rng, from, to);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.int(0, 999_999) < p * 1_000_000;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(0, items.length - 1)]!;
  }

  /** One of `weights`' keys, with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Partial<Record<K, number>>>): K {
    const entries = Object.entries(weights).filter(([, w]) => (w as number) > 0) as Array<[K, number]>;
    const total = entries.reduce((n, [, w]) => n + w, 0);
    if (total <= 0) throw new RangeError('no positive weight');
    let x = (this.int(0, 999_999) / 1_000_000) * total;
    for (const [k, w] of entries) {
      if (x < w) return k;
      x -= w;
    }
    return entries[entries.length - 1]![0];
  }

  /** A new array with `items` in random order. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}
