/**
 * Snapshot planning: what an epoch writes, and where.
 *
 * What: a delta of the keys it changed, chained to the task's current chain, or a full snapshot when
 * the policy says so: no chain yet, `snapshotMode` full, a forced full one (after a schema
 * migration), the chain already holds `compactAfterDeltas` deltas, or its S3 deltas would outweigh
 * `compactDeltaRatio` × the full snapshot (so a restore never reads more than (1 + ratio) × a full
 * snapshot from S3).
 *
 * Where: inside the commit item (an inline link: the epoch costs one durable request, the commit
 * write) when the snapshot is at most `snapshotInlineMaxBytes` and the commit item stays within
 * `commitInlineMaxBytes` of inline bytes (its chain's own inline links within half of it), else in
 * S3. The commit item rewrites every inline byte it holds at each commit (DynamoDB bills a write
 * unit per started KB), so the inline links of a chain are bounded; and they stay in the item for
 * as long as a retained checkpoint references them, which the other half of the budget leaves room
 * for. Inline links only ever form the tail of a chain. An epoch that cannot go inline while its
 * chain ends with inline links *spills*: its S3 delta merges those links (every key they changed,
 * with its current value or its deletion) and chains to the last S3 link instead, so the next chain
 * holds no inline link any more — or the epoch compacts into a full snapshot, as the rules above say.
 */
import type { TidemarkConfig } from '../config/config.ts';
import {
  decodeSnapshot,
  deltaSections,
  encodeSnapshot,
  fullSections,
  type SnapshotKind,
  type SnapshotMeta,
  type SnapshotSection,
  snapshotChecksum,
} from '../state/snapshotCodec.ts';
import type { StateStore } from '../state/stateStore.ts';
import { inlineBytes } from './commitItem.ts';
import type { CheckpointSummary, SnapshotRef } from './stores.ts';

export interface PlannedSnapshot {
  body: Buffer;
  kind: SnapshotKind;
  /** True when the snapshot travels inside the commit item (no S3 PUT). */
  inline: boolean;
  /** The links the new one extends (empty for a full snapshot). */
  chain: readonly SnapshotRef[];
  /** Entries the snapshot holds (changed and deleted keys of a delta; all keys of a full snapshot). */
  entries: number;
  /** Inline links of the chain this S3 delta merged (a spill); 0 otherwise. */
  merged: number;
}

export type PlanConfig = Pick<
  TidemarkConfig,
  | 'snapshotMode'
  | 'compactAfterDeltas'
  | 'compactDeltaRatio'
  | 'compression'
  | 'snapshotInlineMaxBytes'
  | 'commitInlineMaxBytes'
>;

export interface PlanOptions {
  forceFull: boolean;
  config: PlanConfig;
  /**
   * The checkpoints the next commit item retains besides its own (`historyAfter(prev, …)`): their
   * inline links stay in the item and count against `commitInlineMaxBytes`.
   */
  history?: readonly CheckpointSummary[];
}

type Meta = Omit<SnapshotMeta, 'kind' | 'baseEpoch' | 'parentEpoch'>;

function sectionEntries(sections: readonly SnapshotSection[]): number {
  return sections.reduce(
    (n, x) => n + (x.entries as { keys: readonly string[] }).keys.length + (x.deletes?.length ?? 0),
    0,
  );
}

/**
 * The keys (changed or deleted, per table) each inline link holds, remembered by its bytes: a warm
 * container planned those links itself and merges them without decoding them again; links restored
 * from a commit item are decoded once. Entries go with their bytes.
 */
const linkChanges = new WeakMap<Uint8Array, ReadonlyMap<string, Iterable<string>>>();

function changesOf(ref: SnapshotRef): ReadonlyMap<string, Iterable<string>> {
  const bytes = ref.inline!;
  let changes = linkChanges.get(bytes);
  if (!changes) {
    const decoded = new Map<string, string[]>();
    for (const s of decodeSnapshot(bytes, ref.key).sections) {
      decoded.set(s.name, [...s.entries.keys(), ...s.deletes]);
    }
    changes = decoded;
    linkChanges.set(bytes, changes);
  }
  return changes;
}

/** The epoch's changes plus every key the inline links changed or deleted, per table. */
function mergedChanges(
  links: readonly SnapshotRef[],
  changes: ReadonlyMap<string, Iterable<string>>,
): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const source of [...links.map(changesOf), changes]) {
    for (const [name, keys] of source) {
      let set = out.get(name);
      if (!set) {
        set = new Set();
        out.set(name, set);
      }
      for (const k of keys) set.add(k);
    }
  }
  return out;
}

/**
 * Bytes per entry of the last delta a store encoded only to find it over the compaction bound, and
 * how many deltas were judged from it since. When a delta of the same store then looks clearly over
 * the bound (90 % of entries × that weight), it is not encoded at all: the epoch compacts at once,
 * saving an encoding that would be thrown away (at 10,000-record epochs of the overhead benchmark,
 * every epoch encoded a delta and then a full snapshot). A full snapshot instead of a delta is always
 * exact (it only costs bytes), and a delta is encoded again every `REMEASURE_AFTER` epochs, so a
 * workload whose deltas grow lighter goes back to deltas.
 *
 * `distinct` is the share of distinct keys the last spill found in its links and epoch together
 * (their union's size ÷ the sum of their entries). A spill judges its merged delta from it and its
 * links' entry counts before building the union of their keys, and builds it only when that guess
 * does not settle the question (at 1,000-record epochs of the overhead benchmark every spill built a
 * union of about 9,500 keys only to compact).
 */
const discardedDeltas = new WeakMap<StateStore, { perEntry: number; judged: number; distinct?: number }>();
const REMEASURE_AFTER = 8;

/** Keys changed in all tables (the epoch's change lists, or a spill's merged key sets). */
function changeCount(changes: ReadonlyMap<string, readonly string[] | ReadonlySet<string>>): number {
  let n = 0;
  for (const keys of changes.values()) n += 'length' in keys ? keys.length : keys.size;
  return n;
}

/** Encodes the epoch's snapshot and decides where it goes. Takes (and so resets) the store's change sets. */
export function planSnapshot(
  store: StateStore,
  chain: readonly SnapshotRef[],
  options: PlanOptions,
  meta: Meta,
): PlannedSnapshot {
  const changes = store.takeChanges();
  const c = options.config;
  const base = chain[0];
  const last = chain[chain.length - 1];
  const history = options.history ?? [];
  const historyInline = inlineBytes(history);
  const chainInline = inlineBytes([{ chain }]);
  // Inline bytes the next item holds if it keeps `chain` (shared links counted once).
  const keptInline = inlineBytes([{ chain }, ...history]);
  const fitsInline = (bytes: number, ownChain: number, carried: number) =>
    bytes <= c.snapshotInlineMaxBytes &&
    ownChain + bytes <= c.commitInlineMaxBytes / 2 &&
    carried + bytes <= c.commitInlineMaxBytes;

  if (
    c.snapshotMode === 'incremental' &&
    !options.forceFull &&
    base &&
    last &&
    chain.length <= c.compactAfterDeltas
  ) {
    const delta = (links: readonly SnapshotRef[], keys: ReadonlyMap<string, Iterable<string>>) => {
      const sections = deltaSections(store, keys);
      const parent = links[links.length - 1]!;
      const body = encodeSnapshot(
        { ...meta, kind: 'delta', baseEpoch: base.epoch, parentEpoch: parent.epoch },
        sections,
        c.compression,
      );
      return { body, entries: sectionEntries(sections) };
    };
    let tail = chain.length;
    while (tail > 0 && chain[tail - 1]!.inline) tail--;
    const links = chain.slice(0, tail);
    const linkBytes = links.slice(1).reduce((n, r) => n + r.bytes, 0);
    const bound = c.compactDeltaRatio * base.bytes;
    const past = discardedDeltas.get(store);
    // Whether a delta of `entries` entries is clearly over the bound (and too big to go inline).
    const surelyCompacts = (entries: number) => {
      if (!past || past.judged >= REMEASURE_AFTER) return false;
      const guess = 0.9 * entries * past.perEntry;
      return guess > c.snapshotInlineMaxBytes && linkBytes + guess > bound;
    };
    const ownEntries = changeCount(changes);
    let compact = tail > 0 && surelyCompacts(ownEntries);
    if (!compact) {
      const own = delta(chain, changes);
      if (fitsInline(own.body.length, chainInline, keptInline)) {
        linkChanges.set(own.body, changes);
        return { ...own, kind: 'delta', inline: true, chain, merged: 0 };
      }
      // To S3. Inline links form the chain's tail: a delta after them merges them (a spill).
      if (tail > 0) {
        const spilled = chain.slice(tail);
        let keys: ReadonlyMap<string, readonly string[] | ReadonlySet<string>> = changes;
        let distinct: number | undefined;
        if (spilled.length > 0) {
          const listed = spilled.reduce((n, r) => n + r.entries, ownEntries);
          compact = past?.distinct !== undefined && surelyCompacts(past.distinct * listed);
          if (!compact) {
            keys = mergedChanges(spilled, changes);
            const count = changeCount(keys);
            distinct = listed > 0 ? count / listed : 1;
            if (past) past.distinct = distinct;
            compact = surelyCompacts(count);
          }
        }
        if (!compact) {
          const planned = spilled.length > 0 ? delta(links, keys) : own;
          if (linkBytes + planned.body.length <= bound) {
            return { ...planned, kind: 'delta', inline: false, chain: links, merged: spilled.length };
          }
          if (planned.entries > 0) {
            discardedDeltas.set(store, {
              perEntry: planned.body.length / planned.entries,
              judged: 0,
              ...(distinct !== undefined ? { distinct } : {}),
            });
          }
        }
      }
    }
    if (compact) past!.judged++;
  }
  const body = encodeSnapshot(
    { ...meta, kind: 'full', baseEpoch: null, parentEpoch: null },
    fullSections(store.allTables()),
    c.compression,
  );
  const inline = fitsInline(body.length, 0, historyInline);
  return {
    body,
    kind: 'full',
    inline,
    chain: [],
    entries: store.keyCount,
    merged: 0,
  };
}

/** The commit item's reference to a planned snapshot (with its bytes when inline). */
export function plannedRef(snap: PlannedSnapshot, key: string, epoch: number): SnapshotRef {
  const ref: SnapshotRef = {
    key,
    bytes: snap.body.length,
    checksum: snapshotChecksum(snap.body),
    kind: snap.kind,
    epoch,
    entries: snap.entries,
  };
  return snap.inline ? { ...ref, inline: snap.body } : ref;
}
