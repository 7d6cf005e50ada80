/**
 * The Iceberg sink (`tidemark/iceberg`): `icebergOutput` (declared next to a processor's state),
 * `createIcebergCommitter` (the scheduled committer's Lambda handler), and the pieces under them:
 * Parquet data files, Iceberg v2 metadata, and exactly-once commits of many epochs per snapshot
 * through a catalog with an atomic swap. See docs/iceberg.md.
 */

export type { CommitOutcome, IcebergCatalog, LoadedTable, TableIdentifier } from './catalog.ts';
export { tableName } from './catalog.ts';
export {
  createIcebergCommitter,
  ICEBERG_COMMITTER_DEFAULTS,
  type IcebergCommitRun,
  type IcebergCommitterHandler,
  type IcebergCommitterHandlerOptions,
  type IcebergCommitterSource,
  type IcebergCommitterSummary,
} from './committerHandler.ts';
export { DYNAMODB_CATALOG_DEFAULT_TABLE, DynamoDbIcebergCatalog } from './DynamoDbIcebergCatalog.ts';
export type { DataFile, EpochBatch, StagedEpoch } from './dataFiles.ts';
export { DEFAULT_MAX_ROWS_PER_FILE, readStagedEpoch, stagedEpochKey, writeDataFiles } from './dataFiles.ts';
export {
  type ExpireSnapshotsOptions,
  type ExpireSnapshotsResult,
  expireSnapshots,
} from './expireSnapshots.ts';
export { type IcebergFileIO, S3FileIO } from './fileIO.ts';
export { type CommitResult, IcebergCommitter, type IcebergCommitterOptions } from './IcebergCommitter.ts';
export { IcebergTable, type IcebergTableOptions, type StagedEpochRef } from './IcebergTable.ts';
export {
  ICEBERG_OUTPUT_DEFAULTS,
  ICEBERG_REST_SIGNING,
  type IcebergCatalogContext,
  type IcebergOutputOptions,
  type IcebergRestSigning,
  type IcebergTarget,
  icebergOptionsOf,
  icebergOutput,
  icebergTarget,
  type ResolvedIcebergOutputOptions,
} from './icebergOutput.ts';
export {
  epochSummaryKey,
  findProgress,
  type Progress,
  type ProgressFound,
  progressPropertyKey,
  type TableMetadata,
} from './metadata.ts';
export { type OpenedOutputTable, openIcebergOutputTable } from './outputTable.ts';
export {
  RestCatalogResponseError,
  RestIcebergCatalog,
  type RestIcebergCatalogOptions,
} from './RestIcebergCatalog.ts';
export { S3HadoopCatalog } from './S3HadoopCatalog.ts';
export {
  type CanonicalValue,
  defineIcebergTable,
  type IcebergColumn,
  type IcebergTableDeclaration,
  IcebergTableSchema,
  type PartitionColumn,
} from './schema.ts';
