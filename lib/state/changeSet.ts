/**
 * The keys of one state table written since the last checkpoint, each once.
 *
 * A hash set written by hand on purpose: a JavaScript `Set` that starts empty every epoch pays for
 * growing its table again and again, about 300 ns per new key on this project's benchmark machine,
 * a third of the whole cost of a record in the raw loop. This one keeps its table from one epoch to
 * the next and forgets its entries in O(1) (a generation number per slot), so adding a key is a
 * hash, a probe and a push (the hash is seeded: ./stringHash.ts). Each slot keeps its key's hash too:
 * a probe compares strings only when the hashes agree, so passing an occupied slot does not read the
 * string kept there (one held since earlier in the epoch, no longer in the cache).
 */

import { hashString as hashOf } from './stringHash.ts';

export class ChangeSet {
  private keys: Array<string | undefined>;
  private hashes: Uint32Array;
  private gens: Uint32Array;
  private gen = 1;
  private list: string[] = [];

  constructor(capacity = 16) {
    let c = 16;
    while (c < capacity) c *= 2;
    this.keys = new Array<string | undefined>(c);
    this.hashes = new Uint32Array(c);
    this.gens = new Uint32Array(c);
  }

  get size(): number {
    return this.list.length;
  }

  add(key: string): void {
    const mask = this.gens.length - 1;
    const h = hashOf(key);
    let i = h & mask;
    for (;;) {
      if (this.gens[i] !== this.gen) {
        this.gens[i] = this.gen;
        this.hashes[i] = h;
        this.keys[i] = key;
        this.list.push(key);
        // At most half full: probes stay short.
        if (this.list.length * 2 > this.gens.length) this.grow();
        return;
      }
      if (this.hashes[i] === h && this.keys[i] === key) return;
      i = (i + 1) & mask;
    }
  }

  has(key: string): boolean {
    const mask = this.gens.length - 1;
    const h = hashOf(key);
    let i = h & mask;
    while (this.gens[i] === this.gen) {
      if (this.hashes[i] === h && this.keys[i] === key) return true;
      i = (i + 1) & mask;
    }
    return false;
  }

  /** The keys added since the last call, each once, in the order they were first added; then empty. */
  take(): readonly string[] {
    const out = this.list;
    this.list = [];
    this.gen++;
    if (this.gen === 0xffffffff) {
      this.gens.fill(0);
      this.gen = 1;
    }
    // Drop the strings of the old generation only lazily (slots are overwritten as they are reused).
    return out;
  }

  [Symbol.iterator](): Iterator<string> {
    return this.list[Symbol.iterator]();
  }

  private grow(): void {
    const list = this.list;
    this.keys = new Array<string | undefined>(this.gens.length * 2);
    this.hashes = new Uint32Array(this.gens.length * 2);
    this.gens = new Uint32Array(this.gens.length * 2);
    this.gen = 1;
    this.list = [];
    for (const k of list) this.add(k);
  }
}
