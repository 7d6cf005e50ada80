/**
 * Iceberg output figures (DynamoDB Local + the S3 server): rows per second into an Iceberg table
 * through the real sink and the real committer, and files, commits and requests per million rows.
 *
 * Per repeat: a fresh DynamoDB catalog table and warehouse; `tasks` tasks each deliver `epochs`
 * epochs of `rowsPerEpoch` rows through `IcebergOutputSink` (rows encoded at emit time, as the
 * engine does; tasks concurrently, a task's epochs in order, as the engine delivers them); after
 * every `commitEvery` epochs of each task the scheduled committer's step runs (`commitStaged`:
 * one snapshot for every epoch staged since). Delivery and commit are timed separately; rows/s is
 * rows ÷ (delivery + commit time), which is conservative: in production they overlap.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDbIcebergCatalog } from '../lib/sink/iceberg/DynamoDbIcebergCatalog.ts';
import { type IcebergFileIO, S3FileIO } from '../lib/sink/iceberg/fileIO.ts';
import { IcebergOutputSink } from '../lib/sink/iceberg/IcebergOutputSink.ts';
import { icebergOptionsOf, icebergOutput } from '../lib/sink/iceberg/icebergOutput.ts';
import { defineIcebergTable } from '../lib/sink/iceberg/schema.ts';
import { createDynamoDBClient, createS3Client } from '../lib/store/clients.ts';
import { fmt, fmtSpread } from './goals.ts';
import type { RequestsTarget } from './requests.ts';
import { type Spread, spread } from './stats.ts';

export interface IcebergBenchOptions {
  tasks: number;
  epochs: number;
  rowsPerEpoch: number;
  /** The committer runs after every this many epochs of each task. */
  commitEvery: number;
  repeats: number;
}

export interface IcebergBenchResult {
  options: IcebergBenchOptions;
  rows: number;
  rowsPerSecond: Spread;
  deliveryRowsPerSecond: Spread;
  /** Wall time of one committer step (list, read staged records, manifest, metadata, swap, cleanup). */
  commitMs: Spread;
  /** Per million rows. */
  per1M: { dataFiles: number; commits: number; s3Puts: number; s3Gets: number; s3Other: number };
  /** Epochs one snapshot carried (median). */
  epochsPerCommit: number;
  /** Commits per million rows if every epoch were committed alone (the table's commit rate without the scheduled committer). */
  commitsPer1MOneEpochEach: number;
}

const schema = defineIcebergTable({
  columns: [
    { name: 'account', type: 'string', required: true },
    { name: 'offset', type: 'long', required: true },
    { name: 'amount', type: 'decimal(12,2)', required: true },
    { name: 'balance', type: 'decimal(14,2)', required: true },
    { name: 'ts', type: 'timestamptz', required: true },
  ],
  partitionBy: [{ column: 'ts', transform: 'day' }],
});

/** Counts the file IO's requests by kind. */
function counting(io: IcebergFileIO) {
  const counts = { put: 0, get: 0, list: 0, delete: 0 };
  const wrapped: IcebergFileIO = {
    put: (u, b, o) => {
      counts.put++;
      return io.put(u, b, o);
    },
    get: (u) => {
      counts.get++;
      return io.get(u);
    },
    list: (p) => {
      counts.list++;
      return io.list(p);
    },
    delete: (u) => {
      counts.delete++;
      return io.delete(u);
    },
  };
  return { io: wrapped, counts };
}

export async function runIcebergBench(
  options: IcebergBenchOptions,
  target: RequestsTarget,
  log: (line: string) => void,
): Promise<IcebergBenchResult> {
  const s3 = createS3Client(target.env);
  const dynamo = createDynamoDBClient(target.env);
  const rowsPerSecond: number[] = [];
  const deliveryRowsPerSecond: number[] = [];
  const commitMs: number[] = [];
  const epochsPerCommit: number[] = [];
  const rows = options.tasks * options.epochs * options.rowsPerEpoch;
  let last = { files: 0, commits: 0, puts: 0, gets: 0, other: 0 };
  try {
    for (let repeat = 0; repeat < options.repeats; repeat++) {
      const id = `${target.runId}-${repeat}-${randomUUID().slice(0, 6)}`;
      const catalogTable = `iceberg-bench-${id}`;
      const warehouse = `s3://${target.bucket}/bench-iceberg/${id}`;
      const { io, counts } = counting(new S3FileIO({ client: s3 }));
      await new DynamoDbIcebergCatalog({
        client: dynamo,
        io,
        warehouse,
        tableName: catalogTable,
      }).ensureCatalogTable();
      const output = icebergOutput({
        table: 'bench.movements',
        schema,
        warehouse,
        catalogTable,
        clients: { s3, dynamodb: dynamo },
        io,
      });
      const pipeline = `bench-${id}`;
      const sink = new IcebergOutputSink(
        { pipeline, env: target.env, commitStore: 'dynamodb' },
        icebergOptionsOf(output),
      );
      const { table } = await sink.table();
      const encoded = (task: number, epoch: number) =>
        Array.from({ length: options.rowsPerEpoch }, (_, i) => {
          const offset = (epoch - 1) * options.rowsPerEpoch + i;
          return {
            seq: i,
            entry: output.encode(
              {
                account: `acct-${(offset * 7919 + task) % 1000}`,
                offset: BigInt(offset),
                amount: ((offset % 2000) - 1000) / 100,
                balance: (offset % 100_000) / 100,
                ts: new Date(Date.UTC(2026, 0, 1) + offset * 1000),
              },
              {} as never,
            ),
          };
        });
      let deliveryMs = 0;
      let commitTotal = 0;
      let commits = 0;
      for (let from = 1; from <= options.epochs; from += options.commitEvery) {
        const to = Math.min(options.epochs, from + options.commitEvery - 1);
        // Rows are encoded outside the timed part (that is the processor's emit, not the sink).
        const batches = Array.from({ length: options.tasks }, (_, t) =>
          Array.from({ length: to - from + 1 }, (_, k) => ({
            epoch: from + k,
            entries: encoded(t, from + k),
          })),
        );
        const started = performance.now();
        await Promise.all(
          batches.map(async (epochs, t) => {
            for (const e of epochs) {
              await sink.deliver({
                task: { pipeline, topic: 'deposits', partition: t },
                epoch: e.epoch,
                committedOffset: BigInt(e.epoch * options.rowsPerEpoch),
                parts: [{ name: 'movements', descriptor: output as never, entries: e.entries }],
              });
            }
          }),
        );
        deliveryMs += performance.now() - started;
        const commitStarted = performance.now();
        const result = await table.commitStaged();
        const ms = performance.now() - commitStarted;
        commitTotal += ms;
        commitMs.push(ms);
        if (result.snapshotId !== undefined) {
          commits++;
          epochsPerCommit.push(result.committed.length);
        }
      }
      const progress = await table.progress();
      const done = [...progress.progress.values()].every((p) => p.epoch === options.epochs);
      if (!done || progress.progress.size !== options.tasks)
        throw new Error('iceberg bench: not every epoch was committed');
      const totalRecords = Number(table.current.metadata.snapshots?.at(-1)?.summary['total-records']);
      if (totalRecords !== rows)
        throw new Error(`iceberg bench: the table holds ${totalRecords} rows, ${rows} were delivered`);
      await sink.close();
      rowsPerSecond.push(rows / ((deliveryMs + commitTotal) / 1000));
      deliveryRowsPerSecond.push(rows / (deliveryMs / 1000));
      last = {
        files: Number(table.current.metadata.snapshots?.at(-1)?.summary['total-data-files']),
        commits,
        puts: counts.put,
        gets: counts.get,
        other: counts.list + counts.delete,
      };
      log(
        `  iceberg: ${fmt(rows)} rows, ${options.tasks} tasks × ${options.epochs} epochs, ${commits} commits: ${fmt(rowsPerSecond.at(-1)!)} rows/s (delivery ${fmt(deliveryRowsPerSecond.at(-1)!)} rows/s, commits ${fmt(commitTotal)} ms)`,
      );
    }
  } finally {
    s3.destroy();
    dynamo.destroy();
  }
  const per = (n: number) => (n / rows) * 1_000_000;
  return {
    options,
    rows,
    rowsPerSecond: spread(rowsPerSecond),
    deliveryRowsPerSecond: spread(deliveryRowsPerSecond),
    commitMs: spread(commitMs),
    per1M: {
      dataFiles: per(last.files),
      commits: per(last.commits),
      s3Puts: per(last.puts),
      s3Gets: per(last.gets),
      s3Other: per(last.other),
    },
    epochsPerCommit: spread(epochsPerCommit).median,
    commitsPer1MOneEpochEach: per(options.tasks * options.epochs),
  };
}

/** The markdown section of the run summary. */
export function icebergSection(r: IcebergBenchResult): string {
  const o = r.options;
  return `## 5. Iceberg output (DynamoDB Local + the S3 server)

${fmt(r.rows)} rows (5 columns, day-partitioned) from ${o.tasks} tasks × ${o.epochs} epochs of
${fmt(o.rowsPerEpoch)} rows, delivered through the Iceberg sink (Parquet data files + a staged record
per task-epoch), committed by the scheduled committer's step after every ${o.commitEvery} epochs of
each task (DynamoDB catalog). Rows/s counts delivery and commit time one after the other (in
production they overlap). ${o.repeats} repeat(s).

| Figure | Value |
| --- | --- |
| rows/s into the table (delivery + commit) | ${fmtSpread(r.rowsPerSecond)} |
| rows/s delivered (Parquet encoding, metrics, PUTs) | ${fmtSpread(r.deliveryRowsPerSecond)} |
| one committer step | ${fmtSpread(r.commitMs, 0, ' ms')} |
| epochs per commit (snapshot) | ${fmt(r.epochsPerCommit)} |
| data files per 1 M rows | ${fmt(r.per1M.dataFiles)} |
| commits per 1 M rows | ${fmt(r.per1M.commits, 1)} (one per epoch would be ${fmt(r.commitsPer1MOneEpochEach)}) |
| S3 PUT / GET / other per 1 M rows | ${fmt(r.per1M.s3Puts)} / ${fmt(r.per1M.s3Gets)} / ${fmt(r.per1M.s3Other)} |
`;
}
