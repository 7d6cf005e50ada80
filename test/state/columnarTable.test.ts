import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ColumnarTable } from '../../lib/state/columnarTable.ts';

/** A table of `entries`, its values an array or (`made`) made on demand row by row. */
function table(entries: Array<[string, number]>, made = false): ColumnarTable<number> {
  const lengths = new Uint32Array(entries.map(([k]) => k.length));
  const values = entries.map(([, v]) => v);
  return ColumnarTable.fromColumns(
    entries.map(([k]) => k).join(''),
    lengths,
    made ? { length: values.length, valueAt: (r: number) => values[r]! } : values,
  );
}

const key = fc.oneof(fc.string({ maxLength: 4 }), fc.string({ minLength: 65, maxLength: 80 }));

describe('ColumnarTable', () => {
  it('behaves as a Map built from the same entries, under any reads, writes and deletes (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(key, fc.integer()), { selector: ([k]) => k, maxLength: 60 }),
        fc.array(
          fc.tuple(fc.constantFrom('get', 'has', 'set', 'delete', 'size', 'iterate'), key, fc.integer()),
          { maxLength: 80 },
        ),
        fc.boolean(),
        (entries, ops, made) => {
          const t = table(entries, made);
          const m = new Map(entries);
          for (const [op, k, v] of ops) {
            if (op === 'get') expect(t.get(k)).toBe(m.get(k));
            else if (op === 'has') expect(t.has(k)).toBe(m.has(k));
            else if (op === 'set') {
              t.set(k, v);
              m.set(k, v);
            } else if (op === 'delete') expect(t.delete(k)).toBe(m.delete(k));
            else if (op === 'size') expect(t.size).toBe(m.size);
            else expect(new Map(t)).toEqual(m);
          }
          expect(t.size).toBe(m.size);
          expect(new Map([...t.entries()])).toEqual(m);
          expect(new Set(t.keys())).toEqual(new Set(m.keys()));
          expect([...t.values()].sort()).toEqual([...m.values()].sort());
          const seen: Array<[string, number]> = [];
          t.forEach((value, k) => {
            seen.push([k, value]);
          });
          expect(new Map(seen)).toEqual(m);
          expect(t).toBeInstanceOf(Map);
        },
      ),
    );
  });

  it('keeps the value a made row gave once the row is read: later reads return the same object', () => {
    let made = 0;
    const t = ColumnarTable.fromColumns('abc', new Uint32Array([1, 1, 1]), {
      length: 3,
      valueAt: (r: number) => {
        made++;
        return Object.freeze({ row: r });
      },
    });
    expect([...t.values()]).toEqual([{ row: 0 }, { row: 1 }, { row: 2 }]);
    const b = t.get('b');
    expect(b).toEqual({ row: 1 });
    expect(t.get('b')).toBe(b);
    expect([...t].find(([k]) => k === 'b')![1]).toBe(b);
    // Rows not read are made again at each iteration (3 + 1 + the 2 rows still in the columns).
    expect(made).toBe(6);
    t.delete('a');
    expect(t.size).toBe(2);
    expect(new Map(t)).toEqual(
      new Map([
        ['b', { row: 1 }],
        ['c', { row: 2 }],
      ]),
    );
  });

  it('builds its index in scratch memory it is given, even over the lengths, or allocates when it is short', () => {
    const keys = Array.from({ length: 50 }, (_, i) => `key${i}`);
    for (const extra of [0, -1]) {
      const memory = new Int32Array(keys.length * 3 + extra);
      const lengths = new Uint32Array(memory.buffer, 0, keys.length);
      lengths.set(keys.map((k) => k.length));
      const t = ColumnarTable.fromColumns(
        keys.join(''),
        lengths,
        keys.map((_, i) => i),
        memory,
      );
      expect(new Map(t)).toEqual(new Map(keys.map((k, i) => [k, i])));
      for (const k of keys) expect(t.has(k)).toBe(true);
      expect(t.has('key50')).toBe(false);
    }
  });

  it('refuses columns whose lengths do not add up, or a key twice', () => {
    expect(() => ColumnarTable.fromColumns('abc', new Uint32Array([1, 1]), [1, 2])).toThrow(/lengths/);
    expect(() => ColumnarTable.fromColumns('abab', new Uint32Array([2, 2]), [1, 2])).toThrow(/twice/);
    expect(() => ColumnarTable.fromColumns('ab', new Uint32Array([1, 1]), [1])).toThrow(/count/);
  });

  it('clears', () => {
    const t = table([
      ['a', 1],
      ['b', 2],
    ]);
    t.set('c', 3);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get('a')).toBeUndefined();
    expect([...t]).toEqual([]);
  });
});
