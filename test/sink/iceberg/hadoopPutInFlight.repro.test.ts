/**
 * Repro (found by the Iceberg campaign, harness/campaign/iceberg.ts, fault `committer-put-in-flight`):
 * on the S3 Hadoop-layout catalog the swap is the conditional create of `v<N+1>.metadata.json`. When
 * that PUT times out on the client while S3 is still writing it, the SDK's retry meets the first
 * attempt in flight and S3 answers 409 ConditionalRequestConflict, which the file IO reports as
 * "exists". The catalog then read the file, found nothing yet, and answered `conflict`; the
 * committer deleted its attempt's manifest and manifest list — and a moment later the first PUT
 * landed: the table's current snapshot named a deleted manifest list, every reader failed and no
 * later commit could succeed (all rows lost to readers).
 *
 * Expected (and fixed): a lost conditional create whose winner cannot be read is an unknown outcome,
 * not a conflict: the committer keeps its files, reloads, and finds its snapshot once it landed.
 */
import { afterAll, expect, it } from 'vitest';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import type { IcebergFileIO } from '../../../lib/sink/iceberg/fileIO.ts';
import { IcebergTable } from '../../../lib/sink/iceberg/IcebergTable.ts';
import { S3HadoopCatalog } from '../../../lib/sink/iceberg/S3HadoopCatalog.ts';
import { defineIcebergTable } from '../../../lib/sink/iceberg/schema.ts';
import { bucket, dynamo, io, readWithIcebird, s3 } from './helpers.ts';

afterAll(() => {
  s3.destroy();
  dynamo.destroy();
});

const PIPELINE = 'in-flight';
const schema = defineIcebergTable({ columns: [{ name: 'id', type: 'long', required: true }] });
const task: TaskId = { pipeline: PIPELINE, topic: 'events', partition: 0 };

it('a conditional metadata create answered 409 while its first attempt is in flight loses no commit', async () => {
  const warehouse = `s3://${bucket}/iceberg-in-flight/${Date.now()}-${Math.random().toString(36).slice(2)}`;
  let inFlight = 0;
  const landed: Promise<unknown>[] = [];
  const faulty: IcebergFileIO = {
    put: (uri, body, options) => {
      if (inFlight > 0 && options?.ifAbsent && /\/v\d+\.metadata\.json$/.test(uri)) {
        inFlight--;
        // The first attempt is still being written; the retry is answered 409 ("exists").
        landed.push(new Promise((r) => setTimeout(r, 150)).then(() => io.put(uri, body, options)));
        return Promise.resolve(false);
      }
      return io.put(uri, body, options);
    },
    get: (uri) => io.get(uri),
    list: (prefix) => io.list(prefix),
    delete: (uris) => io.delete(uris),
  };
  const catalog = new S3HadoopCatalog({ io: faulty, warehouse });
  const table = await IcebergTable.open({
    catalog,
    identifier: { namespace: 'db', name: 'events' },
    io: faulty,
    schema,
    pipeline: PIPELINE,
    commit: { retryBaseMs: 100 },
  });
  await table.writeDataFiles(task, 1, [{ id: 1n }, { id: 2n }]);
  await table.writeDataFiles(task, 2, [{ id: 3n }]);
  inFlight = 1;
  const first = await table.commitStaged();
  await Promise.all(landed);
  await table.writeDataFiles(task, 3, [{ id: 4n }]);
  const second = await table.commitStaged();
  expect([first.committed.length + first.alreadyCommitted.length, second.committed.length]).toEqual([2, 1]);
  const rows = await readWithIcebird(table.location, table.current.metadataLocation);
  expect(rows.map((r) => String(r.id)).sort()).toEqual(['1', '2', '3', '4']);
});
