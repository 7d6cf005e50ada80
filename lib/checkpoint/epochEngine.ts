/**
 * The epoch engine: applies each task's records exactly once, checkpoints them, and delivers the
 * outputs of each committed epoch exactly once.
 *
 * Commit protocol, per task (topic-partition), in the order of this file, and what a failure at each
 * step leaves behind:
 *
 *   step                                   | crash / timeout / error here leaves…          | the retry…
 *   ---------------------------------------+-----------------------------------------------+------------------------------------
 *   1 know the last commit (E, O, chain,   | nothing written                               | reads the commit item again
 *     outbox): warm cache, else a consis-  |                                               |
 *     tent read and a verified load        |                                               |
 *   2 deliver E's outbox if not known to   | part of it delivered                          | delivers it again: each sink skips
 *     be delivered (restored, or failed)   |                                               | what it already has (idempotent)
 *   3 skip records with offset < O         | nothing written                               | skips them again
 *   4 apply records in offset order; a     | nothing written (state and outputs are only   | re-applies from O on the committed
 *     failing record is rolled back (state | in memory)                                     | state: no record counted twice,
 *     and outputs), then quarantined or    |                                               | no output emitted twice
 *     fails the batch                      |                                               |
 *   5 PUT snapshot E+1 and outbox E+1 under| orphan objects no commit references (deleted  | writes its own objects under another
 *     keys unique to this attempt          | later by GC); quarantine objects keyed by     | attempt id; the orphans are never
 *     (If-None-Match: *), unless small     | offset. (An inline snapshot or outbox exists  | read; rewrites no quarantine key
 *     enough to travel inline in the       | nowhere until the commit writes it.)          |
 *     commit item; quarantined records;    |                                               |
 *     wait for E's delivery                |                                               |
 *   6 commit: epoch E+1, offset, chain,    | either the old item (write not applied) or    | finds E or E+1 in the item and
 *     outbox, on condition epoch = E, with | the new one (applied), with its attached      | resumes from that checkpoint
 *     attached output writes (one txn)     | outputs: nothing in between                   |
 *   7 condition failed: another attempt    | the winner's commit, untouched                | —  (this attempt drops its state and
 *     (zombie, duplicate) committed first  |                                               |     outputs, loads the winner's, goes on)
 *   8 remember (E+1, state) in the warm    | a committed epoch; the invocation fails and   | skips everything below the new O
 *     cache; deliver E+1's outbox (while   | the ESM re-delivers the batch                 | (duplicates), delivers E+1's outbox
 *     the next epoch runs); collect        |                                               | (step 2), returns success
 *     subsumed snapshots (best effort)     |                                               |
 *   9 all tasks committed through their    | —                                             | —
 *     last record and delivered → success; |                                               |
 *     outboxes of expiring sinks settled   |                                               |
 *
 * A zombie (an attempt paused after step 5 while a retry commits) loses at step 6: its objects stay
 * orphans and its outputs are never delivered. A container paused after step 6 that resumes after
 * others moved on delivers an outbox that was delivered already, which every sink ignores. Time:
 * before an epoch starts, and every few records of an epoch, the remaining invocation time is
 * compared with the reserve needed to checkpoint (`EpochBudget`); when it runs short the epoch is cut
 * there, committed, and the invocation fails with `TimeBudgetExceededError` (retriable). So a timeout
 * loses at most one epoch of work and never an acknowledged record.
 *
 * Time (docs/time.md, `taskTime.ts`): a record is processed at the watermark before it, then the
 * watermark advances and the event-time timers it made due fire, in the same undo unit as the record
 * (a failing record takes its firings back with it). Processing-time timers fire at the start of an
 * epoch and at scheduled ticks (`processTick`), which commit epochs of no records through the same
 * conditional write: whatever fires belongs to the epoch that commits it, exactly once.
 *
 * Policies live next to this file: `epochBudget.ts` (epoch cutting, time reserve), `snapshotPlan.ts`
 * (full, delta, compaction), `commitItem.ts` (the commit item and its retained history),
 * `warmCache.ts`, `cleanup.ts` (GC scheduling), `quarantine.ts`; outputs in `lib/output`.
 */
import { randomUUID } from 'node:crypto';
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
  StateError,
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
import { decodeOutbox, encodeOutbox } from '../output/outbox.ts';
import { OutputBuffer } from '../output/outputBuffer.ts';
import { OutputRouter, type SinkProvider } from '../output/router.ts';
import type { AttachedWrites, Delivery, OutputDescriptors, OutputPart } from '../output/types.ts';
import type { StateDescriptors } from '../state/descriptors.ts';
import { StateStore } from '../state/stateStore.ts';
import type { Timer } from '../state/timers.ts';
import {
  batchItemFailures,
  type FailedTask,
  failedTasks,
  type KafkaBatchItemFailure,
} from './batchFailures.ts';
import { InvocationCleanup } from './cleanup.ts';
import { historyAfter, nextCommit } from './commitItem.ts';
import { EpochBudget } from './epochBudget.ts';
import { outboxKey, snapshotKey, taskLabel } from './layout.ts';
import type { EngineObserver } from './observer.ts';
import { type NoOutputs, type ProcessContext, type Processor, type Timers, utf8Key } from './processor.ts';
import { quarantineRecord, quarantineTimer } from './quarantine.ts';
import { loadCheckpoint } from './restore.ts';
import { plannedRef, planSnapshot } from './snapshotPlan.ts';
import type { CommitRecord, CommitStore, OutboxRef, SnapshotStore, TaskId } from './stores.ts';
import { TaskTime, TIME_DESCRIPTORS } from './taskTime.ts';
import { WarmCache } from './warmCache.ts';

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
  /** Outputs this invocation committed (attached to commits or put in outboxes). */
  outputs: number;
  /** Timers this invocation fired (and committed). */
  timersFired: number;
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
  outputs: number;
  timersFired: number;
  tasks: TaskSummary[];
  /**
   * With `reportBatchItemFailures`, when some tasks failed and others committed: the records the
   * event source mapping must deliver again (one per failed task), in the shape Lambda reads.
   */
  batchItemFailures?: KafkaBatchItemFailure[];
  /** The failed tasks behind `batchItemFailures`. */
  failedTasks?: Array<{ task: string; error: string; retriable: boolean }>;
}

export interface EpochEngineOptions<S extends StateDescriptors, O extends OutputDescriptors = NoOutputs> {
  processor: Processor<S, O>;
  config: TidemarkConfig;
  snapshots: SnapshotStore;
  commits: CommitStore;
  observer?: EngineObserver;
  /** Builds the sinks of the processor's outputs (default: each descriptor's own `createSink`). */
  sinks?: SinkProvider;
  /** Environment the sinks read their settings from. Default: `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Attempt ids (unique per epoch attempt); injectable for tests. */
  newAttemptId?: () => string;
  /** Wall clock for timestamps (ms since epoch). */
  now?: () => number;
}

/** Lost commit races tolerated per task and invocation before giving up (retriable). */
const MAX_CONFLICTS_PER_TASK = 8;

/** A task's last commit, its state and its outputs, as a warm container keeps them. */
interface TaskRuntime {
  readonly task: TaskId;
  /** Undefined until the first commit (epoch 0). */
  commit: CommitRecord | undefined;
  store: StateStore;
  outputs: OutputBuffer;
  ctx: RecordContext;
  /** Clocks and timers, when the processor uses time (timers, `time`, or state with a TTL). */
  time: TaskTime | undefined;
  /** False while the state holds applied records that are not committed yet. */
  clean: boolean;
  /** The next checkpoint must be a full snapshot (e.g. after a schema migration). */
  forceFull: boolean;
  /** Whether `commit.outbox` is known to be delivered (true when there is none). */
  delivered: boolean;
  /** The outbox's parts as this container encoded them (saves decoding it to deliver it). */
  outboxParts: OutputPart[] | undefined;
  /** The delivery of `commit.outbox` under way, if any (it never rejects unobserved). */
  delivery: Promise<void> | undefined;
  /** The delivered outbox must be marked settled (a sink's own delivery record can expire). */
  settle: boolean;
}

/** The context handed to `process`: one object per task, updated per record. */
class RecordContext implements ProcessContext<StateDescriptors, OutputDescriptors> {
  record: KafkaRecord | undefined;
  private computed = false;
  private value: string | null = null;
  /** Event time of the record, or of the firing timer. */
  eventTime = Number.NEGATIVE_INFINITY;
  readonly timers: Timers;
  private readonly time: TaskTime | undefined;

  readonly state: ProcessContext<StateDescriptors>['state'];
  readonly outputs: ProcessContext<StateDescriptors, OutputDescriptors>['outputs'];
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
  private readonly keyOf: (record: KafkaRecord) => string | null;

  constructor(
    state: ProcessContext<StateDescriptors>['state'],
    outputs: ProcessContext<StateDescriptors, OutputDescriptors>['outputs'],
    task: TaskId,
    keyOf: (record: KafkaRecord) => string | null,
    time: { clocks: TaskTime | undefined; timers: boolean },
  ) {
    this.state = state;
    this.outputs = outputs;
    this.pipeline = task.pipeline;
    this.topic = task.topic;
    this.partition = task.partition;
    this.keyOf = keyOf;
    this.time = time.clocks;
    const service = () => {
      if (!time.timers || !time.clocks) {
        throw new ConfigurationError('processor.onTimer', 'timers need an onTimer callback on the processor');
      }
      return time.clocks.timers;
    };
    const key = () => {
      const k = this.key;
      if (k === null) throw new StateError('timers are per key: this record has no state key');
      return k;
    };
    this.timers = Object.freeze({
      registerEventTime: (ts: number, tag?: string) => service().register('event', key(), ts, tag),
      deleteEventTime: (ts: number, tag?: string) => service().delete('event', key(), ts, tag),
      registerProcessingTime: (ts: number, tag?: string) => service().register('processing', key(), ts, tag),
      deleteProcessingTime: (ts: number, tag?: string) => service().delete('processing', key(), ts, tag),
    });
  }

  get watermark(): number {
    return this.time?.watermark ?? Number.NEGATIVE_INFINITY;
  }

  get processingTime(): number {
    return this.time?.processingTime ?? Number.NEGATIVE_INFINITY;
  }

  /** Sets the record, with its key when already computed. */
  begin(record: KafkaRecord, key: string | null | undefined, eventTime: number): void {
    this.record = record;
    this.computed = key !== undefined;
    this.value = key ?? null;
    this.eventTime = eventTime;
  }

  /** Sets a firing timer's key and event time (no record). */
  beginTimer(key: string, eventTime: number): void {
    this.record = undefined;
    this.computed = true;
    this.value = key;
    this.eventTime = eventTime;
  }

  get key(): string | null {
    if (!this.computed) {
      const r = this.record;
      if (!r) return null;
      try {
        this.value = this.keyOf(r);
      } catch (error) {
        throw new PoisonRecordError('state key cannot be computed', { record: refOf(r), cause: error });
      }
      this.computed = true;
    }
    return this.value;
  }
}

interface Epoch {
  records: number;
  applied: number;
  bytes: number;
  lastOffset: bigint;
  newestTimestamp: number | undefined;
  quarantine: Array<{ record: KafkaRecord | RecordDefect; error: unknown }>;
  startedAt: number;
  timersFired: number;
  /** Timers whose callback failed for good (quarantine policy), with the offset they fired after. */
  timerQuarantine: Array<{ timer: Timer; offset: bigint; error: unknown }>;
  /** A tick advanced the watermark (idle advance). */
  watermarkMoved: boolean;
}

function newEpoch(lastOffset: bigint): Epoch {
  return {
    records: 0,
    applied: 0,
    bytes: 0,
    lastOffset,
    newestTimestamp: undefined,
    quarantine: [],
    startedAt: performance.now(),
    timersFired: 0,
    timerQuarantine: [],
    watermarkMoved: false,
  };
}

interface Invocation {
  remaining: () => number;
  requestId: string | undefined;
  cleanup: InvocationCleanup;
  /** Committed offset of each task that committed in this invocation, by task label (batches only). */
  committed?: Map<string, bigint>;
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
    outputs: 0,
    timersFired: 0,
    warm,
  };
}

function refOf(r: KafkaRecord | RecordDefect): RecordRef {
  return { topic: r.topic, partition: r.partition, offset: r.offset };
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

/** Waits for a promise, ignoring its failure. */
async function settled(p: Promise<unknown> | undefined): Promise<void> {
  if (p) await p.catch(() => undefined);
}

export class EpochEngine<
  S extends StateDescriptors = StateDescriptors,
  O extends OutputDescriptors = NoOutputs,
> {
  readonly config: TidemarkConfig;
  private readonly processor: Processor<S, O>;
  private readonly snapshots: SnapshotStore;
  private readonly commits: CommitStore;
  private readonly observer: EngineObserver;
  private readonly newAttemptId: () => string;
  private readonly now: () => number;
  private readonly keyOf: (record: KafkaRecord) => string | null;
  /** Whether the state key of every record is needed up front (key-scoped state or an own `keyOf`). */
  private readonly eagerKey: boolean;
  private readonly policy: 'fail' | 'quarantine';
  private readonly outputDescriptors: OutputDescriptors;
  private readonly router: OutputRouter;
  private readonly cache: WarmCache<TaskRuntime>;
  private readonly budget: EpochBudget;
  /** The processor's state and, when it uses time, the engine's own tables (timers, clocks). */
  private readonly descriptors: StateDescriptors;
  /** Whether the processor uses time: timers (`onTimer`), `time`, or state with a TTL. */
  private readonly usesTime: boolean;

  constructor(options: EpochEngineOptions<S, O>) {
    this.processor = options.processor;
    this.config = options.config;
    this.snapshots = options.snapshots;
    this.commits = options.commits;
    this.observer = options.observer ?? {};
    // 12 random hex digits: the last group of a v4 UUID is 48 random bits, as randomBytes(6) was, but
    // randomUUID draws from a cached pool (about 0.3 µs against 9 µs for a synchronous randomBytes).
    this.newAttemptId = options.newAttemptId ?? (() => randomUUID().slice(24));
    this.now = options.now ?? Date.now;
    this.keyOf = options.processor.keyOf ?? utf8Key;
    this.eagerKey =
      options.processor.keyOf !== undefined ||
      Object.values(options.processor.state as StateDescriptors).some((d) => d.scope === 'key');
    this.policy = options.config.poisonPolicy;
    this.outputDescriptors = options.processor.outputs ?? {};
    this.router = new OutputRouter(
      {
        pipeline: options.config.pipeline,
        env: options.env ?? process.env,
        commitStore: options.commits.kind,
      },
      options.sinks,
    );
    this.router.check(this.outputDescriptors);
    this.cache = new WarmCache(options.config.warmCacheMaxTasks);
    this.budget = new EpochBudget(options.config);
    const state = options.processor.state as StateDescriptors;
    for (const name of Object.keys(state)) {
      if (name.startsWith('tidemark:')) {
        throw new ConfigurationError(
          'processor.state',
          `state '${name}': names starting with 'tidemark:' are Tidemark's own`,
        );
      }
    }
    this.usesTime =
      options.processor.onTimer !== undefined ||
      options.processor.time !== undefined ||
      Object.values(state).some((d) => d.ttl !== undefined);
    this.descriptors = this.usesTime ? { ...state, ...TIME_DESCRIPTORS } : state;
  }

  /** Validates a raw ESM event and processes it. */
  async processEvent(event: unknown, context: InvocationContext = {}): Promise<BatchSummary> {
    return this.processBatch(parseEvent(event), context);
  }

  /**
   * Processes a parsed event. Resolves only when every task is committed through its last record
   * and its outputs delivered; otherwise rejects with `BatchFailedError` (after committing whatever
   * could be committed).
   */
  async processBatch(batch: ParsedEvent, context: InvocationContext = {}): Promise<BatchSummary> {
    const inv: Invocation = {
      remaining: () => context.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY,
      requestId: context.awsRequestId,
      cleanup: new InvocationCleanup(this.snapshots, this.config, this.observer, this.now),
      committed: new Map(),
    };
    this.observer.batchStarted?.({
      records: batch.recordCount,
      tasks: batch.tasks.length,
      requestId: inv.requestId,
    });
    const summaries: TaskSummary[] = [];
    const failures: FailedTask[] = [];
    await eachLimited(batch.tasks, this.config.taskConcurrency, async (t) => {
      const task: TaskId = { pipeline: this.config.pipeline, topic: t.topic, partition: t.partition };
      try {
        summaries.push(await this.runTask(task, t, inv));
      } catch (error) {
        this.observer.taskFailed?.(task, error);
        failures.push({ task: taskLabel(t), error, batch: t });
      }
    });
    // Deletions of snapshots that left the retention window: after the commits, never before.
    await inv.cleanup.finish();
    // Some tasks failed: the whole batch fails, or (ReportBatchItemFailures) only theirs is re-delivered.
    const reported =
      failures.length > 0 && summaries.length > 0 && this.config.reportBatchItemFailures
        ? batchItemFailures(failures, inv.committed!)
        : undefined;
    if (failures.length > 0 && !reported) throw new BatchFailedError(failures);
    summaries.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
    const sum = (f: (s: TaskSummary) => number) => summaries.reduce((n, s) => n + f(s), 0);
    return {
      records: batch.recordCount,
      applied: sum((s) => s.applied),
      duplicatesSkipped: sum((s) => s.duplicatesSkipped),
      quarantined: sum((s) => s.quarantined),
      epochsCommitted: sum((s) => s.epochsCommitted),
      commitConflicts: sum((s) => s.commitConflicts),
      outputs: sum((s) => s.outputs),
      timersFired: sum((s) => s.timersFired),
      tasks: summaries,
      ...(reported ? { batchItemFailures: reported, failedTasks: failedTasks(failures) } : {}),
    };
  }

  /**
   * A scheduled tick (docs/time.md#idle-partitions). The ESM invokes the function only when records
   * arrive, so a quiet partition's timers would never fire: a tick lists the pipeline's commit items
   * and takes the tasks whose `time.dueAt` has come (due processing-time timers or TTL deadlines; with
   * `idleAdvanceAfterMs`, event-time timers the wall clock makes due). For each, it fires what is due
   * and commits an epoch of no records through the same conditional write as any epoch: a tick racing
   * a batch (or another tick) commits at most once, and the loser reloads the winner's checkpoint, in
   * which what fired is gone. Resolves with a summary (`records` 0); rejects with `BatchFailedError`
   * when a task failed (after committing the others).
   */
  async processTick(context: InvocationContext = {}): Promise<BatchSummary> {
    const inv: Invocation = {
      remaining: () => context.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY,
      requestId: context.awsRequestId,
      cleanup: new InvocationCleanup(this.snapshots, this.config, this.observer, this.now),
    };
    const now = this.now();
    const due: CommitRecord[] = [];
    if (this.usesTime) {
      for await (const c of this.commits.list(this.config.pipeline)) {
        if (c.time?.dueAt !== undefined && c.time.dueAt <= now) due.push(c);
      }
    }
    this.observer.batchStarted?.({ records: 0, tasks: due.length, requestId: inv.requestId });
    const summaries: TaskSummary[] = [];
    const failures: Array<{ task: string; error: unknown }> = [];
    await eachLimited(due, this.config.taskConcurrency, async (c) => {
      const task: TaskId = { pipeline: this.config.pipeline, topic: c.topic, partition: c.partition };
      try {
        summaries.push(await this.runTick(task, c, inv));
      } catch (error) {
        this.observer.taskFailed?.(task, error);
        failures.push({ task: taskLabel(task), error });
      }
    });
    await inv.cleanup.finish();
    if (failures.length > 0) throw new BatchFailedError(failures);
    summaries.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
    const sum = (f: (s: TaskSummary) => number) => summaries.reduce((n, s) => n + f(s), 0);
    return {
      records: 0,
      applied: 0,
      duplicatesSkipped: 0,
      quarantined: 0,
      epochsCommitted: sum((s) => s.epochsCommitted),
      commitConflicts: sum((s) => s.commitConflicts),
      outputs: sum((s) => s.outputs),
      timersFired: sum((s) => s.timersFired),
      tasks: summaries,
    };
  }

  private async runTick(task: TaskId, listed: CommitRecord, inv: Invocation): Promise<TaskSummary> {
    let rt = this.cache.take(task);
    const summary = emptySummary(
      { topic: task.topic, partition: task.partition, records: [], duplicatesInEvent: 0 },
      rt !== undefined,
    );
    if (rt) this.observer.warmHit?.(task);
    // This container's copy is used only when it is the listed commit; otherwise the current one is read.
    if (!rt || rt.commit?.epoch !== listed.epoch || rt.commit.attempt !== listed.attempt) {
      rt = await this.restore(task, rt ? undefined : listed, rt ? 'conflict' : 'cold');
    }
    for (;;) {
      try {
        await this.tick(rt, inv, summary);
        break;
      } catch (error) {
        await settled(rt.delivery);
        if (!(error instanceof CommitConflictError)) {
          if (rt.clean) this.cache.put(task, rt);
          throw error;
        }
        summary.commitConflicts++;
        this.observer.commitConflict?.(task, error.expectedEpoch, error.current?.epoch);
        if (summary.commitConflicts > MAX_CONFLICTS_PER_TASK) throw error;
        rt = await this.restore(task, error.current, 'conflict');
      }
    }
    if (rt.settle) await this.settle(rt);
    summary.epoch = rt.commit?.epoch ?? 0;
    summary.committedOffset = rt.commit ? rt.commit.committedOffset.toString() : null;
    this.cache.put(task, rt);
    return summary;
  }

  /** One task's tick: fire what is due, remove what expired, commit if anything changed. */
  private async tick(rt: TaskRuntime, inv: Invocation, summary: TaskSummary): Promise<void> {
    if (!rt.delivered && !rt.delivery) this.startDelivery(rt);
    if (!rt.time || !rt.commit) return this.finishDelivery(rt);
    const epoch = newEpoch(rt.commit.committedOffset - 1n);
    const failure = this.fireAtBoundary(rt, epoch, true);
    if (failure !== undefined) {
      await this.finishDelivery(rt);
      throw failure;
    }
    const expired = rt.store.expire();
    if (epoch.timersFired > 0 || epoch.timerQuarantine.length > 0 || epoch.watermarkMoved || expired > 0) {
      rt.clean = false;
      summary.outputs += await this.checkpoint(rt, epoch, inv);
      summary.epochsCommitted++;
      summary.timersFired += epoch.timersFired;
    }
    await this.finishDelivery(rt);
  }

  /** Closes the sinks' connections (tests and shutdown; a Lambda container just freezes). */
  async close(): Promise<void> {
    await this.router.close();
  }

  private async runTask(task: TaskId, batch: TaskBatch, inv: Invocation): Promise<TaskSummary> {
    // Whatever happens next, this container's copy is re-validated or rebuilt: take it out now
    // and put it back only after the task completed.
    let rt = this.cache.take(task);
    const summary = emptySummary(batch, rt !== undefined);
    // Records the event itself held twice (same offset) were dropped by the parser.
    if (batch.duplicatesInEvent > 0) this.observer.duplicatesSkipped?.(task, batch.duplicatesInEvent);
    // Step 1: know the last commit.
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
        await settled(rt.delivery);
        if (!(error instanceof CommitConflictError)) {
          // Failing at an epoch boundary (time budget, a record that must fail the batch, a failed
          // delivery) leaves the state equal to the last commit: keep it warm. Anything else is
          // rebuilt from the stores.
          if (rt.clean) this.cache.put(task, rt);
          throw error;
        }
        // Step 7: never overwrite the winner: drop local state, continue from the winner's checkpoint.
        summary.commitConflicts++;
        const winner = error.current;
        this.observer.commitConflict?.(task, error.expectedEpoch, winner?.epoch);
        if (summary.commitConflicts > MAX_CONFLICTS_PER_TASK) throw error;
        rt = await this.restore(task, winner, 'conflict');
      }
    }
    // Step 9.
    if (rt.settle) await this.settle(rt);
    summary.epoch = rt.commit?.epoch ?? 0;
    summary.committedOffset = rt.commit ? rt.commit.committedOffset.toString() : null;
    this.cache.put(task, rt);
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
    let loaded: { store: StateStore; bytes: number } = {
      store: new StateStore(this.descriptors),
      bytes: 0,
    };
    for (let attempt = 1; commit; attempt++) {
      try {
        loaded = await loadCheckpoint(this.snapshots, task, commit, this.descriptors);
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
    const outputs = new OutputBuffer(this.outputDescriptors, task);
    const time = this.usesTime ? new TaskTime(store, this.processor.time) : undefined;
    return {
      task,
      commit,
      store,
      outputs,
      time,
      ctx: new RecordContext(store.handles(descriptors), outputs.handles, task, this.keyOf, {
        clocks: time,
        timers: this.processor.onTimer !== undefined,
      }),
      clean: true,
      // A migrated state differs from its chain's values: the next checkpoint must be a full one.
      forceFull: store.migrated,
      // An outbox not settled may not have been delivered: deliver it (again) before going on.
      delivered: !commit?.outbox || commit.outbox.settled === true,
      outboxParts: undefined,
      delivery: undefined,
      settle: false,
    };
  }

  /** Applies, checkpoints and delivers every record of `batch` not yet committed. */
  private async drain(
    rt: TaskRuntime,
    batch: TaskBatch,
    inv: Invocation,
    summary: TaskSummary,
  ): Promise<void> {
    // Step 2: an outbox this container does not know delivered (restored, or its delivery failed)
    // is delivered again, while the first epoch is being built.
    if (!rt.delivered && !rt.delivery) this.startDelivery(rt);
    // Step 3.
    const records = batch.records;
    const from = rt.commit?.committedOffset ?? -1n;
    let i = 0;
    while (i < records.length && records[i]!.offset < from) i++;
    if (i > 0) {
      summary.duplicatesSkipped += i;
      this.observer.duplicatesSkipped?.(rt.task, i);
    }
    // What slow checkpoints taught the reserve never exceeds half the time the task began with.
    let ceiling: number | undefined;
    while (i < records.length) {
      const remaining = inv.remaining();
      ceiling ??= remaining / 2;
      const reserve = this.budget.reserveMs(ceiling);
      if (remaining < reserve) {
        await this.finishDelivery(rt);
        throw new TimeBudgetExceededError(
          remaining,
          `${taskLabel(rt.task)}: ${remaining} ms left, ${reserve} ms needed to checkpoint; committed through offset ${rt.commit?.committedOffset ?? 'none'}, ${records.length - i} record(s) left for the retry`,
        );
      }
      // Step 4. (Processing-time timers due now fire first, in their own undo unit.)
      const epoch = newEpoch(-1n);
      let failure: unknown = rt.time ? this.fireAtBoundary(rt, epoch, false) : undefined;
      while (
        failure === undefined &&
        i < records.length &&
        this.budget.mayExtend(epoch.records, epoch.bytes, inv.remaining, reserve)
      ) {
        const r = records[i]!;
        const outcome = this.apply(rt, r, epoch);
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
          // A record without a timestamp (NO_TIMESTAMP_TYPE: -1) says nothing about record age.
          if (
            rec.timestamp >= 0 &&
            (epoch.newestTimestamp === undefined || rec.timestamp > epoch.newestTimestamp)
          ) {
            epoch.newestTimestamp = rec.timestamp;
          }
        }
        epoch.records++;
        epoch.lastOffset = r.offset;
        i++;
      }
      if (epoch.records > 0) {
        summary.outputs += await this.checkpoint(rt, epoch, inv);
        summary.timersFired += epoch.timersFired;
        summary.applied += epoch.applied;
        summary.quarantined += epoch.quarantine.length;
        summary.epochsCommitted++;
      }
      if (failure !== undefined) {
        await this.finishDelivery(rt);
        throw failure;
      }
    }
    // Step 9: the task succeeds once its last outbox is delivered.
    await this.finishDelivery(rt);
  }

  /**
   * Applies one record. Returns undefined when applied, or the error that made it fail (its state
   * changes and outputs rolled back): a `PoisonRecordError` for records that will never succeed, a
   * retriable `ProcessingError` otherwise. Throws for processor bugs that make the state untrustworthy.
   */
  private apply(rt: TaskRuntime, r: KafkaRecord | RecordDefect, epoch: Epoch): TidemarkError | undefined {
    if (isRecordDefect(r)) return new PoisonRecordError(r.reason, { record: refOf(r) });
    const time = rt.time;
    let eventTime = r.timestamp;
    if (time) {
      try {
        eventTime = time.eventTime(r);
      } catch (error) {
        return error as PoisonRecordError;
      }
      rt.store.eventTime = eventTime;
    }
    let key: string | null | undefined;
    if (this.eagerKey) {
      try {
        key = this.keyOf(r);
      } catch (error) {
        return new PoisonRecordError('state key cannot be computed', { record: refOf(r), cause: error });
      }
    }
    const { store, outputs, ctx } = rt;
    store.beginRecord(key ?? null);
    ctx.begin(r, key, eventTime);
    outputs.beginRecord(r.offset, key ?? null);
    let result: unknown;
    try {
      result = this.processor.process(r, ctx as unknown as ProcessContext<S, O>);
    } catch (error) {
      store.rollbackRecord();
      outputs.rollbackRecord();
      if (error instanceof PoisonRecordError) return error;
      if (isRetriable(error)) return new ProcessingError(refOf(r), { cause: error, retriable: true });
      return new PoisonRecordError(error instanceof Error ? error.message : String(error), {
        record: refOf(r),
        cause: error,
      });
    }
    if (typeof (result as { then?: unknown } | undefined)?.then === 'function') {
      store.rollbackRecord();
      outputs.rollbackRecord();
      rt.clean = false; // its continuation may still touch the state: never keep it warm
      throw new ConfigurationError(
        'processor.process',
        'processor.process returned a promise: it must be synchronous (state changes after an await could not be checkpointed)',
      );
    }
    if (time) {
      // The watermark advances with the record; the event-time timers it made due fire now, in the
      // record's undo unit: if one fails the batch, the record and its firings go back together.
      const clock = time.mark();
      let failure: TidemarkError | undefined;
      try {
        time.advance(r, eventTime);
      } catch (error) {
        failure = new PoisonRecordError('watermark cannot be computed', { record: refOf(r), cause: error });
      }
      failure ??= this.fireDue(rt, epoch, r.offset, false);
      if (failure !== undefined) {
        store.rollbackRecord();
        outputs.rollbackRecord();
        time.timers.rollbackTo(0);
        time.rollbackTo(clock);
        return failure;
      }
      time.timers.commit();
    }
    store.commitRecord();
    outputs.commitRecord();
    return undefined;
  }

  /**
   * Fires due timers at an epoch's start or at a tick, in one undo unit: processing-time timers due
   * at the task's processing time (the wall clock now), then event-time timers due at the watermark
   * (which a tick may first advance, with idle advance on). Returns the error that must fail the
   * batch, if any (the unit rolled back).
   */
  private fireAtBoundary(rt: TaskRuntime, epoch: Epoch, tick: boolean): TidemarkError | undefined {
    const time = rt.time!;
    const { store, outputs } = rt;
    const now = this.now();
    time.startEpoch(now);
    const offset = (rt.commit?.committedOffset ?? 0n) - 1n;
    const clock = time.mark();
    store.beginRecord(null);
    outputs.beginRecord(offset, null);
    epoch.watermarkMoved = tick && time.idleAdvance(now);
    const before = epoch.timersFired + epoch.timerQuarantine.length;
    const failure = this.fireDue(rt, epoch, offset, true);
    if (failure !== undefined) {
      store.rollbackRecord();
      outputs.rollbackRecord();
      time.timers.rollbackTo(0);
      time.rollbackTo(clock);
      epoch.watermarkMoved = false;
      return failure;
    }
    store.commitRecord();
    outputs.commitRecord();
    time.timers.commit();
    if (epoch.timersFired + epoch.timerQuarantine.length > before) rt.clean = false;
    return undefined;
  }

  /**
   * Fires every due timer, earliest first: processing-time ones first when `processing` (at an
   * epoch's start or a tick), event-time ones at the watermark; timers a callback sets that are
   * already due fire in the same pass.
   */
  private fireDue(
    rt: TaskRuntime,
    epoch: Epoch,
    offset: bigint,
    processing: boolean,
  ): TidemarkError | undefined {
    const time = rt.time!;
    for (;;) {
      const timer =
        (processing ? time.timers.pollDue('processing', time.processingTime) : undefined) ??
        time.timers.pollDue('event', time.watermark);
      if (timer === undefined) return undefined;
      const failure = this.fireTimer(rt, timer, epoch, offset);
      if (failure !== undefined) return failure;
    }
  }

  /**
   * Runs `onTimer` for one timer (already taken out of its table), with state and outputs scoped to
   * its key. A callback that fails for good, under the quarantine policy, is undone alone: the timer
   * is dropped and set aside, and the rest goes on. Otherwise the error is returned (the caller undoes
   * the whole unit and fails the batch there, retriably or not).
   */
  private fireTimer(rt: TaskRuntime, timer: Timer, epoch: Epoch, offset: bigint): TidemarkError | undefined {
    const { store, outputs, ctx } = rt;
    const time = rt.time!;
    const onTimer = this.processor.onTimer;
    if (!onTimer) return undefined; // timers of a processor that no longer declares onTimer lapse
    const marks = { store: store.mark(), outputs: outputs.mark(), timers: time.timers.mark() };
    const eventTime = timer.domain === 'event' ? timer.timestamp : time.watermark;
    store.setKey(timer.key);
    store.eventTime = eventTime;
    outputs.setKey(timer.key);
    ctx.beginTimer(timer.key, eventTime);
    const ref = { topic: rt.task.topic, partition: rt.task.partition, offset };
    let result: unknown;
    try {
      result = onTimer(timer, ctx as unknown as ProcessContext<S, O>);
    } catch (error) {
      store.rollbackTo(marks.store);
      outputs.rollbackTo(marks.outputs);
      time.timers.rollbackTo(marks.timers);
      if (isRetriable(error)) return new ProcessingError(ref, { cause: error, retriable: true });
      if (this.policy === 'quarantine') {
        time.timers.delete(timer.domain, timer.key, timer.timestamp, timer.tag);
        epoch.timerQuarantine.push({ timer, offset, error });
        this.observer.timerQuarantined?.(rt.task, timer, error);
        return undefined;
      }
      const message = error instanceof Error ? error.message : String(error);
      return new PoisonRecordError(
        `${timer.domain}-time timer ${timer.timestamp} of key ${JSON.stringify(timer.key)} failed: ${message}`,
        { record: ref, cause: error },
      );
    }
    if (typeof (result as { then?: unknown } | undefined)?.then === 'function') {
      rt.clean = false; // its continuation may still touch the state: never keep it warm
      throw new ConfigurationError(
        'processor.onTimer',
        'processor.onTimer returned a promise: it must be synchronous (state changes after an await could not be checkpointed)',
      );
    }
    epoch.timersFired++;
    return undefined;
  }

  /**
   * Steps 5 to 8 for one epoch: snapshot, outbox and quarantined records, then the conditional
   * commit (with attached outputs), then the delivery of the outbox starts. Returns the number of
   * outputs the epoch committed.
   */
  private async checkpoint(rt: TaskRuntime, epoch: Epoch, inv: Invocation): Promise<number> {
    const started = performance.now();
    const task = rt.task;
    const prev = rt.commit;
    const nextEpoch = (prev?.epoch ?? 0) + 1;
    const committedOffset = epoch.lastOffset + 1n;
    const attempt = this.newAttemptId();
    const createdAt = new Date(this.now()).toISOString();
    // Expired state leaves the snapshot; the clocks are written (when they changed).
    rt.time?.beforeCheckpoint(epoch.applied > 0);
    const changedKeys = rt.store.changedKeyCount;
    const snap = planSnapshot(
      rt.store,
      prev?.chain ?? [],
      {
        forceFull: rt.forceFull,
        config: this.config,
        history: historyAfter(prev, this.config.retainedCheckpoints),
      },
      {
        pipeline: task.pipeline,
        topic: task.topic,
        partition: task.partition,
        epoch: nextEpoch,
        committedOffset,
        attempt,
        createdAt,
      },
    );
    // An inline snapshot travels in the commit item: no PUT, and no object for GC to know of.
    const ref = plannedRef(
      snap,
      snapshotKey(this.config.prefix, task, nextEpoch, attempt, snap.kind),
      nextEpoch,
    );
    // Outputs: what commits with the epoch (attached) and what goes to the outbox.
    const parts = rt.outputs.take();
    const outputCount = parts.reduce((n, p) => n + p.entries.length, 0);
    let attached: AttachedWrites | undefined;
    let rest: OutputPart[] = [];
    let outbox: OutboxRef | undefined;
    let outboxBody: Buffer | undefined;
    if (parts.length > 0) {
      ({ attached, rest } = await this.router.attach({ task, epoch: nextEpoch, committedOffset, parts }));
      if (rest.length > 0) {
        const enc = encodeOutbox(task, nextEpoch, committedOffset, rest);
        const base = { epoch: nextEpoch, count: enc.count, bytes: enc.body.length, checksum: enc.checksum };
        if (enc.body.length <= this.config.outboxInlineMaxBytes) outbox = { ...base, inline: enc.body };
        else {
          outbox = { ...base, key: outboxKey(this.config.prefix, task, nextEpoch, attempt) };
          outboxBody = enc.body;
        }
      }
    }
    const ownKeys = [...(ref.inline ? [] : [ref.key]), ...(outbox?.key ? [outbox.key] : [])];
    // Step 5: every write of the epoch, and the previous epoch's delivery, settle before anything
    // else happens (none is left running behind a failure); then the first failure fails the epoch.
    const writes = await Promise.allSettled([
      ...(ref.inline ? [] : [this.putOwn(ref.key, snap.body)]),
      ...(outbox?.key && outboxBody ? [this.putOwn(outbox.key, outboxBody)] : []),
      ...epoch.timerQuarantine.map((q) =>
        quarantineTimer(this.snapshots, this.config.prefix, task, nextEpoch, q, createdAt),
      ),
      ...epoch.quarantine.map((q) =>
        quarantineRecord(this.snapshots, this.config.prefix, task, nextEpoch, q.record, q.error, createdAt),
      ),
      ...(rt.delivery ? [rt.delivery] : []),
    ]);
    const failed = writes.find((w): w is PromiseRejectedResult => w.status === 'rejected');
    if (failed) {
      inv.cleanup.lost(task, ownKeys);
      throw failed.reason;
    }
    // Step 6.
    const next = this.withTime(
      rt,
      nextCommit(
        task,
        prev,
        {
          committedOffset,
          chain: [...snap.chain, ref],
          updatedAt: createdAt,
          attempt,
          applied: epoch.applied,
          quarantined: epoch.quarantine.length,
          outbox,
        },
        this.config.retainedCheckpoints,
      ),
    );
    try {
      await this.commits.commit(next, prev?.epoch ?? 0, attached);
    } catch (error) {
      if (!(error instanceof CommitConflictError)) throw error;
      const stored = error.current;
      // The stored item is this very write: it was applied, its response was lost, and the SDK's
      // retry met it. That is a success.
      if (stored?.attempt !== attempt || stored.epoch !== nextEpoch) {
        // A lost race is a definite "no": nobody will ever reference this attempt's objects.
        inv.cleanup.lost(task, ownKeys);
        throw error;
      }
    }
    // Step 8.
    rt.commit = next;
    rt.clean = true;
    rt.forceFull = false;
    rt.delivered = outbox === undefined;
    rt.outboxParts = outbox ? rest : undefined;
    rt.delivery = undefined;
    rt.settle = false;
    if (outbox) this.startDelivery(rt);
    const checkpointMs = performance.now() - started;
    this.budget.checkpointTook(checkpointMs);
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
      snapshotInline: snap.inline,
      stateKeys: rt.store.keyCount,
      changedKeys,
      newestRecordTimestamp: epoch.newestTimestamp,
      outputs: outputCount,
      outboxBytes: outbox?.bytes ?? 0,
    });
    inv.cleanup.committed(task, prev, next);
    inv.committed?.set(taskLabel(task), committedOffset);
    return outputCount;
  }

  /** The commit item with the task's time summary (watermark, next due time), when it uses time. */
  private withTime(rt: TaskRuntime, next: CommitRecord): CommitRecord {
    const time = rt.time?.summary();
    return time ? { ...next, time } : next;
  }

  /** PUTs an object under a key unique to this attempt. */
  private async putOwn(key: string, body: Buffer): Promise<void> {
    try {
      await this.snapshots.put(key, body, { ifAbsent: true, contentType: 'application/octet-stream' });
    } catch (err) {
      // The key is unique to this attempt: if it exists, it is this very PUT, applied, whose
      // response was lost and which the SDK retried. (Its size and checksum are in the commit
      // item, so a load would still refuse anything else.)
      if (!(err instanceof ObjectExistsError && err.key === key)) throw err;
    }
  }

  /** Starts delivering the current commit's outbox (steps 2 and 8). */
  private startDelivery(rt: TaskRuntime): void {
    const commit = rt.commit!;
    const delivery = this.deliver(rt, commit).then((needsSettle) => {
      // Only if nothing replaced the commit meanwhile.
      if (rt.commit === commit) {
        rt.delivered = true;
        rt.outboxParts = undefined;
        rt.settle = needsSettle;
      }
    });
    delivery.catch(() => undefined); // observed by finishDelivery / the next checkpoint
    rt.delivery = delivery;
  }

  private async deliver(rt: TaskRuntime, commit: CommitRecord): Promise<boolean> {
    const outbox = commit.outbox!;
    const parts = rt.outboxParts ?? (await this.loadOutbox(rt.task, outbox));
    const delivery: Delivery = {
      task: rt.task,
      epoch: outbox.epoch,
      committedOffset: commit.committedOffset,
      committedAt: commit.updatedAt,
      parts,
    };
    const started = performance.now();
    const { needsSettle } = await this.router.deliver(delivery);
    this.observer.outputsDelivered?.({
      task: rt.task,
      epoch: outbox.epoch,
      outputs: outbox.count,
      durationMs: performance.now() - started,
    });
    return needsSettle && outbox.settled !== true;
  }

  private async loadOutbox(task: TaskId, outbox: OutboxRef): Promise<OutputPart[]> {
    let bytes = outbox.inline;
    if (!bytes) {
      bytes = await this.snapshots.get(outbox.key!);
      if (!bytes) throw new SnapshotMissingError(outbox.key!);
    }
    return decodeOutbox(
      bytes,
      { task, epoch: outbox.epoch, checksum: outbox.checksum },
      this.outputDescriptors,
    ).parts;
  }

  /** Waits for the delivery under way; a failure fails the task (the outbox stays to deliver). */
  private async finishDelivery(rt: TaskRuntime): Promise<void> {
    const delivery = rt.delivery;
    if (!delivery) return;
    try {
      await delivery;
    } finally {
      if (rt.delivery === delivery) rt.delivery = undefined;
    }
  }

  /**
   * Marks the delivered outbox settled: the same commit item, rewritten on condition that it is still
   * current. Best effort: a task that moved on (its next commit supersedes the outbox) or a failed
   * write leaves the outbox to be checked again, which is still exact while the sink's own record of
   * the delivery lasts.
   */
  private async settle(rt: TaskRuntime): Promise<void> {
    const commit = rt.commit;
    if (!commit?.outbox || !rt.delivered) return;
    const next: CommitRecord = { ...commit, outbox: { ...commit.outbox, settled: true } };
    try {
      await this.commits.commit(next, commit.epoch);
      rt.commit = next;
      rt.settle = false;
    } catch (error) {
      this.observer.cleanupFailed?.(rt.task, [], error);
    }
  }
}
