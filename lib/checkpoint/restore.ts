import { SnapshotIdentityError, SnapshotMissingError } from '../errors.ts';
import type { StateDescriptors } from '../state/descriptors.ts';
import {
  type DecodedSnapshot,
  decodeSnapshot,
  tablesOf,
  verifySnapshotIdentity,
} from '../state/snapshotCodec.ts';
import { StateStore, type StateTable } from '../state/stateStore.ts';
import type { CheckpointSummary, SnapshotStore, TaskId } from './stores.ts';

/**
 * Applies a delta's sections onto tables restored so far: changed keys replace, deleted keys go.
 * Tables only present in the delta are created.
 */
export function applyDelta(tables: Map<string, StateTable>, delta: DecodedSnapshot): void {
  for (const s of delta.sections) {
    let t = tables.get(s.name);
    if (!t || t.kind !== s.kind || t.scope !== s.scope) {
      t = { name: s.name, kind: s.kind, scope: s.scope, version: s.version, data: t?.data ?? new Map() };
      tables.set(s.name, t);
    } else if (t.version !== s.version) {
      t = { ...t, version: s.version };
      tables.set(s.name, t);
    }
    for (const k of s.deletes) t.data.delete(k);
    for (const [k, v] of s.entries) t.data.set(k, v);
  }
}

export interface LoadedCheckpoint {
  store: StateStore;
  bytes: number;
}

/**
 * Loads the state of a checkpoint: its chain's full snapshot, then each delta in order, from S3 or,
 * for inline links, from the commit item itself. Every link is checked (envelope, checksum, size,
 * task identity, epoch, chain order); the last link must carry the checkpoint's committed offset. (A rolled-back or restored checkpoint reuses an older chain, so
 * the last link's epoch may be older than the checkpoint's.) Anything amiss is a typed error; nothing is loaded partially.
 */
export async function loadCheckpoint(
  snapshots: SnapshotStore,
  task: TaskId,
  checkpoint: CheckpointSummary,
  descriptors: StateDescriptors,
): Promise<LoadedCheckpoint> {
  const chain = checkpoint.chain;
  if (chain.length === 0) return { store: new StateStore(descriptors), bytes: 0 };
  const objects = await Promise.all(
    chain.map(async (ref) => {
      if (ref.inline) return ref.inline;
      const bytes = await snapshots.get(ref.key);
      if (!bytes) throw new SnapshotMissingError(ref.key);
      return bytes;
    }),
  );
  return buildCheckpoint(task, checkpoint, objects, descriptors);
}

/**
 * The state of a checkpoint from its chain's objects (`objects[i]` the bytes of `chain[i]`), every
 * link verified as `loadCheckpoint` describes. Synchronous: for callers that hold the bytes already.
 */
export function buildCheckpoint(
  task: TaskId,
  checkpoint: CheckpointSummary,
  objects: readonly Uint8Array[],
  descriptors: StateDescriptors,
): LoadedCheckpoint {
  const chain = checkpoint.chain;
  const tables = new Map<string, StateTable>();
  let total = 0;
  for (let i = 0; i < chain.length; i++) {
    const ref = chain[i]!;
    const bytes = objects[i]!;
    // The base (most of the state) decodes into lazily built tables; deltas are applied onto them.
    const decoded = decodeSnapshot(bytes, ref.key, { columnar: i === 0 });
    const h = decoded.header;
    const last = i === chain.length - 1;
    verifySnapshotIdentity(
      bytes,
      h,
      {
        ...task,
        epoch: ref.epoch,
        committedOffset: last ? checkpoint.committedOffset : h.committedOffset,
        bytes: ref.bytes,
        checksum: ref.checksum,
        kind: ref.kind,
      },
      ref.key,
    );
    if (i === 0) {
      if (h.kind !== 'full')
        throw new SnapshotIdentityError('a chain must start with a full snapshot', { key: ref.key });
      for (const t of tablesOf(decoded)) tables.set(t.name, t);
    } else {
      const prev = chain[i - 1]!;
      if (h.kind !== 'delta' || h.parentEpoch !== prev.epoch || h.baseEpoch !== chain[0]!.epoch) {
        throw new SnapshotIdentityError(
          `chain out of order: link ${i} (epoch ${h.epoch}) has parent ${h.parentEpoch} and base ${h.baseEpoch}, expected ${prev.epoch} and ${chain[0]!.epoch}`,
          { key: ref.key },
        );
      }
      applyDelta(tables, decoded);
    }
    total += bytes.length;
  }
  return { store: new StateStore(descriptors, tables.values()), bytes: total };
}
