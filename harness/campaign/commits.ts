/**
 * The campaign's view of commits, whatever the commit store:
 *
 * - `CommitLedger` (one per run) records every commit item a store accepted, returned on a read, or
 *   returned as the winner of a lost race, and which invocation made each attempt. Every committed
 *   epoch passes through one of these (whoever commits E+1 had to learn E), so the ledger knows
 *   each task's committed epochs, their offset ranges and the invocation that committed each. The
 *   outputs' check uses it to tell an output of the committed attempt from one of an attempt that
 *   never committed. Two different commits of one epoch are recorded as a contradiction.
 * - `CampaignCommitStore` (one per container) wraps the container's commit store: it feeds the
 *   ledger and the run's observer (the snapshot keys commits reference), holds a zombie right
 *   before its commit, and, for the database stores (PostgreSQL, MySQL/MariaDB, Redis: no SDK middleware
 *   to hook into), fails every request of a dead container and injects the planned faults at the
 *   store's interface: an error before the request (`db-error`), the commit applied and its answer
 *   lost (`db-lost-response`), a crash before or after the commit, latency. On DynamoDB the SDK
 *   middleware of faults.ts does both instead.
 */
import type { CommitRecord, CommitStore, TaskId } from '../../lib/checkpoint/stores.ts';
import { CommitConflictError, StoreError, type StoreName } from '../../lib/errors.ts';
import type { AttachedWrites } from '../../lib/output/types.ts';
import { type ContainerFaults, type RequestObserver, SimulatedCrash, type StoreOp } from './faults.ts';

interface CommittedEpoch {
  committedOffset: bigint;
  /** Undefined when only a retained checkpoint (history) named it. */
  attempt: string | undefined;
}

/** Where an offset's committed epoch is, and who committed it. */
export interface Placement {
  epoch: number;
  /** The invocation (request id) whose attempt committed the epoch, if the run saw it. */
  invocation: string | undefined;
}

export const taskKey = (t: TaskId): string => `${t.pipeline}|${t.topic}|${t.partition}`;

export class CommitLedger {
  private readonly tasks = new Map<string, Map<number, CommittedEpoch>>();
  private readonly invocations = new Map<string, string>();
  /** Sorted epochs per task, rebuilt on demand. */
  private sorted = new Map<string, Array<[number, bigint]>>();
  /** Two different commits recorded for one epoch of a task (a double commit: never expected). */
  readonly contradictions: string[] = [];

  /**
   * An attempt id and the invocation it ran in, noted when it first tries to commit its epoch (a
   * later rewrite of the same commit item, marking its outbox settled, keeps the attempt id).
   */
  noteAttempt(attempt: string, invocation: string): void {
    if (invocation && !this.invocations.has(attempt)) this.invocations.set(attempt, invocation);
  }

  /** A commit item a store accepted or returned, with the retained checkpoints it lists. */
  noteRecord(r: CommitRecord): void {
    this.note(r, r.epoch, r.committedOffset, r.attempt);
    for (const h of r.history) this.note(r, h.epoch, h.committedOffset, undefined);
  }

  private note(task: TaskId, epoch: number, committedOffset: bigint, attempt: string | undefined): void {
    const key = taskKey(task);
    let epochs = this.tasks.get(key);
    if (!epochs) {
      epochs = new Map();
      this.tasks.set(key, epochs);
    }
    const known = epochs.get(epoch);
    if (!known) {
      epochs.set(epoch, { committedOffset, attempt });
      this.sorted.delete(key);
      return;
    }
    if (
      known.committedOffset !== committedOffset ||
      (attempt !== undefined && known.attempt !== undefined && known.attempt !== attempt)
    ) {
      this.contradictions.push(
        `${task.pipeline}/${task.topic}-${task.partition} epoch ${epoch}: committed through ${known.committedOffset} by ${known.attempt ?? '?'} and through ${committedOffset} by ${attempt ?? '?'}`,
      );
      return;
    }
    if (known.attempt === undefined && attempt !== undefined) known.attempt = attempt;
  }

  /** Committed epochs of a task the run saw. */
  epochs(task: TaskId): number {
    return this.tasks.get(taskKey(task))?.size ?? 0;
  }

  /** The invocation that committed epoch `epoch` of `task`, if the run saw it. */
  invocationOf(task: TaskId, epoch: number): string | undefined {
    const attempt = this.tasks.get(taskKey(task))?.get(epoch)?.attempt;
    return attempt === undefined ? undefined : this.invocations.get(attempt);
  }

  /** The committed offset (end of the range) of an epoch, if the run saw it. */
  committedOffsetOf(task: TaskId, epoch: number): bigint | undefined {
    return this.tasks.get(taskKey(task))?.get(epoch)?.committedOffset;
  }

  /**
   * The committed epoch whose records include `offset`: the epoch E with committedOffset(E-1) ≤
   * offset < committedOffset(E) (epoch 1 starts at the task's first record). Undefined when the run
   * saw no such epoch, or saw E but not E-1 (the range's start is unknown).
   */
  place(task: TaskId, offset: bigint): Placement | undefined {
    const key = taskKey(task);
    const epochs = this.tasks.get(key);
    if (!epochs) return undefined;
    let list = this.sorted.get(key);
    if (!list) {
      list = [...epochs]
        .map(([e, c]) => [e, c.committedOffset] as [number, bigint])
        .sort((a, b) => a[0] - b[0]);
      this.sorted.set(key, list);
    }
    // The first epoch whose committed offset (next offset to read) lies beyond `offset`.
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]![1] > offset) hi = mid;
      else lo = mid + 1;
    }
    const found = list[lo];
    if (!found) return undefined;
    const [epoch] = found;
    if (epoch > 1 && list[lo - 1]?.[0] !== epoch - 1) return undefined;
    return { epoch, invocation: this.invocationOf(task, epoch) };
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface CampaignCommitStoreOptions {
  faults: ContainerFaults;
  ledger: CommitLedger;
  observer: RequestObserver;
  /** Inject the planned store faults here (database stores; DynamoDB's come from the SDK middleware). */
  inject: boolean;
  /** Diagnostics: one line per commit and its outcome. */
  trace?: (line: string) => void;
}

/** A container's commit store, as seen by the campaign (see the top of the file). */
export class CampaignCommitStore implements CommitStore {
  private readonly inner: CommitStore;
  private readonly o: CampaignCommitStoreOptions;

  constructor(inner: CommitStore, options: CampaignCommitStoreOptions) {
    this.inner = inner;
    this.o = options;
  }

  get kind(): string {
    return this.inner.kind;
  }

  private noteChain(r: CommitRecord | undefined): void {
    if (!r) return;
    this.o.ledger.noteRecord(r);
    for (const chain of [r.chain, ...r.history.map((h) => h.chain)]) {
      for (const ref of chain) this.o.observer.committedKeys.add(ref.key);
    }
  }

  async read(task: TaskId): Promise<CommitRecord | undefined> {
    const r = await this.request('commit-read', task, () => this.inner.read(task));
    this.noteChain(r);
    return r;
  }

  async commit(next: CommitRecord, expectedEpoch: number, attached?: AttachedWrites): Promise<void> {
    const f = this.o.faults;
    if (next.epoch === expectedEpoch + 1) this.o.ledger.noteAttempt(next.attempt, f.invocation);
    const label = `${next.topic}-${next.partition}`;
    // A zombie: held right before its commit (its snapshot written, inline or in S3) while the
    // ESM's retry commits the epoch; then it resumes, and its commit must lose.
    const zombie =
      f.zombie?.op === 'commit-write' &&
      f.zombie.task === label &&
      !f.zombie.reached.opened &&
      next.epoch === expectedEpoch + 1
        ? f.zombie
        : undefined;
    if (zombie) {
      const link = next.chain[next.chain.length - 1];
      if (link && link.inline === undefined) zombie.key = link.key;
      zombie.reached.open();
      await zombie.resume.wait;
    }
    // Whether the commit reached the store (not failed before by a planned fault or a dead container).
    let sent = false;
    try {
      await this.request(
        'commit-write',
        next,
        () => {
          sent = true;
          return this.inner.commit(next, expectedEpoch, attached);
        },
        () => this.noteChain(next),
      );
      this.noteChain(next);
      this.o.trace?.(
        `c${f.id} ${f.invocation} commit ${next.pipeline}/${label} e${next.epoch} to ${next.committedOffset} attempt ${next.attempt}${next.outbox ? ` outbox ${next.outbox.count}${next.outbox.settled ? ' settled' : ''}` : ''}${attached ? ` attached ${attached.writes.length}` : ''}`,
      );
      if (zombie) zombie.commit = 'won';
    } catch (err) {
      const crash = f.midCommitCrash;
      if (crash && attached?.writes.includes(crash.write)) {
        // The connection was killed inside the commit's transaction (the database rolled it back):
        // the container dies with it. A commit that failed before it was sent, or lost its
        // compare-and-set first, never got there.
        f.midCommitCrash = undefined;
        if (sent && !(err instanceof CommitConflictError && err.cause === undefined)) {
          crash.fault.fired = true;
          crash.fault.outcome = 'surfaced';
          f.kill(`${crash.fault.kind} ${crash.label} (sql transaction)`);
        }
      }
      this.o.trace?.(
        `c${f.id} ${f.invocation} commit ${next.pipeline}/${label} e${next.epoch} failed: ${err instanceof Error ? err.name : String(err)}${err instanceof CommitConflictError ? ` (stored e${err.current?.epoch} by ${err.current?.attempt})` : ''}`,
      );
      if (err instanceof CommitConflictError) this.noteChain(err.current);
      if (zombie) zombie.commit = err instanceof CommitConflictError ? 'lost' : 'error';
      throw err;
    }
  }

  list(pipeline: string): AsyncIterable<CommitRecord> {
    return this.inner.list(pipeline);
  }

  probe(): Promise<void> {
    if (this.o.inject && this.o.faults.dead) return Promise.reject(this.deadError('probe'));
    return this.inner.probe();
  }

  /**
   * What a database store's request fails with once the container is dead: a store error, as its
   * driver's would be (on DynamoDB the SDK middleware fails the request and the store maps it).
   */
  private deadError(operation: string, cause?: SimulatedCrash): StoreError {
    const crash = cause ?? this.o.faults.crashError();
    return new StoreError(this.inner.kind as StoreName, operation, crash.message, { cause: crash });
  }

  /**
   * Runs one request of the container: refused when the container is dead; with the planned fault
   * of this attempt of `op` on the task (database stores). `applied` runs when a fault fires after
   * the request went through (its effect happened, the container never learns it).
   */
  private async request<T>(
    op: StoreOp,
    task: TaskId,
    run: () => Promise<T>,
    applied?: () => void,
  ): Promise<T> {
    const faults = this.o.faults;
    if (!this.o.inject) return run();
    const operation = op === 'commit-write' ? 'commit' : 'read';
    if (faults.dead) throw this.deadError(operation);
    const label = `${task.topic}-${task.partition}`;
    const fault = faults.next(op, label);
    const store = this.inner.kind as StoreName;
    faults.inFlight++;
    try {
      if (fault) {
        fault.fired = true;
        fault.outcome = 'surfaced';
        switch (fault.kind) {
          case 'latency':
            await sleep(fault.variant);
            fault.outcome = 'absorbed';
            break;
          case 'db-error':
            throw new StoreError(store, operation, 'connection reset by peer (injected, before the request)');
          case 'crash-before-commit':
            faults.kill(`${fault.kind} ${label}`);
            throw this.deadError(operation, new SimulatedCrash(`${fault.kind} ${label}`));
          default:
            break;
        }
      }
      const out = await run();
      switch (fault?.kind) {
        case 'db-lost-response':
          applied?.();
          throw new StoreError(
            store,
            operation,
            'connection lost before the answer (injected: the request was applied)',
          );
        case 'crash-after-commit':
          applied?.();
          faults.kill(`${fault.kind} ${label}`);
          throw this.deadError(operation, new SimulatedCrash(`${fault.kind} ${label}`));
        default:
          return out;
      }
    } finally {
      if (--faults.inFlight === 0) faults.onIdle?.();
    }
  }
}
