/**
 * Repros (found by the Iceberg campaign, harness/campaign/iceberg.ts, faults
 * `committer-put-in-flight` and `committer-sdk-retry`) on Iceberg's DynamoDB catalog:
 *
 * 1. The new metadata file's conditional PUT times out on the client while S3 is still writing it;
 *    the SDK's retry meets that first attempt in flight and S3 answers 409, which the file IO reports
 *    as "exists". The catalog went on to swap the table's pointer to the file — and when the first
 *    attempt never landed (its body cut short), the table named a metadata file that does not exist:
 *    no reader and no later commit could load it. Fixed: the file must be there (with its bytes)
 *    before the swap; otherwise a retriable failure, the table unchanged.
 * 2. The swap's UpdateItem lands but its response is lost; before the SDK's retry goes out another
 *    writer commits on top. The retry's condition fails and the item names the other writer's file,
 *    so the catalog answered `conflict`, and the committer deleted its manifest list and manifests,
 *    which the table's snapshots (its own, kept by the other writer) still named. Fixed: a failed
 *    condition on a retried request is an unknown outcome; the committer reloads and finds its
 *    snapshot.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import { DynamoDbIcebergCatalog } from '../../../lib/sink/iceberg/DynamoDbIcebergCatalog.ts';
import type { IcebergFileIO } from '../../../lib/sink/iceberg/fileIO.ts';
import { IcebergTable } from '../../../lib/sink/iceberg/IcebergTable.ts';
import { defineIcebergTable } from '../../../lib/sink/iceberg/schema.ts';
import { createDynamoDBClient } from '../../../lib/store/clients.ts';
import { bucket, dynamo, io, readWithIcebird, s3 } from './helpers.ts';

const faultyDynamo = createDynamoDBClient();

afterAll(() => {
  s3.destroy();
  dynamo.destroy();
  faultyDynamo.destroy();
});

const PIPELINE = 'lost-response';
const schema = defineIcebergTable({ columns: [{ name: 'id', type: 'long', required: true }] });
const task: TaskId = { pipeline: PIPELINE, topic: 'events', partition: 0 };
const identifier = { namespace: 'db', name: 'events' };

async function setup(fileIo: IcebergFileIO, client = dynamo) {
  const warehouse = `s3://${bucket}/iceberg-lost/${randomUUID()}`;
  const tableName = `iceberg-${randomUUID().slice(0, 8)}`;
  const clean = new DynamoDbIcebergCatalog({ client: dynamo, io, warehouse, tableName });
  await clean.ensureCatalogTable();
  await clean.createNamespace('db');
  const catalog = new DynamoDbIcebergCatalog({ client, io: fileIo, warehouse, tableName });
  const table = await IcebergTable.open({
    catalog,
    identifier,
    io: fileIo,
    schema,
    pipeline: PIPELINE,
    commit: { retryBaseMs: 5 },
  });
  return { table, clean };
}

it('never swaps to a metadata file whose conditional PUT was answered 409 and never landed', async () => {
  let cutShort = 0;
  const faulty: IcebergFileIO = {
    put: (uri, body, options) => {
      if (cutShort > 0 && options?.ifAbsent && uri.endsWith('.metadata.json')) {
        cutShort--;
        return Promise.resolve(false); // 409: the first attempt in flight, which never lands
      }
      return io.put(uri, body, options);
    },
    get: (uri) => io.get(uri),
    list: (prefix) => io.list(prefix),
    delete: (uris) => io.delete(uris),
  };
  const { table, clean } = await setup(faulty);
  await table.writeDataFiles(task, 1, [{ id: 1n }, { id: 2n }]);
  cutShort = 1;
  const first = await table.commitStaged();
  expect(first.committed).toHaveLength(1);
  await table.writeDataFiles(task, 2, [{ id: 3n }]);
  expect((await table.commitStaged()).committed).toHaveLength(1);
  const loaded = (await clean.loadTable(identifier))!;
  const rows = await readWithIcebird(loaded.metadata.location, loaded.metadataLocation);
  expect(rows.map((r) => String(r.id)).sort()).toEqual(['1', '2', '3']);
});

it('keeps its manifests when the swap landed, its response was lost and another writer committed before the retry', async () => {
  let armed = false;
  let foreign: (() => Promise<void>) | undefined;
  faultyDynamo.middlewareStack.add(
    (next, context) => async (args) => {
      const out = await next(args);
      if (armed && (context as { commandName?: string }).commandName === 'UpdateItemCommand') {
        armed = false;
        await foreign?.();
        throw Object.assign(new Error('read ECONNRESET (after the write)'), {
          name: 'TimeoutError',
          code: 'ECONNRESET',
          $metadata: {},
        });
      }
      return out;
    },
    { step: 'finalizeRequest', name: 'lostResponse', priority: 'low' },
  );
  const { table, clean } = await setup(io, faultyDynamo);
  // Another engine's commit: a table property changes on top of whatever the table is.
  foreign = async () => {
    const current = (await clean.loadTable(identifier))!;
    const out = await clean.commitTable(current, {
      ...current.metadata,
      properties: { ...current.metadata.properties, 'other.engine': 'was here' },
    });
    expect(out.status).toBe('committed');
  };
  await table.writeDataFiles(task, 1, [{ id: 1n }, { id: 2n }]);
  armed = true;
  const result = await table.commitStaged();
  expect(armed).toBe(false);
  expect(result.committed.length + result.alreadyCommitted.length).toBe(1);
  await table.writeDataFiles(task, 2, [{ id: 3n }]);
  expect((await table.commitStaged()).committed).toHaveLength(1);
  const loaded = (await clean.loadTable(identifier))!;
  expect(loaded.metadata.properties?.['other.engine']).toBe('was here');
  const rows = await readWithIcebird(loaded.metadata.location, loaded.metadataLocation);
  expect(rows.map((r) => String(r.id)).sort()).toEqual(['1', '2', '3']);
});
