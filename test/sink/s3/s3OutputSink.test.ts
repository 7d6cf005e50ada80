/**
 * The S3 output sink against the real local S3 server (conditional PUTs enforced by its shim):
 * layout, manifests, conditional writes and what a 412 / 409 / lost response means, gzip, options
 * changed between deliveries, determinism, and the reader (checked against a plain listing).
 */
import { randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { S3OutputConflictError, S3OutputCorruptError, StoreError } from '../../../lib/errors.ts';
import type { Delivery, OutputDescriptor, SinkEnvironment } from '../../../lib/output/types.ts';
import {
  dataKey,
  listS3OutputManifests,
  manifestKey,
  outputRoot,
  readS3Outputs,
  type S3OutputManifest,
  type S3OutputOptions,
  s3Output,
} from '../../../lib/sink/s3/index.ts';
import { sha256Hex } from '../../../lib/sink/s3/layout.ts';
import { S3OutputSink } from '../../../lib/sink/s3/S3OutputSink.ts';
import { countRequests } from '../../../lib/store/requestCounter.ts';
import { FaultyS3, getObject, isData, isManifest, plainRead, snapshotPrefix } from './helpers.ts';

const bucket = process.env.TIDEMARK_BUCKET!;
const s3 = new FaultyS3();
const clients = [s3];
afterAll(() => {
  for (const c of clients) c.destroy();
});

const CTX = { pipeline: 'p', topic: 'orders', partition: 0, offset: 0n, key: null };

function setup(options: S3OutputOptions<unknown> = {}) {
  const pipeline = `s3o-${randomUUID().slice(0, 8)}`;
  const env: SinkEnvironment = { pipeline, env: process.env, commitStore: 'memory' };
  const faulty = new FaultyS3();
  clients.push(faulty);
  const sink = new S3OutputSink(env, { client: faulty.client });
  const descriptor = s3Output<unknown>(options);
  const task = { pipeline, topic: 'orders', partition: 3 };
  /** A delivery of `values` as epoch `epoch` (seqs 0, 2, 4, …: other outputs take the odd ones). */
  const delivery = (
    epoch: number,
    values: readonly unknown[],
    d: OutputDescriptor<unknown, string> = descriptor,
  ): Delivery => ({
    task,
    epoch,
    committedOffset: BigInt(epoch * 100),
    parts: [
      {
        name: 'out',
        descriptor: d as OutputDescriptor,
        entries: values.map((v, i) => ({ seq: 2 * i, entry: d.encode(v, CTX) })),
      },
    ],
  });
  const loc = { prefix: 'tidemark-outputs', pipeline, output: 'out' };
  const read = async () => {
    const out: unknown[] = [];
    for await (const r of readS3Outputs({ bucket, pipeline, output: 'out', client: s3.client }))
      out.push(r.value);
    return out;
  };
  return { pipeline, sink, faulty, descriptor, task, delivery, loc, read, root: outputRoot(loc) };
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const i of items) out.push(i);
  return out;
}

const values = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ n: from + i, s: 'x'.repeat((from + i) % 7) }));

describe('S3OutputSink', () => {
  it('writes JSON lines objects, then a manifest listing them with sizes, counts, ids and checksums', async () => {
    const t = setup();
    await t.sink.deliver(t.delivery(1, values(3)));
    await t.sink.deliver(t.delivery(2, values(2, 3)));
    const all = await snapshotPrefix(s3.client, bucket, t.root);
    const key1 = dataKey(t.loc, t.task, 1, 0, {
      gzip: false,
      maxObjectBytes: 16 * 1024 * 1024,
      withIds: false,
    });
    expect(key1).toMatch(
      new RegExp(`^tidemark-outputs/${t.pipeline}/out/data/orders/3/000000000001-[0-9a-f]{8}-00000\\.jsonl$`),
    );
    expect(all.get(key1)!.toString()).toBe(
      `${values(3)
        .map((v) => JSON.stringify(v))
        .join('\n')}\n`,
    );
    const m = JSON.parse(all.get(manifestKey(t.loc, t.task, 1))!.toString()) as S3OutputManifest;
    expect(m).toMatchObject({
      format: 'tidemark.s3-output.manifest',
      version: 1,
      pipeline: t.pipeline,
      output: 'out',
      topic: 'orders',
      partition: 3,
      epoch: 1,
      committedOffset: '100',
      encoding: 'jsonl',
      withIds: false,
      records: 3,
      firstId: `${t.pipeline}/orders/3/1/0`,
      lastId: `${t.pipeline}/orders/3/1/4`,
    });
    expect(m.objects).toEqual([
      {
        key: key1,
        bytes: all.get(key1)!.length,
        records: 3,
        firstId: `${t.pipeline}/orders/3/1/0`,
        lastId: `${t.pipeline}/orders/3/1/4`,
        sha256: sha256Hex(all.get(key1)!),
      },
    ]);
    // The identity range is in each object's metadata too.
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key1 }));
    expect(head.Metadata).toMatchObject({
      'tidemark-first-id': `${t.pipeline}/orders/3/1/0`,
      'tidemark-last-id': `${t.pipeline}/orders/3/1/4`,
      'tidemark-records': '3',
    });
    expect(await t.read()).toEqual(values(5));
    expect((await plainRead(s3.client, bucket, t.root)).map((r) => r.value)).toEqual(values(5));
  });

  it('cuts an epoch into parts at line boundaries by uncompressed size; one long line gets a part of its own', async () => {
    const t = setup({ maxObjectBytes: 40 });
    const vs = [...values(6), { long: 'y'.repeat(100) }, ...values(2, 6)];
    await t.sink.deliver(t.delivery(7, vs));
    const [m] = await collect(
      listS3OutputManifests({ bucket, pipeline: t.pipeline, output: 'out', client: s3.client }),
    );
    expect(m!.objects.length).toBeGreaterThan(3);
    expect(m!.objects.map((o) => o.key)).toEqual(
      m!.objects.map((_, i) =>
        dataKey(t.loc, t.task, 7, i, { gzip: false, maxObjectBytes: 40, withIds: false }),
      ),
    );
    for (const o of m!.objects) {
      const body = await getObject(s3.client, bucket, o.key);
      expect(body.length <= 40 || o.records === 1).toBe(true);
      expect(body.toString().split('\n').length - 1).toBe(o.records);
    }
    expect(m!.objects.reduce((n, o) => n + o.records, 0)).toBe(vs.length);
    expect(await t.read()).toEqual(vs);
  });

  it('gzip: .jsonl.gz objects that gunzip to the same lines; the reader and a plain reader agree', async () => {
    const t = setup({ gzip: true, gzipLevel: 9, withIds: true });
    const vs = values(50);
    await t.sink.deliver(t.delivery(1, vs));
    const [m] = await collect(
      listS3OutputManifests({ bucket, pipeline: t.pipeline, output: 'out', client: s3.client }),
    );
    expect(m!.encoding).toBe('jsonl.gz');
    const key = m!.objects[0]!.key;
    expect(key.endsWith('.jsonl.gz')).toBe(true);
    const lines = gunzipSync(await getObject(s3.client, bucket, key))
      .toString()
      .trimEnd()
      .split('\n');
    expect(lines[1]).toBe(`{"id":"${t.pipeline}/orders/3/1/2","value":${JSON.stringify(vs[1])}}`);
    const records = await collect(
      readS3Outputs({ bucket, pipeline: t.pipeline, output: 'out', client: s3.client }),
    );
    expect(records.map((r) => r.value)).toEqual(vs);
    expect(records.map((r) => r.id)).toEqual(vs.map((_, i) => `${t.pipeline}/orders/3/1/${2 * i}`));
    expect((await plainRead(s3.client, bucket, t.root)).map((r) => r.value)).toEqual(vs);
  });

  it('a redelivery writes nothing new: every PUT answers 412 and finds its own content', async () => {
    const t = setup({ maxObjectBytes: 64 });
    const d = t.delivery(1, values(10));
    await t.sink.deliver(d);
    const before = await snapshotPrefix(s3.client, bucket, t.root);
    const counts = countRequests(t.faulty.client);
    await t.sink.deliver(d);
    await new S3OutputSink(
      { pipeline: t.pipeline, env: process.env, commitStore: 'memory' },
      { client: t.faulty.client },
    ).deliver(d);
    expect(await snapshotPrefix(s3.client, bucket, t.root)).toEqual(before);
    expect(counts.get('PutObjectCommand')).toBe(2 * before.size);
    expect(await t.read()).toEqual(values(10));
  });

  it('a redelivery of a large epoch (above 1 MiB) that was delivered uploads nothing: one HEAD of the manifest', async () => {
    const t = setup({ maxObjectBytes: 512 * 1024 });
    const big = Array.from({ length: 5 }, (_, i) => ({ i, pad: 'z'.repeat(300 * 1024) }));
    await t.sink.deliver(t.delivery(1, big));
    const counts = countRequests(t.faulty.client);
    await t.sink.deliver(t.delivery(1, big));
    expect(Object.fromEntries(counts)).toEqual({ HeadObjectCommand: 1 });
    expect(await t.read()).toEqual(big);
  });

  it('an existing object with other content is a conflict naming the key, never retried, and no manifest is written', async () => {
    const t = setup();
    const key = dataKey(t.loc, t.task, 1, 0, {
      gzip: false,
      maxObjectBytes: 16 * 1024 * 1024,
      withIds: false,
    });
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: '{"other":"pipeline"}\n' }));
    const err = await t.sink.deliver(t.delivery(1, values(2))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3OutputConflictError);
    expect(err).toMatchObject({ key, bucket, retriable: false });
    expect((err as Error).message).toContain(key);
    expect((err as Error).message).toMatch(/not written by Tidemark/);
    expect([...(await snapshotPrefix(s3.client, bucket, t.root)).keys()]).toEqual([key]);

    // Another deployment with the same pipeline id and other outputs for the same epoch.
    const u = setup();
    const other = new S3OutputSink(
      { pipeline: u.pipeline, env: process.env, commitStore: 'memory' },
      { client: s3.client },
    );
    await other.deliver(u.delivery(1, values(2)));
    const err2 = await u.sink.deliver(u.delivery(1, values(2, 10))).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(S3OutputConflictError);
    expect((err2 as Error).message).toMatch(/same pipeline id, output name and prefix/);
  });

  it('an existing manifest of other outputs is a conflict; of the same outputs laid out otherwise, the epoch is delivered', async () => {
    const t = setup({ maxObjectBytes: 30 });
    const vs = values(8);
    await t.sink.deliver(t.delivery(1, vs));
    const before = await snapshotPrefix(s3.client, bucket, `${t.root}manifests/`);
    // A deploy changed the layout options; the restored container delivers the last epoch again.
    for (const options of [{ maxObjectBytes: 1000 }, { gzip: true }, { withIds: true }]) {
      await t.sink.deliver(t.delivery(1, vs, s3Output(options)));
    }
    expect(await snapshotPrefix(s3.client, bucket, `${t.root}manifests/`)).toEqual(before);
    expect(await t.read()).toEqual(vs);
    // Other outputs for the same epoch: refused.
    const err = await t.sink
      .deliver(t.delivery(1, values(8, 1), s3Output({ maxObjectBytes: 2000 })))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3OutputConflictError);
    expect((err as S3OutputConflictError).key).toBe(manifestKey(t.loc, t.task, 1));
  });

  it('objects left without a manifest by a delivery under other options: the redelivery commits its own, the leftovers stay unread', async () => {
    const t = setup({ maxObjectBytes: 30 });
    const vs = values(8);
    const crashed = t.faulty.arm('crash-before', isManifest);
    void t.sink.deliver(t.delivery(1, vs));
    await crashed;
    const leftovers = [...(await snapshotPrefix(s3.client, bucket, t.root)).keys()];
    expect(leftovers.length).toBeGreaterThan(1);
    expect(await t.read()).toEqual([]); // objects without a manifest are not committed output
    const after = new S3OutputSink(
      { pipeline: t.pipeline, env: process.env, commitStore: 'memory' },
      { client: s3.client },
    );
    await after.deliver(t.delivery(1, vs, s3Output({ maxObjectBytes: 1000, gzip: true })));
    const [m] = await collect(
      listS3OutputManifests({ bucket, pipeline: t.pipeline, output: 'out', client: s3.client }),
    );
    expect(m!.objects.map((o) => o.key).some((k) => leftovers.includes(k))).toBe(false);
    expect(await t.read()).toEqual(vs);
    expect((await plainRead(s3.client, bucket, t.root)).map((r) => r.value)).toEqual(vs);
  });

  it('retries a conditional PUT answered 409 (a racing conditional PUT of the same key)', async () => {
    const t = setup();
    const fired = t.faulty.arm('conflict-409', () => true, { times: 3 });
    await t.sink.deliver(t.delivery(1, values(3)));
    await fired;
    expect(await t.read()).toEqual(values(3));
  });

  it('a lost response: retried by the SDK (412 then: its own write), or surfaced retriably and redelivered', async () => {
    const t = setup({ maxObjectBytes: 50 });
    const lost = Promise.all([
      t.faulty.arm('lose-response', isData),
      t.faulty.arm('lose-response', isManifest),
    ]);
    await t.sink.deliver(t.delivery(1, values(6)));
    await lost;
    expect(await t.read()).toEqual(values(6));

    const failed = t.faulty.arm('fail-after', isManifest);
    const err = await t.sink.deliver(t.delivery(2, values(4, 6))).catch((e: unknown) => e);
    await failed;
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).retriable).toBe(true);
    await t.sink.deliver(t.delivery(2, values(4, 6)));
    expect(await t.read()).toEqual(values(10));
  });

  it('two sinks racing the same delivery (a zombie and a retry) leave one copy of everything', async () => {
    const t = setup({ maxObjectBytes: 20, gzip: true });
    const d = t.delivery(4, values(12));
    const other = new S3OutputSink(
      { pipeline: t.pipeline, env: process.env, commitStore: 'memory' },
      { client: s3.client },
    );
    await Promise.all([t.sink.deliver(d), other.deliver(d), t.sink.deliver(d)]);
    expect(await t.read()).toEqual(values(12));
  });

  it('is deterministic: the same outputs and options give the same bytes, under any prefix (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.jsonValue({ maxDepth: 2 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 400 }),
        fc.boolean(),
        fc.boolean(),
        async (vs, maxObjectBytes, gzip, withIds) => {
          const a = setup({ maxObjectBytes, gzip, withIds, prefix: 'det-a' });
          // Same pipeline id, other prefixes.
          const bSink = new S3OutputSink(
            { pipeline: a.pipeline, env: process.env, commitStore: 'memory' },
            { client: s3.client },
          );
          const bDescriptor = s3Output<unknown>({ maxObjectBytes, gzip, withIds, prefix: 'det-b' });
          await a.sink.deliver(a.delivery(9, vs));
          await bSink.deliver({ ...a.delivery(9, vs, bDescriptor) });
          const rootA = `det-a/${a.pipeline}/out/`;
          const rootB = `det-b/${a.pipeline}/out/`;
          const objsA = await snapshotPrefix(s3.client, bucket, rootA);
          const objsB = await snapshotPrefix(s3.client, bucket, rootB);
          expect([...objsB.keys()]).toEqual([...objsA.keys()].map((k) => k.replace(rootA, rootB)));
          for (const [k, body] of objsA) {
            const other = objsB.get(k.replace(rootA, rootB))!;
            expect(
              k.includes('/manifests/') ? other.toString().replaceAll('det-b/', 'det-a/') : other,
            ).toEqual(k.includes('/manifests/') ? body.toString() : body);
          }
          const back = await collect(
            readS3Outputs({
              bucket,
              prefix: 'det-a',
              pipeline: a.pipeline,
              output: 'out',
              client: s3.client,
            }),
          );
          expect(back.map((r) => r.value)).toEqual(vs.map((v) => JSON.parse(JSON.stringify(v))));
        },
      ),
      { numRuns: 12 },
    );
  });

  it('the reader reads one task after a given epoch, and refuses an object that is not what its manifest says', async () => {
    const t = setup();
    for (let e = 1; e <= 3; e++) await t.sink.deliver(t.delivery(e, values(2, 10 * e)));
    const after1 = await collect(
      readS3Outputs({
        bucket,
        pipeline: t.pipeline,
        output: 'out',
        topic: 'orders',
        partition: 3,
        afterEpoch: 1,
        client: s3.client,
      }),
    );
    expect(after1.map((r) => r.epoch)).toEqual([2, 2, 3, 3]);
    expect(
      await collect(
        readS3Outputs({
          bucket,
          pipeline: t.pipeline,
          output: 'out',
          topic: 'orders',
          partition: 4,
          client: s3.client,
        }),
      ),
    ).toEqual([]);
    const key = dataKey(t.loc, t.task, 2, 0, {
      gzip: false,
      maxObjectBytes: 16 * 1024 * 1024,
      withIds: false,
    });
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: '{"n":0}\n{"n":1}\n' }));
    const err = await collect(
      readS3Outputs({ bucket, pipeline: t.pipeline, output: 'out', client: s3.client }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3OutputCorruptError);
    expect((err as S3OutputCorruptError).key).toBe(key);
  });

  it('refuses at emit time a value that cannot be serialized as one JSON line', () => {
    const d = s3Output<unknown>();
    expect(() => d.encode(10n, CTX)).toThrow();
    expect(() => d.encode(undefined, CTX)).toThrow(/serializes to nothing/);
    const custom = s3Output<string>({ serialize: (s) => s });
    expect(() => custom.encode('a\nb', CTX)).toThrow(/line break/);
    expect(custom.encode('"ok"', CTX)).toBe('"ok"');
    expect(() => s3Output({ prefix: '/abs' })).toThrow(/prefix/);
    expect(() => s3Output({ maxObjectBytes: 0 })).toThrow(/maxObjectBytes/);
  });
});
