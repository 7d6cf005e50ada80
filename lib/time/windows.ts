/**
 * Windows over keyed records, built on the processor API: state (one value per key: its open windows)
 * and event-time timers (one per window, at the moment it closes). Tumbling, hopping and session
 * windows, an aggregate function, allowed lateness, a policy for late records, and emission on close
 * (one final result per window) or on every update. Results are emitted through the processor's
 * outputs from `process` and `onTimer`, so they are exactly once with the epoch that emits them.
 *
 *     const spend = windowedAggregate({
 *       name: 'spend',
 *       windows: tumblingWindows(60_000),
 *       aggregate: { init: () => 0, add: (sum, amount: number) => sum + amount },
 *       allowedLatenessMs: 10_000,
 *       onResult: (result, ctx) => ctx.outputs.totals.emit(result),
 *     });
 *     defineProcessor({
 *       state: { ...spend.state },
 *       outputs: { totals: kafkaOutput(…) },
 *       time: { maxOutOfOrdernessMs: 0 },
 *       process: (record, ctx) => spend.add(ctx, amountOf(record)),
 *       onTimer: (timer, ctx) => spend.onTimer(timer, ctx),
 *     });
 *
 * Boundary rules (docs/time.md#windows; W is the watermark, L the allowed lateness):
 *   - a window is [start, end): it holds records with start ≤ event time < end. Tumbling windows of
 *     size S start at multiples of S (plus an offset); hopping windows of size S every A start at
 *     multiples of A, a record belongs to the S / A of them that hold it; a session is [first event
 *     time, last event time + gap), and a record merges every session it overlaps or touches.
 *   - a window closes when W ≥ end - 1 + L (Flink's cleanup time; `end - 1` is its last millisecond).
 *     Its timer fires then: with `emit: 'onClose'` its one final result is emitted; its state goes.
 *   - a record is on time for a window while the window is open (W < end - 1 + L), W being the
 *     watermark before the record; a record all of whose windows are closed is late: counted, and
 *     then dropped, handed to `onLate` (`sideOutput`), or emitted as a late update (`update`). A
 *     record some of whose windows are open goes into those and is not late (as in Flink).
 */
import type { ProcessContext } from '../checkpoint/processor.ts';
import { StateError } from '../errors.ts';
import type { OutputDescriptors } from '../output/types.ts';
import { type StateDescriptor, taskValueState, type ValueState, valueState } from '../state/descriptors.ts';
import type { Timer } from '../state/timers.ts';

/** How records are grouped into windows. */
export type WindowAssigner =
  | { readonly kind: 'tumbling'; readonly sizeMs: number; readonly offsetMs: number }
  | {
      readonly kind: 'hopping';
      readonly sizeMs: number;
      readonly advanceMs: number;
      readonly offsetMs: number;
    }
  | { readonly kind: 'session'; readonly gapMs: number };

function positive(ms: number, what: string): void {
  if (!Number.isSafeInteger(ms) || ms < 1) throw new RangeError(`${what} must be a positive integer (ms)`);
}

/** Fixed-size, non-overlapping windows `[k·size + offset, (k+1)·size + offset)`. */
export function tumblingWindows(sizeMs: number, options: { offsetMs?: number } = {}): WindowAssigner {
  positive(sizeMs, 'tumbling window size');
  return Object.freeze({ kind: 'tumbling', sizeMs, offsetMs: options.offsetMs ?? 0 });
}

/** Fixed-size windows starting every `advanceMs` (Kafka Streams' hopping, Flink's sliding windows). */
export function hoppingWindows(
  sizeMs: number,
  advanceMs: number,
  options: { offsetMs?: number } = {},
): WindowAssigner {
  positive(sizeMs, 'hopping window size');
  positive(advanceMs, 'hopping window advance');
  if (advanceMs > sizeMs) throw new RangeError('a hopping window cannot advance by more than its size');
  return Object.freeze({ kind: 'hopping', sizeMs, advanceMs, offsetMs: options.offsetMs ?? 0 });
}

/** Sessions: a key's records closer than `gapMs` apart form one window `[first, last + gap)`. */
export function sessionWindows(gapMs: number): WindowAssigner {
  positive(gapMs, 'session gap');
  return Object.freeze({ kind: 'session', gapMs });
}

/** An aggregate function (an accumulator per window). */
export interface Aggregate<V, A, R = A> {
  init(): A;
  add(acc: A, value: V): A;
  /** Combines two accumulators (required by session windows, which merge). */
  merge?(a: A, b: A): A;
  /** The result of an accumulator. Default: the accumulator itself. */
  result?(acc: A): R;
}

/** One window's result. */
export interface WindowResult<R> {
  readonly key: string;
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
  readonly value: R;
  /** Records aggregated (for a late update: the late record alone). */
  readonly count: number;
  /** Largest event time among them (Kafka Streams' result timestamp; Flink's is `end - 1`). */
  readonly timestamp: number;
  /** `final` (emitted when the window closes), `update` (after a change), `late` (a late record's update). */
  readonly kind: 'final' | 'update' | 'late';
}

/** A late record as `onLate` receives it. */
export interface LateRecord<V> {
  readonly key: string;
  readonly value: V;
  readonly eventTime: number;
  /** The watermark it arrived behind. */
  readonly watermark: number;
  /** The (closed) windows it belongs to. */
  readonly windows: ReadonlyArray<{ readonly start: number; readonly end: number }>;
}

/** What a window keeps: its bounds, accumulator, record count and largest event time. */
export interface WindowSlot<A> {
  readonly start: number;
  readonly end: number;
  readonly acc: A;
  readonly count: number;
  readonly maxTimestamp: number;
}

/**
 * The context window callbacks receive: the processor's own (state, timers, key, watermark), with its
 * outputs untyped, since an aggregate is declared before the processor whose outputs it emits to.
 */
export type WindowContext = Omit<
  // biome-ignore lint/suspicious/noExplicitAny: any processor's state
  ProcessContext<any, OutputDescriptors>,
  'outputs'
> & {
  // biome-ignore lint/suspicious/noExplicitAny: any processor's outputs
  readonly outputs: any;
};
type AnyContext = WindowContext;

export interface WindowedAggregateOptions<N extends string, V, A, R, C extends AnyContext> {
  /** Names its state (`<name>.windows`, `<name>.late`) and tags its timers. No NUL. */
  readonly name: N;
  readonly windows: WindowAssigner;
  readonly aggregate: Aggregate<V, A, R>;
  /** How long after its end a window still takes records (and, with `onClose`, waits to emit). Default 0. */
  readonly allowedLatenessMs?: number;
  /** `onClose` (default): one final result per window when it closes. `onUpdate`: a result after every change. */
  readonly emit?: 'onClose' | 'onUpdate';
  /** Late records: `drop` (default; counted), `sideOutput` (counted, to `onLate`), `update` (counted, a late result). */
  readonly late?: 'drop' | 'sideOutput' | 'update';
  /** Receives every result (emit it to an output). */
  readonly onResult: (result: WindowResult<R>, ctx: C) => void;
  /** Receives late records under `late: 'sideOutput'`. */
  readonly onLate?: (late: LateRecord<V>, ctx: C) => void;
}

export type WindowedState<N extends string, A> = {
  readonly [K in `${N}.windows`]: StateDescriptor<'value', readonly WindowSlot<A>[]>;
} & { readonly [K in `${N}.late`]: StateDescriptor<'value', number> };

export interface WindowedAggregate<N extends string, V, A, C extends AnyContext> {
  /** Its state declarations: spread them into the processor's `state`. */
  readonly state: WindowedState<N, A>;
  /** Adds a value of the current record (key `ctx.key`, event time `ctx.eventTime` unless given). */
  add(ctx: C, value: V, eventTime?: number): void;
  /** Call from `onTimer`: closes this aggregate's windows due at the timer. Returns whether the timer was its. */
  onTimer(timer: Timer, ctx: C): boolean;
}

/**
 * A key's open windows: one value per key holding its windows by start (a key has few open windows
 * at a time; one value, not a map, keeps a million of them cheap to hold and to restore).
 */
class OpenWindows<A> {
  private readonly state: ValueState<readonly WindowSlot<A>[]>;
  constructor(state: ValueState<readonly WindowSlot<A>[]>) {
    this.state = state;
  }
  get(start: number): WindowSlot<A> | undefined {
    return this.state.get()?.find((w) => w.start === start);
  }
  all(): readonly WindowSlot<A>[] {
    return this.state.get() ?? [];
  }
  put(slot: WindowSlot<A>): void {
    const rest = this.all().filter((w) => w.start !== slot.start);
    this.state.set([...rest, slot].sort((a, b) => a.start - b.start));
  }
  remove(start: number): void {
    const rest = this.all().filter((w) => w.start !== start);
    if (rest.length === 0) this.state.clear();
    else this.state.set(rest);
  }
}

interface Handles<A> {
  windows: OpenWindows<A>;
  late: ValueState<number>;
}

export function windowedAggregate<N extends string, V, A, R = A, C extends AnyContext = AnyContext>(
  options: WindowedAggregateOptions<N, V, A, R, C>,
): WindowedAggregate<N, V, A, C> {
  const { name, windows: assigner, aggregate } = options;
  if (typeof name !== 'string' || name.length === 0 || name.includes('\u0000')) {
    throw new RangeError('windowedAggregate: name must be a non-empty string without NUL');
  }
  const lateness = options.allowedLatenessMs ?? 0;
  if (!Number.isSafeInteger(lateness) || lateness < 0) {
    throw new RangeError('windowedAggregate: allowedLatenessMs must be a non-negative integer');
  }
  const emit = options.emit ?? 'onClose';
  const latePolicy = options.late ?? 'drop';
  if (latePolicy === 'sideOutput' && !options.onLate) {
    throw new RangeError("windowedAggregate: late: 'sideOutput' needs onLate");
  }
  if (assigner.kind === 'session' && !aggregate.merge) {
    throw new RangeError('windowedAggregate: session windows need aggregate.merge');
  }
  const windowsName = `${name}.windows`;
  const lateName = `${name}.late`;
  const state = Object.freeze({
    [windowsName]: valueState<readonly WindowSlot<A>[]>(),
    [lateName]: taskValueState<number>(),
  }) as WindowedState<N, A>;
  const result = aggregate.result ?? ((acc: A) => acc as unknown as R);

  /** The moment a window closes: its timer. */
  const closesAt = (end: number) => end - 1 + lateness;
  const isClosed = (end: number, watermark: number) => watermark >= closesAt(end);
  const handles = (ctx: C): Handles<A> => {
    const s = ctx.state as Record<string, unknown>;
    return {
      windows: new OpenWindows(s[windowsName] as ValueState<readonly WindowSlot<A>[]>),
      late: s[lateName] as ValueState<number>,
    };
  };
  const keyOf = (ctx: C): string => {
    const k = ctx.key;
    if (k === null) throw new StateError(`windowed aggregate '${name}': the record has no state key`);
    return k;
  };
  const resultOf = (key: string, w: WindowSlot<A>, kind: WindowResult<R>['kind']): WindowResult<R> => ({
    key,
    start: w.start,
    end: w.end,
    value: result(w.acc),
    count: w.count,
    timestamp: w.maxTimestamp,
    kind,
  });

  /** Start times of the fixed windows holding `t`, ascending. */
  const fixedStarts = (t: number): number[] => {
    if (assigner.kind === 'tumbling') {
      const s = assigner.sizeMs;
      return [t - ((((t - assigner.offsetMs) % s) + s) % s)];
    }
    if (assigner.kind !== 'hopping') return [];
    const a = assigner.advanceMs;
    const last = t - ((((t - assigner.offsetMs) % a) + a) % a);
    const starts: number[] = [];
    for (let start = last; start > t - assigner.sizeMs; start -= a) starts.push(start);
    return starts.reverse();
  };

  const late = (
    ctx: C,
    h: Handles<A>,
    key: string,
    value: V,
    t: number,
    closed: Array<{ start: number; end: number }>,
  ) => {
    h.late.set((h.late.get() ?? 0) + 1);
    if (latePolicy === 'sideOutput') {
      options.onLate!({ key, value, eventTime: t, watermark: ctx.watermark, windows: closed }, ctx);
    } else if (latePolicy === 'update') {
      for (const w of closed) {
        const acc = aggregate.add(aggregate.init(), value);
        options.onResult(resultOf(key, { ...w, acc, count: 1, maxTimestamp: t }, 'late'), ctx);
      }
    }
  };

  const addFixed = (ctx: C, h: Handles<A>, key: string, value: V, t: number) => {
    const size = assigner.kind === 'session' ? 0 : assigner.sizeMs;
    const wm = ctx.watermark;
    const closed: Array<{ start: number; end: number }> = [];
    let added = false;
    for (const start of fixedStarts(t)) {
      const end = start + size;
      if (isClosed(end, wm)) {
        closed.push({ start, end });
        continue;
      }
      const cur = h.windows.get(start);
      const next: WindowSlot<A> = cur
        ? {
            start,
            end,
            acc: aggregate.add(cur.acc, value),
            count: cur.count + 1,
            maxTimestamp: Math.max(cur.maxTimestamp, t),
          }
        : { start, end, acc: aggregate.add(aggregate.init(), value), count: 1, maxTimestamp: t };
      h.windows.put(next);
      if (!cur) ctx.timers.registerEventTime(closesAt(end), name);
      if (emit === 'onUpdate') options.onResult(resultOf(key, next, 'update'), ctx);
      added = true;
    }
    if (!added) late(ctx, h, key, value, t, closed);
  };

  const addSession = (ctx: C, h: Handles<A>, key: string, value: V, t: number) => {
    const gap = (assigner as { gapMs: number }).gapMs;
    let start = t;
    let end = t + gap;
    // Sessions overlapping or touching the record's [t, t + gap).
    const merged = h.windows.all().filter((w) => w.start <= end && w.end >= start);
    if (merged.length === 0 && isClosed(end, ctx.watermark)) {
      late(ctx, h, key, value, t, [{ start, end }]);
      return;
    }
    let acc = aggregate.add(aggregate.init(), value);
    let count = 1;
    let maxTimestamp = t;
    for (const w of merged) {
      start = Math.min(start, w.start);
      end = Math.max(end, w.end);
      acc = aggregate.merge!(w.acc, acc);
      count += w.count;
      maxTimestamp = Math.max(maxTimestamp, w.maxTimestamp);
      h.windows.remove(w.start);
    }
    // The merged sessions' timers go, but for the one whose end the merged session keeps.
    for (const w of merged) {
      if (w.end !== end) ctx.timers.deleteEventTime(closesAt(w.end), name);
    }
    const next: WindowSlot<A> = { start, end, acc, count, maxTimestamp };
    h.windows.put(next);
    ctx.timers.registerEventTime(closesAt(end), name);
    if (emit === 'onUpdate') options.onResult(resultOf(key, next, 'update'), ctx);
  };

  return {
    state,
    add(ctx, value, eventTime = ctx.eventTime) {
      if (!Number.isSafeInteger(eventTime)) {
        throw new StateError(`windowed aggregate '${name}': event time ${eventTime} is not an integer`);
      }
      const key = keyOf(ctx);
      const h = handles(ctx);
      if (assigner.kind === 'session') addSession(ctx, h, key, value, eventTime);
      else addFixed(ctx, h, key, value, eventTime);
    },
    onTimer(timer, ctx) {
      if (timer.domain !== 'event' || timer.tag !== name) return false;
      const h = handles(ctx);
      const due = h.windows.all().filter((w) => closesAt(w.end) <= timer.timestamp);
      for (const w of due) {
        if (emit === 'onClose') options.onResult(resultOf(timer.key, w, 'final'), ctx);
        h.windows.remove(w.start);
      }
      return true;
    },
  };
}
