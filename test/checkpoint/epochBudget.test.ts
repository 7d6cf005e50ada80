/**
 * The time reserve (lib/checkpoint/epochBudget.ts): learned from slow checkpoints, floored by
 * `timeReserveMs`, and never more than half the time an invocation had, so that slow checkpoints
 * cannot stop a container from making progress (found by the main job with outputs: checkpoints of
 * 10–17 s under load made the reserve larger than a 30 s invocation, and the warm container failed
 * every later invocation at once).
 */
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { EpochBudget } from '../../lib/checkpoint/epochBudget.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import type { CommitRecord } from '../../lib/checkpoint/stores.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

describe('EpochBudget', () => {
  it('reserves the larger of the floor and 3 × the slowest recent checkpoint, capped by the ceiling', () => {
    const b = new EpochBudget({ timeReserveMs: 100, epochMaxRecords: 10, epochMaxBytes: 1e6 });
    expect(b.reserveMs()).toBe(100);
    b.checkpointTook(400);
    expect(b.reserveMs()).toBe(1_200);
    expect(b.reserveMs(500)).toBe(500);
    expect(b.reserveMs(50)).toBe(100); // the floor is never capped
    b.checkpointTook(10);
    expect(b.reserveMs()).toBe(1_080); // decays by 10 % per checkpoint
  });
});

/** A commit store whose commits take `delayMs`. */
class SlowCommits extends MemoryCommitStore {
  delayMs = 0;
  override async commit(...args: Parameters<MemoryCommitStore['commit']>) {
    await new Promise((r) => setTimeout(r, this.delayMs));
    return super.commit(...args);
  }
}

describe('the engine with slow checkpoints', () => {
  it('still commits in an invocation shorter than 3 × its slowest checkpoint', async () => {
    const commits = new SlowCommits();
    const config = loadConfig(
      {},
      { bucket: 'b', table: 't', pipeline: 'slow', timeReserveMs: 20, epochMaxRecords: 2 },
    );
    const engine = new EpochEngine({
      processor: balances,
      config,
      snapshots: new MemorySnapshotStore(),
      commits,
    });
    const invoke = (from: number, ms: number) => {
      const end = performance.now() + ms;
      return engine.processEvent(
        mskEvent([deposit('orders', 0, from, 'a', 1), deposit('orders', 0, from + 1, 'a', 1)]),
        {
          getRemainingTimeInMillis: () => Math.max(0, Math.round(end - performance.now())),
        },
      );
    };
    commits.delayMs = 400; // the container learns a 1.2 s reserve
    await invoke(0, 60_000);
    commits.delayMs = 50;
    // 1 s left: below the learned reserve, yet the invocation commits its epoch.
    const s = await invoke(2, 1_000);
    expect(s.applied).toBe(2);
    const c = (await commits.read({ pipeline: 'slow', topic: 'orders', partition: 0 })) as CommitRecord;
    expect(c.committedOffset).toBe(4n);
  });
});
