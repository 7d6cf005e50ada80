/**
 * Event time's costs (`npm run bench -- --time [--quick | --smoke]`), on the real engine over the
 * memory stores (no I/O: the figures are processing and snapshot encoding, what time adds):
 *
 * - windowed vs plain: the same deposits (one partition, 1-minute windows' worth of event time every
 *   few thousand records) through the balances example and through the windowed example
 *   (examples/spend.ts: per-account spend per minute, 10 s lateness, results to a memory sink):
 *   records per second, and the snapshot bytes an epoch writes (its delta) and a full snapshot holds;
 * - scaling with open windows and timers: N accounts each with one open window (one timer each) in
 *   one task, N = 100 k and 1 M in the full profile: the heap they take, the checkpoint bytes (a full
 *   snapshot of windows and timers, and the delta of an epoch that touches 1 % of them), the restore
 *   time, and the time to fire all N timers at once when the watermark passes them.
 */

import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { balances } from '../examples/balances.ts';
import { spendProcessor } from '../examples/spend.ts';
import { EpochEngine } from '../lib/checkpoint/epochEngine.ts';
import type { Processor } from '../lib/checkpoint/processor.ts';
import { loadCheckpoint } from '../lib/checkpoint/restore.ts';
import type { TaskId } from '../lib/checkpoint/stores.ts';
import { loadConfig } from '../lib/config/config.ts';
import { buildEvent, deliveredOffset, encodeRecord } from '../lib/event/encode.ts';
import type { RawKafkaRecord } from '../lib/event/types.ts';
import type { StateDescriptors } from '../lib/state/descriptors.ts';
import { TIMER_TABLES } from '../lib/state/timers.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../lib/store/memory/memoryStores.ts';
import { MemorySink } from '../lib/testing/memorySink.ts';
import { prng } from './workload.ts';

export const TIME_BENCH_PROFILES = {
  smoke: { records: 4_000, batch: 1_000, accounts: 200, timers: [2_000] },
  quick: { records: 100_000, batch: 5_000, accounts: 1_000, timers: [100_000] },
  full: { records: 400_000, batch: 10_000, accounts: 1_000, timers: [100_000, 1_000_000] },
} as const;
export type TimeBenchProfile = keyof typeof TIME_BENCH_PROFILES;

export interface ThroughputFigures {
  readonly processor: 'balances' | 'spend (windowed)';
  readonly records: number;
  readonly recordsPerSecond: number;
  /** Mean bytes of the snapshots epochs wrote (deltas, and the full snapshots of compactions), in S3 or inline. */
  readonly snapshotBytesPerEpoch: number;
  /** A full snapshot of the final state. */
  readonly fullSnapshotBytes: number;
  readonly stateEntries: number;
  readonly windowResults: number;
}

export interface TimerFigures {
  /** Open windows, one timer each, in one task. */
  readonly timers: number;
  /** Heap the task's state takes (windows, timers and their indexes), MB. */
  readonly heapMb: number;
  readonly fullSnapshotBytes: number;
  /** The same before compression (the synthetic keys and values here compress unusually well). */
  readonly fullSnapshotRawBytes: number;
  /** The delta of an epoch that touches 1 % of the windows (and so of the timers). */
  readonly deltaBytes1pct: number;
  readonly restoreMs: number;
  /** Records per second while the N windows were being opened. */
  readonly openRecordsPerSecond: number;
  /** One epoch whose watermark passes every timer: fire all, emit every result, checkpoint. */
  readonly fireAllMs: number;
  /** The same in CPU time (user + system): the figure to read on a busy machine. */
  readonly fireAllCpuMs: number;
  readonly fired: number;
}

const TOPIC = 'deposits';
const T0 = 1_767_225_600_000;
const SOURCE = {
  eventSource: 'aws:kafka' as const,
  eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/bench/00000000-0000-0000-0000-000000000000-1',
  bootstrapServers: 'b-1.bench:9098',
};

function event(from: number, rows: ReadonlyArray<{ key: string; amount: number; ts: number }>): unknown {
  const records: RawKafkaRecord[] = rows.map((r, i) =>
    encodeRecord({
      topic: TOPIC,
      partition: 0,
      offset: deliveredOffset(BigInt(from + i)),
      timestamp: r.ts,
      timestampType: 'CREATE_TIME',
      key: Buffer.from(r.key),
      value: Buffer.from(`{"amount":${r.amount}}`),
      headers: [],
    }),
  );
  return buildEvent(SOURCE, [{ topic: TOPIC, partition: 0, records }]);
}

function engineOf(processor: Processor<StateDescriptors, never>, sink: MemorySink) {
  const snapshots = new MemorySnapshotStore();
  const commits = new MemoryCommitStore();
  const config = loadConfig({}, { bucket: 'b', table: 't', pipeline: 'bench', epochMaxRecords: 10_000 });
  /** Bytes of each epoch's snapshot, in S3 or inline in the commit item. */
  const epochs: number[] = [];
  const engine = new EpochEngine({
    processor,
    config,
    snapshots,
    commits,
    sinks: () => sink,
    now: () => T0,
    observer: { epochCommitted: (info) => epochs.push(info.snapshotBytes) },
  });
  return { engine, snapshots, commits, epochs };
}

const task: TaskId = { pipeline: 'bench', topic: TOPIC, partition: 0 };

async function fullSnapshotBytes(
  processor: Processor<StateDescriptors, never>,
  stores: { snapshots: MemorySnapshotStore; commits: MemoryCommitStore },
): Promise<{ bytes: number; rawBytes: number; entries: number; restoreMs: number }> {
  const commit = (await stores.commits.read(task))!;
  const started = performance.now();
  const { store } = await loadCheckpoint(stores.snapshots, task, commit, {
    ...(processor.state as StateDescriptors),
  });
  const restoreMs = performance.now() - started;
  // Encode the whole state as a compaction would.
  const { encodeSnapshot, fullSections } = await import('../lib/state/snapshotCodec.ts');
  const meta = {
    pipeline: 'bench',
    topic: TOPIC,
    partition: 0,
    epoch: commit.epoch,
    committedOffset: commit.committedOffset,
    kind: 'full' as const,
    baseEpoch: null,
    parentEpoch: null,
    attempt: 'bench',
    createdAt: new Date(T0).toISOString(),
  };
  const body = encodeSnapshot(meta, fullSections(store.allTables()));
  const raw = encodeSnapshot(meta, fullSections(store.allTables()), 'none');
  return { bytes: body.length, rawBytes: raw.length, entries: store.keyCount, restoreMs };
}

/** Deposits over `accounts` accounts, 200 records per second of event time (3 windows per 36 k records). */
async function throughput(
  name: ThroughputFigures['processor'],
  processor: Processor<StateDescriptors, never>,
  p: (typeof TIME_BENCH_PROFILES)[TimeBenchProfile],
): Promise<ThroughputFigures> {
  const sink = new MemorySink({ inCommit: false });
  const stores = engineOf(processor, sink);
  const events: unknown[] = [];
  const random = prng(12345);
  // Eight windows' worth of event time at least, at 200 records per second at most.
  const step = Math.max(5, Math.floor((8 * 60_000) / p.records));
  for (let from = 0; from < p.records; from += p.batch) {
    const rows = Array.from({ length: Math.min(p.batch, p.records - from) }, (_, i) => ({
      key: `acct-${Math.floor(random() * p.accounts)}`,
      amount: Math.floor(random() * 1000),
      ts: T0 + (from + i) * step,
    }));
    events.push(event(from, rows));
  }
  const started = performance.now();
  for (const e of events) await stores.engine.processEvent(e);
  const seconds = (performance.now() - started) / 1000;
  const full = await fullSnapshotBytes(processor, stores);
  await stores.engine.close();
  return {
    processor: name,
    records: p.records,
    recordsPerSecond: Math.round(p.records / seconds),
    snapshotBytesPerEpoch: Math.round(
      stores.epochs.reduce((n, b) => n + b, 0) / Math.max(1, stores.epochs.length),
    ),
    fullSnapshotBytes: full.bytes,
    stateEntries: full.entries,
    windowResults: sink.received.get('windows')?.length ?? 0,
  };
}

function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** N accounts, one deposit each in one minute of event time: N open windows, N timers. */
async function timers(n: number, batch: number): Promise<TimerFigures> {
  const gc = gcFunction();
  const processor = spendProcessor({ windows: undefined, idleAdvanceAfterMs: null }) as unknown as Processor<
    StateDescriptors,
    never
  >;
  const sink = new MemorySink({ inCommit: false });
  const stores = engineOf(processor, sink);
  gc();
  const before = process.memoryUsage().heapUsed;
  let opened = 0;
  const started = performance.now();
  for (let from = 0; from < n; from += batch) {
    const rows = Array.from({ length: Math.min(batch, n - from) }, (_, i) => ({
      key: `acct-${String(from + i).padStart(7, '0')}`,
      amount: 1,
      ts: T0 + Math.floor(((from + i) / n) * 50_000),
    }));
    await stores.engine.processEvent(event(from, rows));
    opened += rows.length;
  }
  const openSeconds = (performance.now() - started) / 1000;
  gc();
  // The engine's warm cache holds the task's state (the memory store's snapshot bytes are Buffers,
  // outside the heap).
  const heapMb = Math.max(0, process.memoryUsage().heapUsed - before) / 2 ** 20;
  // An epoch touching 1 % of the windows (a second deposit to every hundredth account).
  const touch = Array.from({ length: Math.ceil(n / 100) }, (_, i) => ({
    key: `acct-${String(i * 100).padStart(7, '0')}`,
    amount: 1,
    ts: T0 + 50_000,
  }));
  await stores.engine.processEvent(event(opened, touch));
  const delta = stores.epochs.at(-1) ?? 0;
  const full = await fullSnapshotBytes(processor, stores);
  // One record 2 minutes later: the watermark passes every window's close; all N timers fire.
  const fireStarted = performance.now();
  const cpu = process.cpuUsage();
  const summary = await stores.engine.processEvent(
    event(opened + touch.length, [{ key: 'acct-x', amount: 1, ts: T0 + 200_000 }]),
  );
  const fireAllMs = performance.now() - fireStarted;
  const fireCpu = process.cpuUsage(cpu);
  const commit = (await stores.commits.read(task))!;
  const { store } = await loadCheckpoint(stores.snapshots, task, commit, {
    ...(processor.state as StateDescriptors),
  });
  if ((store.table(TIMER_TABLES.event)?.data.size ?? -1) !== 1)
    throw new Error('bench: timers left after firing all');
  await stores.engine.close();
  return {
    timers: n,
    heapMb: Math.round(heapMb),
    fullSnapshotBytes: full.bytes,
    fullSnapshotRawBytes: full.rawBytes,
    deltaBytes1pct: delta,
    restoreMs: Math.round(full.restoreMs),
    openRecordsPerSecond: Math.round(opened / openSeconds),
    fireAllMs: Math.round(fireAllMs),
    fireAllCpuMs: Math.round((fireCpu.user + fireCpu.system) / 1000),
    fired: summary.timersFired,
  };
}

export interface TimeBenchResult {
  readonly profile: TimeBenchProfile;
  readonly throughput: ThroughputFigures[];
  readonly timers: TimerFigures[];
}

export async function benchTime(
  profile: TimeBenchProfile,
  log: (line: string) => void = () => {},
): Promise<TimeBenchResult> {
  const p = TIME_BENCH_PROFILES[profile];
  const windowed = spendProcessor({ idleAdvanceAfterMs: null }) as unknown as Processor<
    StateDescriptors,
    never
  >;
  const plain = balances as unknown as Processor<StateDescriptors, never>;
  // Each measured twice, alternating; the second (warm) run counts.
  await throughput('balances', plain, TIME_BENCH_PROFILES.smoke);
  await throughput('spend (windowed)', windowed, TIME_BENCH_PROFILES.smoke);
  const results = [await throughput('balances', plain, p), await throughput('spend (windowed)', windowed, p)];
  for (const r of results) log(`  ${r.processor}: ${r.recordsPerSecond.toLocaleString('en-US')} records/s`);
  const t: TimerFigures[] = [];
  for (const n of p.timers) {
    t.push(await timers(n, p.batch));
    log(
      `  ${n.toLocaleString('en-US')} timers: ${t.at(-1)!.heapMb} MB, ${t.at(-1)!.fullSnapshotBytes.toLocaleString('en-US')} B full`,
    );
  }
  return { profile, throughput: results, timers: t };
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** The figures as two Markdown tables. */
export function timeTables(r: TimeBenchResult): string {
  const a = [
    '| processor | records/s | snapshot bytes per epoch | full snapshot | state entries | window results |',
    '|---|---:|---:|---:|---:|---:|',
    ...r.throughput.map(
      (t) =>
        `| ${t.processor} | ${fmt(t.recordsPerSecond)} | ${fmt(t.snapshotBytesPerEpoch)} | ${fmt(t.fullSnapshotBytes)} | ${fmt(t.stateEntries)} | ${fmt(t.windowResults)} |`,
    ),
  ];
  const b = [
    '| open windows (= timers) per task | heap | full snapshot (uncompressed) | delta, 1 % touched | restore | records/s opening them | fire all in one epoch |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...r.timers.map(
      (t) =>
        `| ${fmt(t.timers)} | ${fmt(t.heapMb)} MB | ${fmt(t.fullSnapshotBytes)} B (${fmt(t.fullSnapshotRawBytes)} B) | ${fmt(t.deltaBytes1pct)} B | ${fmt(t.restoreMs)} ms | ${fmt(t.openRecordsPerSecond)} | ${fmt(t.fireAllMs)} ms, ${fmt(t.fireAllCpuMs)} ms CPU (${fmt(t.fired)} fired) |`,
    ),
  ];
  return `${a.join('\n')}\n\n${b.join('\n')}`;
}

/** `npm run bench -- --time`: measures, writes `time-<stamp>-<profile>.json` and `time.md` under `out`. */
export async function runTimeBench(
  profile: TimeBenchProfile,
  out: string,
  log: (line: string) => void,
): Promise<TimeBenchResult> {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const path = await import('node:path');
  log(`tidemark bench --time: ${profile} profile (memory stores: processing and encoding only)`);
  const result = await benchTime(profile, log);
  mkdirSync(out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = path.join(out, `time-${stamp}-${profile}.json`);
  writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(path.join(out, 'time.md'), `${timeTables(result)}\n`);
  log(`\n${timeTables(result)}\n\nwrote ${json}`);
  return result;
}
