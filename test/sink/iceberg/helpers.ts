/**
 * What the Iceberg tests share: clients on the run's local servers, a fresh warehouse and catalog
 * table per test, and two readers no one here wrote: icebird (an npm Iceberg reader, over HTTP
 * from the S3 server) and DuckDB (the Parquet data files, copied to a temp directory: its iceberg
 * and httpfs extensions cannot be installed offline).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { icebergRead } from 'icebird';
import type { IcebergCatalog } from '../../../lib/sink/iceberg/catalog.ts';
import { DynamoDbIcebergCatalog } from '../../../lib/sink/iceberg/DynamoDbIcebergCatalog.ts';
import { S3FileIO } from '../../../lib/sink/iceberg/fileIO.ts';
import type { TableMetadata } from '../../../lib/sink/iceberg/metadata.ts';
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

/**
 * icebird 0.3.1 turns `s3://bucket/key` into `https://bucket.s3.amazonaws.com/key` and fetches it
 * unsigned; this maps that host to the local S3 server (path-style). Nothing else is changed.
 */
const realFetch = globalThis.fetch;
function localS3Fetch(input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const m = /^https:\/\/([^./]+)\.s3\.amazonaws\.com\/(.*)$/.exec(url);
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 as string;
  return realFetch(m ? `${endpoint}/${m[1]}/${m[2]}` : input, init);
}

/** Rows of the table's current snapshot as icebird reads them. */
export async function readWithIcebird(
  location: string,
  metadataLocation?: string,
): Promise<Record<string, unknown>[]> {
  globalThis.fetch = localS3Fetch as typeof fetch;
  try {
    return await icebergRead({
      tableUrl: location,
      ...(metadataLocation
        ? { metadataFileName: metadataLocation.slice(metadataLocation.lastIndexOf('/') + 1) }
        : {}),
    });
  } finally {
    globalThis.fetch = realFetch;
  }
}

/** Every data file path the current snapshot lists, as icebird finds them. */
export async function dataFilesOf(metadata: TableMetadata): Promise<string[]> {
  const { icebergManifests } = await import('icebird');
  globalThis.fetch = localS3Fetch as typeof fetch;
  try {
    const manifests = await icebergManifests(metadata as never);
    return manifests.flatMap((m) =>
      m.entries.filter((e) => e.status !== 2).map((e) => e.data_file.file_path),
    );
  } finally {
    globalThis.fetch = realFetch;
  }
}

/** Runs a DuckDB query over local copies of the given Parquet files (the view `t`). */
export async function queryParquetWithDuckDB(
  uris: readonly string[],
  sql: string,
): Promise<Record<string, unknown>[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tidemark-duck-'));
  try {
    const files = await Promise.all(
      uris.map(async (uri, i) => {
        const bytes = await io.get(uri);
        if (!bytes) throw new Error(`${uri} does not exist`);
        const file = path.join(dir, `${i}.parquet`);
        writeFileSync(file, bytes);
        return file;
      }),
    );
    const db = await DuckDBInstance.create(':memory:');
    const connection = await db.connect();
    try {
      const list = files.map((f) => `'${f}'`).join(', ');
      await connection.run(`CREATE VIEW t AS SELECT * FROM read_parquet([${list}])`);
      await connection.run(`CREATE VIEW s AS SELECT * FROM parquet_schema([${list}])`);
      return (await connection.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];
    } finally {
      connection.closeSync();
      db.closeSync();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
