/**
 * A task's clocks (docs/time.md): event time (the largest event time seen and the watermark, which
 * never goes back), processing time (the wall clock read at each epoch and tick, never going back
 * either), and the timers. They are state: the clocks are one entry of the table `tidemark:time`,
 * written at each checkpoint, so a restored task resumes with the watermark it committed (a watermark
 * lost on restore makes late records look on time and fires nothing that was due).
 *
 * The rules of when things happen, which make event time deterministic however a batch is cut into
 * epochs and however often it is replayed:
 *
 *   - a record is processed seeing the watermark *before* it; then the watermark advances with it;
 *     then every event-time timer at or before the new watermark fires, in (timestamp, tag, key) order;
 *   - processing-time timers fire at the start of an epoch (before its first record) and at ticks,
 *     when the wall clock read then has reached them; event-time timers those set, if due, fire next;
 *   - state TTL compares deadlines with these same clocks, and the checkpoint removes what expired.
 */
import { PoisonRecordError } from '../errors.ts';
import type { KafkaRecord } from '../event/types.ts';
import type { StateDescriptor, StateDescriptors } from '../state/descriptors.ts';
import { INTERNAL_STATE_PREFIX, type StateStore, TASK_KEY } from '../state/stateStore.ts';
import { TIMER_DESCRIPTORS, TimerService } from '../state/timers.ts';
import type { TimeOptions } from './processor.ts';
import type { TaskTimeSummary } from './stores.ts';

/** The table holding a task's clocks (one task-scoped entry). */
export const TIME_TABLE = `${INTERNAL_STATE_PREFIX}time`;

const CLOCK_TABLE: StateDescriptor = Object.freeze({
  kind: 'value',
  scope: 'task',
  version: 1,
  migrate: undefined,
});

/** Declarations of the engine's own tables for a processor that uses time. */
export const TIME_DESCRIPTORS: StateDescriptors = Object.freeze({
  ...TIMER_DESCRIPTORS,
  [TIME_TABLE]: CLOCK_TABLE,
});

/** The clocks as stored (fields absent until known). */
interface StoredClocks {
  /** Largest event time seen. */
  readonly maxEventTime?: number;
  readonly watermark?: number;
  readonly processingTime?: number;
  /** Processing time of the last epoch that applied records, and the watermark after it (idle advance). */
  readonly seenAt?: number;
  readonly seenWatermark?: number;
}

/** The clock fields a record (or a firing) can change, saved before it so a rollback restores them. */
export interface ClockMark {
  readonly maxEventTime: number;
  readonly watermark: number;
}

const NONE = Number.NEGATIVE_INFINITY;

function finite(n: number | undefined): number | undefined {
  return n !== undefined && Number.isFinite(n) ? n : undefined;
}

export class TaskTime {
  readonly timers: TimerService;
  private readonly store: StateStore;
  private readonly outOfOrderness: number;
  private readonly eventTimeOf: ((record: KafkaRecord) => number) | undefined;
  private readonly watermarkOf: ((record: KafkaRecord) => number | undefined) | undefined;
  private readonly idleAfter: number | undefined;
  maxEventTime = NONE;
  private wm = NONE;
  private proc = NONE;
  private seenAt: number | undefined;
  private seenWatermark: number | undefined;

  /** The store must declare `TIME_DESCRIPTORS` (restored or new). */
  constructor(store: StateStore, options: TimeOptions = {}) {
    this.store = store;
    this.outOfOrderness = options.maxOutOfOrdernessMs ?? 0;
    this.eventTimeOf = options.eventTimeOf;
    this.watermarkOf = options.watermarkOf;
    this.idleAfter = options.idleAdvanceAfterMs;
    this.timers = new TimerService(store);
    const c = (store.getEntry(TIME_TABLE, TASK_KEY) ?? {}) as StoredClocks;
    this.maxEventTime = c.maxEventTime ?? NONE;
    this.wm = c.watermark ?? NONE;
    this.proc = c.processingTime ?? NONE;
    this.seenAt = c.seenAt;
    this.seenWatermark = c.seenWatermark;
    store.watermark = this.wm;
    store.processingTime = this.proc;
  }

  get watermark(): number {
    return this.wm;
  }

  get processingTime(): number {
    return this.proc;
  }

  /** A record's event time. A function that throws or answers no integer makes it a poison record. */
  eventTime(record: KafkaRecord): number {
    if (!this.eventTimeOf) return record.timestamp;
    let t: number;
    try {
      t = this.eventTimeOf(record);
    } catch (error) {
      throw new PoisonRecordError('event time cannot be computed', {
        record: { topic: record.topic, partition: record.partition, offset: record.offset },
        cause: error,
      });
    }
    if (!Number.isSafeInteger(t)) {
      throw new PoisonRecordError(`event time is not an integer number of ms: ${String(t)}`, {
        record: { topic: record.topic, partition: record.partition, offset: record.offset },
      });
    }
    return t;
  }

  mark(): ClockMark {
    return { maxEventTime: this.maxEventTime, watermark: this.wm };
  }

  rollbackTo(mark: ClockMark): void {
    this.maxEventTime = mark.maxEventTime;
    this.setWatermark(mark.watermark);
  }

  private setWatermark(wm: number): void {
    this.wm = wm;
    this.store.watermark = wm;
  }

  /** After a record was processed: event time and the watermark advance with it. */
  advance(record: KafkaRecord, eventTime: number): void {
    if (eventTime > this.maxEventTime) this.maxEventTime = eventTime;
    let next: number;
    if (this.watermarkOf) {
      const w = this.watermarkOf(record);
      if (w === undefined || !Number.isFinite(w)) return;
      next = Math.floor(w);
    } else next = this.maxEventTime - this.outOfOrderness - 1;
    if (next > this.wm) this.setWatermark(next);
  }

  /** An epoch or a tick starts: processing time is the wall clock now (never going back). */
  startEpoch(now: number): void {
    if (now > this.proc) {
      this.proc = now;
      this.store.processingTime = now;
    }
  }

  /**
   * At a tick, with idle advance on: a task that applied no record for `idleAdvanceAfterMs` sees its
   * watermark advance by the wall time since its last record. Returns whether it moved.
   */
  idleAdvance(now: number): boolean {
    if (this.idleAfter === undefined || this.seenAt === undefined || this.seenWatermark === undefined) {
      return false;
    }
    if (now - this.seenAt < this.idleAfter) return false;
    const next = this.seenWatermark + (now - this.seenAt);
    if (next <= this.wm) return false;
    this.setWatermark(next);
    return true;
  }

  /**
   * Before a checkpoint: expired state goes, and the clocks are written (only when they changed, so
   * an epoch of a task without event time adds nothing to its delta). `recordsApplied`: the epoch
   * applied records (the idle clock restarts). Returns the number of expired entries removed.
   */
  beforeCheckpoint(recordsApplied: boolean): number {
    const expired = this.store.expire();
    if (recordsApplied && Number.isFinite(this.wm)) {
      this.seenAt = finite(this.proc);
      this.seenWatermark = this.wm;
    }
    const next: StoredClocks = {
      ...(Number.isFinite(this.maxEventTime) ? { maxEventTime: this.maxEventTime } : {}),
      ...(Number.isFinite(this.wm) ? { watermark: this.wm } : {}),
      ...(Number.isFinite(this.proc) ? { processingTime: this.proc } : {}),
      ...(this.seenAt !== undefined ? { seenAt: this.seenAt } : {}),
      ...(this.seenWatermark !== undefined ? { seenWatermark: this.seenWatermark } : {}),
    };
    const cur = (this.store.getEntry(TIME_TABLE, TASK_KEY) ?? {}) as StoredClocks;
    const same =
      cur.maxEventTime === next.maxEventTime &&
      cur.watermark === next.watermark &&
      cur.processingTime === next.processingTime &&
      cur.seenAt === next.seenAt &&
      cur.seenWatermark === next.seenWatermark;
    if (!same) this.store.putEntry(TIME_TABLE, TASK_KEY, next);
    return expired;
  }

  /**
   * What the commit item says about the task's time: its watermark, and the wall time at which a tick
   * has work for it (`dueAt`): its earliest processing-time timer or processing-time TTL deadline and,
   * with idle advance, when the advancing watermark would reach its earliest event-time timer or TTL
   * deadline. Ticks list commit items and take only the tasks due.
   */
  summary(): TaskTimeSummary | undefined {
    const candidates: number[] = [];
    const p = this.timers.next('processing');
    if (p !== undefined) candidates.push(p);
    const pt = this.store.nextExpiry('processing');
    if (pt !== undefined) candidates.push(pt);
    if (this.idleAfter !== undefined && this.seenAt !== undefined && this.seenWatermark !== undefined) {
      const e = [this.timers.next('event'), this.store.nextExpiry('event')].filter(
        (x): x is number => x !== undefined,
      );
      if (e.length > 0) {
        const target = Math.min(...e);
        // The watermark a tick at wall time `now` reaches: seenWatermark + (now - seenAt).
        candidates.push(Math.max(this.seenAt + this.idleAfter, this.seenAt + target - this.seenWatermark));
      }
    }
    const dueAt = candidates.length > 0 ? Math.min(...candidates) : undefined;
    const watermark = finite(this.wm);
    if (dueAt === undefined && watermark === undefined) return undefined;
    return { ...(watermark !== undefined ? { watermark } : {}), ...(dueAt !== undefined ? { dueAt } : {}) };
  }
}
