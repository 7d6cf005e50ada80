/**
 * Timers of one task: event-time and processing-time timers per state key, in the manner of Flink's
 * timer service. A timer is (domain, key, timestamp, tag); setting one that exists changes nothing,
 * deleting one that does not exist changes nothing.
 *
 * Timers are state: each domain is a table of the task's `StateStore` (`tidemark:timers:event`,
 * `tidemark:timers:processing`, one entry per timer), so a timer set or fired by a record is rolled
 * back with it, and a checkpoint's delta carries exactly the timers its epoch set, deleted or fired.
 * A heap per domain (`TimeQueue`) finds the due ones without looking at the others: setting and
 * firing cost O(log n), and a million timers per task cost about 100 bytes each in memory.
 */
import { StateError } from '../errors.ts';
import type { StateDescriptor, StateDescriptors } from './descriptors.ts';
import { INTERNAL_STATE_PREFIX, type StateStore } from './stateStore.ts';
import { TimeQueue } from './timeQueue.ts';

export type TimeDomain = 'event' | 'processing';

/** A timer as `onTimer` receives it. */
export interface Timer {
  readonly domain: TimeDomain;
  /** Milliseconds since the epoch (event time or wall clock, per domain). */
  readonly timestamp: number;
  /** The state key it was set for. */
  readonly key: string;
  /** Tells timers of one key and time apart (e.g. a window library's own); `''` by default. */
  readonly tag: string;
}

/** The tables timers live in (Tidemark's own, declared by the engine next to the processor's state). */
export const TIMER_TABLES = {
  event: `${INTERNAL_STATE_PREFIX}timers:event`,
  processing: `${INTERNAL_STATE_PREFIX}timers:processing`,
} as const;

const TIMER_TABLE: StateDescriptor = Object.freeze({
  kind: 'value',
  scope: 'key',
  version: 1,
  migrate: undefined,
});

/** Declarations of the timer tables. */
export const TIMER_DESCRIPTORS: StateDescriptors = Object.freeze({
  [TIMER_TABLES.event]: TIMER_TABLE,
  [TIMER_TABLES.processing]: TIMER_TABLE,
});

const SEP = '\u0000';

/**
 * A timer's id, its table key: `<timestamp> NUL <tag> NUL <key>`. Ids order equal timestamps by tag,
 * then key (the firing order of equal timestamps), and parse back unambiguously (a tag has no NUL).
 */
function timerId(timestamp: number, tag: string, key: string): string {
  return `${timestamp}${SEP}${tag}${SEP}${key}`;
}

function parseId(domain: TimeDomain, id: string): Timer {
  const a = id.indexOf(SEP);
  const b = id.indexOf(SEP, a + 1);
  return { domain, timestamp: Number(id.slice(0, a)), tag: id.slice(a + 1, b), key: id.slice(b + 1) };
}

function timestampOf(id: string): number {
  return Number(id.slice(0, id.indexOf(SEP)));
}

function check(timestamp: number, tag: string): void {
  if (!Number.isSafeInteger(timestamp)) {
    throw new StateError(`a timer's timestamp must be an integer number of ms, got ${timestamp}`);
  }
  if (typeof tag !== 'string' || tag.includes(SEP)) {
    throw new StateError('a timer tag must be a string without NUL characters');
  }
}

interface Domain {
  readonly name: TimeDomain;
  readonly table: string;
  readonly data: Map<string, unknown>;
  readonly queue: TimeQueue;
}

export class TimerService {
  private readonly store: StateStore;
  private readonly domains: Record<TimeDomain, Domain>;
  /** Timers popped since the current unit began: pushed back if it rolls back. */
  private readonly popped: Array<{ domain: Domain; timestamp: number; id: string }> = [];

  /** Builds the heaps from the store's timer tables (restored or empty). */
  constructor(store: StateStore) {
    this.store = store;
    const make = (name: TimeDomain): Domain => {
      const table = TIMER_TABLES[name];
      const t = store.table(table);
      if (!t) throw new StateError(`state '${table}' is not declared`);
      const queue = new TimeQueue();
      const ids = [...t.data.keys()];
      queue.reset(ids.map(timestampOf), ids);
      return { name, table, data: t.data, queue };
    };
    this.domains = { event: make('event'), processing: make('processing') };
  }

  /** Sets a timer (no change if it exists). */
  register(domain: TimeDomain, key: string, timestamp: number, tag = ''): void {
    check(timestamp, tag);
    const d = this.domains[domain];
    const id = timerId(timestamp, tag, key);
    if (d.data.has(id)) return;
    this.store.putEntry(d.table, id, 1);
    d.queue.push(timestamp, id);
  }

  /** Deletes a timer (no change if it does not exist). Its heap entry is skipped when it comes up. */
  delete(domain: TimeDomain, key: string, timestamp: number, tag = ''): void {
    check(timestamp, tag);
    const d = this.domains[domain];
    this.store.deleteEntry(d.table, timerId(timestamp, tag, key));
  }

  /** Whether a timer is set. */
  has(domain: TimeDomain, key: string, timestamp: number, tag = ''): boolean {
    return this.domains[domain].data.has(timerId(timestamp, tag, key));
  }

  /** Timers set in a domain. */
  count(domain: TimeDomain): number {
    return this.domains[domain].data.size;
  }

  /** The earliest timer of a domain, or undefined. */
  next(domain: TimeDomain): number | undefined {
    const d = this.domains[domain];
    this.skipGarbage(d);
    return d.queue.peekTime();
  }

  private skipGarbage(d: Domain): void {
    for (;;) {
      const id = d.queue.peekId();
      if (id === undefined || d.data.has(id)) return;
      d.queue.pop();
    }
  }

  /**
   * Takes the earliest timer of `domain` due at `limit` (timestamp ≤ limit) out of its table, or
   * returns undefined when none is due. Ties fire by tag, then key.
   */
  pollDue(domain: TimeDomain, limit: number): Timer | undefined {
    const d = this.domains[domain];
    this.skipGarbage(d);
    const timestamp = d.queue.peekTime();
    if (timestamp === undefined || timestamp > limit) return undefined;
    const id = d.queue.peekId()!;
    d.queue.pop();
    this.popped.push({ domain: d, timestamp, id });
    this.store.deleteEntry(d.table, id);
    return parseId(domain, id);
  }

  /** A point to roll back to (with the store's `mark`). */
  mark(): number {
    return this.popped.length;
  }

  /**
   * After the store rolled back to its matching mark: the timers taken since are due again. (Timers
   * set since are in the heap still; the restored tables say they are garbage.)
   */
  rollbackTo(mark: number): void {
    while (this.popped.length > mark) {
      const p = this.popped.pop()!;
      if (p.domain.data.has(p.id)) p.domain.queue.push(p.timestamp, p.id);
    }
  }

  /** The current unit's changes are kept. Rebuilds a heap whose garbage dominates it. */
  commit(): void {
    this.popped.length = 0;
    this.compact(this.domains.event);
    this.compact(this.domains.processing);
  }

  private compact(d: Domain): void {
    if (d.queue.size <= 2 * d.data.size + 1024) return;
    const ids = [...d.data.keys()];
    d.queue.reset(ids.map(timestampOf), ids);
  }
}
