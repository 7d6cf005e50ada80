/**
 * The epoch engine: applies each task's records exactly once and checkpoints them.
 *
 * Commit protocol, per task (topic-partition), and what a failure at each step leaves behind:
 *
 *   step                                   | crash / timeout / error here leaves…          | the retry…
 *   ---------------------------------------+-----------------------------------------------+------------------------------------
 *   1 know the last commit (E, O, chain):  | nothing written                               | reads the commit item again
 *     warm cache, else a consistent read   |                                               |
 *     and a verified snapshot load         |                                               |
 *   2 skip records with offset < O         | nothing written                               | skips them again
 *   3 apply records in offset order; a     | nothing written (state is only in memory)     | re-applies from O on the committed
 *     failing record is rolled back, then  |                                               | state: no record counted twice
 *     quarantined or fails the batch       |                                               |
 *   4 PUT snapshot E+1 under a key unique  | an orphan object no commit references         | writes its own object under another
 *     to this attempt (If-None-Match: *),  | (deleted later by GC)                         | attempt id; the orphan is never read
 *     and quarantined records              | quarantine objects keyed by offset            | rewrites the same quarantine keys
 *   5 commit: PutItem epoch E+1, offset,   | either the old item (write not applied) or    | finds E or E+1 in the item and
 *     chain, on condition epoch = E        | the new one (applied): nothing in between     | resumes from that checkpoint
 *   6 condition failed: another attempt    | the winner's commit, untouched                | —  (this attempt drops its state,
 *     (zombie, duplicate) committed first  |                                               |     loads the winner's, goes on)
 *   7 remember (E+1, state) in the warm    | a committed epoch; the invocation fails and   | skips everything below the new O
 *     cache; delete snapshots that left    | the ESM re-delivers the batch                 | (duplicates), returns success
 *     the retention window (best effort)   |                                               |
 *   8 all tasks committed through their    | —                                             | —
 *     last record → success                |                                               |
 *
 * A zombie (an attempt paused after step 4 while a retry commits) loses at step 5 and its snapshot
 * stays an orphan. Time: before an epoch starts, and before each record of an epoch, the remaining
 * invocation time is compared with the reserve needed to checkpoint; when it runs short the epoch is
 * cut there, committed, and the invocation fails with `TimeBudgetExceededError` (retriable). So a
 * timeout loses at most one epoch of work and never an acknowledged record.
 */
import { randomBytes } from 'node:crypto';
import type { TidemarkConfig } from '../config/config.ts';
import {
  BatchFailedError,
  CommitConflictError,
  ConfigurationError,
  isRetriable,
  ObjectExistsError,
  PoisonRecordError,
  ProcessingError,
  type RecordRef,
  SnapshotMissingError,
  type TidemarkError,
  TimeBudgetExceededError,
} from '../errors.ts';
import { parseEvent } from '../event/parseEvent.ts';
import {
  isRecordDefect,
  type KafkaRecord,
  type ParsedEvent,
  type RecordDefect,
  type TaskBatch,
} from '../event/types.ts';
import type { StateDescriptors } from '../state/descriptors.ts';
import {
  deltaSections,
  encodeSnapshot,
  fullSections,
  type SnapshotMeta,
  snapshotChecksum,
} from '../state/snapshotCodec.ts';
import { StateStore } from '../state/stateStore.ts';
import { quarantineKey, snapshotKey, taskLabel, taskSnapshotPrefix } from './layout.ts';
import type { EngineObserver } from './observer.ts';
import { type ProcessContext, type Processor, utf8Key } from './processor.ts';
import { loadCheckpoint } from './restore.ts';
import { subsumedKeys, sweepTaskOrphans } from './retention.ts';
import type {
  CheckpointSummary,
  CommitRecord,
  CommitStore,
  SnapshotRef,
  SnapshotStore,
  TaskId,
} from './stores.ts';

/** The part of the Lambda context the engine uses. */
export interface InvocationContext {
  getRemainingTimeInMillis?: () => number;
  awsRequestId?: string;
}

export interface TaskSummary {
  topic: string;
  partition: number;
  epoch: number;
  /** Next offset to read, as a decimal string (null when the task never committed). */
  committedOffset: string | null;
  applied: number;
  duplicatesSkipped: number;
  quarantined: number;
  epochsCommitted: number;
  commitConflicts: number;
  warm: boolean;
}

/** What a successful invocation returns (JSON-safe). */
export interface BatchSummary {
  records: number;
  applied: number;
  duplicatesSkipped: number;
  quarantined: number;
  epochsCommitted: number;
  commitConflicts: number;
  tasks: TaskSummary[];
}

export interface EpochEngineOptions<S extends StateDescriptors> {
  processor: Processor<S>;
  config: TidemarkConfig;
  snapshots: SnapshotStore;
  commits: CommitStore;
  observer?: EngineObserver;
  /** Attempt ids (unique per epoch attempt); injectable for tests. */
  newAttemptId?: () => string;
  /** Wall clock for timestamps (ms since epoch). */
  now?: () => number;
}

/** Lost commit races tolerated per task and invocation before giving up (retriable). */
const MAX_CONFLICTS_PER_TASK = 8;

/** A task's last commit and its state, as a warm container keeps them. */
interface TaskRuntime {
  readonly task: TaskId;
  /** Undefined until the first commit (epoch 0). */
  commit: CommitRecord | undefined;
  store: StateStore;
  ctx: MutableContext;
  /** False while the state holds applied records that are not committed yet. */
  clean: boolean;
  /** The next checkpoint must be a full snapshot (e.g. after a schema migration). */
  forceFull: boolean;
}

interface MutableContext extends ProcessContext<StateDescriptors> {
  key: string | null;
}

interface Epoch {
  records: number;
  applied: number;
  bytes: number;
  lastOffset: bigint;
  newestTimestamp: number | undefined;
  quarantine: Array<{ record: KafkaRecord | RecordDefect; error: unknown }>;
  startedAt: number;
}

interface Invocation {
  remaining: () => number;
  requestId: string | undefined;
  cleanup: Array<Promise<void>>;
  /** Objects nothing references any more, deleted together (one request) after all commits. */
  garbage: Array<{ task: TaskId; keys: string[] }>;
}

function emptySummary(t: TaskBatch, warm: boolean): TaskSummary {
  return {
    topic: t.topic,
    partition: t.partition,
    epoch: 0,
    committedOffset: null,
    applied: 0,
    duplicatesSkipped: t.duplicatesInEvent,
    quarantined: 0,
    epochsCommitted: 0,
    commitConflicts: 0,
    warm,
  };
}

function refOf(r: KafkaRecord | RecordDefect): RecordRef {
  return { topic: r.topic, partition: r.partition, offset: r.offset };
}

function errorJson(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    const cause =
      error.cause instanceof Error ? { name: error.cause.name, message: error.cause.message } : undefined;
    return { name: error.name, message: error.message, cause, stack: error.stack };
  }
  return { message: String(error) };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export class EpochEngine<S extends StateDescriptors = StateDescriptors> {
  readonly config: TidemarkConfig;
  private readonly processor: Processor<S>;
  private readonly snapshots: SnapshotStore;
  private readonly commits: CommitStore;
  private readonly observer: EngineObserver;
  private readonly newAttemptId: () => string;
  private readonly now: () => number;
  private readonly keyOf: (record: KafkaRecord) => string | null;
  private readonly policy: 'fail' | 'quarantine';
  /** Warm cache, least recently used first. */
  private readonly cache = new Map<string, TaskRuntime>();
  /** Slowest recent checkpoint (decaying), to size the time reserve. */
  private slowCheckpointMs = 0;

  constructor(options: EpochEngineOptions<S>) {
    this.processor = options.processor;
    this.config = options.config;
    this.snapshots = options.snapshots;
    this.commits = options.commits;
    this.observer = options.observer ?? {};
    this.newAttemptId = options.newAttemptId ?? (() => randomBytes(6).toString('hex'));
    this.now = options.now ?? Date.now;
    this.keyOf = options.processor.keyOf ?? utf8Key;
    this.policy = options.config.poisonPolicy;
  }

  /** Validates a raw ESM event and processes it. */
  async processEvent(event: unknown, context: InvocationContext = {}): Promise<BatchSummary> {
    return this.processBatch(parseEvent(event), context);
  }

  /**
   * Processes a parsed event. Resolves only when every task is committed through its last record;
   * otherwise rejects with `BatchFailedError` (after committing whatever could be committed).
   */
  async processBatch(batch: ParsedEvent, context: InvocationContext = {}): Promise<BatchSummary> {
    const inv: Invocation = {
      remaining: () => context.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY,
      requestId: context.awsRequestId,
      cleanup: [],
      garbage: [],
    };
    this.observer.batchStarted?.({
      records: batch.recordCount,
      tasks: batch.tasks.length,
      requestId: inv.requestId,
    });
    const summaries: TaskSummary[] = [];
    const failures: Array<{ task: string; error: unknown }> = [];
    await eachLimited(batch.tasks, this.config.taskConcurrency, async (t) => {
      const task: TaskId = { pipeline: this.config.pipeline, topic: t.topic, partition: t.partition };
      try {
        summaries.push(await this.runTask(task, t, inv));
      } catch (error) {
        this.observer.taskFailed?.(task, error);
        failures.push({ task: taskLabel(t), error });
      }
    });
    // Deletions of snapshots that left the retention window: after the commits, never before.
    inv.cleanup.push(this.collect(inv.garbage));
    await Promise.allSettled(inv.cleanup);
    if (failures.length > 0) throw new BatchFailedError(failures);
    summaries.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
    const sum = (f: (s: TaskSummary) => number) => summaries.reduce((n, s) => n + f(s), 0);
    return {
      records: batch.recordCount,
      applied: sum((s) => s.applied),
      duplicatesSkipped: sum((s) => s.duplicatesSkipped),
      quarantined: sum((s) => s.quarantined),
      epochsCommitted: sum((s) => s.epochsCommitted),
      commitConflicts: sum((s) => s.commitConflicts),
      tasks: summaries,
    };
  }

  private cacheKey(task: TaskId): string {
    return `${task.topic}\u0000${task.partition}`;
  }

  private async runTask(task: TaskId, batch: TaskBatch, inv: Invocation): Promise<TaskSummary> {
    const id = this.cacheKey(task);
    let rt = this.cache.get(id);
    const summary = emptySummary(batch, rt !== undefined);
    // Records the event itself held twice (same offset) were dropped by the parser.
    if (batch.duplicatesInEvent > 0) this.observer.duplicatesSkipped?.(task, batch.duplicatesInEvent);
    // Whatever happens next, this container's copy is re-validated or rebuilt: take it out now
    // and put it back only after the task completed.
    this.cache.delete(id);
    if (rt) {
      this.observer.warmHit?.(task);
      // Skipping records is only safe against the *current* commit: committed offsets can move
      // back (rollback, savepoint restore), and a skip writes nothing the commit condition could
      // catch. So before skipping anything, a warm container checks its copy is still current
      // (one read, only for re-deliveries: a steady stream starts at the committed offset).
      const first = batch.records[0];
      const cached = rt.commit;
      if (first && cached && first.offset < cached.committedOffset) {
        const current = await this.commits.read(task);
        if (current?.epoch !== cached.epoch || current.attempt !== cached.attempt) {
          rt = await this.restore(task, current, 'conflict');
        }
      }
    } else rt = await this.restore(task, undefined, 'cold');
    for (;;) {
      try {
        await this.drain(rt, batch, inv, summary);
        break;
      } catch (error) {
        if (!(error instanceof CommitConflictError)) {
          // Failing at an epoch boundary (time budget, a record that must fail the batch) leaves the
          // state equal to the last commit: keep it warm. Anything else is rebuilt from the stores.
          if (rt.clean) this.cache.set(id, rt);
          throw error;
        }
        summary.commitConflicts++;
        const winner = error.current as CommitRecord | undefined;
        this.observer.commitConflict?.(task, error.expectedEpoch, winner?.epoch);
        if (summary.commitConflicts > MAX_CONFLICTS_PER_TASK) throw error;
        // Never overwrite the winner: drop local state, continue from the winner's checkpoint.
        rt = await this.restore(task, winner, 'conflict');
      }
    }
    summary.epoch = rt.commit?.epoch ?? 0;
    summary.committedOffset = rt.commit ? rt.commit.committedOffset.toString() : null;
    this.cache.set(id, rt);
    while (this.cache.size > this.config.warmCacheMaxTasks) {
      this.cache.delete(this.cache.keys().next().value as string);
    }
    return summary;
  }

  /** Loads a task's last checkpoint (`known`, e.g. the winner of a race, or read from the store). */
  private async restore(
    task: TaskId,
    known: CommitRecord | undefined,
    reason: 'cold' | 'conflict',
  ): Promise<TaskRuntime> {
    const started = performance.now();
    const descriptors = this.processor.state as StateDescriptors;
    let commit = known ?? (await this.commits.read(task));
    let loaded: { store: StateStore; bytes: number } = { store: new StateStore(descriptors), bytes: 0 };
    for (let attempt = 1; commit; attempt++) {
      try {
        loaded = await loadCheckpoint(this.snapshots, task, commit, descriptors);
        break;
      } catch (error) {
        // Objects of a checkpoint another container has since subsumed may be gone: if the commit
        // item moved on, load the newer checkpoint. If it did not, the object is truly missing.
        if (!(error instanceof SnapshotMissingError) || attempt >= MAX_CONFLICTS_PER_TASK) throw error;
        const current = await this.commits.read(task);
        if (current?.epoch === commit.epoch && current.attempt === commit.attempt) throw error;
        commit = current;
      }
    }
    if (commit) {
      this.observer.taskRestored?.({
        task,
        epoch: commit.epoch,
        reason,
        durationMs: performance.now() - started,
        bytes: loaded.bytes,
        stateKeys: loaded.store.keyCount,
      });
    }
    const store = loaded.store;
    // A migrated state differs from its chain's values: the next checkpoint must be a full one.
    return { task, commit, store, ctx: this.contextFor(task, store), clean: true, forceFull: store.migrated };
  }

  private contextFor(task: TaskId, store: StateStore): MutableContext {
    return {
      state: store.handles(this.processor.state as StateDescriptors),
      key: null,
      pipeline: task.pipeline,
      topic: task.topic,
      partition: task.partition,
    };
  }

  private reserveMs(): number {
    return Math.max(this.config.timeReserveMs, 3 * this.slowCheckpointMs);
  }

  /** Applies and checkpoints every record of `batch` not yet committed. */
  private async drain(
    rt: TaskRuntime,
    batch: TaskBatch,
    inv: Invocation,
    summary: TaskSummary,
  ): Promise<void> {
    const records = batch.records;
    const from = rt.commit?.committedOffset ?? -1n;
    let i = 0;
    while (i < records.length && records[i]!.offset < from) i++;
    if (i > 0) {
      summary.duplicatesSkipped += i;
      this.observer.duplicatesSkipped?.(rt.task, i);
    }
    while (i < records.length) {
      const remaining = inv.remaining();
      const reserve = this.reserveMs();
      if (remaining < reserve) {
        throw new TimeBudgetExceededError(
          remaining,
          `${taskLabel(rt.task)}: ${remaining} ms left, ${reserve} ms needed to checkpoint; committed through offset ${rt.commit?.committedOffset ?? 'none'}, ${records.length - i} record(s) left for the retry`,
        );
      }
      const epoch: Epoch = {
        records: 0,
        applied: 0,
        bytes: 0,
        lastOffset: -1n,
        newestTimestamp: undefined,
        quarantine: [],
        startedAt: performance.now(),
      };
      let failure: unknown;
      while (
        i < records.length &&
        epoch.records < this.config.epochMaxRecords &&
        epoch.bytes < this.config.epochMaxBytes
      ) {
        // Cut the epoch short (and commit it) when time runs out; checked every few records, as
        // records take microseconds and the reserve is seconds.
        if (epoch.records > 0 && (epoch.records & 15) === 0 && inv.remaining() < reserve) break;
        const r = records[i]!;
        const outcome = this.apply(rt, r);
        if (outcome !== undefined) {
          if (outcome instanceof PoisonRecordError && this.policy === 'quarantine') {
            epoch.quarantine.push({ record: r, error: outcome });
            this.observer.recordQuarantined?.(rt.task, refOf(r), outcome);
          } else {
            failure = outcome; // committed work stays committed; the retry starts at this record
            break;
          }
        } else {
          rt.clean = false;
          epoch.applied++;
          const rec = r as KafkaRecord;
          epoch.bytes += rec.size;
          if (epoch.newestTimestamp === undefined || rec.timestamp > epoch.newestTimestamp) {
            epoch.newestTimestamp = rec.timestamp;
          }
        }
        epoch.records++;
        epoch.lastOffset = r.offset;
        i++;
      }
      if (epoch.records > 0) {
        await this.checkpoint(rt, epoch, inv);
        summary.applied += epoch.applied;
        summary.quarantined += epoch.quarantine.length;
        summary.epochsCommitted++;
      }
      if (failure !== undefined) throw failure;
    }
  }

  /**
   * Applies one record. Returns undefined when applied, or the error that made it fail (its state
   * changes rolled back): a `PoisonRecordError` for records that will never succeed, a retriable
   * `ProcessingError` otherwise. Throws for processor bugs that make the state untrustworthy.
   */
  private apply(rt: TaskRuntime, r: KafkaRecord | RecordDefect): TidemarkError | undefined {
    if (isRecordDefect(r)) return new PoisonRecordError(r.reason, { record: refOf(r) });
    let key: string | null;
    try {
      key = this.keyOf(r);
    } catch (error) {
      return new PoisonRecordError('state key cannot be computed', { record: refOf(r), cause: error });
    }
    const store = rt.store;
    store.beginRecord(key);
    rt.ctx.key = key;
    let result: unknown;
    try {
      result = this.processor.process(r, rt.ctx as unknown as ProcessContext<S>);
    } catch (error) {
      store.rollbackRecord();
      if (isRetriable(error)) return new ProcessingError(refOf(r), { cause: error, retriable: true });
      return new PoisonRecordError(error instanceof Error ? error.message : String(error), {
        record: refOf(r),
        cause: error,
      });
    }
    if (typeof (result as { then?: unknown } | undefined)?.then === 'function') {
      store.rollbackRecord();
      rt.clean = false; // its continuation may still touch the state: never keep it warm
      throw new ConfigurationError(
        'processor.process',
        'processor.process returned a promise: it must be synchronous (state changes after an await could not be checkpointed)',
      );
    }
    store.commitRecord();
    return undefined;
  }

  /**
   * Encodes this epoch's snapshot: a delta of the keys it changed, chained to the task's current
   * chain, or a full snapshot when the policy says so (no chain yet, full mode, a forced full one,
   * the chain has `compactAfterDeltas` deltas, or its deltas outweigh `compactDeltaRatio` × the base).
   */
  private encodeEpochSnapshot(
    rt: TaskRuntime,
    meta: Omit<SnapshotMeta, 'kind' | 'baseEpoch' | 'parentEpoch'>,
  ): { body: Buffer; kind: 'full' | 'delta'; chain: readonly SnapshotRef[]; entries: number } {
    const changes = rt.store.takeChanges();
    const chain = rt.commit?.chain ?? [];
    const base = chain[0];
    const last = chain[chain.length - 1];
    const c = this.config;
    if (
      c.snapshotMode === 'incremental' &&
      !rt.forceFull &&
      base &&
      last &&
      chain.length <= c.compactAfterDeltas
    ) {
      const sections = deltaSections(rt.store, changes);
      const body = encodeSnapshot(
        { ...meta, kind: 'delta', baseEpoch: base.epoch, parentEpoch: last.epoch },
        sections,
        c.compression,
      );
      const deltaBytes = chain.slice(1).reduce((n, r) => n + r.bytes, 0) + body.length;
      if (deltaBytes <= c.compactDeltaRatio * base.bytes) {
        const entries = sections.reduce(
          (n, x) => n + (x.entries as { keys: readonly string[] }).keys.length + (x.deletes?.length ?? 0),
          0,
        );
        return { body, kind: 'delta', chain, entries };
      }
    }
    const body = encodeSnapshot(
      { ...meta, kind: 'full', baseEpoch: null, parentEpoch: null },
      fullSections(rt.store.allTables()),
      c.compression,
    );
    return { body, kind: 'full', chain: [], entries: rt.store.keyCount };
  }

  /** Snapshot, quarantine objects, then the conditional commit. */
  private async checkpoint(rt: TaskRuntime, epoch: Epoch, inv: Invocation): Promise<void> {
    const started = performance.now();
    const task = rt.task;
    const prev = rt.commit;
    const nextEpoch = (prev?.epoch ?? 0) + 1;
    const committedOffset = epoch.lastOffset + 1n;
    const attempt = this.newAttemptId();
    const createdAt = new Date(this.now()).toISOString();
    const changedKeys = rt.store.changedKeyCount;
    const snap = this.encodeEpochSnapshot(rt, {
      pipeline: task.pipeline,
      topic: task.topic,
      partition: task.partition,
      epoch: nextEpoch,
      committedOffset,
      attempt,
      createdAt,
    });
    const ref: SnapshotRef = {
      key: snapshotKey(this.config.prefix, task, nextEpoch, attempt, snap.kind),
      bytes: snap.body.length,
      checksum: snapshotChecksum(snap.body),
      kind: snap.kind,
      epoch: nextEpoch,
      entries: snap.entries,
    };
    // All writes of the epoch settle before anything else happens (none is left running behind
    // a failure), then the first failure, if any, fails the epoch.
    const writes = await Promise.allSettled([
      this.snapshots
        .put(ref.key, snap.body, { ifAbsent: true, contentType: 'application/octet-stream' })
        .catch((err: unknown) => {
          // The key is unique to this attempt: if it exists, it is this very PUT, applied, whose
          // response was lost and which the SDK retried. (Its size and checksum are in the commit
          // item, so a load would still refuse anything else.)
          if (!(err instanceof ObjectExistsError && err.key === ref.key)) throw err;
        }),
      ...epoch.quarantine.map((q) => this.quarantine(task, nextEpoch, q.record, q.error)),
    ]);
    const failed = writes.find((w): w is PromiseRejectedResult => w.status === 'rejected');
    if (failed) throw failed.reason;
    const history: CheckpointSummary[] = prev
      ? [
          {
            epoch: prev.epoch,
            committedOffset: prev.committedOffset,
            chain: prev.chain,
            updatedAt: prev.updatedAt,
          },
          ...prev.history,
        ].slice(0, this.config.retainedCheckpoints - 1)
      : [];
    const next: CommitRecord = {
      ...task,
      epoch: nextEpoch,
      committedOffset,
      chain: [...snap.chain, ref],
      updatedAt: createdAt,
      quarantined: (prev?.quarantined ?? 0) + epoch.quarantine.length,
      applied: (prev?.applied ?? 0) + epoch.applied,
      attempt,
      history,
    };
    try {
      await this.commits.commit(next, prev?.epoch ?? 0);
    } catch (error) {
      if (!(error instanceof CommitConflictError)) throw error;
      const stored = error.current as CommitRecord | undefined;
      // The stored item is this very write: it was applied, its response was lost, and the SDK's
      // retry met it. That is a success.
      if (stored?.attempt !== attempt || stored.epoch !== nextEpoch) {
        // A lost race is a definite "no": nobody will ever reference this attempt's object.
        inv.garbage.push({ task, keys: [ref.key] });
        throw error;
      }
    }
    rt.commit = next;
    rt.clean = true;
    rt.forceFull = false;
    const checkpointMs = performance.now() - started;
    this.slowCheckpointMs = Math.max(checkpointMs, this.slowCheckpointMs * 0.9);
    this.observer.epochCommitted?.({
      task,
      epoch: nextEpoch,
      committedOffset,
      applied: epoch.applied,
      quarantined: epoch.quarantine.length,
      checkpointMs,
      epochMs: performance.now() - epoch.startedAt,
      snapshotBytes: snap.body.length,
      snapshotKind: snap.kind,
      stateKeys: rt.store.keyCount,
      changedKeys,
      newestRecordTimestamp: epoch.newestTimestamp,
    });
    const taskPrefix = taskSnapshotPrefix(this.config.prefix, task);
    if (prev) inv.garbage.push({ task, keys: subsumedKeys(prev, next, taskPrefix) });
    if (nextEpoch % this.config.sweepEveryEpochs === 0) inv.cleanup.push(this.sweep(task, taskPrefix, next));
  }

  /** Deletes objects nothing references any more, of every task at once (best effort: reported, not thrown). */
  private async collect(garbage: ReadonlyArray<{ task: TaskId; keys: string[] }>): Promise<void> {
    const keys = garbage.flatMap((g) => g.keys);
    if (keys.length === 0) return;
    try {
      await this.snapshots.delete(keys);
    } catch (error) {
      for (const g of garbage) if (g.keys.length > 0) this.observer.cleanupFailed?.(g.task, g.keys, error);
    }
  }

  /** Deletes orphans of attempts that never committed (older than the safety age) under the task. */
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

  private async quarantine(
    task: TaskId,
    epoch: number,
    record: KafkaRecord | RecordDefect,
    error: unknown,
  ): Promise<void> {
    const doc = isRecordDefect(record)
      ? { delivered: record.raw }
      : {
          timestamp: record.timestamp,
          timestampType: record.timestampType,
          key: record.key?.toString('base64') ?? null,
          value: record.value?.toString('base64') ?? null,
          headers: record.headers.map(([name, bytes]) => ({ [name]: [...bytes] })),
        };
    const body = Buffer.from(
      JSON.stringify(
        {
          pipeline: task.pipeline,
          topic: task.topic,
          partition: task.partition,
          offset: record.offset.toString(),
          epoch,
          quarantinedAt: new Date(this.now()).toISOString(),
          error: errorJson(error),
          ...doc,
        },
        (_k, v) => (typeof v === 'bigint' ? v.toString() : v),
        2,
      ),
    );
    try {
      await this.snapshots.put(quarantineKey(this.config.prefix, task, record.offset), body, {
        ifAbsent: true,
        contentType: 'application/json',
      });
    } catch (err) {
      // A previous attempt already set this very record aside.
      if (!(err instanceof ObjectExistsError)) throw err;
    }
  }
}
