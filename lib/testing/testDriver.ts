/**
 * `TestDriver`: runs a processor through the real engine on memory stores, with no server and no AWS
 * — the analogue of Kafka Streams' `TopologyTestDriver`.
 *
 *     const driver = new TestDriver(processor, { topic: 'deposits', partitions: 2 });
 *     await driver.send([{ partition: 0, offset: 1000, key: 'acct-1', value: '{"amount":5}' }]); // one ESM batch
 *     driver.state('account', 'acct-1');   // the committed keyed value
 *     await driver.restart();              // a cold container: the next send restores from the checkpoint
 *     driver.quarantined();                // records set aside, with their errors
 *     driver.outputs('alerts');            // what an output's downstream system received
 *     driver.advanceTime(60_000);          // the wall clock (processing time, commit times) moves on
 *     await driver.tick();                 // a scheduled tick: due timers of idle partitions fire
 *
 * Every `send` is one invocation of the Lambda handler with one ESM event, built in the ESM's own
 * wire format and parsed by the same code as in production. What the driver shows is read back from
 * the stores (the committed checkpoint), not from the container's memory.
 */
import type { BatchSummary, InvocationContext } from '../checkpoint/epochEngine.ts';
import { pipelinePrefix } from '../checkpoint/layout.ts';
import type { NoOutputs, Processor } from '../checkpoint/processor.ts';
import { buildCheckpoint } from '../checkpoint/restore.ts';
import type { CommitRecord, TaskId } from '../checkpoint/stores.ts';
import type { TidemarkConfig } from '../config/config.ts';
import { TICK_EVENT } from '../config/definitions.ts';
import { SnapshotMissingError } from '../errors.ts';
import { buildEvent, deliveredOffset, encodeRecord, signedBytes } from '../event/encode.ts';
import type { RawKafkaRecord, TimestampType } from '../event/types.ts';
import { createRuntime, type TidemarkRuntime } from '../handler/runtime.ts';
import type { OutputDescriptors, OutputReceived, Sink } from '../output/types.ts';
import type { StateDescriptors } from '../state/descriptors.ts';
import { TASK_KEY } from '../state/stateStore.ts';
import { TIMER_TABLES, type Timer } from '../state/timers.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../store/memory/memoryStores.ts';
import { MemorySink, type ReceivedOutput } from './memorySink.ts';
import { defaultPartition } from './partitioner.ts';

/** Bytes as a test gives them: a string (UTF-8), bytes, or null. */
export type TestBytes = string | Uint8Array | null;

/** One record of a `send`. */
export interface TestRecord {
  /** Default: the driver's topic. */
  topic?: string;
  /** Default: Kafka's default partitioner on the key (murmur2), partition 0 for a null key. */
  partition?: number;
  /** Default: one past the last offset sent to the partition (0 at first). */
  offset?: number | bigint | string;
  key?: TestBytes;
  /** Null (or absent) is a tombstone. */
  value?: TestBytes;
  /**
   * Header values: a string, bytes, or null. A null value travels as the ESM sends it, an empty
   * object without the header's name, so the processor does not see that header (docs/processors.md).
   */
  headers?: Record<string, TestBytes> | ReadonlyArray<readonly [string, TestBytes]>;
  /** Milliseconds since the epoch. Default: the driver's clock. */
  timestamp?: number;
  timestampType?: TimestampType;
}

export interface TestDriverOptions {
  /** The input topic. Default `input`. */
  topic?: string;
  /** Partitions of the input topic. Default 1. */
  partitions?: number;
  /** Pipeline id. Default: the processor's `config.pipeline`, else `test`. */
  pipeline?: string;
  /** Settings, as `createKafkaHandler(processor, { config })` takes them. */
  config?: Partial<TidemarkConfig>;
  /** Environment variables the runtime sees (default: none, so the machine's never leak in). */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Wall clock for record timestamps, commit times and processing time. Default `Date.now`, until a
   * test sets the time (`setTime`, `advanceTime`): from then on the driver's own clock.
   */
  now?: () => number;
  /** Event source of the events sent: Amazon MSK (default) or self-managed Kafka. */
  eventSource?: 'aws:kafka' | 'SelfManagedKafka';
}

export interface SendOptions {
  /** The invocation's remaining time, as the Lambda context reports it (default: unlimited). */
  remainingTimeMs?: number;
}

/** A quarantined record, as the driver shows it. */
export interface QuarantinedRecord {
  topic: string;
  partition: number;
  offset: bigint;
  epoch: number;
  error: { name?: string; message: string };
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[string, Buffer | null]>;
  /** For a record the event itself could not carry (malformed fields): what was delivered. */
  delivered?: unknown;
}

/** What `send` returns: the invocation's summary, or the error it failed with. */
export type SendResult = { ok: true; summary: BatchSummary } | { ok: false; error: unknown };

const TEST_SOURCE = {
  eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/test/00000000-0000-0000-0000-000000000000-1',
  bootstrapServers: 'b-1.test.kafka.us-east-1.amazonaws.com:9098',
};

function bytes(v: TestBytes | undefined): Uint8Array | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

function plain(kind: string, value: unknown): unknown {
  if (kind === 'map') return Object.fromEntries(value as Map<string, unknown>);
  if (kind === 'list') return [...(value as unknown[])];
  return value;
}

export class TestDriver<
  S extends StateDescriptors = StateDescriptors,
  O extends OutputDescriptors = NoOutputs,
> {
  readonly topic: string;
  readonly partitions: number;
  readonly pipeline: string;
  /** The stores, as a test may want to look at them (objects, commit items, request counts). */
  readonly snapshots = new MemorySnapshotStore();
  readonly commits = new MemoryCommitStore();
  private readonly processor: Processor<S, O>;
  private readonly options: TestDriverOptions;
  private readonly sinks = new Map<string, MemorySink>();
  private readonly nextOffset = new Map<string, bigint>();
  private runtime: TidemarkRuntime<S, O>;
  private readonly clock: () => number;
  /** The wall clock once a test set it. */
  private manualTime: number | undefined;
  private readonly now = (): number => this.manualTime ?? this.clock();
  private invocations = 0;
  /** Decoded checkpoints by task, valid for one commit (epoch and attempt). */
  private readonly states = new Map<
    string,
    { commit: CommitRecord; tables: Map<string, { kind: string; data: Map<string, unknown> }> }
  >();
  /** The last event sent (for `redeliver`). */
  private lastEvent: unknown;

  constructor(processor: Processor<S, O>, options: TestDriverOptions = {}) {
    this.processor = processor;
    this.options = options;
    this.topic = options.topic ?? 'input';
    this.partitions = options.partitions ?? 1;
    if (!Number.isSafeInteger(this.partitions) || this.partitions < 1) {
      throw new RangeError('TestDriver: partitions must be a positive integer');
    }
    this.pipeline = options.pipeline ?? options.config?.pipeline ?? processor.config?.pipeline ?? 'test';
    this.clock = options.now ?? Date.now;
    this.runtime = this.container();
  }

  /** A new container: a fresh runtime (engine, warm cache, sinks' connections) over the same stores. */
  private container(): TidemarkRuntime<S, O> {
    return createRuntime(this.processor, {
      env: this.options.env ?? {},
      config: {
        bucket: 'tidemark-test',
        table: 'tidemark-test',
        ...this.options.config,
        pipeline: this.pipeline,
      },
      stores: { snapshots: this.snapshots, commits: this.commits },
      sinks: (descriptor) => this.sink(descriptor.sinkId),
      telemetry: false,
      now: this.now,
    });
  }

  private sink(sinkId: string): Sink {
    let sink = this.sinks.get(sinkId);
    if (!sink) {
      sink = new MemorySink({ inCommit: true });
      this.sinks.set(sinkId, sink);
    }
    return sink;
  }

  private event(records: readonly TestRecord[]): unknown {
    const groups = new Map<string, { topic: string; partition: number; records: RawKafkaRecord[] }>();
    for (const r of records) {
      const topic = r.topic ?? this.topic;
      const key = bytes(r.key);
      const partition = r.partition ?? (key === null ? 0 : defaultPartition(key, this.partitions));
      if (!Number.isSafeInteger(partition) || partition < 0)
        throw new RangeError(`TestDriver: bad partition ${partition}`);
      if (topic === this.topic && partition >= this.partitions) {
        throw new RangeError(`TestDriver: partition ${partition} of ${topic}, which has ${this.partitions}`);
      }
      const id = `${topic}-${partition}`;
      const offset = r.offset === undefined ? (this.nextOffset.get(id) ?? 0n) : BigInt(r.offset);
      const next = this.nextOffset.get(id) ?? 0n;
      if (offset + 1n > next) this.nextOffset.set(id, offset + 1n);
      const headers = Array.isArray(r.headers)
        ? (r.headers as ReadonlyArray<readonly [string, TestBytes]>)
        : Object.entries((r.headers ?? {}) as Record<string, TestBytes>);
      const raw = encodeRecord({
        topic,
        partition,
        offset: deliveredOffset(offset),
        timestamp: r.timestamp ?? this.now(),
        timestampType: r.timestampType ?? 'CREATE_TIME',
        key,
        value: bytes(r.value),
        // A header with a null value travels as an empty object: the ESM drops its name with its value.
        headers: headers.map(([name, v]) => (v === null ? {} : { [name]: signedBytes(v) })),
      });
      let g = groups.get(id);
      if (!g) {
        g = { topic, partition, records: [] };
        groups.set(id, g);
      }
      g.records.push(raw);
    }
    return buildEvent({ eventSource: this.options.eventSource ?? 'aws:kafka', ...TEST_SOURCE }, [
      ...groups.values(),
    ]);
  }

  private context(options: SendOptions): InvocationContext {
    const deadline =
      options.remainingTimeMs === undefined ? undefined : performance.now() + options.remainingTimeMs;
    return {
      awsRequestId: `test-${++this.invocations}`,
      ...(deadline === undefined
        ? {}
        : { getRemainingTimeInMillis: () => Math.max(0, deadline - performance.now()) }),
    };
  }

  /**
   * Sends records as one ESM batch (one invocation). Resolves with the batch summary; rejects with the
   * invocation's typed error when it fails (as the handler would), after committing what it could.
   */
  async send(records: readonly TestRecord[], options: SendOptions = {}): Promise<BatchSummary> {
    const event = this.event(records);
    this.lastEvent = event;
    return this.runtime.invoke(event, this.context(options));
  }

  /** The driver's wall clock (ms since the epoch). */
  get time(): number {
    return this.now();
  }

  /**
   * Sets the wall clock (ms since the epoch): record timestamps that a test leaves out, commit times,
   * and the processing time of epochs and ticks (processing-time timers, TTL). It may go back, as a
   * real clock can; a task's processing time never does.
   */
  setTime(ms: number): void {
    if (!Number.isSafeInteger(ms)) throw new RangeError('TestDriver.setTime: ms must be an integer');
    this.manualTime = ms;
  }

  /** Moves the wall clock on by `ms` (see `setTime`). */
  advanceTime(ms: number): void {
    this.setTime(this.now() + ms);
  }

  /**
   * A scheduled tick, as the construct's EventBridge schedule sends it (docs/time.md#idle-partitions):
   * tasks whose timers or TTL deadlines are due at the driver's clock fire them and commit. Resolves
   * with the summary (`records` 0), rejects as `send` does.
   */
  async tick(options: SendOptions = {}): Promise<BatchSummary> {
    return this.runtime.invoke({ ...TICK_EVENT }, this.context(options));
  }

  /** The committed watermark of a partition (ms), or undefined before it has one. */
  watermark(partition = 0, topic = this.topic): number | undefined {
    return this.commitOf({ pipeline: this.pipeline, topic, partition })?.time?.watermark;
  }

  /**
   * The committed timers of a partition, by domain, in firing order (timestamp, tag, key). Read from
   * the checkpoint, as `state` is.
   */
  timers(partition = 0, topic = this.topic): Array<Timer> {
    const tables = this.tables({ pipeline: this.pipeline, topic, partition });
    const out: Timer[] = [];
    for (const domain of ['event', 'processing'] as const) {
      const ids = [...(tables?.get(TIMER_TABLES[domain])?.data.keys() ?? [])];
      for (const id of ids) {
        const [ts, tag, ...key] = id.split('\u0000');
        out.push({ domain, timestamp: Number(ts), tag: tag!, key: key.join('\u0000') });
      }
    }
    return out.sort(
      (a, b) =>
        a.domain.localeCompare(b.domain) ||
        a.timestamp - b.timestamp ||
        (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0) ||
        (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    );
  }

  /** Like `send`, but resolves with the outcome instead of rejecting (for failure tests). */
  async trySend(records: readonly TestRecord[], options: SendOptions = {}): Promise<SendResult> {
    try {
      return { ok: true, summary: await this.send(records, options) };
    } catch (error) {
      return { ok: false, error };
    }
  }

  /** Delivers the last batch again, as the ESM does after a failure or a duplicate delivery. */
  async redeliver(options: SendOptions = {}): Promise<BatchSummary> {
    if (this.lastEvent === undefined) throw new Error('TestDriver.redeliver: nothing was sent yet');
    return this.runtime.invoke(this.lastEvent, this.context(options));
  }

  /** Sends a raw ESM event (for example a third-party sample), as the handler receives it. */
  async sendEvent(event: unknown, options: SendOptions = {}): Promise<BatchSummary> {
    this.lastEvent = event;
    return this.runtime.invoke(event, this.context(options));
  }

  /** A cold container: the warm state is gone; the next send restores from the stored checkpoint. */
  async restart(): Promise<void> {
    await this.runtime.engine.close();
    this.runtime = this.container();
  }

  /** The committed epoch and next offset of a partition (undefined before its first commit). */
  committed(partition = 0, topic = this.topic): { epoch: number; offset: bigint } | undefined {
    const c = this.commitOf({ pipeline: this.pipeline, topic, partition });
    return c ? { epoch: c.epoch, offset: c.committedOffset } : undefined;
  }

  private commitOf(task: TaskId): CommitRecord | undefined {
    for (const c of this.commits.items.values()) {
      if (c.pipeline === task.pipeline && c.topic === task.topic && c.partition === task.partition) return c;
    }
    return undefined;
  }

  /**
   * The committed value of a state: keyed state by key (map state as a plain object, list state as an
   * array), task state with no key. Undefined when there is none. Looks in every partition of the
   * topic unless `partition` is given; a key held by several partitions needs it.
   */
  state(name: keyof S & string, key?: string, options: { partition?: number; topic?: string } = {}): unknown {
    const topic = options.topic ?? this.topic;
    const partitions =
      options.partition === undefined
        ? Array.from({ length: this.partitions }, (_, i) => i)
        : [options.partition];
    const found: Array<{ partition: number; value: unknown }> = [];
    for (const partition of partitions) {
      const table = this.tables({ pipeline: this.pipeline, topic, partition })?.get(name);
      if (!table) continue;
      const k = key ?? TASK_KEY;
      if (table.data.has(k)) found.push({ partition, value: plain(table.kind, table.data.get(k)) });
    }
    if (found.length > 1) {
      throw new Error(
        `TestDriver.state: '${name}' of key ${JSON.stringify(key)} is held by partitions ${found.map((f) => f.partition).join(', ')}; give { partition }`,
      );
    }
    return found[0]?.value;
  }

  private tables(task: TaskId): Map<string, { kind: string; data: Map<string, unknown> }> | undefined {
    const commit = this.commitOf(task);
    if (!commit) return undefined;
    const id = `${task.topic}\u0000${task.partition}`;
    const cached = this.states.get(id);
    if (cached && cached.commit.epoch === commit.epoch && cached.commit.attempt === commit.attempt)
      return cached.tables;
    // Built synchronously, through the engine's verified restore path: the objects are in memory.
    const objects = commit.chain.map((ref) => {
      if (ref.inline) return ref.inline;
      const o = this.snapshots.objects.get(ref.key);
      if (!o) throw new SnapshotMissingError(ref.key);
      return o.body;
    });
    const { store } = buildCheckpoint(task, commit, objects, this.processor.state as StateDescriptors);
    const tables = new Map<string, { kind: string; data: Map<string, unknown> }>();
    for (const t of store.allTables()) tables.set(t.name, { kind: t.kind, data: t.data });
    this.states.set(id, { commit, tables });
    return tables;
  }

  /** Records set aside under the quarantine policy, in offset order per partition, with their errors. */
  quarantined(): QuarantinedRecord[] {
    const prefix = `${pipelinePrefix(this.runtime.config.prefix, this.pipeline)}quarantine/`;
    const out: QuarantinedRecord[] = [];
    for (const key of [...this.snapshots.objects.keys()].sort()) {
      if (!key.startsWith(prefix) || key.includes('/timers/')) continue;
      const doc = JSON.parse(this.snapshots.objects.get(key)!.body.toString('utf8')) as Record<
        string,
        unknown
      >;
      const b64 = (v: unknown) => (typeof v === 'string' ? Buffer.from(v, 'base64') : null);
      out.push({
        topic: doc.topic as string,
        partition: doc.partition as number,
        offset: BigInt(doc.offset as string),
        epoch: doc.epoch as number,
        error: doc.error as QuarantinedRecord['error'],
        key: b64(doc.key),
        value: b64(doc.value),
        headers: ((doc.headers as Array<Record<string, number[] | null>> | undefined) ?? []).map((h) => {
          const [name, v] = Object.entries(h)[0]!;
          return [name, v === null ? null : Buffer.from(v)];
        }),
        ...(doc.delivered !== undefined ? { delivered: doc.delivered } : {}),
      });
    }
    return out;
  }

  /** Timers set aside under the quarantine policy (their callback failed for good), with their errors. */
  quarantinedTimers(): Array<{
    timer: Timer;
    afterOffset: bigint;
    epoch: number;
    error: { message: string };
  }> {
    const prefix = `${pipelinePrefix(this.runtime.config.prefix, this.pipeline)}quarantine/`;
    return [...this.snapshots.objects.keys()]
      .filter((k) => k.startsWith(prefix) && k.includes('/timers/'))
      .sort()
      .map((k) => {
        const doc = JSON.parse(this.snapshots.objects.get(k)!.body.toString('utf8'));
        return { timer: doc.timer, afterOffset: BigInt(doc.afterOffset), epoch: doc.epoch, error: doc.error };
      });
  }

  /**
   * What an output's downstream system received, in the order it became visible: each output once,
   * with its stable id, however many restarts, redeliveries and lost races happened.
   */
  outputs<K extends keyof O & string>(name: K): Array<ReceivedOutput<OutputReceived<O[K]>>> {
    if (!this.processor.outputs || !(name in this.processor.outputs)) {
      throw new Error(`TestDriver.outputs: the processor declares no output '${name}'`);
    }
    const out: ReceivedOutput[] = [];
    for (const sink of this.sinks.values()) out.push(...(sink.received.get(name) ?? []));
    return out as Array<ReceivedOutput<OutputReceived<O[K]>>>;
  }

  /** Deliveries the sinks ignored because their epoch was already there (redeliveries). */
  get duplicateDeliveries(): number {
    let n = 0;
    for (const s of this.sinks.values()) n += s.duplicateDeliveries;
    return n;
  }

  /** Releases the runtime (sinks' connections); the driver cannot be used afterwards. */
  async close(): Promise<void> {
    await this.runtime.engine.close();
  }
}
