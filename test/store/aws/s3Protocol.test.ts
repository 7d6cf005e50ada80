/**
 * The lightweight S3 client's protocol details against a local HTTP server playing S3 (the store
 * tests run it against the S3 server in test/store/s3SnapshotStore.test.ts): XML reading, errors
 * with and without a body, errors S3 sends with a 200, DeleteObjects' integrity header and results,
 * virtual-hosted addressing.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  liteS3Requests,
  parseS3Error,
  s3Address,
  xmlAll,
  xmlEscape,
  xmlFirst,
  xmlText,
} from '../../../lib/store/aws/s3.ts';
import type { AwsServiceError } from '../../../lib/store/aws/transport.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
type Reply = (seen: Seen, res: ServerResponse) => void;

let server: Server;
let endpoint = '';
let replies: Reply[] = [];
let seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = {
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(s);
      (replies.shift() ?? ((_s, r) => r.writeHead(200).end()))(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  replies = [];
  seen = [];
});

const xml =
  (status: number, body: string): Reply =>
  (_s, res) =>
    res
      .writeHead(status, { 'content-type': 'application/xml' })
      .end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);

const s3 = () =>
  liteS3Requests({ region: 'eu-west-1', credentials: { accessKeyId: 'a', secretAccessKey: 's' }, endpoint });

describe('XML', () => {
  it('decodes entities and character references, and escapes what it writes', () => {
    expect(xmlText('a&amp;b&lt;c&gt;d&quot;e&apos;f&#233;&#x65E5;&unknown;')).toBe(
      'a&b<c>d"e\'fé日&unknown;',
    );
    expect(xmlEscape(`<k a="1">&'`)).toBe('&lt;k a=&quot;1&quot;&gt;&amp;&apos;');
    const doc = '<R><Contents><Key>a&amp;b</Key></Contents><Contents><Key>c</Key></Contents></R>';
    expect(xmlAll(doc, 'Contents').map((c) => xmlFirst(c, 'Key'))).toEqual(['a&b', 'c']);
    expect(xmlFirst(doc, 'Missing')).toBeUndefined();
  });

  it('reads an error from its body, or from the status when there is none', () => {
    const body = Buffer.from(
      '<Error><Code>NoSuchKey</Code><Message>The key &lt;k&gt; does not exist</Message></Error>',
    );
    expect(parseS3Error({ status: 404, headers: {}, body })).toEqual({
      code: 'NoSuchKey',
      message: 'The key <k> does not exist',
    });
    expect(parseS3Error({ status: 404, headers: {}, body: Buffer.alloc(0) }).code).toBe('NotFound');
    expect(parseS3Error({ status: 412, headers: {}, body: Buffer.alloc(0) }).code).toBe('PreconditionFailed');
  });
});

describe('liteS3Requests', () => {
  it('retries a CopyObject that S3 answered 200 with an error, then succeeds', async () => {
    replies.push(xml(200, '<Error><Code>InternalError</Code><Message>retry</Message></Error>'));
    replies.push(xml(200, '<CopyObjectResult><ETag>"e"</ETag></CopyObjectResult>'));
    await s3().send('CopyObject', { Bucket: 'b', Key: 'to key', CopySource: 'b/from%20key' });
    expect(seen).toHaveLength(2);
    expect(seen[1]!.method).toBe('PUT');
    expect(seen[1]!.url).toBe('/b/to%20key');
    expect(seen[1]!.headers['x-amz-copy-source']).toBe('/b/from%20key');
  });

  it('sends DeleteObjects with its Content-MD5 and escaped keys, and returns the per-key errors', async () => {
    replies.push(
      xml(
        200,
        '<DeleteResult><Error><Key>a&amp;b</Key><Code>AccessDenied</Code><Message>no</Message></Error><Deleted><Key>c</Key></Deleted></DeleteResult>',
      ),
    );
    const out = await s3().send('DeleteObjects', {
      Bucket: 'b',
      Delete: { Objects: [{ Key: 'a&b' }, { Key: 'c' }], Quiet: true },
    });
    expect(out).toEqual({ Errors: [{ Key: 'a&b', Code: 'AccessDenied', Message: 'no' }] });
    const s = seen[0]!;
    expect(s.url).toBe('/b?delete=');
    expect(s.body).toContain('<Key>a&amp;b</Key>');
    expect(s.headers['content-md5']).toBe(createHash('md5').update(s.body).digest('base64'));
  });

  it('names a 412 PreconditionFailed and does not retry it', async () => {
    replies.push(
      xml(
        412,
        '<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>',
      ),
    );
    const err = (await s3()
      .send('PutObject', { Bucket: 'b', Key: 'k', Body: new Uint8Array([1]), IfNoneMatch: '*' })
      .catch((e: unknown) => e)) as AwsServiceError;
    expect(err.name).toBe('PreconditionFailed');
    expect(err.$metadata.httpStatusCode).toBe(412);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers['if-none-match']).toBe('*');
  });

  it('reads a listing page with its continuation token', async () => {
    replies.push(
      xml(
        200,
        '<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>p/a&amp;1</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified><Size>7</Size></Contents><NextContinuationToken>tok/+=</NextContinuationToken></ListBucketResult>',
      ),
    );
    const page = await s3().send('ListObjectsV2', { Bucket: 'b', Prefix: 'p/', ContinuationToken: 'prev' });
    expect(page).toEqual({
      Contents: [{ Key: 'p/a&1', Size: 7, LastModified: new Date('2026-01-02T03:04:05.000Z') }],
      IsTruncated: true,
      NextContinuationToken: 'tok/+=',
    });
    const url = new URL(seen[0]!.url, 'http://x');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      'list-type': '2',
      prefix: 'p/',
      'continuation-token': 'prev',
    });
  });

  it('addresses buckets virtual-hosted on AWS, path-style for dotted names and local endpoints', () => {
    expect(s3Address({ region: 'eu-west-1' }, 'my-bucket', 'a b/c+d')).toEqual({
      hostname: 'my-bucket.s3.eu-west-1.amazonaws.com',
      path: '/a%20b/c%2Bd',
    });
    expect(s3Address({ region: 'cn-north-1' }, 'b')).toEqual({
      hostname: 'b.s3.cn-north-1.amazonaws.com.cn',
      path: '/',
    });
    expect(s3Address({ region: 'eu-west-1' }, 'my.bucket', 'k')).toEqual({ path: '/my.bucket/k' });
    expect(s3Address({ region: 'eu-west-1', endpoint: 'http://127.0.0.1:1' }, 'b', 'x(1)!')).toEqual({
      path: '/b/x%281%29%21',
    });
    expect(s3Address({ region: 'eu-west-1', endpoint: 'http://127.0.0.1:1' }, 'b')).toEqual({ path: '/b' });
  });
});
