import type { PoisonPolicy, TidemarkConfig } from '../config/config.ts';
import type { KafkaRecord } from '../event/types.ts';
import type { OutputDescriptors, OutputHandles } from '../output/types.ts';
import type { StateDescriptors, StateHandles } from '../state/descriptors.ts';
import { INTERNAL_STATE_PREFIX } from '../state/stateStore.ts';
import type { Timer } from '../state/timers.ts';

export type { TimeDomain, Timer } from '../state/timers.ts';

/**
 * Event time of a processor (docs/time.md). The task's watermark is the largest event time seen minus
 * `maxOutOfOrdernessMs`, minus 1 (Flink's bounded out-of-orderness), or, with `watermarkOf`, the
 * largest watermark the records carried; it never goes back and is stored in every checkpoint.
 */
export interface TimeOptions {
  /**
   * How far behind the largest event time seen a record may be and still be on time, in ms: the
   * watermark is `maxEventTime - maxOutOfOrdernessMs - 1`. Default 0.
   */
  readonly maxOutOfOrdernessMs?: number;
  /** A record's event time in ms (an integer). Default: `record.timestamp`. Throwing makes it a poison record. */
  readonly eventTimeOf?: (record: KafkaRecord) => number;
  /**
   * Punctuated watermarks: the watermark a record carries (e.g. a producer's heartbeat), or undefined.
   * When given, the watermark comes from these alone (not from event times).
   */
  readonly watermarkOf?: (record: KafkaRecord) => number | undefined;
  /**
   * Opt in to advancing event time on idle partitions: a scheduled tick (docs/time.md#idle-partitions)
   * finding a task that applied no record for at least this long advances its watermark by the wall
   * time elapsed since its last record. Records arriving later behind that watermark are late.
   * Default: off (event time moves only with records).
   */
  readonly idleAdvanceAfterMs?: number;
}

/** Timers of the current key (the record's, or the firing timer's): see docs/time.md#timers. */
export interface Timers {
  /** Fires `onTimer` once the watermark reaches `timestamp`. Setting an existing timer changes nothing. */
  registerEventTime(timestamp: number, tag?: string): void;
  deleteEventTime(timestamp: number, tag?: string): void;
  /** Fires `onTimer` once the task's processing time (the wall clock at an epoch or tick) reaches `timestamp`. */
  registerProcessingTime(timestamp: number, tag?: string): void;
  deleteProcessingTime(timestamp: number, tag?: string): void;
}

/** No outputs declared. */
// biome-ignore lint/complexity/noBannedTypes: an empty record of outputs
export type NoOutputs = {};

export interface ProcessContext<S extends StateDescriptors, O extends OutputDescriptors = NoOutputs> {
  /** State handles, scoped to the current record's key (keyed state) or to the task. */
  readonly state: StateHandles<S>;
  /** Output handles: `outputs.alerts.emit(value)` (rolled back if the record fails). */
  readonly outputs: OutputHandles<O>;
  /**
   * The state key of the current record (from `keyOf`), or null. Computed only when the processor
   * declares key-scoped state, gives its own `keyOf`, or reads this property.
   */
  readonly key: string | null;
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
  /** Timers of the current key (needs `onTimer` on the processor). */
  readonly timers: Timers;
  /**
   * The task's watermark before the current record (ms), `-Infinity` before the first one. In
   * `onTimer`: the watermark that made the timer due (event time) or the current one.
   */
  readonly watermark: number;
  /**
   * The task's processing time: the wall clock (ms) read when the current epoch or tick started
   * (`-Infinity` for a processor that uses no time: no `time`, `onTimer` or TTL).
   */
  readonly processingTime: number;
  /** Event time of the current record, or the firing timer's timestamp (event-time timers; else the watermark). */
  readonly eventTime: number;
}

/**
 * A stateful processor: the user's code. `process` is called once per record, in offset order
 * within each topic-partition, and must be synchronous and deterministic in its state changes.
 * Throwing marks the record as failed: its state changes and emitted outputs are rolled back, then
 * the poison policy applies — unless the error says `retriable: true`, in which case the invocation
 * fails and the ESM retries it (for transient failures, which must not be quarantined).
 */
export interface Processor<
  S extends StateDescriptors = StateDescriptors,
  O extends OutputDescriptors = NoOutputs,
> {
  /** Declared state, by name. */
  readonly state: S;
  /** Declared outputs, by name (see `lib/output/types.ts`). */
  readonly outputs?: O;
  /** The state key of a record. Default: the record key decoded as UTF-8 (null for a null key). */
  readonly keyOf?: (record: KafkaRecord) => string | null;
  readonly process: (record: KafkaRecord, ctx: ProcessContext<S, O>) => void;
  /** What happens to records that fail (see `TidemarkConfig.poisonPolicy`). */
  readonly poisonPolicy?: PoisonPolicy;
  /** Event time: the watermark's strategy, and idle partitions (docs/time.md). */
  readonly time?: TimeOptions;
  /**
   * Called for each timer that comes due, with the context scoped to the timer's key: its state
   * changes and emits belong to the epoch that fires it, so each timer fires exactly once. Must be
   * synchronous and deterministic, as `process`. Throwing is handled as for a record (docs/time.md).
   */
  readonly onTimer?: (timer: Timer, ctx: ProcessContext<S, O>) => void;
  /** Configuration given in code (the environment still takes precedence). */
  readonly config?: Partial<TidemarkConfig>;
}

/** Declares a processor (an identity function that keeps the state and output types). */
export function defineProcessor<S extends StateDescriptors, O extends OutputDescriptors = NoOutputs>(
  processor: Processor<S, O>,
): Processor<S, O> {
  if (typeof processor.process !== 'function') throw new TypeError('processor.process must be a function');
  if (typeof processor.state !== 'object' || processor.state === null) {
    throw new TypeError('processor.state must be an object of state descriptors');
  }
  for (const name of Object.keys(processor.state)) {
    if (name.startsWith(INTERNAL_STATE_PREFIX)) {
      throw new TypeError(
        `processor.state.${name}: names starting with '${INTERNAL_STATE_PREFIX}' are Tidemark's own`,
      );
    }
  }
  if (processor.onTimer !== undefined && typeof processor.onTimer !== 'function') {
    throw new TypeError('processor.onTimer must be a function');
  }
  const t = processor.time;
  if (t !== undefined) {
    const ms = (v: unknown, what: string) => {
      if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < 0)) {
        throw new TypeError(`processor.time.${what} must be a non-negative integer (ms)`);
      }
    };
    ms(t.maxOutOfOrdernessMs, 'maxOutOfOrdernessMs');
    ms(t.idleAdvanceAfterMs, 'idleAdvanceAfterMs');
    for (const f of ['eventTimeOf', 'watermarkOf'] as const) {
      if (t[f] !== undefined && typeof t[f] !== 'function') {
        throw new TypeError(`processor.time.${f} must be a function`);
      }
    }
  }
  if (processor.outputs !== undefined) {
    if (typeof processor.outputs !== 'object' || processor.outputs === null) {
      throw new TypeError('processor.outputs must be an object of output descriptors');
    }
    for (const [name, d] of Object.entries(processor.outputs)) {
      if (
        typeof d?.encode !== 'function' ||
        typeof d.createSink !== 'function' ||
        typeof d.sinkId !== 'string'
      ) {
        throw new TypeError(
          `processor.outputs.${name} is not an output descriptor (use kafkaOutput, dynamoOutput, …)`,
        );
      }
    }
  }
  return processor;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The default state key: the record key as UTF-8. Invalid UTF-8 throws (a poison record), because
 * replacing bytes would merge distinct keys.
 */
export function utf8Key(record: KafkaRecord): string | null {
  const key = record.key;
  if (key === null) return null;
  const s = key.toString('utf8');
  if (s.includes('\uFFFD')) STRICT_UTF8.decode(key);
  return s;
}
