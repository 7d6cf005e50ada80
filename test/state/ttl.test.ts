import { describe, expect, it } from 'vitest';
import { listState, mapState, taskValueState, valueState } from '../../lib/state/descriptors.ts';
import { deltaSections } from '../../lib/state/snapshotCodec.ts';
import { StateStore, ttlTableName } from '../../lib/state/stateStore.ts';

const descriptors = {
  session: valueState<number>({ ttl: { ms: 100 } }),
  seen: mapState<number>({ ttl: { ms: 100, refresh: 'onReadAndWrite' } }),
  events: listState<string>({ ttl: { ms: 50, time: 'event' } }),
  total: taskValueState<number>({ ttl: { ms: 100 } }),
  forever: valueState<number>(),
};

function make() {
  const store = new StateStore(descriptors);
  store.processingTime = 1000;
  return { store, s: store.handles(descriptors) };
}

function write(store: StateStore, key: string, fn: () => void) {
  store.beginRecord(key);
  fn();
  store.commitRecord();
}

describe('StateStore TTL', () => {
  it('never returns an expired value, and a write to an expired entry starts from nothing', () => {
    const { store, s } = make();
    write(store, 'a', () => {
      s.session.set(1);
      s.seen.put('x', 1);
      s.total.set(5);
      s.forever.set(9);
    });
    store.processingTime = 1099;
    store.beginRecord('a');
    expect(s.session.get()).toBe(1);
    expect(s.total.get()).toBe(5);
    expect(s.seen.get('x')).toBe(1); // a read renews the map (onReadAndWrite): deadline 1199
    store.processingTime = 1100; // the deadline: expired from here on
    expect(s.session.get()).toBeUndefined();
    expect(s.total.get()).toBeUndefined();
    expect(s.forever.get()).toBe(9);
    expect(s.seen.get('x')).toBe(1);
    store.processingTime = 1300;
    expect(s.seen.size).toBe(0);
    expect([...s.seen.keys()]).toEqual([]);
    s.seen.put('y', 2); // the expired map is not resurrected
    expect([...s.seen.entries()]).toEqual([['y', 2]]);
    store.commitRecord();
  });

  it('removes expired entries through the expiry index, tracked as deletions for the next delta', () => {
    const { store, s } = make();
    for (const k of ['a', 'b', 'c']) write(store, k, () => s.session.set(1));
    store.processingTime = 1050;
    write(store, 'b', () => s.session.set(2)); // renewed: deadline 1150
    store.takeChanges();
    store.processingTime = 1100;
    expect(store.expire()).toBe(2);
    expect([...store.table('session')!.data.keys()]).toEqual(['b']);
    expect([...store.table(ttlTableName('session'))!.data]).toEqual([['b', 1150]]);
    const delta = deltaSections(store, store.takeChanges());
    expect(delta.find((d) => d.name === 'session')?.deletes).toEqual(['a', 'c']);
    expect(delta.find((d) => d.name === ttlTableName('session'))?.deletes).toEqual(['a', 'c']);
    expect(store.nextExpiry('processing')).toBe(1150);
    store.processingTime = 1200;
    expect(store.expire()).toBe(1);
    expect(store.nextExpiry('processing')).toBeUndefined();
  });

  it('event-time TTL: stamped with the record’s event time, expired once the watermark reaches the deadline', () => {
    const { store, s } = make();
    store.eventTime = 500;
    write(store, 'k', () => s.events.add('e'));
    expect(store.nextExpiry('event')).toBe(550);
    store.watermark = 549;
    store.beginRecord('k');
    expect(s.events.get()).toEqual(['e']);
    store.watermark = 550;
    expect(s.events.get()).toEqual([]);
    store.commitRecord();
    expect(store.expire()).toBe(1);
    expect(store.table('events')!.data.size).toBe(0);
  });

  it('rolls back deadlines with the record', () => {
    const { store, s } = make();
    write(store, 'a', () => s.session.set(1));
    store.processingTime = 1080;
    store.beginRecord('a');
    s.session.set(2);
    s.session.clear();
    store.rollbackRecord();
    expect(store.table(ttlTableName('session'))!.data.get('a')).toBe(1100);
    store.processingTime = 1100;
    expect(store.expire()).toBe(1);
  });

  it('rebuilds the expiry index of a restored store and keeps garbage bounded', () => {
    const { store, s } = make();
    for (let i = 0; i < 3000; i++) {
      store.processingTime = 1000 - i; // deadlines moving earlier push new heap entries
      write(store, 'hot', () => s.session.set(i));
    }
    store.processingTime = 5000;
    expect(store.expire()).toBe(1);
    const restored = new StateStore(
      descriptors,
      [...store.allTables()].map((t) => ({ ...t, data: new Map(t.data) })),
    );
    expect(restored.nextExpiry('processing')).toBeUndefined();
    store.processingTime = 0;
    write(store, 'x', () => s.session.set(1));
    const again = new StateStore(
      descriptors,
      [...store.allTables()].map((t) => ({ ...t, data: new Map(t.data) })),
    );
    expect(again.nextExpiry('processing')).toBe(100);
  });

  it('checks TTL options', () => {
    expect(() => valueState({ ttl: { ms: 0 } })).toThrow(RangeError);
    expect(() => valueState({ ttl: { ms: 1, time: 'wall' as 'event' } })).toThrow(RangeError);
    expect(valueState({ ttl: { ms: 5 } }).ttl).toEqual({ ms: 5, time: 'processing', refresh: 'onWrite' });
  });
});
