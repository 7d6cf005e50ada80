/**
 * The fault campaign of the windowed example (examples/spend.ts: per-account spend per 1-minute
 * window, 10 s allowed lateness, results emitted once per window): a seeded stream per partition,
 * delivered as the Kafka ESM does (batches, retries that start again from the acknowledged offset
 * with another composition, duplicate and concurrent deliveries) to real handlers running against
 * DynamoDB Local and the S3 server, with faults at every step: containers that die before or after
 * the snapshot PUT or the commit (a crash, or a lost response), store errors, zombies (a container
 * paused at its commit while a retry commits, then resumed), cold starts, and scheduled ticks racing
 * batches of the same task, themselves crashing, duplicated or paused.
 *
 * The wall clock is the campaign's own. Phase 1 delivers the stream with the clock still, so the
 * watermark follows the records alone. Phase 2 moves the clock 100 s on: ticks advance event time
 * on idle partitions (idle advance after 30 s) and race a few records of a far later window, so the
 * first of them to commit closes every window of phase 1. Phase 3 moves the clock a day on and ticks
 * until nothing is due. Then every task is read back and judged against an independent fold:
 *
 *   - every window result emitted exactly once (none lost, none twice, each with its total and count),
 *   - late records counted (the `spend.late` state equals the fold's), poison records quarantined,
 *   - no timer and no open window left: each window's timer fired, once.
 *
 * Downstream is a memory sink shared by every container (one delivery per task-epoch, as every real
 * sink guarantees; the sinks' own failure handling is the outputs campaign's subject).
 */

import {
  SPEND_LATENESS_MS,
  SPEND_WINDOW_MS,
  type SpendWindow,
  spendProcessor,
} from '../../examples/spend.ts';
import type { BatchSummary } from '../../lib/checkpoint/epochEngine.ts';
import { loadCheckpoint } from '../../lib/checkpoint/restore.ts';
import type { CommitStore, SnapshotStore, TaskId } from '../../lib/checkpoint/stores.ts';
import { StoreError } from '../../lib/errors.ts';
import { buildEvent, deliveredOffset, encodeRecord } from '../../lib/event/encode.ts';
import type { RawKafkaRecord } from '../../lib/event/types.ts';
import { createRuntime, type TidemarkRuntime } from '../../lib/handler/runtime.ts';
import type { StateDescriptors } from '../../lib/state/descriptors.ts';
import { TASK_KEY } from '../../lib/state/stateStore.ts';
import { TIMER_TABLES } from '../../lib/state/timers.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { createAwsStores } from '../../lib/store/stores.ts';
import { MemorySink } from '../../lib/testing/memorySink.ts';
import { SeededRandom } from '../seededRandom.ts';

export const WINDOW_FAULTS = [
  'crash-before-snapshot-put',
  'crash-after-snapshot-put',
  'crash-before-commit',
  'crash-after-commit',
  'store-error',
  'zombie',
  'duplicate',
  'cold-start',
] as const;
export type WindowFault = (typeof WINDOW_FAULTS)[number];

export interface WindowCampaignOptions {
  seed: number;
  /** Partitions (tasks). */
  partitions: number;
  /** Records per partition in phase 1. */
  records: number;
  /** Probability that an invocation (batch or tick) carries a fault. Default 0.35. */
  faultRate?: number;
  /** Servers (the standard AWS variables plus TIDEMARK_BUCKET / TIDEMARK_TABLE). */
  env: Readonly<Record<string, string | undefined>>;
  log?: (line: string) => void;
  /**
   * Self-check of the judge: what downstream saw is altered before judging (one window result
   * dropped, or one delivered twice); the report must then show it.
   */
  sabotage?: 'lose-window' | 'duplicate-window';
}

export interface WindowCampaignReport {
  seed: number;
  partitions: number;
  records: number;
  invocations: number;
  ticks: number;
  /** Timers fired and epochs committed by ticks, and the commit races they met. */
  tickTimersFired: number;
  tickEpochs: number;
  tickConflicts: number;
  faults: Record<WindowFault, number>;
  windowsExpected: number;
  windowsEmitted: number;
  lost: number;
  duplicated: number;
  wrong: number;
  lateExpected: number;
  lateCounted: number;
  quarantinedExpected: number;
  quarantinedCounted: number;
  timersLeft: number;
  windowsLeft: number;
  unfinishedTasks: number;
  passed: boolean;
  replay: string;
}

const TOPIC = 'deposits';
const CLUSTER =
  'arn:aws:kafka:us-east-1:123456789012:cluster/campaign/00000000-0000-0000-0000-000000000000-1';
const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a minute boundary
const ACCOUNTS = 12;

interface Input {
  key: string | null;
  value: string | null;
  timestamp: number;
}

/** Phase 1's stream of a partition: mostly in order, some records out of order, a few late, a few poison. */
function generate(r: SeededRandom, n: number): Input[] {
  const out: Input[] = [];
  for (let i = 0; i < n; i++) {
    const account = `acct-${r.int(0, ACCOUNTS - 1)}`;
    let t = T0 + i * 700 + r.int(0, 400);
    if (r.chance(0.15)) t -= r.int(0, 9_000); // out of order, within the lateness
    if (r.chance(0.04)) t -= r.int(30_000, 150_000); // behind closed windows: late
    const roll = r.float();
    if (roll < 0.01) out.push({ key: account, value: 'not json', timestamp: t });
    else if (roll < 0.015) out.push({ key: null, value: '{"amount":1}', timestamp: t });
    else if (roll < 0.025)
      out.push({ key: account, value: null, timestamp: t }); // a tombstone: ignored
    else
      out.push({ key: account, value: JSON.stringify({ amount: r.int(1, 500) }), timestamp: Math.max(0, t) });
  }
  return out;
}

interface Expected {
  windows: Map<string, { total: number; count: number }>;
  late: number;
  poison: number;
}

const windowKey = (account: string, start: number) => `${account}|${start}`;

/**
 * The independent fold: records in offset order, the watermark before each the largest timestamp
 * seen so far minus 1; a record whose window closed (watermark ≥ end - 1 + lateness) is late.
 */
function fold(records: readonly Input[]): Expected {
  const windows = new Map<string, { total: number; count: number }>();
  let late = 0;
  let poison = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (const rec of records) {
    let amount: number | undefined;
    if (rec.key === null) poison++;
    else if (rec.value !== null) {
      try {
        amount = (JSON.parse(rec.value) as { amount: number }).amount;
      } catch {
        poison++;
      }
    }
    if (rec.key === null || (rec.value !== null && amount === undefined)) continue; // poison: no event time
    if (amount !== undefined) {
      const start = Math.floor(rec.timestamp / SPEND_WINDOW_MS) * SPEND_WINDOW_MS;
      const watermark = max - 1;
      if (watermark >= start + SPEND_WINDOW_MS - 1 + SPEND_LATENESS_MS) late++;
      else {
        const k = windowKey(rec.key, start);
        const w = windows.get(k) ?? { total: 0, count: 0 };
        windows.set(k, { total: w.total + amount, count: w.count + 1 });
      }
    }
    max = Math.max(max, rec.timestamp);
  }
  return { windows, late, poison };
}

class Gate {
  private release!: () => void;
  readonly opened = new Promise<void>((r) => {
    this.release = r;
  });
  private reachedResolve!: () => void;
  readonly reached = new Promise<void>((r) => {
    this.reachedResolve = r;
  });
  arrive(): Promise<void> {
    this.reachedResolve();
    return this.opened;
  }
  open(): void {
    this.release();
  }
}

type Arm =
  | {
      kind:
        | 'crash-before-snapshot-put'
        | 'crash-after-snapshot-put'
        | 'crash-before-commit'
        | 'crash-after-commit';
    }
  | { kind: 'store-error'; op: 'put' | 'commit' | 'read' }
  | { kind: 'hold'; gate: Gate };

const NEVER = new Promise<never>(() => {});

/**
 * A container: a runtime over the real stores, wrapped so that a fault can kill it (every later
 * call of it hangs forever, like a frozen or dead process: nothing it does after the crash happens),
 * fail one store call, or hold its commit until released.
 */
class Container {
  readonly runtime: TidemarkRuntime<StateDescriptors, { windows: never }>;
  dead = false;
  private arm: Arm | undefined;
  private readonly died: Promise<void>;
  private die!: () => void;
  fired: string | undefined;
  /** Called with the summary of each invocation that succeeded. */
  onSummary: ((s: BatchSummary) => void) | undefined;

  constructor(
    base: { snapshots: SnapshotStore; commits: CommitStore },
    sink: MemorySink,
    clock: () => number,
    pipeline: string,
    inlineSnapshots: boolean,
  ) {
    this.died = new Promise((r) => {
      this.die = r;
    });
    const guard = async <T>(
      op: 'put' | 'commit' | 'read',
      call: () => Promise<T>,
      isSnapshot = false,
    ): Promise<T> => {
      if (this.dead) return NEVER;
      const a = this.arm;
      if (a?.kind === 'store-error' && a.op === op) {
        this.arm = undefined;
        this.fired = 'store-error';
        throw new StoreError('s3', op, 'injected store error', { retriable: true });
      }
      if (
        op === 'put' &&
        isSnapshot &&
        a &&
        (a.kind === 'crash-before-snapshot-put' || a.kind === 'crash-after-snapshot-put')
      ) {
        this.arm = undefined;
        this.fired = a.kind;
        if (a.kind === 'crash-after-snapshot-put') await call();
        this.kill();
        return NEVER;
      }
      if (op === 'commit' && a && (a.kind === 'crash-before-commit' || a.kind === 'crash-after-commit')) {
        this.arm = undefined;
        this.fired = a.kind;
        if (a.kind === 'crash-after-commit') await call();
        this.kill();
        return NEVER;
      }
      if (op === 'commit' && a?.kind === 'hold') {
        this.arm = undefined;
        this.fired = 'zombie';
        await a.gate.arrive();
      }
      const result = await call();
      if (this.dead) return NEVER;
      return result;
    };
    const snapshots: SnapshotStore = {
      put: (key, body, options) =>
        guard(
          'put',
          () => base.snapshots.put(key, body, options),
          key.includes('/tasks/') && !key.endsWith('.outbox'),
        ),
      get: (key) => guard('read', () => base.snapshots.get(key)),
      delete: (keys) => guard('read', () => base.snapshots.delete(keys)),
      list: (prefix) => base.snapshots.list(prefix),
      probe: () => base.snapshots.probe(),
    };
    const commits: CommitStore = {
      kind: base.commits.kind,
      read: (task) => guard('read', () => base.commits.read(task)),
      commit: (next, expected, attached) =>
        guard('commit', () => base.commits.commit(next, expected, attached)),
      list: (p) => base.commits.list(p),
      probe: () => base.commits.probe(),
    };
    this.runtime = createRuntime(spendProcessor(), {
      env: {},
      // Half the containers write every snapshot to S3 (so crashes around its PUT can happen), half
      // carry small ones inline in the commit item.
      config: {
        bucket: 'unused',
        table: 'unused',
        pipeline,
        taskConcurrency: 4,
        ...(inlineSnapshots ? {} : { snapshotInlineMaxBytes: 0 }),
      },
      stores: { snapshots, commits },
      sinks: () => sink,
      telemetry: false,
      now: clock,
    }) as unknown as TidemarkRuntime<StateDescriptors, { windows: never }>;
  }

  kill(): void {
    this.dead = true;
    this.die();
  }

  /** Runs one invocation; resolves with its outcome, or 'crashed' if the container died during it. */
  async invoke(event: unknown, arm?: Arm): Promise<'ok' | 'failed' | 'crashed'> {
    this.arm = arm;
    this.fired = undefined;
    const outcome = this.runtime.invoke(event, { awsRequestId: 'campaign' }).then(
      (summary) => {
        this.onSummary?.(summary);
        return 'ok' as const;
      },
      () => 'failed' as const,
    );
    const r = await Promise.race([outcome, this.died.then(() => 'crashed' as const)]);
    this.arm = undefined;
    return r;
  }
}

function eventOf(partition: number, records: readonly Input[], from: number): unknown {
  const raw: RawKafkaRecord[] = records.map((r, i) =>
    encodeRecord({
      topic: TOPIC,
      partition,
      offset: deliveredOffset(BigInt(from + i)),
      timestamp: r.timestamp,
      timestampType: 'CREATE_TIME',
      key: r.key === null ? null : Buffer.from(r.key),
      value: r.value === null ? null : Buffer.from(r.value),
      headers: [],
    }),
  );
  return buildEvent(
    { eventSource: 'aws:kafka', eventSourceArn: CLUSTER, bootstrapServers: 'b-1.campaign:9098' },
    [{ topic: TOPIC, partition, records: raw }],
  );
}

export async function runWindowCampaign(options: WindowCampaignOptions): Promise<WindowCampaignReport> {
  const random = new SeededRandom(options.seed);
  const pipeline = `spend-campaign-${(options.seed >>> 0).toString(36)}-${Date.now().toString(36)}`;
  const faultRate = options.faultRate ?? 0.35;
  const s3 = createS3Client(options.env);
  const dynamodb = createDynamoDBClient(options.env);
  const stores = createAwsStores({
    bucket: options.env.TIDEMARK_BUCKET!,
    table: options.env.TIDEMARK_TABLE!,
    s3,
    dynamodb,
  });
  const sink = new MemorySink({ inCommit: false });
  let clock = T0;
  const now = () => clock;
  const containers: Container[] = [];
  /** Faults that fired (an armed fault whose step the invocation never reached did not). */
  const faults = Object.fromEntries(WINDOW_FAULTS.map((f) => [f, 0])) as Record<WindowFault, number>;
  let invocations = 0;
  let ticks = 0;
  const tickStats = { timersFired: 0, epochs: 0, conflicts: 0 };
  const container = (fresh = false): Container => {
    const live = containers.filter((c) => !c.dead);
    if (!fresh && live.length > 0 && !random.chance(0.1)) return random.pick(live);
    const c = new Container(stores, sink, now, pipeline, random.chance(0.5));
    c.onSummary = (summary) => {
      if (summary.records > 0) return;
      tickStats.timersFired += summary.timersFired;
      tickStats.epochs += summary.epochsCommitted;
      tickStats.conflicts += summary.commitConflicts;
    };
    containers.push(c);
    return c;
  };

  /** One delivery of an event (a batch or a tick), possibly with a fault; true when it succeeded. */
  const deliver = async (event: () => unknown, r: SeededRandom): Promise<boolean> => {
    invocations++;
    if (!r.chance(faultRate)) return (await container().invoke(event())) === 'ok';
    const fault = r.pick(WINDOW_FAULTS);
    if (fault === 'cold-start') {
      faults[fault]++;
      return (await container(true).invoke(event())) === 'ok';
    }
    if (fault === 'duplicate') {
      faults[fault]++;
      // The same event twice at once, on two containers (the ESM's duplicate delivery).
      const [a] = await Promise.all([container(true).invoke(event()), container(true).invoke(event())]);
      return a === 'ok';
    }
    if (fault === 'zombie') {
      // A container paused at its commit; the ESM gives up on it and delivers again elsewhere; then
      // the paused one resumes and meets the retry's commit.
      const gate = new Gate();
      const zombie = container(true);
      const paused = zombie.invoke(event(), { kind: 'hold', gate });
      const reached = await Promise.race([gate.reached.then(() => true), paused.then(() => false)]);
      if (!reached) return (await paused) === 'ok';
      faults.zombie++;
      const retry = await container(true).invoke(event());
      gate.open();
      await paused;
      return retry === 'ok';
    }
    const c = container(true);
    const arm: Arm =
      fault === 'store-error'
        ? { kind: 'store-error', op: r.pick(['put', 'commit', 'read'] as const) }
        : { kind: fault };
    const outcome = await c.invoke(event(), arm);
    if (c.fired) faults[c.fired as WindowFault]++;
    return outcome === 'ok';
  };

  const tasks = Array.from({ length: options.partitions }, (_, p) => ({
    partition: p,
    r: random.derive(`task-${p}`),
    input: [] as Input[],
    acked: 0,
  }));
  for (const t of tasks) t.input = generate(t.r.derive('input'), options.records);

  /** Delivers a task's records from `from` until acknowledged through `to`, as the ESM does. */
  const run = async (t: (typeof tasks)[number], to: number) => {
    while (t.acked < to) {
      const size = t.r.int(1, 40);
      const end = Math.min(to, t.acked + size);
      // A retry may start earlier (records already committed: skipped as duplicates).
      const from = t.r.chance(0.1) ? Math.max(0, t.acked - t.r.int(1, 20)) : t.acked;
      const ok = await deliver(() => eventOf(t.partition, t.input.slice(from, end), from), t.r);
      if (ok) t.acked = end;
    }
  };
  const tick = async (r: SeededRandom) => {
    ticks++;
    return deliver(() => ({ tidemark: 'tick' }), r);
  };

  // Phase 1: the stream, the clock still (ticks find nothing due).
  const tr = random.derive('ticks');
  await Promise.all([
    ...tasks.map((t) => run(t, t.input.length)),
    (async () => {
      for (let i = 0; i < 3; i++) await tick(tr);
    })(),
  ]);
  options.log?.(`phase 1 done: ${invocations} invocations`);

  // Phase 2: 100 s later, ticks close the idle partitions' windows while records of a far later
  // window arrive: whichever commits first closes them, once.
  clock = T0 + options.records * 700 + 100_000;
  const later = Math.ceil((clock + 200_000) / SPEND_WINDOW_MS) * SPEND_WINDOW_MS + 100 * SPEND_WINDOW_MS;
  for (const t of tasks) {
    const n = t.r.int(1, 6);
    for (let i = 0; i < n; i++) {
      t.input.push({
        key: `acct-${t.r.int(0, ACCOUNTS - 1)}`,
        value: JSON.stringify({ amount: t.r.int(1, 9) }),
        timestamp: later + i * 1000,
      });
    }
  }
  let running = true;
  await Promise.all([
    Promise.all(tasks.map((t) => run(t, t.input.length))).finally(() => {
      running = false;
    }),
    (async () => {
      for (let i = 0; running || i < 2; i++) await tick(tr);
    })(),
  ]);
  options.log?.(`phase 2 done: ${invocations} invocations`);

  // Phase 3: a day later, ticks until no task is due (every window closed).
  clock += 86_400_000;
  for (let i = 0; i < 50; i++) {
    let due = 0;
    for await (const c of stores.commits.list(pipeline))
      if (c.time?.dueAt !== undefined && c.time.dueAt <= clock) due++;
    if (due === 0) break;
    await tick(tr);
  }

  // Judge.
  const processor = spendProcessor();
  const received = new Map<string, number>();
  const values = new Map<string, SpendWindow>();
  const seen = [...(sink.received.get('windows') ?? [])];
  if (options.sabotage === 'lose-window') seen.splice(random.int(0, seen.length - 1), 1);
  if (options.sabotage === 'duplicate-window') seen.push(seen[random.int(0, seen.length - 1)]!);
  for (const o of seen) {
    const v = o.value as SpendWindow;
    const k = `${o.outputId.partition}|${windowKey(v.account, v.start)}`;
    received.set(k, (received.get(k) ?? 0) + 1);
    values.set(k, v);
  }
  const report: WindowCampaignReport = {
    seed: options.seed,
    partitions: options.partitions,
    records: tasks.reduce((n, t) => n + t.input.length, 0),
    invocations,
    ticks,
    tickTimersFired: tickStats.timersFired,
    tickEpochs: tickStats.epochs,
    tickConflicts: tickStats.conflicts,
    faults,
    windowsExpected: 0,
    windowsEmitted: seen.length,
    lost: 0,
    duplicated: 0,
    wrong: 0,
    lateExpected: 0,
    lateCounted: 0,
    quarantinedExpected: 0,
    quarantinedCounted: 0,
    timersLeft: 0,
    windowsLeft: 0,
    unfinishedTasks: 0,
    passed: false,
    replay: `TIDEMARK_WINDOW_CAMPAIGN_SEED=${options.seed}`,
  };
  for (const t of tasks) {
    const exp = fold(t.input);
    report.windowsExpected += exp.windows.size;
    report.lateExpected += exp.late;
    report.quarantinedExpected += exp.poison;
    for (const [k, w] of exp.windows) {
      const key = `${t.partition}|${k}`;
      const n = received.get(key) ?? 0;
      if (n === 0) report.lost++;
      if (n > 1) report.duplicated += n - 1;
      const v = values.get(key);
      if (v && (v.total !== w.total || v.count !== w.count)) report.wrong++;
    }
    for (const k of received.keys()) {
      if (k.startsWith(`${t.partition}|`) && !exp.windows.has(k.slice(k.indexOf('|') + 1))) report.wrong++;
    }
    const task: TaskId = { pipeline, topic: TOPIC, partition: t.partition };
    const commit = await stores.commits.read(task);
    if (!commit || commit.committedOffset !== BigInt(t.input.length)) report.unfinishedTasks++;
    if (!commit) continue;
    report.quarantinedCounted += commit.quarantined;
    const { store } = await loadCheckpoint(stores.snapshots, task, commit, {
      ...(processor.state as StateDescriptors),
    });
    report.lateCounted += (store.table('spend.late')?.data.get(TASK_KEY) as number | undefined) ?? 0;
    report.windowsLeft += store.table('spend.windows')?.data.size ?? 0;
    report.timersLeft +=
      (store.table(TIMER_TABLES.event)?.data.size ?? 0) +
      (store.table(TIMER_TABLES.processing)?.data.size ?? 0);
  }
  report.passed =
    report.lost === 0 &&
    report.duplicated === 0 &&
    report.wrong === 0 &&
    report.lateCounted === report.lateExpected &&
    report.quarantinedCounted === report.quarantinedExpected &&
    report.timersLeft === 0 &&
    report.windowsLeft === 0 &&
    report.unfinishedTasks === 0;
  for (const c of containers) if (!c.dead) await c.runtime.engine.close();
  s3.destroy();
  dynamodb.destroy();
  return report;
}

/** The report as a few lines of text. */
export function formatWindowReport(r: WindowCampaignReport): string {
  const faults = Object.entries(r.faults)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(' · ');
  return [
    `windowed campaign, seed ${r.seed}: ${r.records} records over ${r.partitions} partitions, ${r.invocations} invocations (${r.ticks} ticks)`,
    `faults: ${faults}`,
    `ticks: ${r.tickEpochs} epochs committed, ${r.tickTimersFired} timers fired, ${r.tickConflicts} commit races lost`,
    `window results: ${r.windowsExpected} expected, ${r.windowsEmitted} emitted — lost ${r.lost}, duplicated ${r.duplicated}, wrong ${r.wrong}`,
    `late records counted ${r.lateCounted} (expected ${r.lateExpected}); quarantined ${r.quarantinedCounted} (expected ${r.quarantinedExpected})`,
    `left after the last tick: ${r.timersLeft} timers, ${r.windowsLeft} open windows; unfinished tasks ${r.unfinishedTasks}`,
    r.passed
      ? 'VERIFIED: every window result exactly once, every timer fired once'
      : `FAILED (replay: ${r.replay})`,
  ].join('\n');
}
