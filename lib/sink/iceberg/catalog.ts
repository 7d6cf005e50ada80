/**
 * A catalog: where a table's current metadata file is, and the atomic swap that commits a new one.
 * Implementations: `DynamoDbIcebergCatalog` (Iceberg's own DynamoDB catalog layout, which Spark,
 * Flink and Trino read and write) and `S3HadoopCatalog` (`vN.metadata.json` created with
 * `If-None-Match: *`, the layout of Iceberg's Hadoop catalog).
 */
import type { TableMetadata } from './metadata.ts';

export interface TableIdentifier {
  readonly namespace: string;
  readonly name: string;
}

export function tableName(id: TableIdentifier): string {
  return `${id.namespace}.${id.name}`;
}

/** A table as loaded: its metadata, where that metadata is, and the catalog's version token for the swap. */
export interface LoadedTable {
  readonly identifier: TableIdentifier;
  readonly metadataLocation: string;
  readonly metadata: TableMetadata;
  /** Opaque to callers: what the catalog's conditional swap checks (DynamoDB: the item's `v`). */
  readonly version: string;
}

export type CommitOutcome =
  /** The swap succeeded: the table now is `table`. */
  | { readonly status: 'committed'; readonly table: LoadedTable }
  /** Another writer changed the table since `base` was loaded; nothing was changed (reload and retry). */
  | { readonly status: 'conflict' };

export interface IcebergCatalog {
  /**
   * True when the catalog writes and retires metadata files itself (a REST catalog): callers then
   * never delete metadata files. Default false (the file-based catalogs: the writer manages them).
   */
  readonly managesMetadataFiles?: boolean;
  /** The table, or undefined when the catalog does not have it. Always a consistent read. */
  loadTable(id: TableIdentifier): Promise<LoadedTable | undefined>;
  /** Where a new table lives (its `location`); empty when the catalog chooses it at creation. */
  defaultLocation(id: TableIdentifier): Promise<string>;
  /**
   * Registers a new table with `metadata` as its first version. Returns undefined (changing
   * nothing) when the table already exists, e.g. created by a concurrent caller.
   */
  createTable(id: TableIdentifier, metadata: TableMetadata): Promise<LoadedTable | undefined>;
  /**
   * Writes `metadata` as the next version of `base` and swaps the pointer to it, on the condition
   * that the table is still `base`. Throws when the outcome is unknown (a timeout, a lost response):
   * the caller reloads to find out, and must not delete the new metadata file.
   */
  commitTable(base: LoadedTable, metadata: TableMetadata): Promise<CommitOutcome>;
}
