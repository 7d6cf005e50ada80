/**
 * Incremental checkpoints: delta chains, compaction, and that a cold restore of any checkpoint
 * equals the state the warm container had when it committed it.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { HookedCommitStore, HookedSnapshotStore, SimulatedCrash } from '../../harness/faultyStores.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { loadCheckpoint } from '../../lib/checkpoint/restore.ts';
import type { CommitRecord } from '../../lib/checkpoint/stores.ts';
import { loadConfig, type TidemarkConfig } from '../../lib/config/config.ts';
import {
  BatchFailedError,
  SnapshotCorruptError,
  SnapshotIdentityError,
  SnapshotMissingError,
} from '../../lib/errors.ts';
import { tablesToJson } from '../../lib/ops/stateJson.ts';
import { listState, mapState, taskValueState, valueState } from '../../lib/state/descriptors.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

/** A processor exercising every state kind: value "op:key:arg" records. */
const kitchen = defineProcessor({
  state: {
    v: valueState<number>(),
    m: mapState<string>(),
    l: listState<number>(),
    t: taskValueState<number>(),
  },
  process(record, { state }) {
    const [op, arg] = record.value!.toString().split(':');
    const n = Number(arg);
    state.t.set((state.t.get() ?? 0) + 1);
    if (op === 'set') state.v.set(n);
    else if (op === 'del') state.v.clear();
    else if (op === 'put') state.m.put(`f${n % 3}`, arg!);
    else if (op === 'rm') state.m.remove(`f${n % 3}`);
    else if (op === 'add') state.l.add(n);
    else if (op === 'clr') state.l.clear();
  },
});

const TASK = { pipeline: 'inc', topic: 'orders', partition: 0 };

/**
 * Every test runs with snapshots in S3, with inline snapshots (the default: states this small
 * travel inside the commit item), and with inline budgets small enough that chains mix inline and
 * S3 links and spill often.
 */
const MODES = [
  ['snapshots in S3', { snapshotInlineMaxBytes: 0 }],
  ['inline snapshots', {}],
  ['mixed chains', { snapshotInlineMaxBytes: 400, commitInlineMaxBytes: 1_600 }],
] as const satisfies ReadonlyArray<readonly [string, Partial<TidemarkConfig>]>;
let mode: Partial<TidemarkConfig> = MODES[0][1];

function setup(overrides: Partial<TidemarkConfig> = {}) {
  const snapshots = new HookedSnapshotStore(new MemorySnapshotStore());
  const commits = new HookedCommitStore(new MemoryCommitStore());
  const config = loadConfig(
    {},
    { bucket: 'b', table: 't', pipeline: 'inc', compactDeltaRatio: 1000, ...mode, ...overrides },
  );
  const engine = () => new EpochEngine({ processor: kitchen, config, snapshots, commits });
  const mem = snapshots.inner as MemorySnapshotStore;
  const memCommits = commits.inner as MemoryCommitStore;
  return { snapshots, commits, engine, mem, memCommits, config };
}

async function restoredJson(s: ReturnType<typeof setup>, commit?: CommitRecord) {
  const c = commit ?? (await s.memCommits.read(TASK))!;
  const { store } = await loadCheckpoint(s.snapshots, TASK, c, kitchen.state);
  return tablesToJson(store.allTables());
}

const ops = ['set', 'del', 'put', 'rm', 'add', 'clr'] as const;
const rec = (offset: number, key: string, op: string, arg: number): TestRecord => ({
  offset,
  key,
  value: `${op}:${arg}`,
});

/** The state the warm container holds (of the one task these tests run). */
const warmStore = (engine: object) =>
  (engine as { cache: Map<string, { store: { allTables(): Iterable<never> } }> }).cache.values().next().value!
    .store;

/** Object keys a commit item references (inline links are in the item, not objects). */
const objectKeys = (c: CommitRecord) =>
  new Set([c, ...c.history].flatMap((x) => x.chain.filter((r) => !r.inline).map((r) => r.key)));

describe.each(MODES)('incremental checkpoints (%s)', (_name, modeConfig) => {
  beforeAll(() => {
    mode = modeConfig;
  });

  it('writes deltas chained to a full snapshot and compacts every K deltas', async () => {
    const s = setup({ compactAfterDeltas: 3 });
    const e = s.engine();
    const kinds: string[] = [];
    for (let i = 0; i < 9; i++) {
      await e.processEvent(mskEvent([rec(i, `k${i % 4}`, 'set', i)]));
      const c = (await s.memCommits.read(TASK))!;
      kinds.push(c.chain.map((r) => (r.kind === 'full' ? 'F' : 'd')).join(''));
    }
    expect(kinds).toEqual(['F', 'Fd', 'Fdd', 'Fddd', 'F', 'Fd', 'Fdd', 'Fddd', 'F']);
  });

  it('compacts when the deltas outweigh a fraction of the full snapshot', async () => {
    // The ratio bounds what a restore reads from S3: S3 deltas only.
    const s = setup({ compactDeltaRatio: 0.5, compactAfterDeltas: 100, snapshotInlineMaxBytes: 0 });
    const e = s.engine();
    // A big state first, then epochs changing one key each: small deltas until they add up.
    await e.processEvent(mskEvent(Array.from({ length: 3000 }, (_, i) => rec(i, `key-${i}`, 'set', i))));
    const chainLengths: number[] = [];
    for (let i = 3000; i < 3060; i++) {
      await e.processEvent(mskEvent([rec(i, 'key-1', 'set', i)]));
      chainLengths.push((await s.memCommits.read(TASK))!.chain.length);
    }
    const base = (await s.memCommits.read(TASK))!.chain[0]!.bytes;
    expect(Math.max(...chainLengths)).toBeGreaterThan(2);
    expect(chainLengths).toContain(1); // compacted at least once
    const c = (await s.memCommits.read(TASK))!;
    expect(c.chain.slice(1).reduce((n, r) => n + r.bytes, 0)).toBeLessThanOrEqual(0.5 * base);
  });

  it('compacts epoch after epoch when every delta is over the bound, and goes back to deltas when they are light', async () => {
    // After a delta found too heavy, the next heavy ones are judged by its weight (not encoded).
    const s = setup({ compactDeltaRatio: 0.5, compactAfterDeltas: 100, snapshotInlineMaxBytes: 0 });
    const e = s.engine();
    const n = 3000;
    let offset = 0;
    await e.processEvent(mskEvent(Array.from({ length: n }, (_, i) => rec(offset++, `key-${i}`, 'set', i))));
    const chains: string[] = [];
    const kinds = () => chainKinds(s);
    for (let epoch = 0; epoch < 12; epoch++) {
      // Every key: a delta of them outweighs half the full snapshot.
      const heavy = Array.from({ length: n }, (_, i) => rec(offset++, `key-${i}`, 'set', epoch * 7 + i));
      await e.processEvent(mskEvent(heavy));
      chains.push(await kinds());
      expect(await restoredJson(s)).toEqual(tablesToJson(warmStore(e).allTables()));
    }
    expect(chains).toEqual(Array(12).fill('F'));
    await e.processEvent(mskEvent([rec(offset++, 'key-5', 'set', -1), rec(offset++, 'key-6', 'del', 0)]));
    expect(await kinds()).toBe('Fd');
    expect(await restoredJson(s)).toEqual(tablesToJson(warmStore(e).allTables()));
  });

  it('spills whose merged delta is heavy compact, and spills of a few hot keys go back to merged deltas', async () => {
    // Deltas travel inline until the chain's share of the commit item is used; then a spill merges
    // them into one delta in S3, or compacts when that delta would be too heavy. After a spill found
    // its union heavy, the next spills are judged from the share of distinct keys it had (no union).
    const s = setup({
      compactDeltaRatio: 0.5,
      compactAfterDeltas: 100,
      snapshotInlineMaxBytes: 4096,
      commitInlineMaxBytes: 16384,
    });
    const e = s.engine();
    const n = 4000;
    let offset = 0;
    await e.processEvent(mskEvent(Array.from({ length: n }, (_, i) => rec(offset++, `key-${i}`, 'set', i))));
    const chains: string[] = [];
    const kinds = () => chainKinds(s);
    const epochOf = async (keys: number[], arg: number) => {
      await e.processEvent(mskEvent(keys.map((k) => rec(offset++, `key-${k}`, 'set', arg + k))));
      chains.push(await kinds());
      expect(await restoredJson(s)).toEqual(tablesToJson(warmStore(e).allTables()));
    };
    // Phase 1: 700 different keys per epoch, so every merged delta is heavy.
    for (let epoch = 0; epoch < 30; epoch++) {
      await epochOf(
        Array.from({ length: 700 }, (_, i) => (epoch * 700 + i) % n),
        epoch,
      );
    }
    expect(chains.filter((c) => c === 'F').length).toBeGreaterThanOrEqual(3);
    expect(chains.some((c) => c.includes('d'))).toBe(false);
    // Phase 2: the same 40 keys every epoch (their union stays small): spills become merged deltas
    // again once the share of distinct keys is measured anew.
    chains.length = 0;
    for (let epoch = 0; epoch < 60; epoch++) {
      await epochOf(
        Array.from({ length: 40 }, (_, i) => i * 7),
        100 + epoch,
      );
    }
    expect(chains.some((c) => /^Fd/.test(c))).toBe(true);
  });

  it('writes delta bytes that grow with the changed keys, not the state', async () => {
    const s = setup({ compactAfterDeltas: 100, compactDeltaRatio: 1, epochMaxRecords: 100_000 });
    const e = s.engine();
    const n = 20_000;
    await e.processEvent(mskEvent(Array.from({ length: n }, (_, i) => rec(i, `acct-${i}`, 'set', i))));
    const full = (await s.memCommits.read(TASK))!.chain[0]!;
    await e.processEvent(
      mskEvent(Array.from({ length: n / 100 }, (_, i) => rec(n + i, `acct-${i * 100}`, 'set', -i))),
    );
    const delta = (await s.memCommits.read(TASK))!.chain[1]!;
    expect(delta.kind).toBe('delta');
    expect(delta.entries).toBe(n / 100 + 1); // the changed keys + the task counter
    expect(delta.bytes / full.bytes).toBeLessThan(0.05);
  });

  it('restores any checkpoint of a random history exactly as the warm container had it (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.array(
            fc.tuple(
              fc.integer({ min: 0, max: 5 }),
              fc.constantFrom(...ops),
              fc.integer({ min: 0, max: 50 }),
            ),
            { minLength: 1, maxLength: 12 },
          ),
          {
            minLength: 1,
            maxLength: 10,
          },
        ),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(0.01, 0.5, 1000),
        async (epochs, k, ratio) => {
          const s = setup({ compactAfterDeltas: k, compactDeltaRatio: ratio });
          const warm = s.engine();
          let offset = 0;
          for (const batch of epochs) {
            await warm.processEvent(
              mskEvent(batch.map(([key, op, arg]) => rec(offset++, `k${key}`, op, arg))),
            );
            // What the warm container holds is what a cold restore of the new checkpoint must give.
            const viaWarm = tablesToJson(
              (warm as unknown as { cache: Map<string, { store: { allTables(): Iterable<never> } }> }).cache
                .values()
                .next()
                .value!.store.allTables(),
            );
            expect(await restoredJson(s)).toEqual(viaWarm);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('checks every link of the chain: a corrupt, missing or out-of-order link is a typed error', async () => {
    const s = setup({ compactAfterDeltas: 10, snapshotInlineMaxBytes: 0 });
    const e = s.engine();
    for (let i = 0; i < 4; i++) await e.processEvent(mskEvent([rec(i, 'k', 'add', i)]));
    const c = (await s.memCommits.read(TASK))!;
    expect(c.chain.map((r) => r.kind)).toEqual(['full', 'delta', 'delta', 'delta']);
    const middle = c.chain[2]!.key;
    const original = s.mem.objects.get(middle)!;
    const flipped = Buffer.from(original.body);
    flipped[40]! ^= 1;
    s.mem.objects.set(middle, { ...original, body: flipped });
    await expect(restoredJson(s)).rejects.toBeInstanceOf(SnapshotCorruptError);
    s.mem.objects.delete(middle);
    await expect(restoredJson(s)).rejects.toBeInstanceOf(SnapshotMissingError);
    s.mem.objects.set(middle, original);
    const swapped = { ...c, chain: [c.chain[0]!, c.chain[2]!, c.chain[1]!, c.chain[3]!] };
    await expect(restoredJson(s, swapped)).rejects.toBeInstanceOf(SnapshotIdentityError);
    const headless = { ...c, chain: c.chain.slice(1) };
    await expect(restoredJson(s, headless)).rejects.toBeInstanceOf(SnapshotIdentityError);
    // A cold engine refuses to process on a broken chain: nothing is applied, nothing committed.
    s.mem.objects.delete(middle);
    const err = await s
      .engine()
      .processEvent(mskEvent([rec(4, 'k', 'add', 4)]))
      .catch((x: unknown) => x);
    expect(err).toBeInstanceOf(BatchFailedError);
    expect((err as BatchFailedError).failures[0]!.error).toBeInstanceOf(SnapshotMissingError);
    expect((await s.memCommits.read(TASK))!.epoch).toBe(4);
  });

  it('writes a full snapshot after restoring migrated state', async () => {
    const s = setup({ compactAfterDeltas: 10 });
    const e = s.engine();
    for (let i = 0; i < 2; i++) await e.processEvent(mskEvent([rec(i, 'k', 'set', i)]));
    const v2 = defineProcessor({
      state: { ...kitchen.state, v: valueState<number>({ version: 2, migrate: (x) => (x as number) * 10 }) },
      process: kitchen.process as never,
    });
    const engine2 = new EpochEngine({
      processor: v2,
      config: s.config,
      snapshots: s.snapshots,
      commits: s.commits,
    });
    await engine2.processEvent(mskEvent([rec(2, 'other', 'set', 7)]));
    const c = (await s.memCommits.read(TASK))!;
    expect(c.chain.map((r) => r.kind)).toEqual(['full']);
    const { store } = await loadCheckpoint(s.snapshots, TASK, c, v2.state);
    expect(tablesToJson(store.allTables()).v).toEqual({ k: 10, other: 7 });
  });

  it('deletes its own snapshot after losing a commit race', async () => {
    const s = setup();
    const a = s.engine();
    const b = s.engine();
    await a.processEvent(mskEvent([rec(0, 'k', 'set', 1)]));
    await b.processEvent(mskEvent([rec(0, 'k', 'set', 1), rec(1, 'k', 'set', 2)]));
    const before = new Set(s.mem.objects.keys());
    const summary = await a.processEvent(mskEvent([rec(1, 'k', 'set', 2), rec(2, 'k', 'set', 3)]));
    expect(summary.commitConflicts).toBe(1);
    const c = (await s.memCommits.read(TASK))!;
    const referenced = objectKeys(c);
    const leftovers = [...s.mem.objects.keys()].filter((k) => !referenced.has(k) && !before.has(k));
    expect(leftovers).toEqual([]);
  });

  it('sweeps orphans older than the safety age every N epochs, and keeps young ones', async () => {
    const s = setup({ sweepEveryEpochs: 3, orphanMinAgeSeconds: 60 });
    const e = s.engine();
    const prefix = 'tidemark/inc/tasks/orders/0/';
    const old = new Date(Date.now() - 120_000);
    s.mem.objects.set(`${prefix}000000000001-deadbeef0001.snap`, {
      body: Buffer.from('x'),
      lastModified: old,
    });
    s.mem.objects.set(`${prefix}000000000001-deadbeef0002.snap`, {
      body: Buffer.from('x'),
      lastModified: new Date(),
    });
    for (let i = 0; i < 2; i++) await e.processEvent(mskEvent([rec(i, 'k', 'set', i)]));
    expect(s.mem.objects.has(`${prefix}000000000001-deadbeef0001.snap`)).toBe(true);
    await e.processEvent(mskEvent([rec(2, 'k', 'set', 2)]));
    expect(s.mem.objects.has(`${prefix}000000000001-deadbeef0001.snap`)).toBe(false);
    expect(s.mem.objects.has(`${prefix}000000000001-deadbeef0002.snap`)).toBe(true);
    expect(await restoredJson(s)).toMatchObject({ v: { k: 2 } });
  });

  it('keeps every object of every retained checkpoint, and nothing else', async () => {
    const s = setup({ compactAfterDeltas: 2, retainedCheckpoints: 3 });
    const e = s.engine();
    for (let i = 0; i < 12; i++) {
      await e.processEvent(mskEvent([rec(i, `k${i % 3}`, 'put', i)]));
      const c = (await s.memCommits.read(TASK))!;
      expect(new Set([...s.mem.objects.keys()].filter((k) => k.includes('/tasks/')))).toEqual(objectKeys(c));
      for (const h of c.history) await restoredJson(s, { ...c, ...h });
    }
  });
});

/** What a warm engine holds for TASK, as JSON (what a cold restore of its last commit must give). */
function warmJson(engine: EpochEngine<typeof kitchen.state>) {
  const cache = (engine as unknown as { cache: Map<string, { store: { allTables(): Iterable<never> } }> })
    .cache;
  return tablesToJson(cache.values().next().value!.store.allTables());
}

const shape = (c: CommitRecord) =>
  c.chain.map((r) => (r.inline ? 'i' : r.kind === 'full' ? 'F' : 'D')).join('');

/** The task's committed chain, a letter per link: F full, i inline delta, d delta in S3. */
async function chainKinds(s: ReturnType<typeof setup>): Promise<string> {
  return (await s.memCommits.read(TASK))!.chain
    .map((r) => (r.kind === 'full' ? 'F' : r.inline ? 'i' : 'd'))
    .join('');
}
describe('inline snapshots', () => {
  beforeAll(() => {
    mode = {};
  });

  /** A state whose full snapshot is far above `snapshotInlineMaxBytes`, so it goes to S3. */
  async function bigBase(_s: ReturnType<typeof setup>, e: EpochEngine<typeof kitchen.state>) {
    await e.processEvent(mskEvent(Array.from({ length: 400 }, (_, i) => rec(i, `key-${i}`, 'set', i))));
    return 400;
  }

  it('carries small snapshots in the commit item: the commit write is the only request of an epoch', async () => {
    const s = setup();
    const e = s.engine();
    for (let i = 0; i < 20; i++) await e.processEvent(mskEvent([rec(i, `k${i % 5}`, 'put', i)]));
    expect(s.mem.calls.put).toBe(0);
    expect(s.mem.calls.get).toBe(0);
    expect(s.memCommits.calls.commit).toBe(20);
    const c = (await s.memCommits.read(TASK))!;
    expect(c.chain.every((r) => r.inline)).toBe(true);
    expect(await restoredJson(s)).toEqual(warmJson(e));
  });

  it('spills: an epoch that does not fit merges the inline links into one S3 delta after the last S3 link', async () => {
    const s = setup({ snapshotInlineMaxBytes: 1_000, commitInlineMaxBytes: 4_400 });
    const e = s.engine();
    let offset = await bigBase(s, e);
    const shapes: string[] = [];
    const history: Array<{ commit: CommitRecord; json: unknown }> = [];
    for (let i = 0; i < 12; i++) {
      await e.processEvent(
        mskEvent([rec(offset++, `key-${i}`, 'set', -i), rec(offset++, `new-${i}`, 'put', i)]),
      );
      const c = (await s.memCommits.read(TASK))!;
      shapes.push(shape(c));
      history.push({ commit: c, json: warmJson(e) });
      expect(await restoredJson(s)).toEqual(warmJson(e));
    }
    // Inline deltas (about 700 bytes each) until the chain's half of the budget is used, then one
    // merged S3 delta.
    expect(shapes.slice(0, 4)).toEqual(['Fi', 'Fii', 'Fiii', 'FD']);
    const spill = history[3]!.commit;
    expect(spill.chain[1]!.inline).toBeUndefined();
    // It holds every key the merged links changed (2 per epoch, 4 epochs) and the task counter.
    expect(spill.chain[1]!.entries).toBe(9);
    // Its retained checkpoints still hold the inline links, and each restores exactly.
    for (const h of spill.history) {
      const was = history.find((x) => x.commit.epoch === h.epoch)!;
      expect(await restoredJson(s, { ...spill, ...h })).toEqual(was.json);
    }
    expect(shapes).toContain('FDi'); // a chain mixing S3 and inline links
  });

  it('restores a chain mixing S3 and inline links in a cold container, which carries on exactly', async () => {
    const s = setup({ snapshotInlineMaxBytes: 1_000, commitInlineMaxBytes: 4_400 });
    const warm = s.engine();
    let offset = await bigBase(s, warm);
    for (let i = 0; i < 6; i++) await warm.processEvent(mskEvent([rec(offset++, `key-${i}`, 'add', i)]));
    expect(shape((await s.memCommits.read(TASK))!)).toMatch(/^FDi+$/);
    const cold = s.engine();
    const next = [rec(offset++, 'key-1', 'add', 99), rec(offset++, 'key-2', 'del', 0)];
    await cold.processEvent(mskEvent(next));
    await warm.processEvent(mskEvent(next)); // stale: loses the race, reloads the winner
    expect(warmJson(warm)).toEqual(warmJson(cold));
    expect(await restoredJson(s)).toEqual(warmJson(cold));
  });

  it('compacts a chain ending with inline links into a full snapshot (an inline parent)', async () => {
    const s = setup({ compactAfterDeltas: 3, snapshotInlineMaxBytes: 1_000 });
    const e = s.engine();
    let offset = await bigBase(s, e);
    const shapes: string[] = [];
    const jsons = new Map<number, unknown>();
    for (let i = 0; i < 5; i++) {
      await e.processEvent(
        mskEvent([rec(offset++, `key-${i}`, 'clr', 0), rec(offset++, `key-${i}`, 'set', 1)]),
      );
      const c = (await s.memCommits.read(TASK))!;
      shapes.push(shape(c));
      jsons.set(c.epoch, warmJson(e));
    }
    expect(shapes).toEqual(['Fi', 'Fii', 'Fiii', 'F', 'Fi']);
    const c = (await s.memCommits.read(TASK))!;
    expect(await restoredJson(s)).toEqual(warmJson(e));
    for (const h of c.history) expect(await restoredJson(s, { ...c, ...h })).toEqual(jsons.get(h.epoch));
    // The full snapshot the inline links were compacted into went to S3; the links never did.
    expect([...s.mem.objects.keys()].filter((k) => k.endsWith('.delta'))).toEqual([]);
  });

  it('recovers from a crash between a spill PUT and its commit', async () => {
    const s = setup({ snapshotInlineMaxBytes: 1_000, commitInlineMaxBytes: 4_400 });
    const e = s.engine();
    let offset = await bigBase(s, e);
    for (let i = 0; i < 3; i++) await e.processEvent(mskEvent([rec(offset++, `key-${i}`, 'set', 0)]));
    expect(shape((await s.memCommits.read(TASK))!)).toBe('Fiii');
    s.commits.beforeCommit = () => {
      throw new SimulatedCrash('before commit');
    };
    const batch = [rec(offset++, 'key-7', 'set', 7), rec(offset++, 'key-8', 'put', 8)];
    await expect(e.processEvent(mskEvent(batch))).rejects.toBeInstanceOf(BatchFailedError);
    const orphan = [...s.mem.objects.keys()].filter((k) => k.endsWith('.delta'));
    expect(orphan).toHaveLength(1); // the spill's object, referenced by no commit
    s.commits.beforeCommit = undefined;
    const cold = s.engine();
    await cold.processEvent(mskEvent(batch));
    const c = (await s.memCommits.read(TASK))!;
    expect(shape(c)).toBe('FD');
    expect(c.chain[1]!.key).not.toBe(orphan[0]);
    expect(await restoredJson(s)).toEqual(warmJson(cold));
  });

  it('recovers from a crash after the commit that carried an inline delta, in the warm and in a cold container', async () => {
    for (const warm of [true, false]) {
      const s = setup({ snapshotInlineMaxBytes: 1_000 });
      const e = s.engine();
      let offset = await bigBase(s, e);
      for (let i = 0; i < 2; i++) await e.processEvent(mskEvent([rec(offset++, `key-${i}`, 'add', i)]));
      s.commits.afterCommit = () => {
        throw new SimulatedCrash('after commit');
      };
      const batch = [rec(offset++, 'key-5', 'set', 5), rec(offset++, 'new-1', 'put', 1)];
      await expect(e.processEvent(mskEvent(batch))).rejects.toBeInstanceOf(BatchFailedError);
      s.commits.afterCommit = undefined;
      const committed = (await s.memCommits.read(TASK))!;
      // The crashed attempt's delta is committed, in the item: an S3 base and three inline deltas.
      expect(shape(committed)).toBe('Fiii');
      const puts = s.mem.calls.put;
      // The retry (the same container, or a new one that restores that chain) skips what the delta
      // holds, and carries on from it with another inline delta.
      const retry = warm ? e : s.engine();
      expect(await retry.processEvent(mskEvent(batch))).toMatchObject({ applied: 0, duplicatesSkipped: 2 });
      await retry.processEvent(
        mskEvent([rec(offset++, 'key-5', 'add', 6), rec(offset++, 'key-6', 'del', 0)]),
      );
      const c = (await s.memCommits.read(TASK))!;
      expect(shape(c)).toBe('Fiiii');
      expect(s.mem.calls.put).toBe(puts);
      expect(await restoredJson(s)).toEqual(warmJson(retry));
    }
  });

  it('refuses to process on a corrupt inline delta: a typed, non-retriable error, nothing applied or committed', async () => {
    const s = setup({ snapshotInlineMaxBytes: 1_000 });
    const e = s.engine();
    let offset = await bigBase(s, e);
    for (let i = 0; i < 3; i++) await e.processEvent(mskEvent([rec(offset++, `key-${i}`, 'add', i)]));
    const c = (await s.memCommits.read(TASK))!;
    expect(shape(c)).toBe('Fiii');
    const link = c.chain[2]!;
    const flipped = Buffer.from(link.inline!);
    flipped[flipped.length - 10]! ^= 0x10;
    const key = [...s.memCommits.items.keys()][0]!;
    s.memCommits.items.set(key, {
      ...c,
      chain: c.chain.map((r) => (r === link ? { ...r, inline: flipped } : r)),
    });
    const err = await s
      .engine()
      .processEvent(mskEvent([rec(offset, 'key-1', 'add', 9)]))
      .catch((x: unknown) => x);
    expect(err).toBeInstanceOf(BatchFailedError);
    const cause = (err as BatchFailedError).failures[0]!.error;
    expect(cause).toBeInstanceOf(SnapshotCorruptError);
    expect((cause as SnapshotCorruptError).retriable).toBe(false);
    expect((err as BatchFailedError).retriable).toBe(false);
    const after = (await s.memCommits.read(TASK))!;
    expect(after.epoch).toBe(c.epoch);
    expect(after.committedOffset).toBe(c.committedOffset);
  });

  it('refuses an inline link whose bytes are not the ones committed', async () => {
    const s = setup();
    const e = s.engine();
    for (let i = 0; i < 3; i++) await e.processEvent(mskEvent([rec(i, 'k', 'add', i)]));
    const c = (await s.memCommits.read(TASK))!;
    const link = c.chain[1]!;
    const flipped = Buffer.from(link.inline!);
    flipped[40]! ^= 1;
    const corrupt = { ...c, chain: [c.chain[0]!, { ...link, inline: flipped }, c.chain[2]!] };
    await expect(restoredJson(s, corrupt)).rejects.toBeInstanceOf(SnapshotCorruptError);
    const other = { ...c, chain: [c.chain[0]!, { ...link, inline: c.chain[2]!.inline }, c.chain[2]!] };
    await expect(restoredJson(s, other)).rejects.toBeInstanceOf(SnapshotIdentityError);
  });

  it('keeps the inline bytes of a commit item within its budget, and a chain within half of it (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.constantFrom(...ops)), {
            minLength: 1,
            maxLength: 20,
          }),
          {
            minLength: 1,
            maxLength: 25,
          },
        ),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 200, max: 1_200 }),
        fc.integer({ min: 0, max: 6_000 }),
        async (epochs, retained, snapshotMax, commitMax) => {
          const s = setup({
            retainedCheckpoints: retained,
            snapshotInlineMaxBytes: snapshotMax,
            commitInlineMaxBytes: commitMax,
            compactAfterDeltas: 8,
          });
          const e = s.engine();
          let offset = 0;
          for (const batch of epochs) {
            await e.processEvent(mskEvent(batch.map(([key, op]) => rec(offset++, `k${key}`, op, offset))));
            const c = (await s.memCommits.read(TASK))!;
            const inlineOf = (cs: CommitRecord[] | Array<{ chain: CommitRecord['chain'] }>) => {
              const seen = new Map<string, number>();
              for (const x of cs) for (const r of x.chain) if (r.inline) seen.set(r.key, r.inline.length);
              return [...seen.values()].reduce((n, b) => n + b, 0);
            };
            expect(inlineOf([c, ...c.history])).toBeLessThanOrEqual(commitMax);
            expect(inlineOf([c])).toBeLessThanOrEqual(commitMax / 2);
            // Inline links only ever form the tail of a chain.
            const firstInline = c.chain.findIndex((r) => r.inline);
            if (firstInline >= 0) expect(c.chain.slice(firstInline).every((r) => r.inline)).toBe(true);
            expect(await restoredJson(s)).toEqual(warmJson(e));
          }
          const c = (await s.memCommits.read(TASK))!;
          for (const h of c.history) await restoredJson(s, { ...c, ...h });
        },
      ),
      { numRuns: 40 },
    );
  });
});
