/**
 * Snapshot expiration (spec, "Snapshot Retention Policy"): keep every snapshot a branch or tag
 * references, and on each branch the ancestors that are among its newest `minSnapshotsToKeep` or
 * younger than `maxSnapshotAgeMs`; drop the rest from the metadata with one catalog commit; then
 * delete the files only the dropped snapshots reached: their manifest lists, manifests no kept
 * snapshot lists, data files no kept snapshot has live, and metadata files pushed out of the
 * metadata log. Files are deleted only after the commit succeeded, and a data file is deleted only
 * when no manifest of a kept snapshot lists it as live.
 */
import { IcebergCommitConflictError, IcebergError, isRetriable } from '../../errors.ts';
import { ManifestEntryStatus } from './avro.ts';
import type { IcebergCatalog, LoadedTable, TableIdentifier } from './catalog.ts';
import { tableName } from './catalog.ts';
import type { IcebergFileIO } from './fileIO.ts';
import { readManifestFilePaths, readManifestList } from './manifests.ts';
import { ancestors, type SnapshotJson, snapshotById, type TableMetadata } from './metadata.ts';

export interface ExpireSnapshotsOptions {
  readonly catalog: IcebergCatalog;
  readonly identifier: TableIdentifier;
  readonly io: IcebergFileIO;
  /** Newest snapshots kept on each branch whatever their age. Default: the table property `history.expire.min-snapshots-to-keep`, else 1. */
  readonly minSnapshotsToKeep?: number;
  /** Older snapshots beyond `minSnapshotsToKeep` expire. Default: `history.expire.max-snapshot-age-ms`, else 5 days. */
  readonly maxSnapshotAgeMs?: number;
  readonly now?: number;
  readonly maxAttempts?: number;
  /**
   * Do nothing unless at least this many snapshots would expire (a frequent caller, such as the
   * scheduled committer, then expires in batches: one catalog commit per batch). Default 1.
   */
  readonly minExpired?: number;
}

export interface ExpireSnapshotsResult {
  readonly expiredSnapshotIds: readonly string[];
  readonly retainedSnapshots: number;
  readonly deletedDataFiles: number;
  readonly deletedManifests: number;
  readonly deletedManifestLists: number;
  readonly deletedMetadataFiles: number;
}

function retainedIds(m: TableMetadata, options: ExpireSnapshotsOptions, now: number): Set<string> {
  const props = m.properties ?? {};
  const minKeepDefault =
    options.minSnapshotsToKeep ?? Number(props['history.expire.min-snapshots-to-keep'] ?? 1);
  const maxAgeDefault =
    options.maxSnapshotAgeMs ?? Number(props['history.expire.max-snapshot-age-ms'] ?? 5 * 86_400_000);
  const keep = new Set<string>();
  const refs = { ...m.refs };
  if (!refs.main && m['current-snapshot-id'] !== undefined && m['current-snapshot-id'] !== null) {
    refs.main = { 'snapshot-id': m['current-snapshot-id'], type: 'branch' };
  }
  for (const ref of Object.values(refs)) {
    const head = snapshotById(m, ref['snapshot-id']);
    if (!head) continue;
    keep.add(String(head['snapshot-id']));
    if (ref.type !== 'branch') continue;
    const minKeep = ref['min-snapshots-to-keep'] ?? minKeepDefault;
    const maxAge = ref['max-snapshot-age-ms'] ?? maxAgeDefault;
    let n = 0;
    for (const s of ancestors(m, head)) {
      n++;
      if (n > minKeep && s['timestamp-ms'] < now - maxAge) break;
      keep.add(String(s['snapshot-id']));
    }
  }
  return keep;
}

export async function expireSnapshots(options: ExpireSnapshotsOptions): Promise<ExpireSnapshotsResult> {
  const { catalog, io, identifier } = options;
  const maxAttempts = options.maxAttempts ?? 10;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const base = await catalog.loadTable(identifier);
    if (!base) throw new IcebergError('the catalog has no such table', { table: tableName(identifier) });
    const now = options.now ?? Date.now();
    const m = base.metadata;
    const keep = retainedIds(m, options, now);
    const snapshots = m.snapshots ?? [];
    const expired = snapshots.filter((s) => !keep.has(String(s['snapshot-id'])));
    const retained = snapshots.filter((s) => keep.has(String(s['snapshot-id'])));
    if (expired.length === 0 || expired.length < (options.minExpired ?? 1)) {
      return {
        expiredSnapshotIds: [],
        retainedSnapshots: retained.length,
        deletedDataFiles: 0,
        deletedManifests: 0,
        deletedManifestLists: 0,
        deletedMetadataFiles: 0,
      };
    }
    const next = expiredMetadata(base, expired, now);
    let outcome: Awaited<ReturnType<IcebergCatalog['commitTable']>>;
    try {
      outcome = await catalog.commitTable(base, next);
    } catch (err) {
      if (!isRetriable(err) || attempt === maxAttempts) throw err;
      continue; // unknown outcome: the reload shows what is left to expire
    }
    if (outcome.status === 'conflict') continue;
    const deleted = await deleteUnreachable(
      io,
      base,
      outcome.table,
      expired,
      retained,
      !catalog.managesMetadataFiles,
    );
    return {
      expiredSnapshotIds: expired.map((s) => String(s['snapshot-id'])),
      retainedSnapshots: retained.length,
      ...deleted,
    };
  }
  throw new IcebergCommitConflictError(maxAttempts, { table: tableName(identifier) });
}

function expiredMetadata(base: LoadedTable, expired: readonly SnapshotJson[], now: number): TableMetadata {
  const m = base.metadata;
  const gone = new Set(expired.map((s) => String(s['snapshot-id'])));
  const log = m['snapshot-log'] ?? [];
  let lastGone = -1;
  log.forEach((e, i) => {
    if (gone.has(String(e['snapshot-id']))) lastGone = i;
  });
  const maxPrevious = Number(m.properties?.['write.metadata.previous-versions-max'] ?? 100);
  const metadataLog = [
    ...(m['metadata-log'] ?? []),
    { 'metadata-file': base.metadataLocation, 'timestamp-ms': m['last-updated-ms'] },
  ];
  const refs = Object.fromEntries(
    Object.entries(m.refs ?? {}).filter(([, r]) => !gone.has(String(r['snapshot-id']))),
  );
  return {
    ...m,
    'last-updated-ms': now,
    snapshots: (m.snapshots ?? []).filter((s) => !gone.has(String(s['snapshot-id']))),
    'snapshot-log': log.slice(lastGone + 1),
    'metadata-log': metadataLog.slice(Math.max(0, metadataLog.length - maxPrevious)),
    refs,
    ...(m.statistics ? { statistics: m.statistics.filter((s) => !gone.has(String(s['snapshot-id']))) } : {}),
    ...(m['partition-statistics']
      ? {
          'partition-statistics': m['partition-statistics'].filter(
            (s) => !gone.has(String(s['snapshot-id'])),
          ),
        }
      : {}),
  };
}

async function deleteUnreachable(
  io: IcebergFileIO,
  base: LoadedTable,
  table: LoadedTable,
  expired: readonly SnapshotJson[],
  retained: readonly SnapshotJson[],
  deleteMetadataFiles: boolean,
): Promise<Omit<ExpireSnapshotsResult, 'expiredSnapshotIds' | 'retainedSnapshots'>> {
  const manifestsOf = async (snapshots: readonly SnapshotJson[]) => {
    const paths = new Set<string>();
    for (const s of snapshots)
      for (const mf of await readManifestList(io, s['manifest-list'])) paths.add(mf.manifest_path);
    return paths;
  };
  const keptManifests = await manifestsOf(retained);
  const expiredManifests = [...(await manifestsOf(expired))].filter((p) => !keptManifests.has(p));
  const live = new Set<string>();
  for (const p of keptManifests) {
    for (const e of await readManifestFilePaths(io, p))
      if (e.status !== ManifestEntryStatus.DELETED) live.add(e.path);
  }
  const candidates = new Set<string>();
  for (const p of expiredManifests)
    for (const e of await readManifestFilePaths(io, p)) candidates.add(e.path);
  const dataFiles = [...candidates].filter((p) => !live.has(p));
  const keptLists = new Set(retained.map((s) => s['manifest-list']));
  const manifestLists = expired.map((s) => s['manifest-list']).filter((p) => !keptLists.has(p));
  const keptMetadata = new Set([
    ...(table.metadata['metadata-log'] ?? []).map((e) => e['metadata-file']),
    table.metadataLocation,
  ]);
  const metadataFiles =
    deleteMetadataFiles &&
    table.metadata.properties?.['write.metadata.delete-after-commit.enabled'] === 'true'
      ? [
          ...(base.metadata['metadata-log'] ?? []).map((e) => e['metadata-file']),
          base.metadataLocation,
        ].filter((f) => !keptMetadata.has(f))
      : [];
  await io.delete([...dataFiles, ...expiredManifests, ...manifestLists, ...metadataFiles]);
  return {
    deletedDataFiles: dataFiles.length,
    deletedManifests: expiredManifests.length,
    deletedManifestLists: manifestLists.length,
    deletedMetadataFiles: metadataFiles.length,
  };
}
