import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StateError } from '../../lib/errors.ts';
import { decodeSnapshot, encodeSnapshot, fullSections, tablesOf } from '../../lib/state/snapshotCodec.ts';
import { StateStore } from '../../lib/state/stateStore.ts';
import { TimeQueue } from '../../lib/state/timeQueue.ts';
import { TIMER_DESCRIPTORS, TIMER_TABLES, type Timer, TimerService } from '../../lib/state/timers.ts';

function make(restored?: StateStore) {
  const store = restored ?? new StateStore(TIMER_DESCRIPTORS);
  return { store, timers: new TimerService(store) };
}

/** Takes every timer of `domain` due at `limit`, as the engine does. */
function drain(t: TimerService, domain: 'event' | 'processing', limit: number): Timer[] {
  const out: Timer[] = [];
  for (let x = t.pollDue(domain, limit); x; x = t.pollDue(domain, limit)) out.push(x);
  t.commit();
  return out;
}

/** A checkpoint and restore of the store's tables, through the snapshot codec. */
function roundTrip(store: StateStore): StateStore {
  const meta = {
    pipeline: 'p',
    topic: 't',
    partition: 0,
    epoch: 1,
    committedOffset: 1n,
    kind: 'full' as const,
    baseEpoch: null,
    parentEpoch: null,
    attempt: 'a',
    createdAt: '2024-01-01T00:00:00.000Z',
  };
  const decoded = decodeSnapshot(encodeSnapshot(meta, fullSections(store.allTables())));
  return new StateStore(TIMER_DESCRIPTORS, tablesOf(decoded));
}

describe('TimeQueue', () => {
  it('pops in (time, id) order whatever the insertion order, also after a rebuild', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: -5, max: 5 }), fc.constantFrom('a', 'b', 'c', 'd')), {
          maxLength: 60,
        }),
        fc.boolean(),
        (entries, rebuild) => {
          const q = new TimeQueue();
          if (rebuild)
            q.reset(
              entries.map(([t]) => t),
              entries.map(([, id]) => id),
            );
          else for (const [t, id] of entries) q.push(t, id);
          const out: Array<[number, string]> = [];
          while (q.size > 0) {
            out.push([q.peekTime()!, q.peekId()!]);
            q.pop();
          }
          const expected = [...entries].sort(
            (a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0),
          );
          expect(out).toEqual(expected);
        },
      ),
    );
  });
});

describe('TimerService', () => {
  it('fires due timers in timestamp, tag, key order, each once, and never early', () => {
    const { store, timers } = make();
    store.beginRecord(null);
    timers.register('event', 'k2', 10);
    timers.register('event', 'k1', 10);
    timers.register('event', 'k1', 10); // the same timer: no change
    timers.register('event', 'k1', 5, 'w');
    timers.register('event', 'k0', 10, 'a');
    timers.register('processing', 'k1', 7);
    store.commitRecord();
    expect(timers.count('event')).toBe(4);
    expect(drain(timers, 'event', 4)).toEqual([]);
    expect(drain(timers, 'event', 10).map((t) => `${t.timestamp}/${t.tag}/${t.key}`)).toEqual([
      '5/w/k1',
      '10//k1',
      '10//k2',
      '10/a/k0',
    ]);
    expect(drain(timers, 'event', 100)).toEqual([]);
    expect(timers.next('processing')).toBe(7);
    expect(drain(timers, 'processing', 7)).toEqual([
      { domain: 'processing', timestamp: 7, key: 'k1', tag: '' },
    ]);
  });

  it('deletes timers, and a deleted and set again timer fires once', () => {
    const { store, timers } = make();
    store.beginRecord(null);
    timers.register('event', 'a', 1);
    timers.register('event', 'b', 2);
    timers.delete('event', 'a', 1);
    timers.delete('event', 'zzz', 1); // absent: no change
    timers.register('event', 'b', 3);
    timers.delete('event', 'b', 2);
    timers.register('event', 'b', 2);
    store.commitRecord();
    expect(timers.next('event')).toBe(2);
    expect(drain(timers, 'event', 10).map((t) => `${t.key}@${t.timestamp}`)).toEqual(['b@2', 'b@3']);
  });

  it('rolls back with the store: set timers vanish, taken timers are due again', () => {
    const { store, timers } = make();
    store.beginRecord(null);
    timers.register('event', 'a', 1);
    timers.register('event', 'b', 2);
    store.commitRecord();
    timers.commit();
    store.beginRecord(null);
    const mark = store.mark();
    const tmark = timers.mark();
    expect(timers.pollDue('event', 5)?.key).toBe('a');
    timers.register('event', 'c', 0);
    store.rollbackTo(mark);
    timers.rollbackTo(tmark);
    expect(drain(timers, 'event', 5).map((t) => t.key)).toEqual(['a', 'b']);
  });

  it('is state: a checkpoint carries the timers, a restored task fires the same ones in the same order', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.boolean(),
            fc.integer({ min: 0, max: 20 }),
            fc.constantFrom('k1', 'k2', 'k\u0000x', ''),
            fc.constantFrom('', 't'),
          ),
          { maxLength: 40 },
        ),
        fc.integer({ min: 0, max: 20 }),
        (ops, limit) => {
          const { store, timers } = make();
          store.beginRecord(null);
          for (const [set, ts, key, tag] of ops) {
            if (set) timers.register('event', key, ts, tag);
            else timers.delete('event', key, ts, tag);
          }
          store.commitRecord();
          const restored = make(roundTrip(store));
          expect(drain(restored.timers, 'event', limit)).toEqual(drain(timers, 'event', limit));
          expect(restored.timers.count('event')).toBe(timers.count('event'));
        },
      ),
    );
  });

  it('refuses timestamps that are not integers and tags with NUL', () => {
    const { store, timers } = make();
    store.beginRecord(null);
    expect(() => timers.register('event', 'k', 1.5)).toThrow(StateError);
    expect(() => timers.register('event', 'k', Number.POSITIVE_INFINITY)).toThrow(StateError);
    expect(() => timers.register('event', 'k', 1, 'a\u0000b')).toThrow(StateError);
  });

  it('keeps garbage bounded: a heap of deleted timers is rebuilt from the table', () => {
    const { store, timers } = make();
    for (let i = 0; i < 5000; i++) {
      store.beginRecord(null);
      timers.register('event', 'k', i);
      timers.delete('event', 'k', i);
      store.commitRecord();
      timers.commit();
    }
    expect(timers.count('event')).toBe(0);
    expect(store.table(TIMER_TABLES.event)!.data.size).toBe(0);
    const heap = (timers as unknown as { domains: { event: { queue: TimeQueue } } }).domains.event.queue;
    expect(heap.size).toBeLessThanOrEqual(1025);
    expect(timers.next('event')).toBeUndefined();
  });
});
