/**
 * GC scheduling for one invocation (the rules of what may be deleted are in `retention.ts`):
 * - objects a commit subsumed (they left the retention window) and the objects of an attempt that
 *   lost its commit race are collected and deleted together, with one request, after every task of
 *   the invocation is done — never before the commit that makes them garbage;
 * - every `sweepEveryEpochs` epochs of a task, after its commit, the task's prefix is listed and
 *   orphans older than `orphanMinAgeSeconds` are deleted.
 * Cleanup is best effort: a failure is reported to the observer, never thrown, and left for a later
 * sweep or `npx tidemark gc`.
 */
import type { TidemarkConfig } from '../config/config.ts';
import { taskSnapshotPrefix } from './layout.ts';
import type { EngineObserver } from './observer.ts';
import { subsumedKeys, sweepTaskOrphans } from './retention.ts';
import type { CommitRecord, SnapshotStore, TaskId } from './stores.ts';

export class InvocationCleanup {
  private readonly garbage: Array<{ task: TaskId; keys: string[] }> = [];
  private readonly sweeps: Array<Promise<void>> = [];

  private readonly snapshots: SnapshotStore;
  private readonly config: Pick<TidemarkConfig, 'prefix' | 'sweepEveryEpochs' | 'orphanMinAgeSeconds'>;
  private readonly observer: EngineObserver;
  private readonly now: () => number;

  constructor(
    snapshots: SnapshotStore,
    config: Pick<TidemarkConfig, 'prefix' | 'sweepEveryEpochs' | 'orphanMinAgeSeconds'>,
    observer: EngineObserver,
    now: () => number,
  ) {
    this.snapshots = snapshots;
    this.config = config;
    this.observer = observer;
    this.now = now;
  }

  /** After a commit: what `prev` retained and `next` does not becomes garbage; maybe sweep the task. */
  committed(task: TaskId, prev: CommitRecord | undefined, next: CommitRecord): void {
    const taskPrefix = taskSnapshotPrefix(this.config.prefix, task);
    if (prev) this.garbage.push({ task, keys: subsumedKeys(prev, next, taskPrefix) });
    if (next.epoch % this.config.sweepEveryEpochs === 0) this.sweeps.push(this.sweep(task, taskPrefix, next));
  }

  /** Objects of an attempt that lost its commit race: nobody will ever reference them. */
  lost(task: TaskId, keys: readonly string[]): void {
    this.garbage.push({ task, keys: [...keys] });
  }

  /** Deletes the collected garbage (one request) and waits for the sweeps. Never throws. */
  async finish(): Promise<void> {
    await Promise.allSettled([this.collect(), ...this.sweeps]);
  }

  private async collect(): Promise<void> {
    const keys = this.garbage.flatMap((g) => g.keys);
    if (keys.length === 0) return;
    try {
      await this.snapshots.delete(keys);
    } catch (error) {
      for (const g of this.garbage)
        if (g.keys.length > 0) this.observer.cleanupFailed?.(g.task, g.keys, error);
    }
  }

  private async sweep(task: TaskId, taskPrefix: string, commit: CommitRecord): Promise<void> {
    try {
      await sweepTaskOrphans(
        this.snapshots,
        taskPrefix,
        commit,
        this.config.orphanMinAgeSeconds * 1000,
        this.now(),
      );
    } catch (error) {
      this.observer.cleanupFailed?.(task, [taskPrefix], error);
    }
  }
}
