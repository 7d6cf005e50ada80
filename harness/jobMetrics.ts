/**
 * What the main job measures from the engine: an `EngineObserver` shared by every container.
 * Only committed epochs count as epochs (an attempt that lost its commit never reports one).
 */
import type { EngineObserver, EpochCommittedInfo, TaskRestoredInfo } from '../lib/checkpoint/observer.ts';
import type { TaskId } from '../lib/checkpoint/stores.ts';

export class JobMetrics {
  epochs = 0;
  /** Records applied by committed epochs (should equal the records applied exactly once). */
  applied = 0;
  quarantined = 0;
  duplicatesSkipped = 0;
  commitConflicts = 0;
  restores = { cold: 0, conflict: 0 };
  fullSnapshots = 0;
  deltaSnapshots = 0;
  snapshotBytes = 0;
  readonly checkpointMs: number[] = [];

  /** The observer to hand to every handler. */
  observer(): EngineObserver {
    return {
      epochCommitted: (info: EpochCommittedInfo) => {
        this.epochs++;
        this.applied += info.applied;
        this.quarantined += info.quarantined;
        this.checkpointMs.push(info.checkpointMs);
        this.snapshotBytes += info.snapshotBytes;
        if (info.snapshotKind === 'full') this.fullSnapshots++;
        else this.deltaSnapshots++;
      },
      duplicatesSkipped: (_task: TaskId, count: number) => {
        this.duplicatesSkipped += count;
      },
      commitConflict: () => {
        this.commitConflicts++;
      },
      taskRestored: (info: TaskRestoredInfo) => {
        this.restores[info.reason]++;
      },
    };
  }
}

/** The q-quantile (0..1) of `values`, nearest rank; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}
