import { describe, expect, it } from 'vitest';
import { StateError } from '../../lib/errors.ts';
import { listState, mapState, taskValueState, valueState } from '../../lib/state/descriptors.ts';
import { StateStore } from '../../lib/state/stateStore.ts';

const descriptors = {
  account: valueState<{ balance: number }>(),
  seen: mapState<number>(),
  events: listState<string>(),
  total: taskValueState<number>(),
};

function make() {
  const store = new StateStore(descriptors);
  return { store, s: store.handles(descriptors) };
}

describe('StateStore', () => {
  it('scopes keyed state to the current key and task state to the task', () => {
    const { store, s } = make();
    store.beginRecord('a');
    s.account.set({ balance: 1 });
    s.total.set(10);
    store.commitRecord();
    store.beginRecord('b');
    expect(s.account.get()).toBeUndefined();
    expect(s.total.get()).toBe(10);
    s.account.set({ balance: 2 });
    store.commitRecord();
    store.beginRecord('a');
    expect(s.account.get()).toEqual({ balance: 1 });
    expect(store.keyCount).toBe(3);
  });

  it('supports map and list state per key', () => {
    const { store, s } = make();
    store.beginRecord('k');
    s.seen.put('x', 1);
    s.seen.put('y', 2);
    s.seen.remove('x');
    s.events.add('e1');
    s.events.addAll(['e2', 'e3']);
    expect([...s.seen.entries()]).toEqual([['y', 2]]);
    expect(s.seen.size).toBe(1);
    expect(s.seen.has('x')).toBe(false);
    expect(s.events.get()).toEqual(['e1', 'e2', 'e3']);
    s.events.update(['only']);
    expect(s.events.get()).toEqual(['only']);
    s.seen.remove('y');
    expect(store.table('seen')!.data.has('k')).toBe(false); // empty maps are not stored
    s.events.clear();
    expect(s.events.get()).toEqual([]);
  });

  it('rolls back every change of a failed record, leaving no partial state', () => {
    const { store, s } = make();
    store.beginRecord('k');
    s.account.set({ balance: 1 });
    s.seen.put('x', 1);
    s.events.add('e1');
    s.total.set(5);
    store.commitRecord();
    const before = JSON.stringify(
      [...store.allTables()].map((t) => [
        t.name,
        [...t.data].map(([k, v]) => [k, v instanceof Map ? [...v] : v]),
      ]),
    );

    store.beginRecord('k');
    s.account.set({ balance: 99 });
    s.account.clear();
    s.seen.put('x', 2);
    s.seen.put('z', 3);
    s.seen.clear();
    s.seen.put('w', 4);
    s.events.add('e2');
    s.events.update(['gone']);
    s.events.add('e3');
    s.total.set(6);
    store.rollbackRecord();
    const after = JSON.stringify(
      [...store.allTables()].map((t) => [
        t.name,
        [...t.data].map(([k, v]) => [k, v instanceof Map ? [...v] : v]),
      ]),
    );
    expect(after).toBe(before);

    store.beginRecord('new');
    s.account.set({ balance: 1 });
    s.events.add('x');
    store.rollbackRecord();
    expect(store.table('account')!.data.has('new')).toBe(false);
    expect(store.table('events')!.data.has('new')).toBe(false);
  });

  it('freezes stored values so they cannot change behind its back', () => {
    const { store, s } = make();
    store.beginRecord('k');
    const v = { balance: 1 };
    s.account.set(v);
    expect(() => {
      (s.account.get() as { balance: number }).balance = 2;
    }).toThrow(TypeError);
    expect(s.account.get()).toEqual({ balance: 1 });
  });

  it('tracks which keys changed since the last checkpoint', () => {
    const { store, s } = make();
    store.beginRecord('a');
    s.account.set({ balance: 1 });
    store.beginRecord('b');
    s.seen.put('m', 1);
    expect(store.changedKeyCount).toBe(2);
    const changes = store.takeChanges();
    expect([...changes.get('account')!]).toEqual(['a']);
    expect([...changes.get('seen')!]).toEqual(['b']);
    expect(store.changedKeyCount).toBe(0);
  });

  it('refuses keyed state without a key, and undeclared or mistyped state', () => {
    const { store, s } = make();
    store.beginRecord(null);
    expect(() => s.account.get()).toThrow(StateError);
    expect(() => s.total.set(1)).not.toThrow();
    expect(() => store.handles({ account: mapState<number>() })).toThrow(/not declared as map/);
  });

  it('migrates values saved with an older schema version, and refuses what it cannot migrate', () => {
    const old = {
      name: 'account',
      kind: 'value' as const,
      scope: 'key' as const,
      version: 1,
      data: new Map([['a', { cents: 150 }]]),
    };
    const v2 = {
      account: valueState<{ euros: number }>({
        version: 2,
        migrate: (v) => ({ euros: (v as { cents: number }).cents / 100 }),
      }),
    };
    const migrated = new StateStore(v2, [old]);
    migrated.beginRecord('a');
    expect(migrated.handles(v2).account.get()).toEqual({ euros: 1.5 });
    expect(() => new StateStore({ account: valueState({ version: 2 }) }, [old])).toThrow(/declare migrate/);
    expect(() => new StateStore({ account: valueState() }, [{ ...old, version: 3 }])).toThrow(/newer/);
    expect(() => new StateStore({ account: mapState() }, [old])).toThrow(StateError);
  });

  it('carries state that is no longer declared through unchanged', () => {
    const old = {
      name: 'legacy',
      kind: 'value' as const,
      scope: 'key' as const,
      version: 1,
      data: new Map([['a', 1]]),
    };
    const store = new StateStore({}, [old]);
    expect(store.table('legacy')!.data.get('a')).toBe(1);
    expect(store.keyCount).toBe(1);
  });
});
