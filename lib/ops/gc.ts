import { pipelinePrefix } from '../checkpoint/layout.ts';
import { retainedKeys } from '../checkpoint/retention.ts';
import type { CommitStore, SnapshotStore } from '../checkpoint/stores.ts';

export interface GcOptions {
  prefix: string;
  pipeline: string;
  /** Unreferenced objects younger than this are kept (an attempt may be about to commit them). */
  minAgeMs: number;
  dryRun?: boolean;
  /** Extra referenced keys (e.g. held by savepoints). */
  alsoReferenced?: Iterable<string>;
  now?: number;
}

export interface GcResult {
  listed: number;
  referenced: number;
  keptYoung: number;
  deleted: string[];
  dryRun: boolean;
}

/**
 * Deletes a pipeline's snapshot objects that no retained checkpoint of any task references and that
 * are older than `minAgeMs`. Commit items are read *before* objects are listed: see
 * lib/checkpoint/retention.ts for why that makes it safe to run while the pipeline commits.
 */
export async function collectGarbage(
  stores: { snapshots: SnapshotStore; commits: CommitStore },
  options: GcOptions,
): Promise<GcResult> {
  const referenced = new Set<string>(options.alsoReferenced ?? []);
  for await (const c of stores.commits.list(options.pipeline))
    for (const k of retainedKeys(c)) referenced.add(k);
  const now = options.now ?? Date.now();
  const candidates: string[] = [];
  let listed = 0;
  let keptYoung = 0;
  for await (const o of stores.snapshots.list(`${pipelinePrefix(options.prefix, options.pipeline)}tasks/`)) {
    listed++;
    if (referenced.has(o.key)) continue;
    if (now - o.lastModified.getTime() < options.minAgeMs) keptYoung++;
    else candidates.push(o.key);
  }
  if (!options.dryRun && candidates.length > 0) await stores.snapshots.delete(candidates);
  return {
    listed,
    referenced: referenced.size,
    keptYoung,
    deleted: candidates,
    dryRun: options.dryRun ?? false,
  };
}
