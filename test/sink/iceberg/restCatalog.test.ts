/**
 * The Iceberg REST catalog client against the in-repo stand-in (harness/servers/icebergRest.ts),
 * which implements the spec's commit semantics (requirements → 409, updates, its own metadata
 * files). Not tested against AWS Glue or S3 Tables (no AWS account here): what is proven is the
 * protocol as the spec defines it, the SigV4 signature's consistency with the request sent, and
 * lossless 64-bit snapshot ids.
 */
import { randomUUID } from 'node:crypto';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitIcebergOutputs, readIcebergOutput, readWithIcebird } from '../../../harness/iceberg.ts';
import { type RestCatalogStandIn, startRestCatalog } from '../../../harness/servers/icebergRest.ts';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import type { OutputPart } from '../../../lib/output/types.ts';
import { IcebergCommitter } from '../../../lib/sink/iceberg/IcebergCommitter.ts';
import { IcebergTable } from '../../../lib/sink/iceberg/IcebergTable.ts';
import { icebergOutput } from '../../../lib/sink/iceberg/icebergOutput.ts';
import { currentSnapshot, type TableMetadata } from '../../../lib/sink/iceberg/metadata.ts';
import { RestIcebergCatalog } from '../../../lib/sink/iceberg/RestIcebergCatalog.ts';
import { defineIcebergTable } from '../../../lib/sink/iceberg/schema.ts';
import { bucket, dynamo, io, racingCatalog, s3 } from './helpers.ts';

const PIPELINE = 'rest-pipe';
const schema = defineIcebergTable({
  columns: [
    { name: 'id', type: 'long', required: true },
    { name: 'label', type: 'string' },
  ],
  partitionBy: [{ column: 'id', transform: 'bucket[2]' }],
});
const task = (partition: number): TaskId => ({ pipeline: PIPELINE, topic: 'events', partition });
const rowsOf = (t: TaskId, epoch: number, n = 3) =>
  Array.from({ length: n }, (_, i) => ({
    id: BigInt(t.partition * 1_000_000 + epoch * 1000 + i),
    label: `e${epoch}`,
  }));
const ids = (rows: Record<string, unknown>[]) => rows.map((r) => String(r.id)).sort();

let rest: RestCatalogStandIn;

beforeAll(async () => {
  rest = await startRestCatalog({ io, warehouse: `s3://${bucket}/rest-catalog/${randomUUID()}` });
});

afterAll(async () => {
  await rest.close();
  s3.destroy();
  dynamo.destroy();
});

async function open(name: string, catalog = new RestIcebergCatalog({ uri: rest.uri, warehouse: 'lake' })) {
  return IcebergTable.open({
    catalog,
    identifier: { namespace: 'db', name },
    io,
    schema,
    pipeline: PIPELINE,
  });
}

describe('Iceberg REST catalog (against the in-repo stand-in)', () => {
  it('an icebergOutput on a REST catalog from the environment: sink, committer and icebird agree', async () => {
    const output = icebergOutput<{ id: bigint; label: string }>({ table: 'db.events', schema });
    const env = {
      ...process.env,
      TIDEMARK_ICEBERG_CATALOG: 'rest',
      TIDEMARK_ICEBERG_REST_URI: rest.uri,
      TIDEMARK_ICEBERG_WAREHOUSE: 'lake',
    };
    const sink = await output.createSink({ pipeline: PIPELINE, env, commitStore: 'memory' });
    const written: string[] = [];
    for (const p of [0, 1]) {
      for (const epoch of [1, 2, 3]) {
        const rows = rowsOf(task(p), epoch);
        written.push(...rows.map((r) => String(r.id)));
        const part: OutputPart = {
          name: 'events',
          descriptor: output as never,
          entries: rows.map((r, seq) => ({ seq, entry: output.encode(r, {} as never) })),
        };
        await sink.deliver({ task: task(p), epoch, committedOffset: BigInt(epoch * 10), parts: [part] });
      }
    }
    await sink.close?.();
    const summary = await commitIcebergOutputs([output as never], { env, pipeline: PIPELINE });
    expect(summary.tables[0]).toMatchObject({ ok: true, epochs: 6, cleaned: 6 });
    const table = await readIcebergOutput(output as never, { env, pipeline: PIPELINE });
    expect(ids(table.rows)).toEqual(written.sort());
    expect(table.metadataLocation).toBe(rest.table('db.events')!.metadataLocation);
    expect([...table.progress].sort()).toEqual([
      ['events/0', 3],
      ['events/1', 3],
    ]);
    // The catalog made the table (namespace, then table) and took one commit with both tasks' epochs.
    expect(
      rest.requests
        .filter((r) => r.method === 'POST')
        .map((r) => r.path.replace(/\/tables\/.*/, '/tables/…')),
    ).toEqual(
      expect.arrayContaining([
        '/v1/standin/namespaces',
        '/v1/standin/namespaces/db/tables',
        '/v1/standin/namespaces/db/tables/…',
      ]),
    );
    expect(rest.table('db.events')!.metadata.snapshots).toHaveLength(1);
  });

  it('two committers racing: assert-ref-snapshot-id answers 409 to the loser, which re-checks and adds nothing twice', async () => {
    const table = await open('raced');
    const staged = [];
    for (const p of [0, 1])
      for (const e of [1, 2]) staged.push(await table.writeDataFiles(task(p), e, rowsOf(task(p), e)));
    const raced = racingCatalog(new RestIcebergCatalog({ uri: rest.uri, warehouse: 'lake' }), 2);
    const committer = () =>
      new IcebergCommitter({
        catalog: raced,
        identifier: table.identifier,
        io,
        pipeline: PIPELINE,
        retryBaseMs: 5,
      });
    const conflictsBefore = rest.stats.conflicts;
    const results = await Promise.all([committer().commit(staged), committer().commit(staged.slice(0, 3))]);
    expect(rest.stats.conflicts - conflictsBefore).toBe(1);
    // Whichever won, the other added only what the winner did not: each epoch exactly once.
    const added = results.flatMap((r) => r.committed.map((b) => `${b.task.partition}/${b.epoch}`));
    expect(added.sort()).toEqual(['0/1', '0/2', '1/1', '1/2']);
    expect(results.some((r) => r.attempts > 1)).toBe(true);
    await table.refresh();
    const rows = await readWithIcebird(table.location, table.current.metadataLocation);
    expect(ids(rows)).toEqual(
      staged
        .flatMap((s) => rowsOf(s.task, s.epoch))
        .map((r) => String(r.id))
        .sort(),
    );
  });

  it('an unknown outcome (503 after the swap, or before it) never adds an epoch twice', async () => {
    const table = await open('flaky');
    const committer = new IcebergCommitter({
      catalog: new RestIcebergCatalog({ uri: rest.uri, warehouse: 'lake' }),
      identifier: table.identifier,
      io,
      pipeline: PIPELINE,
      retryBaseMs: 1,
    });
    rest.faults.commitStatus.push({ status: 503, when: 'after' });
    const first = await committer.commit([await table.writeDataFiles(task(0), 1, rowsOf(task(0), 1))]);
    expect(first).toMatchObject({ attempts: 2 });
    expect(first.committed).toHaveLength(1);
    rest.faults.commitStatus.push({ status: 502, when: 'before' });
    const second = await committer.commit([await table.writeDataFiles(task(0), 2, rowsOf(task(0), 2))]);
    expect(second).toMatchObject({ attempts: 2 });
    const m = rest.table('db.flaky')!.metadata;
    expect(m.snapshots).toHaveLength(2);
    expect(currentSnapshot(m)!.summary['tidemark.rest-pipe.events.0.epoch']).toBe('2');
  });

  it("keeps another engine's 63-bit snapshot id exact: the next commit asserts and parents it digit for digit", async () => {
    const table = await open('foreign');
    await table.commit([await table.writeDataFiles(task(0), 1, rowsOf(task(0), 1))]);
    // Another engine commits a snapshot whose id needs all 63 bits (no rows added, same manifests).
    const m = rest.table('db.foreign')!.metadata;
    const ours = currentSnapshot(m)!;
    const foreignId = 2n ** 62n + 12_345n;
    const foreign = {
      ...ours,
      'snapshot-id': foreignId,
      'parent-snapshot-id': ours['snapshot-id'],
      'sequence-number': 2,
      summary: { operation: 'append', 'added-records': '0', 'engine-name': 'spark' },
    };
    const seeded: TableMetadata = {
      ...m,
      'last-sequence-number': 2,
      snapshots: [...m.snapshots!, foreign],
      'current-snapshot-id': foreignId,
      refs: { main: { 'snapshot-id': foreignId, type: 'branch' } },
    };
    await rest.replaceTable('db.foreign', seeded);
    const result = await table.commit([await table.writeDataFiles(task(0), 2, rowsOf(task(0), 2))]);
    expect(result).toMatchObject({ attempts: 1 });
    const after = rest.table('db.foreign')!.metadata;
    expect(currentSnapshot(after)!['parent-snapshot-id']).toBe(foreignId);
    expect(after.refs!.main!['snapshot-id']).toBe(result.snapshotId);
    // The progress was found past the foreign snapshot; the rows are each there once.
    expect(currentSnapshot(after)!.summary['tidemark.rest-pipe.events.0.epoch']).toBe('2');
    const rows = await readWithIcebird(table.location, rest.table('db.foreign')!.metadataLocation);
    expect(ids(rows)).toEqual([...rowsOf(task(0), 1), ...rowsOf(task(0), 2)].map((r) => String(r.id)).sort());
  });

  it('expires snapshots with remove-snapshots and leaves metadata files to the catalog', async () => {
    const table = await open('expiring');
    for (const e of [1, 2, 3, 4])
      await table.commit([await table.writeDataFiles(task(1), e, rowsOf(task(1), e))]);
    const files = new Set(await io.list(`${table.location}/metadata/`));
    const result = await table.expireSnapshots({ minSnapshotsToKeep: 1, maxSnapshotAgeMs: 0 });
    expect(result.expiredSnapshotIds).toHaveLength(3);
    expect(result.deletedMetadataFiles).toBe(0);
    expect(rest.table('db.expiring')!.metadata.snapshots).toHaveLength(1);
    const left = new Set(await io.list(`${table.location}/metadata/`));
    for (const f of files) if (f.endsWith('.metadata.json')) expect(left.has(f)).toBe(true);
    const rows = await readWithIcebird(table.location, rest.table('db.expiring')!.metadataLocation);
    expect(rows).toHaveLength(12);
  });

  it('signs requests with SigV4 (the signature matches the request sent) and refuses what it cannot express', async () => {
    const credentials = {
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    };
    const verifier = new SignatureV4({ service: 'glue', region: 'eu-west-1', sha256: Sha256, credentials });
    const checked: string[] = [];
    const verifyingFetch: typeof fetch = async (input, init) => {
      const url = new URL(String(input));
      const headers: Record<string, string> = {
        ...(init?.headers as Record<string, string>),
        host: url.host,
      };
      const { authorization, 'x-amz-date': date, ...unsigned } = headers;
      const query: Record<string, string> = {};
      for (const [k, v] of url.searchParams) query[k] = v;
      const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date!)!;
      const again = await verifier.sign(
        {
          method: init?.method ?? 'GET',
          protocol: url.protocol,
          hostname: url.hostname,
          port: Number(url.port),
          path: url.pathname,
          query,
          headers: Object.fromEntries(Object.entries(unsigned).filter(([k]) => k !== 'x-amz-content-sha256')),
          ...(init?.body ? { body: init.body as string } : {}),
        },
        { signingDate: new Date(Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!)) },
      );
      expect(again.headers.authorization).toBe(authorization);
      checked.push(`${init?.method} ${url.pathname}`);
      return fetch(input, init);
    };
    const catalog = new RestIcebergCatalog({
      uri: rest.uri,
      warehouse: '111122223333',
      signing: 'glue',
      region: 'eu-west-1',
      credentials,
      fetch: verifyingFetch,
    });
    const table = await open('signed', catalog);
    await table.commit([await table.writeDataFiles(task(0), 1, rowsOf(task(0), 1))]);
    expect(checked).toEqual(
      expect.arrayContaining([
        'GET /v1/config',
        'POST /v1/standin/namespaces/db/tables',
        'POST /v1/standin/namespaces/db/tables/signed',
      ]),
    );
    const auth = rest.requests.filter((r) => r.path.includes('/signed')).map((r) => r.authorization);
    for (const a of auth) {
      expect(a).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/glue\/aws4_request, SignedHeaders=\S*host\S*, Signature=[0-9a-f]{64}$/,
      );
    }
    // A commit that would change the schema is refused before anything is sent.
    const m = table.current.metadata;
    await expect(
      catalog.commitTable(table.current, {
        ...m,
        schemas: [...m.schemas, { ...m.schemas[0]!, 'schema-id': 1 }],
      }),
    ).rejects.toThrow(/cannot change schemas/);
  });
});
