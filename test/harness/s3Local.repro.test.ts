/**
 * Repro (found by the fault campaign): the local S3 server's conditional-write shim
 * (harness/s3Local.ts) takes a per-key lock around a conditional PUT and releases it when the
 * request is handled. A client that gives up halfway through the body (a socket closed mid-upload:
 * a killed process, a client timeout) leaves s3rver's handler waiting forever, so the lock is never
 * released and every later conditional PUT of that key hangs. Snapshot keys are unique per attempt,
 * but quarantine keys are one per offset: a poison record whose quarantine PUT was cut off wedges
 * its task for good on the local stack (real S3 has no such lock).
 *
 * Expected (and fixed): the second PUT answers (412, the object does not exist, or 200): the shim
 * releases the lock when the connection closes.
 */
import http from 'node:http';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type S3Local, S3RVER_CREDENTIALS, startS3Local } from '../../harness/s3Local.ts';

let s3: S3Local;
let client: S3Client;

const newClient = () =>
  new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestHandler: { requestTimeout: 3_000, throwOnRequestTimeout: true },
    maxAttempts: 1,
  });

/** The signed HTTP request `command` would send (path and headers), without sending it. */
async function captureSigned(
  command: PutObjectCommand,
): Promise<{ path: string; headers: Record<string, string> }> {
  let signed: { path: string; headers: Record<string, string> } | undefined;
  const capture = newClient();
  capture.middlewareStack.add(
    () => async (args) => {
      const req = (args as unknown as { request: { path: string; headers: Record<string, string> } }).request;
      signed = { path: req.path, headers: { ...req.headers } };
      throw new Error('captured');
    },
    { step: 'finalizeRequest', priority: 'low', name: 'captureSignedRequest' },
  );
  await capture.send(command).catch(() => undefined);
  capture.destroy();
  if (!signed) throw new Error('no request was signed');
  return signed;
}

beforeAll(async () => {
  s3 = await startS3Local({ buckets: ['repro'] });
  client = newClient();
});

afterAll(async () => {
  client.destroy();
  await s3.stop();
});

it('answers a conditional PUT after an earlier one of the same key was abandoned mid-body', async () => {
  const key = 'quarantine/orders/0/00000000000000000007.json';
  const put = () =>
    new PutObjectCommand({ Bucket: 'repro', Key: key, Body: Buffer.alloc(100, 1), IfNoneMatch: '*' });
  // Capture a signed conditional PUT without sending it...
  const signed = await captureSigned(put());
  // ...then send its head and a tenth of its body, and close the socket.
  const port = Number(new URL(s3.endpoint).port);
  await new Promise<void>((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: signed.path,
      headers: signed.headers,
    });
    req.on('error', () => resolve());
    req.write(Buffer.alloc(10, 1));
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 200);
  });
  const outcome = await client.send(put()).then(
    () => 'created',
    (e: { name?: string; $metadata?: { httpStatusCode?: number } }) =>
      `${e.name} ${e.$metadata?.httpStatusCode ?? ''}`,
  );
  expect(outcome).not.toMatch(/^TimeoutError/);
});

/**
 * Repro (found by the fault campaign, the S3 output sink under load): s3rver writes an object's file
 * as the body arrives and its metadata after it, so a HEAD during a PUT found an object without its
 * metadata, which S3 never shows (an object appears whole once its PUT completed). The sink, whose
 * PUT had timed out client-side and whose retry got 412, took the half-written object for one "not
 * written by Tidemark". Expected (and fixed): HEAD and GET answer 404 until the PUT completed.
 */
it('shows an object being created only once its PUT completed, data and metadata together', async () => {
  const key = 'outputs/data/orders/0/000000000001.jsonl';
  const body = Buffer.alloc(64 * 1024, 7);
  const signed = await captureSigned(
    new PutObjectCommand({
      Bucket: 'repro',
      Key: key,
      Body: body,
      IfNoneMatch: '*',
      Metadata: { 'tidemark-sha256': 'abc' },
    }),
  );
  const head = () =>
    client.send(new HeadObjectCommand({ Bucket: 'repro', Key: key })).then(
      (r) => ({ status: 200, metadata: r.Metadata }),
      (e: { $metadata?: { httpStatusCode?: number } }) => ({ status: e.$metadata?.httpStatusCode }),
    );
  const port = Number(new URL(s3.endpoint).port);
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'PUT',
    path: signed.path,
    headers: signed.headers,
  });
  const answered = new Promise<number | undefined>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', reject);
  });
  req.write(body.subarray(0, body.length / 2));
  // Half the body is on the server (s3rver has begun the object's file).
  await new Promise((r) => setTimeout(r, 300));
  expect(await head()).toEqual({ status: 404 });
  req.end(body.subarray(body.length / 2));
  expect(await answered).toBe(200);
  expect(await head()).toEqual({ status: 200, metadata: { 'tidemark-sha256': 'abc' } });
});

/**
 * Repro (found by the fault campaign's full run: a manifest read back was truncated, "not JSON"):
 * s3rver wrote a PUT's body straight into the object's file, so a PUT cut short (not conditional:
 * the conditional shim undoes those) left a truncated object, and the answer could precede the
 * file's flush. S3 stores an object whole or not at all. Expected (and fixed): no object, and a
 * completed PUT reads back whole.
 */
it('stores a PUT whole or not at all', async () => {
  const key = 'outputs/manifests/orders/6/000000000225.json';
  const body = Buffer.from(JSON.stringify({ objects: Array.from({ length: 2000 }, (_, i) => `part-${i}`) }));
  const signed = await captureSigned(new PutObjectCommand({ Bucket: 'repro', Key: key, Body: body }));
  const port = Number(new URL(s3.endpoint).port);
  await new Promise<void>((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: signed.path,
      headers: signed.headers,
    });
    req.on('error', () => resolve());
    req.write(body.subarray(0, 1000));
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 300);
  });
  await new Promise((r) => setTimeout(r, 200));
  const head = await client.send(new HeadObjectCommand({ Bucket: 'repro', Key: key })).then(
    (r) => r.ContentLength,
    (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode,
  );
  expect(head).toBe(404);
  await client.send(new PutObjectCommand({ Bucket: 'repro', Key: key, Body: body }));
  const got = await client.send(new GetObjectCommand({ Bucket: 'repro', Key: key }));
  expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(body);
});
