import { afterAll, describe, expect, it } from 'vitest';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import { IcebergSchemaError } from '../../../lib/errors.ts';
import type { IcebergCatalog, LoadedTable } from '../../../lib/sink/iceberg/catalog.ts';
import type { StagedEpoch } from '../../../lib/sink/iceberg/dataFiles.ts';
import { IcebergCommitter } from '../../../lib/sink/iceberg/IcebergCommitter.ts';
import { IcebergTable } from '../../../lib/sink/iceberg/IcebergTable.ts';
import { readManifestList } from '../../../lib/sink/iceberg/manifests.ts';
import { currentSnapshot, type TableMetadata } from '../../../lib/sink/iceberg/metadata.ts';
import { S3HadoopCatalog } from '../../../lib/sink/iceberg/S3HadoopCatalog.ts';
import { defineIcebergTable } from '../../../lib/sink/iceberg/schema.ts';
import {
  bucket,
  dataFilesOf,
  dynamo,
  freshDynamoCatalog,
  io,
  queryParquetWithDuckDB,
  racingCatalog,
  readWithIcebird,
  s3,
} from './helpers.ts';

afterAll(() => {
  s3.destroy();
  dynamo.destroy();
});

const PIPELINE = 'orders-pipe';
const schema = defineIcebergTable({
  columns: [
    { name: 'id', type: 'long', required: true },
    { name: 'customer', type: 'string' },
    { name: 'amount', type: 'decimal(12,2)' },
    { name: 'ts', type: 'timestamptz', required: true },
    { name: 'day', type: 'date' },
    { name: 'ok', type: 'boolean' },
    { name: 'score', type: 'double' },
    { name: 'qty', type: 'int' },
    { name: 'raw', type: 'binary' },
  ],
  partitionBy: [
    { column: 'ts', transform: 'day' },
    { column: 'id', transform: 'bucket[4]' },
  ],
});

const task = (topic: string, partition: number): TaskId => ({ pipeline: PIPELINE, topic, partition });
const T0 = Date.UTC(2026, 0, 1, 23, 0, 0);

/** Deterministic rows of a task-epoch: ids are unique per (task, epoch, i). */
function rowsOf(t: TaskId, epoch: number, n = 5) {
  return Array.from({ length: n }, (_, i) => {
    const id = t.topic.length * 10_000_000 + t.partition * 1_000_000 + epoch * 1000 + i;
    return {
      id: BigInt(id),
      customer: i % 3 === 0 ? null : `c${i}-${t.topic}`,
      amount: `${epoch}.${String(i).padStart(2, '0')}`,
      ts: new Date(T0 + (epoch * 60 + i) * 60_000), // crosses midnight: two day partitions
      day: '2026-01-02',
      ok: i % 2 === 0,
      score: i / 4,
      qty: i,
      raw: Uint8Array.of(epoch, i),
    };
  });
}

type Row = ReturnType<typeof rowsOf>[number];

/** What any reader must show for a row: ids as strings, decimals as numbers, times in ms. */
function expected(rows: readonly Row[]) {
  return rows
    .map((r) => ({
      id: String(r.id),
      customer: r.customer,
      amount: Number(r.amount),
      ts: r.ts.getTime(),
      ok: r.ok,
      score: r.score,
      qty: r.qty,
    }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

function fromIcebird(rows: Record<string, unknown>[]) {
  return rows
    .map((r) => ({
      id: String(r.id),
      customer: r.customer ?? null,
      // icebird scales decimals in floating point (2.01 reads as 2.0100000000000002).
      amount: Math.round(Number(r.amount) * 100) / 100,
      ts: (r.ts as Date).getTime(),
      ok: r.ok,
      score: r.score,
      qty: r.qty,
    }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

async function open(
  catalog: IcebergCatalog,
  name: string,
  extra: Partial<Parameters<typeof IcebergTable.open>[0]> = {},
) {
  return IcebergTable.open({
    catalog,
    identifier: { namespace: 'db', name },
    io,
    schema,
    pipeline: PIPELINE,
    ...extra,
  });
}

describe('Iceberg sink on the DynamoDB catalog (DynamoDB Local + S3 server)', () => {
  it('commits many epochs of many tasks in one snapshot; icebird and DuckDB read exactly the rows written', async () => {
    const { catalog, warehouse } = await freshDynamoCatalog();
    const table = await open(catalog, 'orders');
    expect(table.location).toBe(`${warehouse}/db.db/orders`);
    const tasks = [task('orders', 0), task('orders', 1), task('orders.v2', 0)];
    const staged: StagedEpoch[] = [];
    const written: Row[] = [];
    for (const t of tasks) {
      for (const epoch of [1, 2, 3]) {
        const rows = rowsOf(t, epoch);
        written.push(...rows);
        staged.push(await table.writeDataFiles(t, epoch, rows, { committedOffset: BigInt(epoch * 10) }));
      }
    }
    const result = await table.commit(staged);
    expect(result).toMatchObject({ attempts: 1, addedRecords: 45 });
    expect(result.committed).toHaveLength(9);

    // The catalog item is Iceberg's DynamoDB catalog layout.
    const item = (await catalog.loadTable({ namespace: 'db', name: 'orders' })) as LoadedTable;
    expect(item.metadataLocation).toMatch(/\/db\.db\/orders\/metadata\/00001-[0-9a-f-]{36}\.metadata\.json$/);
    const m = item.metadata;
    expect(m['format-version']).toBe(2);
    expect(m['last-sequence-number']).toBe(1);
    const snap = currentSnapshot(m)!;
    expect(Number.isSafeInteger(snap['snapshot-id'])).toBe(true);
    expect(snap.summary).toMatchObject({
      operation: 'append',
      'added-records': '45',
      'total-records': '45',
      'tidemark.pipeline': PIPELINE,
      'tidemark.orders-pipe.orders.0.epoch': '3',
      'tidemark.orders-pipe.orders.1.epoch': '3',
      'tidemark.orders-pipe.orders.v2.0.epoch': '3',
      'tidemark.orders-pipe.orders.0.offset': '30',
    });
    expect(m['metadata-log']).toHaveLength(1);

    const icebird = await readWithIcebird(table.location, item.metadataLocation);
    expect(fromIcebird(icebird)).toEqual(expected(written));
    // icebird's Parquet reader decodes un-annotated BYTE_ARRAY columns as UTF-8 text by default.
    expect(icebird.find((r) => r.id === 60_001_002n)?.raw).toBe('\u0001\u0002');

    const files = await dataFilesOf(m);
    expect(files.length).toBe(result.addedFiles);
    for (const f of files)
      expect(f).toMatch(/\/data\/ts_day=2026-01-0[12]\/id_bucket=[0-3]\/tm-orders-pipe-/);
    const duck = await queryParquetWithDuckDB(
      files,
      'SELECT CAST(id AS VARCHAR) AS id, customer, CAST(amount AS DOUBLE) AS amount, epoch_ms(ts) AS ts, ok, score, qty FROM t ORDER BY CAST(id AS VARCHAR)',
    );
    expect(duck.map((r) => ({ ...r, ts: Number(r.ts) }))).toEqual(expected(written));
    expect(await queryParquetWithDuckDB(files, 'SELECT hex(raw) AS raw FROM t WHERE id = 60001002')).toEqual([
      { raw: '0102' },
    ]);
    const ids = await queryParquetWithDuckDB(
      files.slice(0, 1),
      'SELECT name, field_id FROM s WHERE field_id IS NOT NULL ORDER BY field_id',
    );
    expect(ids.map((r) => [r.name, Number(r.field_id)])).toEqual(schema.columns.map((c) => [c.name, c.id]));
  });

  it('re-committing committed epochs adds nothing; a retried epoch writes the same files', async () => {
    const { catalog } = await freshDynamoCatalog();
    const table = await open(catalog, 'orders');
    const t = task('orders', 3);
    const first = await table.writeDataFiles(t, 1, rowsOf(t, 1));
    await table.commit([first]);
    const before = table.current.metadataLocation;

    const again = await table.commit([first]);
    expect(again.snapshotId).toBeUndefined();
    expect(again.alreadyCommitted).toHaveLength(1);
    expect(table.current.metadataLocation).toBe(before);

    // The staged record makes a re-delivery return the first attempt's files...
    expect(await table.writeDataFiles(t, 1, rowsOf(t, 1))).toEqual(first);
    // ...and without it the same rows encode to the same bytes, hence the same keys.
    await io.delete([first.key]);
    const rewritten = await table.writeDataFiles(t, 1, rowsOf(t, 1));
    expect(rewritten.files.map((f) => f.path)).toEqual(first.files.map((f) => f.path));
    const result = await table.commit([rewritten]);
    expect(result.committed).toHaveLength(0);
    expect(await readWithIcebird(table.location, table.current.metadataLocation)).toHaveLength(5);
  });

  it('a crash between the data file PUTs and the commit shows no rows; the scheduled commit adds them once', async () => {
    const { catalog } = await freshDynamoCatalog();
    const table = await open(catalog, 'orders');
    const t = task('orders', 0);
    await table.commit([await table.writeDataFiles(t, 1, rowsOf(t, 1))]);
    // Epochs 2 and 3 are delivered (files + staged records), then the process dies.
    await table.writeDataFiles(t, 2, rowsOf(t, 2));
    await table.writeDataFiles(t, 3, rowsOf(t, 3));
    await table.refresh();
    expect(fromIcebird(await readWithIcebird(table.location, table.current.metadataLocation))).toEqual(
      expected(rowsOf(t, 1)),
    );

    const done = await table.commitStaged();
    expect(done.committed.map((b) => b.epoch)).toEqual([2, 3]);
    expect(done.cleaned).toBe(3);
    expect(await table.listStagedEpochs()).toEqual([]);
    const again = await table.commitStaged();
    expect(again.snapshotId).toBeUndefined();
    expect(fromIcebird(await readWithIcebird(table.location, table.current.metadataLocation))).toEqual(
      expected([...rowsOf(t, 1), ...rowsOf(t, 2), ...rowsOf(t, 3)]),
    );
  });

  it('committers racing on the same and overlapping epochs add each epoch exactly once', async () => {
    const { catalog } = await freshDynamoCatalog();
    const table = await open(catalog, 'orders');
    const tasks = [task('orders', 0), task('orders', 1)];
    const staged: StagedEpoch[] = [];
    for (const t of tasks)
      for (const e of [1, 2, 3, 4]) staged.push(await table.writeDataFiles(t, e, rowsOf(t, e, 3)));
    const raced = racingCatalog(catalog, 4);
    const committers = Array.from(
      { length: 4 },
      () =>
        new IcebergCommitter({
          catalog: raced,
          identifier: table.identifier,
          io,
          pipeline: PIPELINE,
          retryBaseMs: 5,
        }),
    );
    // Committer i is given epochs 1..i+1 of every task: overlapping sets, each in task order as
    // a scheduled committer's listing gives them.
    const results = await Promise.all(
      committers.map((c, i) => c.commit(staged.filter((s) => s.epoch <= i + 1))),
    );
    const added = results.flatMap((r) => r.committed.map((b) => `${b.task.partition}/${b.epoch}`));
    expect(added.sort()).toEqual(staged.map((s) => `${s.task.partition}/${s.epoch}`).sort());
    // All four prepared on the same version: one swap won, three conflicted and re-checked.
    expect(results.filter((r) => r.attempts > 1)).toHaveLength(3);
    await table.refresh();
    const rows = await readWithIcebird(table.location, table.current.metadataLocation);
    expect(fromIcebird(rows)).toEqual(expected(staged.flatMap((s) => rowsOf(s.task, s.epoch, 3))));
    const progress = (await table.progress()).progress;
    expect([...progress].sort()).toEqual([
      ['orders/0', { epoch: 4 }],
      ['orders/1', { epoch: 4 }],
    ]);
  });

  it('a lost response to a successful swap is recognised: the retry adds nothing', async () => {
    const { catalog } = await freshDynamoCatalog();
    const table = await open(catalog, 'orders');
    const t = task('orders', 0);
    const staged = await table.writeDataFiles(t, 1, rowsOf(t, 1));
    let failed = false;
    const flaky: IcebergCatalog = {
      loadTable: (id) => catalog.loadTable(id),
      defaultLocation: (id) => catalog.defaultLocation(id),
      createTable: (id, m) => catalog.createTable(id, m),
      commitTable: async (base, m) => {
        const outcome = await catalog.commitTable(base, m);
        if (!failed) {
          failed = true;
          throw Object.assign(new Error('socket hang up'), { retriable: true });
        }
        return outcome;
      },
    };
    const committer = new IcebergCommitter({
      catalog: flaky,
      identifier: table.identifier,
      io,
      pipeline: PIPELINE,
      retryBaseMs: 1,
    });
    const result = await committer.commit([staged]);
    expect(result).toMatchObject({ attempts: 2 });
    expect(result.committed).toHaveLength(1);
    await table.refresh();
    expect(table.current.metadata.snapshots).toHaveLength(1);
    expect(await readWithIcebird(table.location, table.current.metadataLocation)).toHaveLength(5);
  });

  it('merges manifests once they pile up, and expiration keeps the table readable and every live data file', async () => {
    const { catalog } = await freshDynamoCatalog();
    const table = await open(catalog, 'orders', { commit: { minManifestsToMerge: 3 } });
    const t = task('orders', 0);
    const all: Row[] = [];
    for (const e of [1, 2, 3, 4, 5, 6]) {
      all.push(...rowsOf(t, e, 2));
      await table.commit([await table.writeDataFiles(t, e, rowsOf(t, e, 2), { committedOffset: `${e}` })]);
    }
    const m = table.current.metadata;
    expect(m.snapshots).toHaveLength(6);
    const manifests = await readManifestList(io, currentSnapshot(m)!['manifest-list']);
    expect(manifests.length).toBeLessThanOrEqual(2);
    expect(fromIcebird(await readWithIcebird(table.location, table.current.metadataLocation))).toEqual(
      expected(all),
    );

    const listed = async () => new Set(await io.list(`${table.location}/`));
    const files = await dataFilesOf(m);
    const result = await table.expireSnapshots({ minSnapshotsToKeep: 2, maxSnapshotAgeMs: 0 });
    expect(result.expiredSnapshotIds).toHaveLength(4);
    expect(result.deletedManifestLists).toBe(4);
    expect(result.deletedDataFiles).toBe(0);
    const after = table.current.metadata;
    expect(after.snapshots).toHaveLength(2);
    expect(after['snapshot-log']).toHaveLength(2);
    const objects = await listed();
    for (const f of files) expect(objects.has(f)).toBe(true);
    for (const s of m.snapshots!.slice(0, 4)) expect(objects.has(s['manifest-list'])).toBe(false);
    expect(fromIcebird(await readWithIcebird(table.location, table.current.metadataLocation))).toEqual(
      expected(all),
    );
    // Progress survives: the next commit of a committed epoch adds nothing, a new one is added.
    expect((await table.progress()).progress.get('orders/0')).toEqual({ epoch: 6, offset: '6' });
    const next = await table.commit([await table.writeDataFiles(t, 7, rowsOf(t, 7, 2))]);
    expect(next.committed).toHaveLength(1);
  });

  it('refuses to open a table whose schema is not the declared one', async () => {
    const { catalog } = await freshDynamoCatalog();
    await open(catalog, 'orders');
    const other = defineIcebergTable({ columns: [{ name: 'id', type: 'long', required: true }] });
    await expect(
      IcebergTable.open({
        catalog,
        identifier: { namespace: 'db', name: 'orders' },
        io,
        schema: other,
        pipeline: PIPELINE,
      }),
    ).rejects.toBeInstanceOf(IcebergSchemaError);
  });
});

describe('Iceberg sink on the S3 Hadoop-layout catalog', () => {
  it('commits with conditional creates of vN.metadata.json; icebird reads it through version-hint.text', async () => {
    const warehouse = `s3://${bucket}/iceberg-hadoop/${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const catalog = new S3HadoopCatalog({ io, warehouse });
    const table = await open(catalog, 'orders');
    expect(table.location).toBe(`${warehouse}/db/orders`);
    const staged: StagedEpoch[] = [];
    for (const p of [0, 1, 2])
      for (const e of [1, 2])
        staged.push(await table.writeDataFiles(task('orders', p), e, rowsOf(task('orders', p), e, 2)));
    const raced = racingCatalog(catalog, 3);
    const committers = Array.from(
      { length: 3 },
      () =>
        new IcebergCommitter({
          catalog: raced,
          identifier: table.identifier,
          io,
          pipeline: PIPELINE,
          retryBaseMs: 5,
        }),
    );
    // Whole tasks per committer plus one shared task: racing commits, each epoch once.
    const results = await Promise.all(
      committers.map((c, i) => c.commit([...staged.slice(i * 2, i * 2 + 2), ...staged.slice(0, 2)])),
    );
    expect(results.filter((r) => r.attempts > 1)).toHaveLength(2);
    const added = results.flatMap((r) => r.committed.map((b) => `${b.task.partition}/${b.epoch}`));
    expect(added.sort()).toEqual(staged.map((s) => `${s.task.partition}/${s.epoch}`).sort());
    await table.refresh();
    expect(table.current.metadataLocation).toMatch(/\/metadata\/v\d+\.metadata\.json$/);
    const hint = new TextDecoder().decode((await io.get(`${table.location}/metadata/version-hint.text`))!);
    expect(`v${hint}.metadata.json`).toBe(
      table.current.metadataLocation.slice(table.current.metadataLocation.lastIndexOf('/') + 1),
    );
    const rows = await readWithIcebird(table.location); // no file name: icebird follows the hint
    expect(fromIcebird(rows)).toEqual(expected(staged.flatMap((s) => rowsOf(s.task, s.epoch, 2))));
    expect(
      new Set((table.current.metadata as TableMetadata).snapshots!.map((s) => s['sequence-number'])).size,
    ).toBe(table.current.metadata.snapshots!.length);
  });
});
