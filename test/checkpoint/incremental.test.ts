/**
 * Incremental checkpoints: delta chains, compaction, and that a cold restore of any checkpoint
 * equals the state the warm container had when it committed it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { HookedCommitStore, HookedSnapshotStore } from '../../harness/faultyStores.ts';
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

function setup(overrides: Partial<TidemarkConfig> = {}) {
  const snapshots = new HookedSnapshotStore(new MemorySnapshotStore());
  const commits = new HookedCommitStore(new MemoryCommitStore());
  const config = loadConfig(
    {},
    { bucket: 'b', table: 't', pipeline: 'inc', compactDeltaRatio: 1000, ...overrides },
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

describe('incremental checkpoints', () => {
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
    const s = setup({ compactDeltaRatio: 0.5, compactAfterDeltas: 100 });
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
    const s = setup({ compactAfterDeltas: 10 });
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
    const referenced = new Set([c, ...c.history].flatMap((x) => x.chain.map((r) => r.key)));
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
      const referenced = new Set([c, ...c.history].flatMap((x) => x.chain.map((r) => r.key)));
      expect(new Set([...s.mem.objects.keys()].filter((k) => k.includes('/tasks/')))).toEqual(referenced);
      for (const h of c.history) await restoredJson(s, { ...c, ...h });
    }
  });
});
