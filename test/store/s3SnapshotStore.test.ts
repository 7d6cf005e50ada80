import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { ObjectExistsError, StoreError, StoreMissingError } from '../../lib/errors.ts';
import { createS3Client } from '../../lib/store/clients.ts';
import { S3SnapshotStore } from '../../lib/store/s3/S3SnapshotStore.ts';

const client = createS3Client();
const bucket = process.env.TIDEMARK_BUCKET!;
const store = new S3SnapshotStore({ client, bucket });
const prefix = () => `test/${randomUUID()}/`;

afterAll(() => client.destroy());

describe('S3SnapshotStore (S3 server)', () => {
  it('creates, reads and deletes objects; a missing object reads as undefined', async () => {
    const p = prefix();
    const body = Buffer.from([0, 1, 2, 255]);
    await store.put(`${p}a`, body);
    expect(Buffer.from((await store.get(`${p}a`))!)).toEqual(body);
    expect(await store.get(`${p}missing`)).toBeUndefined();
    await store.delete([`${p}a`, `${p}never-existed`]);
    expect(await store.get(`${p}a`)).toBeUndefined();
  });

  it('refuses to overwrite with If-None-Match: * and lets exactly one of racing creators win', async () => {
    const key = `${prefix()}snap`;
    await store.put(key, Buffer.from('first'));
    await expect(store.put(key, Buffer.from('second'))).rejects.toBeInstanceOf(ObjectExistsError);
    expect(Buffer.from((await store.get(key))!).toString()).toBe('first');
    await store.put(key, Buffer.from('overwrite'), { ifAbsent: false });
    expect(Buffer.from((await store.get(key))!).toString()).toBe('overwrite');

    const raced = `${prefix()}race`;
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => store.put(raced, Buffer.from(`w${i}`))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(
      results.filter((r) => r.status === 'rejected' && r.reason instanceof ObjectExistsError),
    ).toHaveLength(11);
  });

  it('lists a prefix across pages, in key order', async () => {
    const p = prefix();
    const keys = Array.from({ length: 1005 }, (_, i) => `${p}${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 100)
      await Promise.all(keys.slice(i, i + 100).map((k) => store.put(k, Buffer.from('x'))));
    const listed: string[] = [];
    for await (const o of store.list(p)) listed.push(o.key);
    expect(listed).toEqual(keys);
    await store.delete(keys);
    const after: string[] = [];
    for await (const o of store.list(p)) after.push(o.key);
    expect(after).toEqual([]);
  });

  it('stores stream bodies byte for byte (checksums only when required against local servers)', async () => {
    const key = `${prefix()}stream`;
    const body = Buffer.alloc(256 * 1024, 7);
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: Readable.from([body]),
        ContentLength: body.length,
      }),
    );
    expect(Buffer.from((await store.get(key))!)).toEqual(body);
  });

  it('uploads a large body in parts, conditionally: the exact bytes, and If-None-Match on completion', async () => {
    const big = new S3SnapshotStore({
      client,
      bucket,
      multipartThresholdBytes: 4 << 20,
      multipartPartBytes: 5 << 20,
    });
    const key = `${prefix()}big.snap`;
    const body = Buffer.alloc(11 << 20);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32LE(i, i); // every part differs
    await big.put(key, body);
    expect(Buffer.compare(Buffer.from((await big.get(key))!), body)).toBe(0);
    await expect(big.put(key, Buffer.alloc(6 << 20))).rejects.toBeInstanceOf(ObjectExistsError);
    expect(Buffer.compare(Buffer.from((await big.get(key))!), body)).toBe(0);
  });

  it('reports a missing bucket as StoreMissingError, not retriable', async () => {
    const missing = new S3SnapshotStore({ client, bucket: `no-such-bucket-${Date.now()}` });
    const err = await missing.put('k', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreMissingError);
    expect((err as StoreError).retriable).toBe(false);
    await expect(missing.probe()).rejects.toBeInstanceOf(StoreMissingError);
    await expect(store.probe()).resolves.toBeUndefined();
  });

  it('reports an unreachable server as a retriable StoreError', async () => {
    const dead = new S3SnapshotStore({
      client: createS3Client({ ...process.env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9' }),
      bucket,
    });
    const err = await dead.get('k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).retriable).toBe(true);
  });
});
