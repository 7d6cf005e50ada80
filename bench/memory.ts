/**
 * Benchmark 9, memory: heap per million keys of balances state, measured in a child process of its
 * own (`--expose-gc`, a garbage collection before each reading):
 *   - restored: a full snapshot loaded through `loadCheckpoint` (columnar tables, nothing touched);
 *   - touched: then every key read and written once through the state API (each key a Map entry);
 *   - built: the same state built key by key through the state API (a container that processed it);
 * and, in a process that does nothing else, how much the restore raises the peak resident set size
 * (the snapshot's bytes, its decompressed body and the decoded columns are alive at once).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { balances } from '../examples/balances.ts';
import { buildCheckpoint } from '../lib/checkpoint/restore.ts';
import { encodeSnapshot, fullSections, snapshotChecksum } from '../lib/state/snapshotCodec.ts';
import { StateStore } from '../lib/state/stateStore.ts';
import { balancesState } from './stateSize.ts';
import { accountId } from './workload.ts';

export interface MemoryOptions {
  keys: number;
}

export interface MemoryResult {
  keys: number;
  /** Heap growth per million keys, MB (10^6 bytes). */
  restoredMbPerMillion: number;
  touchedMbPerMillion: number;
  builtMbPerMillion: number;
  /** Peak RSS growth of a process that restores the snapshot and nothing else, per million keys, MB. */
  restorePeakRssMbPerMillion: number;
  snapshotBytes: number;
}

const MB = 1e6;

function heap(): number {
  (globalThis as { gc?: () => void }).gc?.();
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

/** A full snapshot of a balances state of `keys` keys. */
function snapshotOf(keys: number): Buffer {
  return encodeSnapshot(
    {
      pipeline: 'memory',
      topic: 't',
      partition: 0,
      epoch: 1,
      committedOffset: 1n,
      attempt: 'm',
      createdAt: new Date(0).toISOString(),
      kind: 'full',
      baseEpoch: null,
      parentEpoch: null,
    },
    fullSections(balancesState(keys).allTables()),
    'zstd',
  );
}

/** Runs in the child: measures and prints one JSON line. */
function measure(keys: number): MemoryResult {
  const task = { pipeline: 'memory', topic: 't', partition: 0 };
  // The snapshot of a `keys`-key state (its source state dropped before anything is measured).
  let body: Buffer | undefined = snapshotOf(keys);
  const snapshotBytes = body.length;
  // msgpackr keeps a reference to what it packed last: pack something small so the source state goes.
  encodeSnapshot(
    {
      ...task,
      epoch: 1,
      committedOffset: 1n,
      attempt: 'm',
      createdAt: '',
      kind: 'full',
      baseEpoch: null,
      parentEpoch: null,
    },
    fullSections(balancesState(1).allTables()),
    'zstd',
  );
  const ref = {
    key: 'k',
    bytes: body.length,
    checksum: snapshotChecksum(body),
    kind: 'full' as const,
    epoch: 1,
    entries: keys,
  };
  const load = () =>
    buildCheckpoint(
      task,
      { epoch: 1, committedOffset: 1n, chain: [ref], updatedAt: '' },
      [body!],
      balances.state,
    );
  load(); // a first restore, dropped: buffers the codec keeps between calls are there before measuring
  const before = heap();
  const { store } = load();
  const restored = heap() - before; // the snapshot's bytes were there before and still are
  body = undefined;
  const handles = store.handles(balances.state);
  for (let i = 0; i < keys; i++) {
    store.beginRecord(accountId(i));
    const cur = handles.account.get();
    handles.account.set({ balance: (cur?.balance ?? 0) + 1, count: (cur?.count ?? 0) + 1 });
    store.commitRecord();
  }
  store.takeChanges();
  const touched = heap() - before + snapshotBytes;
  const built = new StateStore(balances.state);
  const h = built.handles(balances.state);
  const beforeBuilt = heap();
  for (let i = 0; i < keys; i++) {
    built.beginRecord(accountId(i));
    h.account.set({ balance: i, count: 1 });
    built.commitRecord();
  }
  built.takeChanges();
  const builtBytes = heap() - beforeBuilt;
  const perMillion = (bytes: number) => (bytes / MB) * (1_000_000 / keys);
  // Keep both stores alive until measured.
  if (store.keyCount + built.keyCount < 0) throw new Error('unreachable');
  return {
    keys,
    restoredMbPerMillion: perMillion(restored),
    touchedMbPerMillion: perMillion(touched),
    builtMbPerMillion: perMillion(builtBytes),
    restorePeakRssMbPerMillion: 0, // measured in a process of its own (measurePeak)
    snapshotBytes,
  };
}

/** Resident set size now and its peak, from /proc (Linux), in bytes; undefined elsewhere. */
function procRss(): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    const rss = kb('VmRSS');
    const peak = kb('VmHWM');
    return Number.isFinite(rss) && Number.isFinite(peak) ? { rss: rss * 1024, peak: peak * 1024 } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * In a child of its own: how far the restore of the snapshot in `file` raises the process's resident
 * set above what it was before. The peak left by loading the modules (type stripping included) can
 * exceed the restore's, so on Linux the peak is reset first (`/proc/self/clear_refs`, 5); elsewhere
 * the growth of the lifetime peak is reported, which that start-up peak can hide.
 */
function measurePeak(file: string, keys: number): number {
  const task = { pipeline: 'memory', topic: 't', partition: 0 };
  (globalThis as { gc?: () => void }).gc?.();
  let reset = false;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    reset = true;
  } catch {}
  const before = reset ? procRss() : undefined;
  const base = before?.rss ?? process.resourceUsage().maxRSS * 1024;
  const body = readFileSync(file);
  const ref = {
    key: 'k',
    bytes: body.length,
    checksum: snapshotChecksum(body),
    kind: 'full' as const,
    epoch: 1,
    entries: keys,
  };
  const { store } = buildCheckpoint(
    task,
    { epoch: 1, committedOffset: 1n, chain: [ref], updatedAt: '' },
    [body],
    balances.state,
  );
  if (store.keyCount !== keys) throw new Error(`restored ${store.keyCount} keys`);
  const peak = before ? (procRss()?.peak ?? base) : process.resourceUsage().maxRSS * 1024;
  return ((peak - base) / MB) * (1_000_000 / keys);
}

export function runMemory(o: MemoryOptions, log: (line: string) => void = () => {}): MemoryResult {
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), 'child', String(o.keys)],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    },
  );
  const result = JSON.parse(out.trim().split('\n').pop()!) as MemoryResult;
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-memory-'));
  try {
    const file = join(dir, 'snapshot');
    const self = fileURLToPath(import.meta.url);
    execFileSync(process.execPath, [self, 'snapshot', String(o.keys), file]);
    const peak = execFileSync(process.execPath, ['--expose-gc', self, 'peak', String(o.keys), file], {
      encoding: 'utf8',
    });
    result.restorePeakRssMbPerMillion = Number(peak.trim().split('\n').pop());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  log(
    `memory: ${o.keys} keys: restored ${result.restoredMbPerMillion.toFixed(0)} MB/M keys, touched ${result.touchedMbPerMillion.toFixed(0)}, built ${result.builtMbPerMillion.toFixed(0)}, restore peak RSS +${result.restorePeakRssMbPerMillion.toFixed(0)}`,
  );
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [mode, keys, file] = process.argv.slice(2);
  if (mode === 'child') console.log(JSON.stringify(measure(Number(keys))));
  else if (mode === 'snapshot') writeFileSync(file!, snapshotOf(Number(keys)));
  else if (mode === 'peak') console.log(measurePeak(file!, Number(keys)));
}

export const MEMORY_PROFILES: Record<'full' | 'quick' | 'smoke', MemoryOptions> = {
  full: { keys: 1_000_000 },
  quick: { keys: 1_000_000 },
  smoke: { keys: 1_000 },
};
