/**
 * Snapshot planning: what an epoch writes. A delta of the keys it changed, chained to the task's
 * current chain, or a full snapshot when the policy says so: no chain yet, `snapshotMode` full, a
 * forced full one (after a schema migration), the chain already holds `compactAfterDeltas` deltas,
 * or its deltas would outweigh `compactDeltaRatio` × the full snapshot (so a restore never reads more
 * than (1 + ratio) × a full snapshot).
 */
import type { TidemarkConfig } from '../config/config.ts';
import {
  deltaSections,
  encodeSnapshot,
  fullSections,
  type SnapshotKind,
  type SnapshotMeta,
} from '../state/snapshotCodec.ts';
import type { StateStore } from '../state/stateStore.ts';
import type { SnapshotRef } from './stores.ts';

export interface PlannedSnapshot {
  body: Buffer;
  kind: SnapshotKind;
  /** The links the new object extends (empty for a full snapshot). */
  chain: readonly SnapshotRef[];
  /** Entries the object holds (changed and deleted keys of a delta; all keys of a full snapshot). */
  entries: number;
}

/** Encodes the epoch's snapshot. Takes (and so resets) the store's change sets. */
export function planSnapshot(
  store: StateStore,
  chain: readonly SnapshotRef[],
  options: {
    forceFull: boolean;
    config: Pick<TidemarkConfig, 'snapshotMode' | 'compactAfterDeltas' | 'compactDeltaRatio' | 'compression'>;
  },
  meta: Omit<SnapshotMeta, 'kind' | 'baseEpoch' | 'parentEpoch'>,
): PlannedSnapshot {
  const changes = store.takeChanges();
  const base = chain[0];
  const last = chain[chain.length - 1];
  const c = options.config;
  if (
    c.snapshotMode === 'incremental' &&
    !options.forceFull &&
    base &&
    last &&
    chain.length <= c.compactAfterDeltas
  ) {
    const sections = deltaSections(store, changes);
    const body = encodeSnapshot(
      { ...meta, kind: 'delta', baseEpoch: base.epoch, parentEpoch: last.epoch },
      sections,
      c.compression,
    );
    const deltaBytes = chain.slice(1).reduce((n, r) => n + r.bytes, 0) + body.length;
    if (deltaBytes <= c.compactDeltaRatio * base.bytes) {
      const entries = sections.reduce(
        (n, x) => n + (x.entries as { keys: readonly string[] }).keys.length + (x.deletes?.length ?? 0),
        0,
      );
      return { body, kind: 'delta', chain, entries };
    }
  }
  const body = encodeSnapshot(
    { ...meta, kind: 'full', baseEpoch: null, parentEpoch: null },
    fullSections(store.allTables()),
    c.compression,
  );
  return { body, kind: 'full', chain: [], entries: store.keyCount };
}
