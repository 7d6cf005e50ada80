/**
 * An emulator of Lambda's Kafka event source mapping (ESM), for local runs and tests. It consumes
 * real Kafka topics with kafkajs, in a consumer group, and invokes a function the way the ESM does:
 *
 * - a batch closes when it holds `batchSize` records, when the batching window expires, or when
 *   one more record would push the JSON payload past 6 MB; one payload may mix partitions;
 * - records of a partition are delivered in offset order, and a partition has at most one batch in
 *   flight (a batch waiting for its retry counts as in flight);
 * - events are shaped like MSK events (`aws:kafka`, or `SelfManagedKafka`): base64 keys and
 *   values, null for null keys and tombstones, headers as signed bytes;
 * - the function gets a Lambda-like context whose `getRemainingTimeInMillis()` counts down to the
 *   function timeout, and the invocation is stopped there;
 * - offsets are committed to the consumer group only after the invocation succeeded;
 * - a failed batch is retried whole, up to `maximumRetryAttempts` (-1: until it succeeds); when
 *   retries run out, `onFailure` receives the batch and the ESM moves past it;
 * - with `reportBatchItemFailures` (the mapping's `FunctionResponseTypes: [ReportBatchItemFailures]`),
 *   a successful invocation may return `{ batchItemFailures: [{ itemIdentifier: { partition:
 *   "<topic>-<partition>", offset } }] }`: each named topic-partition is committed up to its lowest
 *   named offset and delivered again from there (a retry of those records only); the others are
 *   committed whole. An empty or null list is a success; an identifier that is not such an object, or
 *   names a partition or offset the event did not hold, fails the whole batch;
 * - a "container" (one instance of the function, with its own warm state) handles one invocation
 *   at a time; idle containers are reused, a crashed or timed-out one never is.
 *
 * Faults (`faults`) come from outside the function: crashes, timeouts, duplicate deliveries and
 * re-batched retries (see faults.ts). docs/local-run.md lists where this differs from the real ESM.
 */
import { type Consumer, Kafka, type KafkaMessage, type logCreator, logLevel } from 'kafkajs';
import { ESM } from '../../lib/config/definitions.ts';
import type { KafkaEvent, KafkaEventSource, RawKafkaRecord } from '../../lib/event/types.ts';
import { ANYTIME, type EsmFaultKind, type EsmFaults, type InvocationFault, NO_FAULTS } from './faults.ts';
import { createLambdaContext, type LambdaContext } from './lambdaContext.ts';
import {
  buildEvent,
  type EventSourceInfo,
  envelopeBytes,
  eventRecordBytes,
  type FetchedMessage,
  groupBytes,
  MAX_PAYLOAD_BYTES,
  toEventRecord,
} from './mskEvent.ts';

/** One instance of the function ("execution environment"), with whatever it keeps warm. */
export interface LambdaContainer {
  invoke(event: KafkaEvent, context: LambdaContext): Promise<unknown>;
  /** Points of its own work where the container can be made to crash (e.g. `before-commit`). */
  readonly crashPoints?: readonly string[];
  /**
   * The container dies when it next reaches `point`: nothing after it runs. Resolves when that
   * happened. `disarm` cancels it when the invocation ended first.
   */
  armCrash?(point: string): Promise<void>;
  disarm?(): void;
  /** The container is gone (crashed, timed out): whatever still runs in it must stop. */
  kill?(): void;
}

export type InvocationOutcome = 'success' | 'error' | 'timeout' | 'crash';

export interface BatchPart {
  topic: string;
  partition: number;
  /** First and last offsets, decimal strings. */
  firstOffset: string;
  lastOffset: string;
  records: number;
}

export interface InvocationReport {
  requestId: string;
  containerId: number;
  coldStart: boolean;
  batchId: number;
  /** 1 for the first delivery of a batch, 2 for its first retry, … */
  attempt: number;
  parts: BatchPart[];
  records: number;
  payloadBytes: number;
  timeoutMs: number;
  fault: InvocationFault | undefined;
  /** True for the second copy of a concurrently duplicated delivery. */
  duplicateCopy: boolean;
  outcome: InvocationOutcome;
  error: unknown;
  result: unknown;
  durationMs: number;
}

export interface FailedBatch {
  event: KafkaEvent;
  parts: BatchPart[];
  attempts: number;
  error: unknown;
}

export interface EsmEmulatorOptions {
  /** Kafka bootstrap servers, `host:port`. */
  brokers: readonly string[];
  topics: readonly string[];
  /** Consumer group id: the pipeline id (the ESM's group is named after the pipeline). */
  groupId: string;
  /** Creates a container (a cold start). */
  createContainer: (id: number) => LambdaContainer;
  functionName?: string;
  /** Records per batch, 1..10,000. Default 100 (the ESM's default). */
  batchSize?: number;
  /** Batching window in ms. Default 500 (the ESM's default for Kafka). */
  batchingWindowMs?: number;
  /** Payload limit. Default 6 MB (Lambda's invocation limit). */
  maxPayloadBytes?: number;
  /** Function timeout. Default 60 s. */
  functionTimeoutMs?: number;
  /** Retries of a failed batch; -1 retries until it succeeds (the ESM's default). */
  maximumRetryAttempts?: number;
  /** The mapping reads partial batch responses (`ReportBatchItemFailures`). Default false. */
  reportBatchItemFailures?: boolean;
  /** Called with a batch whose retries ran out, before the ESM moves past it. */
  onFailure?: (failure: FailedBatch) => void | Promise<void>;
  /** Delay before retry n: min(base × 2^(n-1), 5 s). Default base 100 ms. */
  retryBackoffMs?: number;
  /** Invocations at the same time (at most one per partition). Default 8. */
  maxConcurrency?: number;
  /** Where a new consumer group starts. Default TRIM_HORIZON. */
  startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  eventSource?: KafkaEventSource;
  /** Fault injection. Default: none. */
  faults?: EsmFaults;
  onInvocation?: (report: InvocationReport) => void;
  /** Called after offsets were committed to the consumer group (next offset to read). */
  onCommit?: (topic: string, partition: number, offset: bigint) => void;
  /** kafkajs logging. Default: silent. */
  kafkaLogCreator?: logCreator;
  /** Consumer session timeout (ms). Default 6,000. */
  sessionTimeoutMs?: number;
}

export interface EsmStats {
  invocations: number;
  succeeded: number;
  failed: Record<Exclude<InvocationOutcome, 'success'>, number>;
  retries: number;
  /** Batches given up after `maximumRetryAttempts` (handed to `onFailure`). */
  batchesDiscarded: number;
  /** Records in invocations, retries and duplicates included. */
  recordsDelivered: number;
  /** Invocations that succeeded with a partial batch response naming failed records. */
  partialResponses: number;
  /** Partial batch responses that named no record of the event (the whole batch failed). */
  invalidResponses: number;
  /** Records delivered again because their invocation failed or named them as failed. */
  recordsRedelivered: number;
  coldStarts: number;
  faults: Record<EsmFaultKind, number>;
  /** Crash faults whose point the invocation never reached (no crash happened). */
  crashesNotReached: number;
  offsetCommits: number;
  offsetCommitFailures: number;
  consumerCrashes: number;
  /** Records larger than the payload limit, delivered alone. */
  oversizedRecords: number;
}

interface Buffered {
  offset: bigint;
  record: RawKafkaRecord;
  bytes: number;
}

class PartitionState {
  readonly topic: string;
  readonly partition: number;
  buffer: Buffered[] = [];
  bufferedBytes = 0;
  /** Offset of the last record the fetcher handed over. */
  lastFetched: bigint | undefined;
  /** A batch of this partition is in flight (or waiting for its retry). */
  busy = false;
  paused = false;
  /** Next offset to commit (end of the last successful batch). */
  committable: bigint | undefined;
  /** Next offset committed to the group. */
  committed: bigint | undefined;
  /** Retry count of the record at `offset`, carried over when a failed batch is re-batched. */
  failedAt: { offset: bigint; attempts: number } | undefined;

  constructor(topic: string, partition: number) {
    this.topic = topic;
    this.partition = partition;
  }

  append(offset: bigint, record: RawKafkaRecord): void {
    if (this.lastFetched !== undefined && offset <= this.lastFetched) {
      // The fetcher went back (consumer restart, rebalance): keep what was buffered before it.
      this.buffer = this.buffer.filter((r) => r.offset < offset);
      this.bufferedBytes = this.buffer.reduce((n, r) => n + r.bytes, 0);
    }
    const bytes = eventRecordBytes(record);
    this.buffer.push({ offset, record, bytes });
    this.bufferedBytes += bytes;
    this.lastFetched = offset;
  }

  take(n: number): Buffered[] {
    const out = this.buffer.splice(0, n);
    for (const r of out) this.bufferedBytes -= r.bytes;
    return out;
  }

  putBack(records: Buffered[]): void {
    this.buffer.unshift(...records);
    for (const r of records) this.bufferedBytes += r.bytes;
  }
}

interface Batch {
  id: number;
  parts: Array<{ state: PartitionState; records: Buffered[] }>;
  attempts: number;
  bytes: number;
  event: KafkaEvent;
}

interface Pooled {
  id: number;
  container: LambdaContainer;
  invocations: number;
}

const MAX_BATCH_SIZE = ESM.maxBatchSize;
const silentLogs: logCreator = () => () => {};

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function lambdaError(type: string, message: string): Error {
  const err = new Error(message);
  err.name = type;
  return err;
}

export class EsmEmulator {
  readonly stats: EsmStats = {
    invocations: 0,
    succeeded: 0,
    failed: { error: 0, timeout: 0, crash: 0 },
    retries: 0,
    batchesDiscarded: 0,
    recordsDelivered: 0,
    partialResponses: 0,
    invalidResponses: 0,
    recordsRedelivered: 0,
    coldStarts: 0,
    faults: { crash: 0, timeout: 0, duplicate: 0, rebatch: 0 },
    crashesNotReached: 0,
    offsetCommits: 0,
    offsetCommitFailures: 0,
    consumerCrashes: 0,
    oversizedRecords: 0,
  };
  private readonly options: EsmEmulatorOptions;
  private readonly batchSize: number;
  private readonly windowMs: number;
  private readonly maxPayload: number;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly concurrency: number;
  private readonly faults: EsmFaults;
  private readonly source: EventSourceInfo;
  private readonly envelope: number;
  private readonly consumer: Consumer;
  private readonly partitions = new Map<string, PartitionState>();
  private readonly idle: Pooled[] = [];
  private readonly running = new Set<Promise<unknown>>();
  /** Crash points of the function's containers (learnt from the first one). */
  private crashPoints: readonly string[] = [];
  private nextContainerId = 1;
  private nextBatchId = 1;
  private rotation = 0;
  private inFlight = 0;
  private typicalMs = 100;
  private stopping = false;
  private started = false;
  private wakeUp: (() => void) | undefined;
  private assembler: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private commitChain: Promise<void> = Promise.resolve();

  constructor(options: EsmEmulatorOptions) {
    this.options = options;
    this.batchSize = options.batchSize ?? 100;
    if (!Number.isSafeInteger(this.batchSize) || this.batchSize < 1 || this.batchSize > MAX_BATCH_SIZE)
      throw new RangeError(`batchSize must be 1..${MAX_BATCH_SIZE}, got ${this.batchSize}`);
    this.windowMs = options.batchingWindowMs ?? 500;
    this.maxPayload = options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES;
    this.timeoutMs = options.functionTimeoutMs ?? 60_000;
    this.maxRetries = options.maximumRetryAttempts ?? -1;
    this.concurrency = options.maxConcurrency ?? 8;
    this.faults = options.faults ?? NO_FAULTS;
    const eventSource = options.eventSource ?? 'aws:kafka';
    this.source = {
      eventSource,
      eventSourceArn:
        eventSource === 'aws:kafka'
          ? `arn:aws:kafka:us-east-1:123456789012:cluster/local/${options.groupId}`
          : undefined,
      bootstrapServers: options.brokers.join(','),
    };
    this.envelope = envelopeBytes(this.source);
    const kafka = new Kafka({
      clientId: `esm-${options.groupId}`,
      brokers: [...options.brokers],
      logLevel: logLevel.WARN,
      logCreator: options.kafkaLogCreator ?? silentLogs,
      retry: { retries: 12, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
    this.consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 6_000,
      // A member that stops answering must not hold a rebalance for kafkajs's default 60 s.
      rebalanceTimeout: 2 * (options.sessionTimeoutMs ?? 6_000),
      heartbeatInterval: Math.max(100, Math.floor((options.sessionTimeoutMs ?? 6_000) / 6)),
      maxWaitTimeInMs: 200,
      // kafkajs forgets a broker that refused a connection and builds fetchers only for the brokers
      // its metadata knows: fresh metadata brings a broker that came back into the fetch again
      // (with the 5 min default, its partitions would sit unread until then).
      metadataMaxAge: 3_000,
      allowAutoTopicCreation: false,
      retry: { retries: 12, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
    this.consumer.on(this.consumer.events.CRASH, () => {
      this.stats.consumerCrashes++;
    });
    // The group's offsets as the coordinator acknowledged them (kafkajs silently skips a commit
    // while its consumer restarts: only this event says a commit happened).
    this.consumer.on(this.consumer.events.COMMIT_OFFSETS, (e) => {
      const topics = (
        e.payload as {
          topics: Array<{ topic: string; partitions: Array<{ partition: number; offset: unknown }> }>;
        }
      ).topics;
      for (const t of topics) {
        for (const p of t.partitions) {
          const state = this.partitionState(t.topic, Number(p.partition));
          const offset = BigInt(String(p.offset));
          if (state.committed === undefined || offset > state.committed) {
            state.committed = offset;
            this.options.onCommit?.(state.topic, state.partition, offset);
          }
        }
      }
    });
  }

  /** Joins the consumer group and starts delivering. */
  async start(): Promise<void> {
    if (this.started) throw new Error('the emulator was already started');
    this.started = true;
    await this.consumer.connect();
    await this.consumer.subscribe({
      topics: [...this.options.topics],
      fromBeginning: (this.options.startingPosition ?? 'TRIM_HORIZON') === 'TRIM_HORIZON',
    });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch, resolveOffset, pause, isRunning, isStale }) => {
        const state = this.partitionState(batch.topic, batch.partition);
        let last: string | undefined;
        for (const message of batch.messages as KafkaMessage[]) {
          if (!isRunning() || isStale()) break;
          state.append(
            BigInt(message.offset),
            toEventRecord(batch.topic, batch.partition, message as FetchedMessage),
          );
          last = message.offset;
        }
        // Moves the fetch position only: the group's offsets move when a batch succeeded.
        if (last !== undefined) resolveOffset(last);
        if (this.isFull(state)) {
          pause();
          state.paused = true;
        }
        this.wake();
      },
    });
    this.flushTimer = setInterval(() => void this.flushCommits(), 1_000);
    this.assembler = this.assemble();
  }

  /**
   * Stops delivering, waits for invocations in flight (a failed batch is not retried any more),
   * commits what succeeded, and leaves the consumer group.
   */
  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.wake();
    await this.assembler;
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    clearInterval(this.flushTimer);
    await this.flushCommits();
    await this.consumer.disconnect();
  }

  /** Records fetched and waiting for a batch, and invocations running. */
  pending(): { buffered: number; inFlight: number } {
    let buffered = 0;
    for (const s of this.partitions.values()) buffered += s.buffer.length;
    return { buffered, inFlight: this.inFlight };
  }

  /** Per-partition state, for diagnostics (e.g. when a run stops making progress). */
  describe(): Record<string, unknown> {
    const partitions = Object.fromEntries(
      [...this.partitions].map(([k, s]) => [
        k,
        {
          buffered: s.buffer.length,
          first: s.buffer[0]?.offset.toString(),
          busy: s.busy,
          paused: s.paused,
          lastFetched: s.lastFetched?.toString(),
          committable: s.committable?.toString(),
          committed: s.committed?.toString(),
        },
      ]),
    );
    return { inFlight: this.inFlight, running: this.running.size, stopping: this.stopping, partitions };
  }

  /** Next offset committed to the group, per `"<topic>-<partition>"` seen so far. */
  committedOffsets(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    for (const [k, s] of this.partitions) if (s.committed !== undefined) out.set(k, s.committed);
    return out;
  }

  private partitionState(topic: string, partition: number): PartitionState {
    const key = `${topic}-${partition}`;
    let s = this.partitions.get(key);
    if (!s) {
      s = new PartitionState(topic, partition);
      this.partitions.set(key, s);
    }
    return s;
  }

  private isFull(s: PartitionState): boolean {
    return s.buffer.length >= Math.max(2 * this.batchSize, 1_000) || s.bufferedBytes >= 2 * this.maxPayload;
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  private signal(timeoutMs?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(resolve, Math.max(0, timeoutMs));
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private ready(): { records: number; bytes: number } {
    let records = 0;
    let bytes = this.envelope;
    for (const s of this.partitions.values()) {
      if (s.busy || s.buffer.length === 0) continue;
      records += s.buffer.length;
      bytes += s.bufferedBytes + groupBytes(s.topic, s.partition);
    }
    return { records, bytes };
  }

  private async assemble(): Promise<void> {
    while (!this.stopping) {
      if (this.inFlight >= this.concurrency || this.ready().records === 0) {
        await this.signal();
        continue;
      }
      // The batching window opens with the first record available.
      const opened = performance.now();
      for (;;) {
        const r = this.ready();
        const left = this.windowMs - (performance.now() - opened);
        if (this.stopping || r.records >= this.batchSize || r.bytes >= this.maxPayload || left <= 0) break;
        await this.signal(left);
      }
      if (this.stopping) break;
      const batch = this.takeBatch();
      if (batch) this.track(this.dispatch(batch));
    }
  }

  private track(p: Promise<unknown>): void {
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Cuts the next batch from partitions with no batch in flight, in rotating order. */
  private takeBatch(): Batch | undefined {
    const candidates = [...this.partitions.values()].filter((s) => !s.busy && s.buffer.length > 0);
    if (candidates.length === 0) return undefined;
    const start = this.rotation++ % candidates.length;
    const order = [...candidates.slice(start), ...candidates.slice(0, start)];
    const parts: Batch['parts'] = [];
    let count = 0;
    let bytes = this.envelope;
    let full = false;
    for (const s of order) {
      let n = 0;
      let extra = groupBytes(s.topic, s.partition);
      while (n < s.buffer.length && count < this.batchSize) {
        const size = s.buffer[n]!.bytes;
        if (bytes + extra + size > this.maxPayload) {
          if (count === 0) {
            // A record larger than the payload limit: delivered alone.
            this.stats.oversizedRecords++;
            extra += size;
            n++;
            count++;
          }
          full = true;
          break;
        }
        extra += size;
        n++;
        count++;
      }
      if (n > 0) {
        bytes += extra;
        parts.push({ state: s, records: s.take(n) });
        s.busy = true;
        if (s.paused && !this.isFull(s)) {
          s.paused = false;
          this.consumer.resume([{ topic: s.topic, partitions: [s.partition] }]);
        }
      }
      if (full || count >= this.batchSize) break;
    }
    const attempts = Math.max(
      0,
      ...parts.map(({ state, records }) =>
        state.failedAt && state.failedAt.offset === records[0]!.offset ? state.failedAt.attempts : 0,
      ),
    );
    return {
      id: this.nextBatchId++,
      parts,
      attempts,
      bytes,
      event: buildEvent(
        this.source,
        parts.map((p) => ({
          topic: p.state.topic,
          partition: p.state.partition,
          records: p.records.map((r) => r.record),
        })),
      ),
    };
  }

  private partsOf(batch: Batch): BatchPart[] {
    return batch.parts.map(({ state, records }) => ({
      topic: state.topic,
      partition: state.partition,
      firstOffset: records[0]!.offset.toString(),
      lastOffset: records[records.length - 1]!.offset.toString(),
      records: records.length,
    }));
  }

  /** Delivers a batch until it succeeds, is given up, or is handed back for re-batching. */
  private async dispatch(batch: Batch): Promise<void> {
    this.inFlight++;
    try {
      for (;;) {
        const fault = this.faults.forInvocation(this.crashPoints, this.typicalMs);
        if (fault?.kind === 'duplicate' && fault.mode === 'concurrent') {
          this.stats.faults.duplicate++;
          this.track(this.invoke(batch, undefined, true));
        }
        const outcome = await this.invoke(batch, fault, false);
        const partial =
          outcome.outcome === 'success' && this.options.reportBatchItemFailures
            ? this.partialFailures(batch, outcome.result)
            : undefined;
        if (partial && partial !== 'invalid') {
          await this.partiallySucceeded(batch, partial);
          return;
        }
        if (outcome.outcome === 'success') {
          if (fault?.kind === 'duplicate' && fault.mode === 'redeliver') {
            // The offset commit was "lost": the same batch is delivered again.
            this.stats.faults.duplicate++;
            continue;
          }
          this.succeeded(batch);
          return;
        }
        batch.attempts++;
        if (this.maxRetries >= 0 && batch.attempts > this.maxRetries) {
          this.stats.batchesDiscarded++;
          await this.options.onFailure?.({
            event: batch.event,
            parts: this.partsOf(batch),
            attempts: batch.attempts,
            error: outcome.error,
          });
          this.succeeded(batch);
          return;
        }
        if (this.stopping) return;
        this.stats.retries++;
        this.stats.recordsRedelivered += batch.parts.reduce((n, p) => n + p.records.length, 0);
        if (this.faults.rebatch()) {
          this.stats.faults.rebatch++;
          for (const { state, records } of batch.parts) {
            state.failedAt = { offset: records[0]!.offset, attempts: batch.attempts };
            state.putBack(records);
          }
          await sleep(this.backoff(batch.attempts));
          return;
        }
        await sleep(this.backoff(batch.attempts));
        if (this.stopping) return;
      }
    } finally {
      for (const { state } of batch.parts) state.busy = false;
      this.inFlight--;
      this.wake();
    }
  }

  /**
   * The lowest offset the function named as failed, per partition of the batch; undefined when it
   * named none (a success); 'invalid' when an identifier is malformed or names no record of the event.
   */
  private partialFailures(
    batch: Batch,
    result: unknown,
  ): Map<PartitionState, bigint> | 'invalid' | undefined {
    const list = (result as { batchItemFailures?: unknown } | null | undefined)?.batchItemFailures;
    if (list === undefined || list === null) return undefined;
    if (!Array.isArray(list)) return 'invalid';
    if (list.length === 0) return undefined;
    const out = new Map<PartitionState, bigint>();
    for (const item of list) {
      const id = (item as { itemIdentifier?: unknown } | null)?.itemIdentifier as
        | { partition?: unknown; offset?: unknown }
        | null
        | undefined;
      if (typeof id !== 'object' || id === null) return 'invalid';
      if (typeof id.partition !== 'string' || !Number.isSafeInteger(id.offset)) return 'invalid';
      const offset = BigInt(id.offset as number);
      const part = batch.parts.find((p) => `${p.state.topic}-${p.state.partition}` === id.partition);
      if (!part?.records.some((r) => r.offset === offset)) return 'invalid';
      const lowest = out.get(part.state);
      if (lowest === undefined || offset < lowest) out.set(part.state, offset);
    }
    return out;
  }

  /**
   * A partial batch response: partitions not named are committed whole; a named one is committed up
   * to its failed offset and its records from there are delivered again (as a retry), or handed to
   * `onFailure` once its retries ran out.
   */
  private async partiallySucceeded(batch: Batch, failedAt: Map<PartitionState, bigint>): Promise<void> {
    this.stats.partialResponses++;
    const attempts = batch.attempts + 1;
    const exhausted = this.maxRetries >= 0 && attempts > this.maxRetries;
    const given: BatchPart[] = [];
    for (const { state, records } of batch.parts) {
      const from = failedAt.get(state);
      let next = records[records.length - 1]!.offset + 1n;
      if (from !== undefined) {
        const again = records.filter((r) => r.offset >= from);
        if (exhausted) {
          given.push({
            topic: state.topic,
            partition: state.partition,
            firstOffset: from.toString(),
            lastOffset: again[again.length - 1]!.offset.toString(),
            records: again.length,
          });
        } else {
          next = from;
          state.failedAt = { offset: from, attempts };
          state.putBack(again);
          this.stats.recordsRedelivered += again.length;
        }
      } else state.failedAt = undefined;
      if (state.committable === undefined || next > state.committable) state.committable = next;
    }
    if (exhausted) {
      this.stats.batchesDiscarded++;
      await this.options.onFailure?.({
        event: batch.event,
        parts: given,
        attempts,
        error: lambdaError('BatchItemFailures', 'records named as failed after the last retry'),
      });
    } else this.stats.retries++;
    void this.flushCommits();
    if (!exhausted) await sleep(this.backoff(attempts));
  }

  private backoff(attempt: number): number {
    return Math.min((this.options.retryBackoffMs ?? 100) * 2 ** (attempt - 1), 5_000);
  }

  private succeeded(batch: Batch): void {
    for (const { state, records } of batch.parts) {
      const next = records[records.length - 1]!.offset + 1n;
      if (state.committable === undefined || next > state.committable) state.committable = next;
      state.failedAt = undefined;
    }
    void this.flushCommits();
  }

  /** Commits the end of every successful batch to the consumer group (serialized, monotonic). */
  private flushCommits(): Promise<void> {
    this.commitChain = this.commitChain.then(async () => {
      const due = [...this.partitions.values()].filter(
        (s) => s.committable !== undefined && (s.committed === undefined || s.committable > s.committed),
      );
      if (due.length === 0) return;
      try {
        await this.consumer.commitOffsets(
          due.map((s) => ({ topic: s.topic, partition: s.partition, offset: s.committable!.toString() })),
        );
        this.stats.offsetCommits++;
      } catch {
        // Retried by the next flush (a timer runs every second); the records stay delivered.
        this.stats.offsetCommitFailures++;
      }
    });
    return this.commitChain;
  }

  private acquire(): { pooled: Pooled; cold: boolean } {
    const warm = this.idle.pop();
    if (warm) return { pooled: warm, cold: false };
    const id = this.nextContainerId++;
    this.stats.coldStarts++;
    const container = this.options.createContainer(id);
    if (id === 1) this.crashPoints = container.crashPoints ?? [];
    return { pooled: { id, container, invocations: 0 }, cold: true };
  }

  /** One invocation of the function with a batch, on one container. */
  private async invoke(
    batch: Batch,
    fault: InvocationFault | undefined,
    duplicateCopy: boolean,
  ): Promise<InvocationReport> {
    const { pooled, cold } = this.acquire();
    const container = pooled.container;
    const timeoutMs = fault?.kind === 'timeout' ? fault.timeoutMs : this.timeoutMs;
    const context = createLambdaContext({
      functionName: this.options.functionName ?? this.options.groupId,
      timeoutMs,
    });
    const records = batch.parts.reduce((n, p) => n + p.records.length, 0);
    this.stats.invocations++;
    this.stats.recordsDelivered += records;
    if (fault?.kind === 'timeout') this.stats.faults.timeout++;
    const started = performance.now();
    type Settled = { outcome: InvocationOutcome; error?: unknown; result?: unknown };
    let settle: (s: Settled) => void = () => {};
    const settled = new Promise<Settled>((r) => (settle = r));
    const deadline = setTimeout(
      () =>
        settle({
          outcome: 'timeout',
          error: lambdaError(
            'Sandbox.Timedout',
            `Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
          ),
        }),
      timeoutMs,
    );
    let crashTimer: NodeJS.Timeout | undefined;
    let crashed = false;
    if (fault?.kind === 'crash') {
      const crash = (where: string) => {
        crashed = true;
        settle({
          outcome: 'crash',
          error: lambdaError(
            'Runtime.ExitError',
            `RequestId: ${context.awsRequestId} Error: Runtime exited (${where})`,
          ),
        });
      };
      if (fault.point !== ANYTIME && container.armCrash) {
        void container.armCrash(fault.point).then(() => crash(fault.point));
      } else {
        crashTimer = setTimeout(() => crash(ANYTIME), fault.delayMs);
      }
    }
    Promise.resolve()
      .then(() => container.invoke(batch.event, context))
      .then(
        (result) => settle({ outcome: 'success', result }),
        (error: unknown) => settle({ outcome: 'error', error }),
      );
    let s = await settled;
    if (
      s.outcome === 'success' &&
      this.options.reportBatchItemFailures &&
      this.partialFailures(batch, s.result) === 'invalid'
    ) {
      // Lambda fails the whole batch on an identifier it cannot place.
      this.stats.invalidResponses++;
      s = {
        outcome: 'error',
        error: lambdaError(
          'InvalidBatchItemFailures',
          'the partial batch response names no record of the event',
        ),
      };
    }
    clearTimeout(deadline);
    clearTimeout(crashTimer);
    container.disarm?.();
    const durationMs = performance.now() - started;
    if (fault?.kind === 'crash') {
      if (crashed) this.stats.faults.crash++;
      else this.stats.crashesNotReached++;
    }
    pooled.invocations++;
    if (s.outcome === 'timeout' || s.outcome === 'crash') {
      container.kill?.(); // Lambda stops the process: it is never reused
    } else {
      this.idle.push(pooled);
    }
    if (s.outcome === 'success') {
      this.stats.succeeded++;
      this.typicalMs = 0.8 * this.typicalMs + 0.2 * durationMs;
    } else {
      this.stats.failed[s.outcome]++;
    }
    const report: InvocationReport = {
      requestId: context.awsRequestId,
      containerId: pooled.id,
      coldStart: cold,
      batchId: batch.id,
      attempt: batch.attempts + 1,
      parts: this.partsOf(batch),
      records,
      payloadBytes: batch.bytes,
      timeoutMs,
      fault,
      duplicateCopy,
      outcome: s.outcome,
      error: s.error,
      result: s.result,
      durationMs,
    };
    this.options.onInvocation?.(report);
    return report;
  }
}
