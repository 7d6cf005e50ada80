/**
 * Benchmark 3, state size: checkpoint bytes and time, and restore time, for balances states of
 * 10 k, 100 k and 1 M keys with 1 % of the keys changed per epoch, through the engine's own code:
 * `encodeSnapshot` with `fullSections` (a full snapshot) or `deltaSections` (an incremental one,
 * the keys the epoch changed), a PUT through the S3 snapshot store, and `loadCheckpoint` (GET every
 * link of the chain, verify, decode, apply the deltas) for restores. The checkpoint time here is
 * encode + PUT; the commit write that follows is the same single DynamoDB PutItem for both kinds.
 */

import { balances } from '../examples/balances.ts';
import { snapshotKey } from '../lib/checkpoint/layout.ts';
import { loadCheckpoint } from '../lib/checkpoint/restore.ts';
import type { SnapshotRef, SnapshotStore, TaskId } from '../lib/checkpoint/stores.ts';
import { DEFAULTS } from '../lib/config/config.ts';
import {
  deltaSections,
  encodeSnapshot,
  fullSections,
  type SnapshotKind,
  type SnapshotMeta,
  snapshotChecksum,
} from '../lib/state/snapshotCodec.ts';
import { StateStore } from '../lib/state/stateStore.ts';
import { type Spread, spread, timed, timedCpu } from './stats.ts';
import { accountId, prng } from './workload.ts';

export interface StateSizeOptions {
  keyCounts: number[];
  /** Fraction of the keys changed per epoch. */
  changedFraction: number;
  /** Deltas written after the full snapshot; the longest chain restored. */
  deltasInChain: number;
  repeats: number;
  compression: 'zstd' | 'none';
  seed: number;
}

export interface CheckpointFigures {
  /** Object size, median over the objects written. */
  bytes: Spread;
  encodeMs: Spread;
  putMs: Spread;
  /** encode + PUT. */
  checkpointMs: Spread;
}

export interface StateSizePoint {
  keys: number;
  changedKeysPerEpoch: number;
  full: CheckpointFigures & {
    restoreMs: Spread;
    /** The process's CPU time over the restore (absent in runs before it was measured). */
    restoreCpuMs?: Spread;
  };
  incremental:
    | {
        status: 'measured';
        delta: CheckpointFigures;
        /** Restore of a full snapshot plus one delta. */
        restoreOneDeltaMs: Spread;
        /** Restore of a full snapshot plus `chainDeltas` deltas (the longest chain before compaction). */
        restoreChainMs: Spread;
        chainDeltas: number;
        /** Delta ÷ full, per repeat (median delta of the repeat over its full snapshot). */
        bytesRatio: Spread;
        checkpointTimeRatio: Spread;
      }
    | { status: string };
}

export interface StateSizeResult {
  compression: string;
  changedFraction: number;
  points: StateSizePoint[];
}

/** A balances state of `keys` accounts, as a restored task would hold it. */
export function balancesState(keys: number): StateStore {
  const data = new Map<string, unknown>();
  for (let i = 0; i < keys; i++) {
    data.set(accountId(i), Object.freeze({ balance: (i * 7919) % 100_000, count: 1 + (i % 97) }));
  }
  const d = balances.state.account;
  return new StateStore(balances.state, [
    { name: 'account', kind: d.kind, scope: d.scope, version: d.version, data },
  ]);
}

/** Changes `count` distinct random keys through the state API, as records of one epoch would. */
function changeKeys(store: StateStore, keys: number, count: number, random: () => number): void {
  const handles = store.handles(balances.state);
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(Math.floor(random() * keys));
  for (const i of chosen) {
    store.beginRecord(accountId(i));
    const cur = handles.account.get();
    handles.account.set({ balance: (cur?.balance ?? 0) + 1, count: (cur?.count ?? 0) + 1 });
    store.commitRecord();
  }
}

interface Written {
  ref: SnapshotRef;
  encodeMs: number;
  putMs: number;
}

async function writeSnapshot(
  snapshots: SnapshotStore,
  task: TaskId,
  prefix: string,
  meta: Omit<SnapshotMeta, 'kind' | 'baseEpoch' | 'parentEpoch'>,
  kind: SnapshotKind,
  store: StateStore,
  chain: { baseEpoch: number; parentEpoch: number } | undefined,
  compression: 'zstd' | 'none',
): Promise<Written> {
  let entries = 0;
  const enc = await timed(() => {
    const changes = store.takeChanges();
    if (kind === 'full') {
      entries = store.keyCount;
      return encodeSnapshot(
        { ...meta, kind, baseEpoch: null, parentEpoch: null },
        fullSections(store.allTables()),
        compression,
      );
    }
    for (const keys of changes.values()) entries += keys.length;
    return encodeSnapshot(
      { ...meta, kind, baseEpoch: chain!.baseEpoch, parentEpoch: chain!.parentEpoch },
      deltaSections(store, changes),
      compression,
    );
  });
  const body = enc.value;
  const key = snapshotKey(prefix, task, meta.epoch, meta.attempt, kind);
  const put = await timed(() => snapshots.put(key, body, { ifAbsent: true }));
  return {
    ref: {
      key,
      bytes: body.length,
      checksum: snapshotChecksum(body),
      kind,
      epoch: meta.epoch,
      entries,
    },
    encodeMs: enc.ms,
    putMs: put.ms,
  };
}

function figures(written: Written[]): CheckpointFigures {
  return {
    bytes: spread(written.map((w) => w.ref.bytes)),
    encodeMs: spread(written.map((w) => w.encodeMs)),
    putMs: spread(written.map((w) => w.putMs)),
    checkpointMs: spread(written.map((w) => w.encodeMs + w.putMs)),
  };
}

async function restore(
  snapshots: SnapshotStore,
  task: TaskId,
  chain: SnapshotRef[],
  keys: number,
  cpu?: number[],
) {
  const last = chain[chain.length - 1]!;
  const t = await timedCpu(() =>
    loadCheckpoint(
      snapshots,
      task,
      {
        epoch: last.epoch,
        committedOffset: BigInt(last.epoch) * 1000n,
        chain,
        updatedAt: new Date().toISOString(),
      },
      balances.state,
    ),
  );
  if (t.value.store.keyCount !== keys) {
    throw new Error(`restored ${t.value.store.keyCount} keys, expected ${keys}`);
  }
  cpu?.push(t.cpuMs);
  return t.ms;
}

export async function runStateSize(
  o: StateSizeOptions,
  snapshots: SnapshotStore,
  runId: string,
  log: (line: string) => void = () => {},
): Promise<StateSizeResult> {
  const prefix = 'bench-state';
  const points: StateSizePoint[] = [];
  for (const keys of o.keyCounts) {
    const changed = Math.max(1, Math.round(keys * o.changedFraction));
    const fulls: Written[] = [];
    const deltas: Written[] = [];
    const restoreFull: number[] = [];
    const restoreFullCpu: number[] = [];
    const restoreOne: number[] = [];
    const restoreChain: number[] = [];
    const bytesRatio: number[] = [];
    const timeRatio: number[] = [];
    for (let rep = 0; rep < o.repeats; rep++) {
      const task: TaskId = { pipeline: `bench-${runId}`, topic: `state-${keys}`, partition: rep };
      const random = prng(o.seed + rep);
      const store = balancesState(keys);
      const meta = (epoch: number) => ({
        pipeline: task.pipeline,
        topic: task.topic,
        partition: task.partition,
        epoch,
        committedOffset: BigInt(epoch) * 1000n,
        attempt: `r${rep}e${epoch}`,
        createdAt: new Date().toISOString(),
      });
      changeKeys(store, keys, changed, random); // epoch 1's changes, then its full snapshot
      const full = await writeSnapshot(
        snapshots,
        task,
        prefix,
        meta(1),
        'full',
        store,
        undefined,
        o.compression,
      );
      fulls.push(full);
      const chain: SnapshotRef[] = [full.ref];
      restoreFull.push(await restore(snapshots, task, chain, keys, restoreFullCpu));
      const repDeltas: Written[] = [];
      for (let d = 1; d <= o.deltasInChain; d++) {
        changeKeys(store, keys, changed, random);
        const w = await writeSnapshot(
          snapshots,
          task,
          prefix,
          meta(1 + d),
          'delta',
          store,
          { baseEpoch: 1, parentEpoch: chain[chain.length - 1]!.epoch },
          o.compression,
        );
        chain.push(w.ref);
        repDeltas.push(w);
        if (d === 1) restoreOne.push(await restore(snapshots, task, chain.slice(0, 2), keys));
      }
      if (o.deltasInChain > 0) {
        restoreChain.push(await restore(snapshots, task, chain, keys));
        const mid = spread(repDeltas.map((w) => w.ref.bytes)).median;
        bytesRatio.push(mid / full.ref.bytes);
        timeRatio.push(
          spread(repDeltas.map((w) => w.encodeMs + w.putMs)).median / (full.encodeMs + full.putMs),
        );
      }
      deltas.push(...repDeltas);
      await snapshots.delete(chain.map((r) => r.key));
      log(
        `state: ${keys} keys, repeat ${rep + 1}/${o.repeats}: full ${full.ref.bytes} B in ${(full.encodeMs + full.putMs).toFixed(0)} ms, restore ${restoreFull[restoreFull.length - 1]!.toFixed(0)} ms` +
          (repDeltas.length > 0
            ? `; delta ${spread(repDeltas.map((w) => w.ref.bytes)).median} B, chain of ${repDeltas.length} restored in ${restoreChain[restoreChain.length - 1]!.toFixed(0)} ms`
            : ''),
      );
    }
    points.push({
      keys,
      changedKeysPerEpoch: changed,
      full: { ...figures(fulls), restoreMs: spread(restoreFull), restoreCpuMs: spread(restoreFullCpu) },
      incremental:
        o.deltasInChain > 0
          ? {
              status: 'measured',
              delta: figures(deltas),
              restoreOneDeltaMs: spread(restoreOne),
              restoreChainMs: spread(restoreChain),
              chainDeltas: o.deltasInChain,
              bytesRatio: spread(bytesRatio),
              checkpointTimeRatio: spread(timeRatio),
            }
          : { status: 'not measured: no deltas requested' },
    });
  }
  return { compression: o.compression, changedFraction: o.changedFraction, points };
}

/** The longest chain the engine builds before compacting, by default. */
export const DEFAULT_CHAIN_DELTAS = DEFAULTS.compactAfterDeltas;
