/**
 * Seeded randomness for the local harness (the main job and the fault campaign): every decision
 * they take (the input stream, batch compositions, which fault goes where) comes from a stream
 * derived from one seed, so a seed replays the same decisions. Streams are derived by label, so a
 * decision added in one stream does not shift another's. (Timing is not seeded: where a decision
 * depends on what ran before, see docs/reliability.md, "replaying a seed".)
 */
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

export class SeededRandom {
  readonly seed: number;
  private readonly rng: ReturnType<typeof xoroshiro128plus>;

  constructor(seed: number) {
    this.seed = seed | 0;
    this.rng = xoroshiro128plus(this.seed);
  }

  /** An independent stream for `label` (unaffected by what this or other streams draw). */
  derive(label: string): SeededRandom {
    // FNV-1a over the label, starting from the seed.
    let h = this.seed ^ 0x811c9dc5;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
    return new SeededRandom(h);
  }

  /** An integer in [from, to], both included. */
  int(from: number, to: number): number {
    return uniformInt(this.rng, from, to);
  }

  /** A float in [0, 1). */
  float(): number {
    return uniformFloat64(this.rng);
  }

  /** True with probability `p` (draws nothing when `p` is 0). */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
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
    let x = this.float() * total;
    for (const [k, w] of entries) {
      if (x < w) return k;
      x -= w;
    }
    return entries[entries.length - 1]![0];
  }

  /** A new array with `items` in random order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}
