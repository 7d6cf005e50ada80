/**
 * `tidemark export`: a pipeline's (or one task's) state as JSON lines, with checkpoint metadata,
 * from the current checkpoints or from a savepoint. The counterpart of `bootstrap`; together they
 * are Tidemark's State Processor API: inspect, migrate or seed state offline. Format (one JSON
 * object per line, docs/operations.md):
 *
 *     {"type":"export","format":"tidemark-state","version":1,"pipeline":…,"source":…,"exportedAt":…}
 *     {"type":"task","pipeline":…,"topic":…,"partition":…,"epoch":…,"committedOffset":"…",…,"states":[…]}
 *     {"type":"entry","state":"account","key":"alice","value":{…}}      (entries of the task above)
 *
 * Values use the tagged JSON of ./taggedJson.ts. Map-state values are objects of map key → value.
 * Output is streamed a line at a time (with back-pressure); only one task's state is in memory.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { loadCheckpoint } from '../checkpoint/restore.ts';
import { compareTasks, type SavepointStore } from '../checkpoint/savepoints.ts';
import type { CheckpointSummary, CommitStore, SnapshotStore, TaskId } from '../checkpoint/stores.ts';
import { OperationError } from '../errors.ts';
import type { StateKind, StateScope } from '../state/descriptors.ts';
import { toTaggedJson } from './taggedJson.ts';

export const EXPORT_FORMAT = 'tidemark-state';
export const EXPORT_VERSION = 1;

export interface ExportHeaderLine {
  type: 'export';
  format: typeof EXPORT_FORMAT;
  version: number;
  pipeline: string;
  /** `checkpoints` or `savepoint:<name>`. */
  source: string;
  exportedAt: string;
}

export interface StateDeclaration {
  name: string;
  kind: StateKind;
  scope: StateScope;
  version: number;
  entries: number;
}

export interface TaskLine {
  type: 'task';
  pipeline: string;
  topic: string;
  partition: number;
  epoch: number;
  /** Next offset to read, a decimal string. */
  committedOffset: string;
  updatedAt: string;
  applied: number;
  quarantined: number;
  states: StateDeclaration[];
}

export interface EntryLine {
  type: 'entry';
  state: string;
  key: string;
  value: unknown;
}

export interface ExportOptions {
  pipeline: string;
  topic?: string;
  partition?: number;
  /** Export this savepoint instead of the current checkpoints. */
  savepoint?: string;
  now?: () => number;
}

export interface ExportResult {
  tasks: number;
  entries: number;
}

interface Source {
  task: TaskId;
  checkpoint: CheckpointSummary;
  applied: number;
  quarantined: number;
}

async function sources(
  stores: { commits: CommitStore; savepoints?: SavepointStore },
  options: ExportOptions,
): Promise<Source[]> {
  const wanted = (t: { topic: string; partition: number }) =>
    (options.topic === undefined || t.topic === options.topic) &&
    (options.partition === undefined || t.partition === options.partition);
  const out: Source[] = [];
  if (options.savepoint !== undefined) {
    if (!stores.savepoints) throw new OperationError('no savepoint store');
    const sp = await stores.savepoints.read(options.pipeline, options.savepoint);
    if (!sp) throw new OperationError(`no savepoint ${options.savepoint} in pipeline ${options.pipeline}`);
    if (sp.meta.status !== 'complete')
      throw new OperationError(`savepoint ${options.savepoint} is incomplete`);
    for (const t of sp.tasks) {
      if (t.status !== 'committed' || t.committedOffset === null || !wanted(t)) continue;
      out.push({
        task: { pipeline: t.pipeline, topic: t.topic, partition: t.partition },
        checkpoint: {
          epoch: t.epoch,
          committedOffset: t.committedOffset,
          chain: t.chain,
          updatedAt: t.sourceUpdatedAt ?? sp.meta.createdAt,
        },
        applied: t.applied,
        quarantined: t.quarantined,
      });
    }
  } else {
    for await (const c of stores.commits.list(options.pipeline)) {
      if (!wanted(c)) continue;
      out.push({
        task: { pipeline: c.pipeline, topic: c.topic, partition: c.partition },
        checkpoint: c,
        applied: c.applied,
        quarantined: c.quarantined,
      });
    }
  }
  return out.sort((a, b) => compareTasks(a.task, b.task));
}

async function writeLine(out: Writable, value: unknown): Promise<void> {
  if (!out.write(`${JSON.stringify(value)}\n`)) await once(out, 'drain');
}

/**
 * Writes the export to `out`. Every task's chain is loaded through the verified restore path;
 * a task that fails to load fails the export.
 */
export async function exportState(
  stores: { snapshots: SnapshotStore; commits: CommitStore; savepoints?: SavepointStore },
  options: ExportOptions,
  out: Writable,
): Promise<ExportResult> {
  const list = await sources(stores, options);
  const now = options.now ?? Date.now;
  const header: ExportHeaderLine = {
    type: 'export',
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    pipeline: options.pipeline,
    source: options.savepoint === undefined ? 'checkpoints' : `savepoint:${options.savepoint}`,
    exportedAt: new Date(now()).toISOString(),
  };
  await writeLine(out, header);
  let entries = 0;
  for (const s of list) {
    const { store } = await loadCheckpoint(stores.snapshots, s.task, s.checkpoint, {});
    const tables = [...store.allTables()].sort((a, b) => a.name.localeCompare(b.name));
    const line: TaskLine = {
      type: 'task',
      pipeline: s.task.pipeline,
      topic: s.task.topic,
      partition: s.task.partition,
      epoch: s.checkpoint.epoch,
      committedOffset: s.checkpoint.committedOffset.toString(),
      updatedAt: s.checkpoint.updatedAt,
      applied: s.applied,
      quarantined: s.quarantined,
      states: tables.map((t) => ({
        name: t.name,
        kind: t.kind,
        scope: t.scope,
        version: t.version,
        entries: t.data.size,
      })),
    };
    await writeLine(out, line);
    for (const t of tables) {
      for (const [key, value] of t.data) {
        const v =
          t.kind === 'map'
            ? Object.fromEntries([...(value as Map<string, unknown>)].map(([k, x]) => [k, toTaggedJson(x)]))
            : toTaggedJson(value);
        const entry: EntryLine = { type: 'entry', state: t.name, key, value: v };
        await writeLine(out, entry);
        entries++;
      }
    }
  }
  return { tasks: list.length, entries };
}
