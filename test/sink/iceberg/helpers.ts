/**
 * What the Iceberg tests share: clients on the run's local servers, a fresh warehouse and catalog
 * table per test, and two readers no one here wrote: icebird (an npm Iceberg reader, over HTTP
 * from the S3 server) and DuckDB (the Parquet data files, copied to a temp directory: its iceberg
 * and httpfs extensions cannot be installed offline).
 */
import { randomUUID } from 'node:crypto';
import { queryParquetWithDuckDB as queryWithDuckDB } from '../../../harness/iceberg.ts';
import type { IcebergCatalog } from '../../../lib/sink/iceberg/catalog.ts';
import { DynamoDbIcebergCatalog } from '../../../lib/sink/iceberg/DynamoDbIcebergCatalog.ts';
import { S3FileIO } from '../../../lib/sink/iceberg/fileIO.ts';
import { createDynamoDBClient, createS3Client } from '../../../lib/store/clients.ts';

export const bucket = process.env.TIDEMARK_BUCKET as string;
export const s3 = createS3Client();
export const dynamo = createDynamoDBClient();
export const io = new S3FileIO({ client: s3 });

/** A warehouse under a fresh prefix, and a catalog table of its own (created on DynamoDB Local). */
export async function freshDynamoCatalog(): Promise<{ catalog: DynamoDbIcebergCatalog; warehouse: string }> {
  const warehouse = `s3://${bucket}/iceberg/${randomUUID()}`;
  const catalog = new DynamoDbIcebergCatalog({
    client: dynamo,
    io,
    warehouse,
    tableName: `iceberg-${randomUUID().slice(0, 8)}`,
  });
  await catalog.ensureCatalogTable();
  await catalog.createNamespace('db');
  return { catalog, warehouse };
}

export { dataFilesOf, readWithIcebird } from '../../../harness/iceberg.ts';

/** Runs a DuckDB query over local copies of the given Parquet files (the view `t`; `s` their schema). */
export function queryParquetWithDuckDB(
  uris: readonly string[],
  sql: string,
): Promise<Record<string, unknown>[]> {
  return queryWithDuckDB(io, uris, sql);
}

/**
 * The catalog, with the first `n` swaps held until all `n` have been asked for: the committers
 * behind them all loaded the same version, so the race is certain, not left to timing.
 */
export function racingCatalog(catalog: IcebergCatalog, n: number): IcebergCatalog & { swaps: number } {
  let waiting = 0;
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const raced: IcebergCatalog & { swaps: number } = {
    swaps: 0,
    ...(catalog.managesMetadataFiles ? { managesMetadataFiles: true } : {}),
    loadTable: (id) => catalog.loadTable(id),
    defaultLocation: (id) => catalog.defaultLocation(id),
    createTable: (id, m) => catalog.createTable(id, m),
    commitTable: async (base, m) => {
      raced.swaps++;
      if (waiting < n) {
        waiting++;
        if (waiting === n) release();
        await gate;
      }
      return catalog.commitTable(base, m);
    },
  };
  return raced;
}
