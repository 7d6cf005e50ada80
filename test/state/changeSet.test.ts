import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChangeSet } from '../../lib/state/changeSet.ts';

describe('ChangeSet', () => {
  it('holds each key once, in first-added order, and forgets them at take (property, against Set)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.oneof(fc.string({ maxLength: 3 }), fc.string({ minLength: 60, maxLength: 90 })), {
            maxLength: 200,
          }),
          {
            maxLength: 8,
          },
        ),
        (epochs) => {
          const set = new ChangeSet();
          for (const keys of epochs) {
            for (const k of keys) set.add(k);
            const expected = [...new Set(keys)];
            expect(set.size).toBe(expected.length);
            for (const k of keys) expect(set.has(k)).toBe(true);
            expect([...set]).toEqual(expected);
            expect(set.take()).toEqual(expected);
            expect(set.size).toBe(0);
            for (const k of keys) expect(set.has(k)).toBe(false);
          }
        },
      ),
    );
  });

  it('grows past its capacity and keeps working across many generations', () => {
    const set = new ChangeSet(4);
    for (let gen = 0; gen < 50; gen++) {
      for (let i = 0; i < 1000; i++) set.add(`k${(i + gen * 13) % 700}`);
      expect(set.take()).toHaveLength(700);
    }
  });
});
