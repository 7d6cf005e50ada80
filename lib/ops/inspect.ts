import { loadCheckpoint } from '../checkpoint/restore.ts';
import type { CommitStore, SnapshotStore, TaskId } from '../checkpoint/stores.ts';
import { tablesToJson } from './stateJson.ts';
import { timeOf } from './status.ts';

/** The `tidemark inspect --json` output (a contract: see the README). */
export interface TaskInspection {
  pipeline: string;
  topic: string;
  partition: number;
  epoch: number;
  /** Next offset to read, int64 as a decimal string; null when the task never committed. */
  committedOffset: string | null;
  quarantined: number;
  state: Record<string, Record<string, unknown>>;
}

export interface InspectDetails extends TaskInspection {
  applied: number;
  updatedAt: string | null;
  snapshot: { keys: string[]; bytes: number; entries: number } | null;
  retained: Array<{ epoch: number; committedOffset: string; updatedAt: string }>;
  /** Event time (docs/time.md): the watermark and when a tick next has work (ISO-8601); null: none. */
  time: { watermark: string | null; dueAt: string | null };
  /** The epoch's outputs that did not commit with it (docs/outputs.md): delivered after the commit. */
  outbox: { outputs: number; settled: boolean } | null;
}

/**
 * Reads a task's committed checkpoint and its state through the same verified path the engine
 * restores from (checksums and identity checked on every snapshot link).
 */
export async function inspectTask(
  stores: { snapshots: SnapshotStore; commits: CommitStore },
  task: TaskId,
): Promise<InspectDetails> {
  await Promise.all([stores.commits.probe(), stores.snapshots.probe()]);
  const commit = await stores.commits.read(task);
  if (!commit) {
    return {
      ...task,
      epoch: 0,
      committedOffset: null,
      quarantined: 0,
      state: {},
      applied: 0,
      updatedAt: null,
      snapshot: null,
      retained: [],
      time: { watermark: null, dueAt: null },
      outbox: null,
    };
  }
  const { store } = await loadCheckpoint(stores.snapshots, task, commit, {});
  return {
    pipeline: task.pipeline,
    topic: task.topic,
    partition: task.partition,
    epoch: commit.epoch,
    committedOffset: commit.committedOffset.toString(),
    quarantined: commit.quarantined,
    state: tablesToJson(store.allTables()),
    applied: commit.applied,
    updatedAt: commit.updatedAt,
    snapshot: {
      keys: commit.chain.map((r) => r.key),
      bytes: commit.chain.reduce((n, r) => n + r.bytes, 0),
      entries: store.keyCount,
    },
    retained: commit.history.map((h) => ({
      epoch: h.epoch,
      committedOffset: h.committedOffset.toString(),
      updatedAt: h.updatedAt,
    })),
    time: timeOf(commit.time ?? {}),
    outbox: commit.outbox ? { outputs: commit.outbox.count, settled: commit.outbox.settled === true } : null,
  };
}
