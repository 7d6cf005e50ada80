/**
 * A binary min-heap of (time, id) pairs, ordered by time and then by id: the index behind timers and
 * state TTL. Entries live in two parallel arrays (no object per entry), so a million entries cost
 * about 16 bytes each here besides the id strings, which the state tables already hold.
 *
 * Written here rather than taken from a library on purpose: `flatqueue` has this very layout but
 * orders by the number alone, and equal times must pop in one order that does not depend on how the
 * heap was built (a task restored from its snapshot must fire equal-time timers in the same order as
 * the container that ran before it), hence the id as tie-breaker.
 *
 * The heap holds no truth of its own: its owners keep the entries in state tables and skip popped
 * entries the tables no longer hold (lazy deletion), rebuilding the heap when garbage dominates.
 */
export class TimeQueue {
  private times: number[] = [];
  private ids: string[] = [];

  get size(): number {
    return this.times.length;
  }

  /** Replaces the content with these entries (heapified in linear time). */
  reset(times: number[], ids: string[]): void {
    this.times = times;
    this.ids = ids;
    for (let i = (times.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  push(time: number, id: string): void {
    this.times.push(time);
    this.ids.push(id);
    this.up(this.times.length - 1);
  }

  /** Time of the first entry, or undefined when empty. */
  peekTime(): number | undefined {
    return this.times[0];
  }

  /** Id of the first entry, or undefined when empty. */
  peekId(): string | undefined {
    return this.ids[0];
  }

  /** Removes the first entry (call `peek*` first to read it). */
  pop(): void {
    const n = this.times.length - 1;
    if (n < 0) return;
    const lastTime = this.times.pop()!;
    const lastId = this.ids.pop()!;
    if (n > 0) {
      this.times[0] = lastTime;
      this.ids[0] = lastId;
      this.down(0);
    }
  }

  private less(i: number, j: number): boolean {
    const a = this.times[i]!;
    const b = this.times[j]!;
    return a < b || (a === b && this.ids[i]! < this.ids[j]!);
  }

  private swap(i: number, j: number): void {
    const t = this.times[i]!;
    this.times[i] = this.times[j]!;
    this.times[j] = t;
    const d = this.ids[i]!;
    this.ids[i] = this.ids[j]!;
    this.ids[j] = d;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.times.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const m = r < n && this.less(r, l) ? r : l;
      if (!this.less(m, i)) return;
      this.swap(i, m);
      i = m;
    }
  }
}
