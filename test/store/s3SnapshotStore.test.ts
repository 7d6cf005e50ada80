import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { ObjectExistsError, StoreError, StoreMissingError } from '../../lib/errors.ts';
import { createS3Client } from '../../lib/store/clients.ts';
import { S3SnapshotStore } from '../../lib/store/s3/S3SnapshotStore.ts';
import { s3Lite } from '../helpers/liteClients.ts';

const client = createS3Client();
const bucket = process.env.TIDEMARK_BUCKET!;
const prefix = () => `test/${randomUUID()}/`;

afterAll(() => client.destroy());

/** The store on both of its clients: the AWS SDK, and the lightweight transport the handler uses. */
const CLIENTS = [
  ['SDK', () => client, (env: Record<string, string | undefined>) => createS3Client(env)],
  ['lightweight client', () => s3Lite(), (env: Record<string, string | undefined>) => s3Lite(env)],
] as const;

describe.each(CLIENTS)('S3SnapshotStore (S3 server, %s)', (_name, current, at) => {
  const store = new S3SnapshotStore({ client: current(), bucket });

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
      client: current(),
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
    const missing = new S3SnapshotStore({ client: current(), bucket: `no-such-bucket-${Date.now()}` });
    const err = await missing.put('k', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreMissingError);
    expect((err as StoreError).retriable).toBe(false);
    await expect(missing.probe()).rejects.toBeInstanceOf(StoreMissingError);
    await expect(store.probe()).resolves.toBeUndefined();
  });

  it('reports an unreachable server as a retriable StoreError', async () => {
    const dead = new S3SnapshotStore({
      client: at({ ...process.env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9' }),
      bucket,
    });
    const err = await dead.get('k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).retriable).toBe(true);
  });

  it('keeps keys with spaces, +, =, ~, quotes, ampersands and non-ASCII exact (put, get, list, copy, delete)', async () => {
    const p = prefix();
    const names = ['a b', 'c+d=e', 'tilde~x', 'q\'uote"s', 'amp&lt;', 'é/ü/日本', 'paren(1)*!'];
    for (const n of names) await store.put(`${p}${n}`, Buffer.from(n));
    for (const n of names) expect(Buffer.from((await store.get(`${p}${n}`))!).toString()).toBe(n);
    const listed: string[] = [];
    for await (const o of store.list(p)) listed.push(o.key.slice(p.length));
    expect(listed.sort()).toEqual([...names].sort());
    // The copy's source is not a key with '+': the local S3 server reads %2B in x-amz-copy-source as
    // a space (both clients send %2B, as S3 expects); Tidemark's keys never hold '+' (pipeline ids
    // and topic names exclude it).
    expect(await store.copy(`${p}${names[3]}`, `${p}copied ${names[5]}`)).toBe(true);
    expect(Buffer.from((await store.get(`${p}copied ${names[5]}`))!).toString()).toBe(names[3]);
    expect(await store.copy(`${p}missing`, `${p}never`)).toBe(false);
    await store.delete([...names.map((n) => `${p}${n}`), `${p}copied ${names[5]}`]);
    const after: string[] = [];
    for await (const o of store.list(p)) after.push(o.key);
    expect(after).toEqual([]);
  });

  it('reads listing sizes and times', async () => {
    const p = prefix();
    const before = Date.now() - 60_000;
    await store.put(`${p}sized`, Buffer.alloc(1234, 1));
    const listed: Array<{ key: string; size: number; lastModified: Date }> = [];
    for await (const o of store.list(p)) listed.push(o);
    expect(listed).toHaveLength(1);
    expect(listed[0]!.size).toBe(1234);
    expect(listed[0]!.lastModified.getTime()).toBeGreaterThan(before);
  });
});
