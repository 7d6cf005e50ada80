/**
 * A seeded 32-bit string hash (FNV-1a over UTF-16 code units) for the state's own hash tables
 * (`ChangeSet`, `ColumnarTable`). Keys come from records, i.e. from outside: the seed is drawn per
 * process, like V8's own string hash seed, so crafted keys cannot choose their slots. Keys longer than
 * 64 code units are hashed by their first and last 32 and their length.
 */

const SEED = (Math.random() * 0x100000000) >>> 0;
const PRIME = 0x01000193;

/** The hash of `s.slice(from, to)`, without making the slice. */
export function hashRange(s: string, from: number, to: number): number {
  let h = (0x811c9dc5 ^ SEED) >>> 0;
  const n = to - from;
  if (n <= 64) {
    for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), PRIME);
  } else {
    for (let i = from; i < from + 32; i++) h = Math.imul(h ^ s.charCodeAt(i), PRIME);
    for (let i = to - 32; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), PRIME);
    h = Math.imul(h ^ n, PRIME);
  }
  return h >>> 0;
}

export function hashString(s: string): number {
  return hashRange(s, 0, s.length);
}
