/**
 * Iceberg tables for the harness and the tests: two readers no one here wrote — icebird (an npm
 * Iceberg reader: metadata, manifests and Parquet, over HTTP from the S3 server) and DuckDB (the
 * Parquet data files) — and one-call helpers around an `icebergOutput`:
 *
 *     await commitIcebergOutputs(processor, { env, pipeline });   // one run of the scheduled committer
 *     const { rows, progress } = await readIcebergOutput(processor.outputs.orders, { env, pipeline });
 *
 * `rows` are as icebird returns them (bigint for long, Date for timestamps, number for decimals);
 * `progress` is the last epoch per task the table holds; `staged` the epochs waiting for a commit.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { icebergManifests, icebergRead } from 'icebird';
import type { OutputDescriptor } from '../lib/output/types.ts';
import {
  createIcebergCommitter,
  type IcebergCommitterSource,
  type IcebergCommitterSummary,
} from '../lib/sink/iceberg/committerHandler.ts';
import type { IcebergFileIO } from '../lib/sink/iceberg/fileIO.ts';
import { icebergOptionsOf } from '../lib/sink/iceberg/icebergOutput.ts';
import { currentSnapshot, type TableMetadata } from '../lib/sink/iceberg/metadata.ts';
import { openIcebergOutputTable } from '../lib/sink/iceberg/outputTable.ts';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * icebird 0.3.1 turns `s3://bucket/key` into `https://bucket.s3.amazonaws.com/key` and fetches it
 * unsigned; while a read runs, that host is mapped to the local S3 server (path-style). Nothing
 * else is changed. Reads may overlap: the real fetch comes back when the last one ends.
 */
const realFetch = globalThis.fetch;
let patched = 0;
let endpoint = '';
function localS3Fetch(input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const m = /^https:\/\/([^./]+)\.s3\.amazonaws\.com\/(.*)$/.exec(url);
  return realFetch(m ? `${endpoint}/${m[1]}/${m[2]}` : input, init);
}

async function withLocalS3<T>(env: Env, fn: () => Promise<T>): Promise<T> {
  const local = env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  if (!local) return fn(); // real S3: icebird's own addressing works for public objects only
  endpoint = local.replace(/\/+$/, '');
  if (patched++ === 0) globalThis.fetch = localS3Fetch as typeof fetch;
  try {
    return await fn();
  } finally {
    if (--patched === 0) globalThis.fetch = realFetch;
  }
}

/** Rows of the table's current snapshot as icebird reads them (by metadata file, else through version-hint.text). */
export function readWithIcebird(
  location: string,
  metadataLocation?: string,
  env: Env = process.env,
): Promise<Record<string, unknown>[]> {
  return withLocalS3(env, () =>
    icebergRead({
      tableUrl: location,
      ...(metadataLocation
        ? { metadataFileName: metadataLocation.slice(metadataLocation.lastIndexOf('/') + 1) }
        : {}),
    }),
  );
}

/** Every live data file the current snapshot lists, as icebird finds them. */
export function dataFilesOf(metadata: TableMetadata, env: Env = process.env): Promise<string[]> {
  return withLocalS3(env, async () => {
    if (!currentSnapshot(metadata)) return [];
    const manifests = await icebergManifests(metadata as never);
    return manifests.flatMap((m) =>
      m.entries.filter((e) => e.status !== 2).map((e) => e.data_file.file_path),
    );
  });
}

/**
 * Runs a DuckDB query over local copies of the given Parquet files: the view `t` (the rows) and
 * `s` (their Parquet schema). DuckDB's httpfs and iceberg extensions cannot be installed offline.
 */
export async function queryParquetWithDuckDB(
  io: IcebergFileIO,
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
      if (files.length === 0) return [];
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

/** One run of the scheduled committer over the Iceberg outputs of a processor (or of a list of outputs). */
export function commitIcebergOutputs(
  source: IcebergCommitterSource,
  options: { env?: Env; pipeline: string; expire?: false },
): Promise<IcebergCommitterSummary> {
  return createIcebergCommitter(source, {
    env: options.env ?? process.env,
    pipeline: options.pipeline,
    expire: options.expire ?? false,
    log: () => {},
  })();
}

export interface IcebergOutputContents {
  /** The table's current rows, as icebird reads them. */
  readonly rows: Record<string, unknown>[];
  readonly location: string;
  readonly metadataLocation: string;
  readonly metadata: TableMetadata;
  /** `topic/partition` → the last epoch the table holds. */
  readonly progress: ReadonlyMap<string, number>;
  /** Staged epochs not committed yet (`topic/partition/epoch`). */
  readonly staged: readonly string[];
  /** The live data files (for `queryParquetWithDuckDB`). */
  readonly dataFiles: readonly string[];
}

/** What an Iceberg output's table holds now (opened the way the sink opens it). */
export async function readIcebergOutput(
  descriptor: OutputDescriptor,
  options: { env?: Env; pipeline: string },
): Promise<IcebergOutputContents> {
  const env = options.env ?? process.env;
  const opened = await openIcebergOutputTable(
    { ...icebergOptionsOf(descriptor), createTable: false },
    { env, pipeline: options.pipeline },
  );
  try {
    const { table } = opened;
    const found = await table.progress();
    const loaded = table.current;
    const staged = (await table.listStagedEpochs()).map(
      (r) => `${r.task.topic}/${r.task.partition}/${r.epoch}`,
    );
    const hasSnapshot = currentSnapshot(loaded.metadata) !== undefined;
    return {
      rows: hasSnapshot ? await readWithIcebird(table.location, loaded.metadataLocation, env) : [],
      location: table.location,
      metadataLocation: loaded.metadataLocation,
      metadata: loaded.metadata,
      progress: new Map([...found.progress].map(([k, p]) => [k, p.epoch])),
      staged,
      dataFiles: await dataFilesOf(loaded.metadata, env),
    };
  } finally {
    opened.close();
  }
}
