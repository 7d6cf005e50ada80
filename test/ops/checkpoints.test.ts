import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { HookedCommitStore } from '../../harness/faultyStores.ts';
import { foldBalances } from '../../harness/oracle.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { loadConfig, type TidemarkConfig } from '../../lib/config/config.ts';
import { OperationError } from '../../lib/errors.ts';
import { listCheckpoints, rollbackTask } from '../../lib/ops/checkpoints.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

const TASK = { pipeline: 'balances', topic: 'orders', partition: 0 };

function setup(overrides: Partial<TidemarkConfig> = {}) {
  const snapshots = new MemorySnapshotStore();
  const commits = new HookedCommitStore(new MemoryCommitStore());
  const config = loadConfig(
    {},
    {
      bucket: 'b',
      table: 't',
      pipeline: 'balances',
      retainedCheckpoints: 4,
      compactDeltaRatio: 100,
      ...overrides,
    },
  );
  return {
    snapshots,
    commits,
    engine: () => new EpochEngine({ processor: balances, config, snapshots, commits }),
  };
}

const batch = (i: number) => [0, 1, 2].map((j) => deposit('orders', 0, i * 3 + j, `a${j}`, i + 1));

describe('retained checkpoints and rollback', () => {
  it('lists the retained checkpoints, newest first', async () => {
    const s = setup();
    const e = s.engine();
    for (let i = 0; i < 6; i++) await e.processEvent(mskEvent(batch(i)));
    const list = await listCheckpoints(s.commits, TASK);
    expect(list.map((c) => [c.epoch, c.committedOffset, c.current])).toEqual([
      [6, '18', true],
      [5, '15', false],
      [4, '12', false],
      [3, '9', false],
    ]);
    expect(list[0]!.chain.map((r) => r.kind)).toEqual(['full', 'delta', 'delta', 'delta', 'delta', 'delta']);
    expect(await listCheckpoints(s.commits, { ...TASK, partition: 9 })).toEqual([]);
  });

  it('rolls a task back to a retained checkpoint with a fenced commit; processing goes on from there', async () => {
    const s = setup();
    const warm = s.engine();
    for (let i = 0; i < 5; i++) await warm.processEvent(mskEvent(batch(i)));
    const r = await rollbackTask(s, TASK, 3, { retainedCheckpoints: 4 });
    expect(r).toEqual({
      from: { epoch: 5, committedOffset: '15' },
      to: { epoch: 6, committedOffset: '9', restoredEpoch: 3 },
    });
    const after = await inspectTask(s, TASK);
    expect(after.state.account).toEqual(Object.fromEntries(foldBalances([0, 1, 2].flatMap(batch))));
    expect(after.retained.map((h) => h.epoch)).toEqual([5, 4, 2]);
    // The warm container is stale (it holds offset 15): before skipping 9..14 it checks the commit,
    // finds the rollback, reloads the rolled-back state and applies 9..14 again.
    const summary = await warm.processEvent(mskEvent([3, 4].flatMap(batch)));
    expect(summary).toMatchObject({ commitConflicts: 0, applied: 6, duplicatesSkipped: 0 });
    const final = await inspectTask(s, TASK);
    expect(final.state.account).toEqual(Object.fromEntries(foldBalances([0, 1, 2, 3, 4].flatMap(batch))));
    // Roll forward to the pre-rollback checkpoint is possible too: it was retained.
    await rollbackTask(s, TASK, 5, { retainedCheckpoints: 4 });
    expect((await inspectTask(s, TASK)).committedOffset).toBe('15');
    // A stale container whose batch starts at its own offset loses the commit race instead.
    const stale = s.engine();
    await stale.processEvent(mskEvent(batch(5)));
    await rollbackTask(s, TASK, 8, { retainedCheckpoints: 4 });
    expect(await stale.processEvent(mskEvent(batch(6)))).toMatchObject({ commitConflicts: 1, applied: 3 });
    expect((await inspectTask(s, TASK)).committedOffset).toBe('21');
  });

  it('refuses an epoch that is not retained, a task without checkpoints, and a race', async () => {
    const s = setup();
    const e = s.engine();
    for (let i = 0; i < 2; i++) await e.processEvent(mskEvent(batch(i)));
    await expect(rollbackTask(s, TASK, 7)).rejects.toThrow(/not a retained checkpoint.*retained: 1/);
    await expect(rollbackTask(s, { ...TASK, partition: 3 }, 1)).rejects.toBeInstanceOf(OperationError);
    s.commits.beforeCommit = async () => {
      s.commits.beforeCommit = undefined;
      await e.processEvent(mskEvent(batch(2))); // the task commits while the rollback is under way
    };
    await expect(rollbackTask(s, TASK, 1)).rejects.toThrow(/meanwhile/);
    s.commits.beforeCommit = undefined;
    expect((await inspectTask(s, TASK)).committedOffset).toBe('9');
  });

  it('rolls back to a checkpoint whose links are inline (carried in the commit item)', async () => {
    const s = setup();
    const e = s.engine();
    for (let i = 0; i < 3; i++) await e.processEvent(mskEvent(batch(i)));
    const target = (await s.commits.read(TASK))!.history[0]!;
    expect(target.chain.every((r) => r.inline)).toBe(true);
    await rollbackTask(s, TASK, target.epoch);
    const r = await inspectTask(s, TASK);
    expect(r).toMatchObject({ epoch: 4, committedOffset: '6' });
    expect(r.state.account).toEqual({
      a0: { balance: 3, count: 2 },
      a1: { balance: 3, count: 2 },
      a2: { balance: 3, count: 2 },
    });
    expect(s.snapshots.objects.size).toBe(0);
  });

  it('refuses to roll back to a checkpoint whose objects are broken', async () => {
    const s = setup({ snapshotInlineMaxBytes: 0 });
    const e = s.engine();
    for (let i = 0; i < 3; i++) await e.processEvent(mskEvent(batch(i)));
    const target = (await s.commits.read(TASK))!.history[0]!;
    s.snapshots.objects.delete(target.chain[target.chain.length - 1]!.key);
    await expect(rollbackTask(s, TASK, target.epoch)).rejects.toThrow(/does not exist/);
    expect((await s.commits.read(TASK))!.epoch).toBe(3);
  });
});
