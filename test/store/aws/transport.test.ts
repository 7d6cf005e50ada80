/**
 * The lightweight AWS transport against a local HTTP server that plays the service: signatures
 * checked by an independent signer (the SDK's own), the retry rules, timeouts, clock skew and
 * DynamoDB's response checksum.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StoreError } from '../../../lib/errors.ts';
import { decodeDynamoJson, encodeDynamoJson, liteDynamoRequests } from '../../../lib/store/aws/dynamodb.ts';
import { dnsSuffix, liteAwsSettings } from '../../../lib/store/aws/environment.ts';
import { AwsServiceError, AwsTransport } from '../../../lib/store/aws/transport.ts';
import { DynamoCommitStore } from '../../../lib/store/dynamodb/DynamoCommitStore.ts';

const CREDENTIALS = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'token/+=',
};

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
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
      const s = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(s);
      const reply = replies.shift() ?? ((_s, r) => r.writeHead(200).end('{}'));
      reply(s, res);
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

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}): Reply =>
  (_s, res) =>
    res
      .writeHead(status, { 'content-type': 'application/x-amz-json-1.0', ...headers })
      .end(JSON.stringify(body));

function transport(options: Partial<ConstructorParameters<typeof AwsTransport>[0]> = {}) {
  return new AwsTransport({
    service: 'dynamodb',
    region: 'eu-west-1',
    endpoint,
    credentials: CREDENTIALS,
    parseError: (r) => ({
      code: JSON.parse(r.body.toString() || '{}').__type ?? `Http${r.status}`,
      message: 'm',
    }),
    ...options,
  });
}

/** Signs the request the server saw again with the SDK's signer, at the time it carries. */
async function sdkSignature(s: Seen, service: string, region: string): Promise<string> {
  const url = new URL(s.url, 'http://x');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.headers)) {
    if (k !== 'authorization' && k !== 'connection' && typeof v === 'string') headers[k] = v;
  }
  const signer = new SignatureV4({
    service,
    region,
    credentials: CREDENTIALS,
    sha256: Hash.bind(null, 'sha256'),
    // the payload hash header only where the request carries one (S3)
    applyChecksum: service === 's3',
  });
  const amzDate = headers['x-amz-date']!;
  const signingDate = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const signed = await signer.sign(
    {
      method: s.method,
      protocol: 'http:',
      hostname: headers.host!.split(':')[0]!,
      port: Number(headers.host!.split(':')[1]),
      path: decodeURIComponent(url.pathname),
      query: Object.fromEntries(url.searchParams),
      headers,
      body: s.body,
    },
    { signingDate, unsignableHeaders: new Set(['x-amzn-trace-id']) },
  );
  return String(signed.headers.authorization ?? signed.headers.Authorization);
}

describe('AwsTransport', () => {
  it('signs a DynamoDB request as the SDK signer does, with the session token', async () => {
    replies.push(json(200, { Item: { pk: { S: 'a' } } }));
    const requests = liteDynamoRequests({ region: 'eu-west-1', credentials: CREDENTIALS, endpoint });
    const out = await requests.send('GetItem', { TableName: 't', Key: { pk: { S: 'a' } } });
    expect(out).toEqual({ Item: { pk: { S: 'a' } } });
    const s = seen[0]!;
    expect(s.headers['x-amz-target']).toBe('DynamoDB_20120810.GetItem');
    expect(s.headers['x-amz-security-token']).toBe(CREDENTIALS.sessionToken);
    expect(s.headers.authorization).toBe(await sdkSignature(s, 'dynamodb', 'eu-west-1'));
  });

  it('signs an S3-style request with an encoded path and a query as the SDK signer does', async () => {
    replies.push((_s, res) => res.writeHead(200).end());
    const t = transport({ service: 's3' });
    await t.send('ListObjectsV2', {
      method: 'GET',
      path: `/bucket/${['a b', 'c+d=e', 'é~'].map(encodeURIComponent).join('/')}`,
      query: { 'list-type': '2', prefix: 'x y/z+', 'continuation-token': 'a/b=' },
    });
    const s = seen[0]!;
    expect(s.headers['x-amz-content-sha256']).toMatch(/^[0-9a-f]{64}$/);
    expect(s.headers.authorization).toBe(await sdkSignature(s, 's3', 'eu-west-1'));
  });

  it('retries 5xx and throttling with backoff, and counts every request', async () => {
    const ops: string[] = [];
    replies.push(
      json(503, { __type: 'ServiceUnavailable' }),
      json(400, { __type: 'ThrottlingException' }),
      json(200, {}),
    );
    await transport({
      onRequest: (op) => {
        ops.push(op);
        return undefined;
      },
    }).send('PutItem', {
      method: 'POST',
      path: '/',
      body: '{}',
    });
    expect(ops).toEqual(['PutItem', 'PutItem', 'PutItem']);
  });

  it('gives up after three attempts with a retryable error carrying the status', async () => {
    replies.push(
      json(500, { __type: 'InternalServerError' }),
      json(500, { __type: 'InternalServerError' }),
      json(500, { __type: 'InternalServerError' }),
    );
    const err = await transport()
      .send('PutItem', { method: 'POST', path: '/', body: '{}' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsServiceError);
    expect((err as AwsServiceError).name).toBe('InternalServerError');
    expect((err as AwsServiceError).$metadata).toMatchObject({ httpStatusCode: 500, attempts: 3 });
    expect(seen).toHaveLength(3);
  });

  it('does not retry a client error, and copies the fields the service sent', async () => {
    replies.push(
      json(400, {
        __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException',
        message: 'The conditional request failed',
        Item: { pk: { S: 'winner' }, b: { B: Buffer.from([9, 8]).toString('base64') } },
      }),
    );
    const requests = liteDynamoRequests({ region: 'eu-west-1', credentials: CREDENTIALS, endpoint });
    const err = (await requests
      .send('PutItem', { TableName: 't', Item: {} })
      .catch((e: unknown) => e)) as AwsServiceError;
    expect(err.name).toBe('ConditionalCheckFailedException');
    expect(err.message).toBe('The conditional request failed');
    expect(err.Item).toEqual({ pk: { S: 'winner' }, b: { B: new Uint8Array([9, 8]) } });
    expect(err.$retryable).toBe(false);
    expect(seen).toHaveLength(1);
  });

  it('retries a response whose x-amz-crc32 does not match its body', async () => {
    const body = JSON.stringify({ Item: { pk: { S: 'x' } } });
    replies.push(json(200, { Item: { pk: { S: 'x' } } }, { 'x-amz-crc32': String((crc32(body) + 1) >>> 0) }));
    replies.push(json(200, { Item: { pk: { S: 'x' } } }, { 'x-amz-crc32': String(crc32(body) >>> 0) }));
    const requests = liteDynamoRequests({ region: 'eu-west-1', credentials: CREDENTIALS, endpoint });
    expect(await requests.send('GetItem', { TableName: 't', Key: {} })).toEqual({ Item: { pk: { S: 'x' } } });
    expect(seen).toHaveLength(2);
  });

  it('signs again with the server time after a clock-skew error', async () => {
    const serverTime = new Date(Date.now() + 2 * 3600_000);
    replies.push(json(400, { __type: 'InvalidSignatureException' }, { date: serverTime.toUTCString() }));
    replies.push(json(200, {}));
    await transport().send('GetItem', { method: 'POST', path: '/', body: '{}' });
    expect(seen).toHaveLength(2);
    const d = seen[1]!.headers['x-amz-date'] as string;
    const signedAt = Date.parse(
      `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`,
    );
    expect(Math.abs(signedAt - serverTime.getTime())).toBeLessThan(60_000);
  });

  it('fails a request that gets no response within its timeout, retryably, after its attempts', async () => {
    for (let i = 0; i < 2; i++) replies.push(() => {}); // never answers
    const err = await transport({ timeouts: { requestTimeout: 200, socketTimeout: 200 }, maxAttempts: 2 })
      .send('GetItem', { method: 'POST', path: '/', body: '{}' })
      .catch((e: unknown) => e);
    expect((err as AwsServiceError).name).toBe('TimeoutError');
    expect((err as AwsServiceError).$retryable).toBe(true);
    expect((err as AwsServiceError).$metadata.httpStatusCode).toBeUndefined();
    expect(seen).toHaveLength(2);
  });

  it('retries a service-shaped error from an interceptor by the same rules, and ends on any other error as is', async () => {
    let calls = 0;
    const injected = Object.assign(new Error('injected'), {
      name: 'InternalError',
      $metadata: { httpStatusCode: 500 },
    });
    const flaky = transport({
      interceptAttempt: (_op, send) => (++calls === 1 ? Promise.reject(injected) : send()),
    });
    await flaky.send('GetItem', { method: 'POST', path: '/', body: '{}' });
    expect(calls).toBe(2);
    expect(seen).toHaveLength(1);
    class Crash extends Error {}
    const crash = new Crash('container died');
    let crashes = 0;
    const dying = transport({
      interceptAttempt: () => {
        crashes++;
        return Promise.reject(crash);
      },
    });
    await expect(dying.send('GetItem', { method: 'POST', path: '/', body: '{}' })).rejects.toBe(crash);
    expect(crashes).toBe(1);
  });

  it('maps an unreachable endpoint to a retriable StoreError through the commit store', async () => {
    const store = new DynamoCommitStore({
      client: liteDynamoRequests({
        region: 'eu-west-1',
        credentials: CREDENTIALS,
        endpoint: 'http://127.0.0.1:9',
      }),
      table: 't',
    });
    const err = await store.read({ pipeline: 'p', topic: 't', partition: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).retriable).toBe(true);
  });
});

describe('DynamoDB JSON', () => {
  it('sends bytes as base64 and reads B and BS back as bytes, leaving attributes named B alone', () => {
    const input = {
      Item: { B: { S: 'named B' }, b: { B: new Uint8Array([1, 2, 255]) }, s: { BS: [new Uint8Array([7])] } },
    };
    const wire = encodeDynamoJson(input);
    expect(JSON.parse(wire)).toEqual({
      Item: { B: { S: 'named B' }, b: { B: 'AQL/' }, s: { BS: ['Bw=='] } },
    });
    expect(decodeDynamoJson(wire)).toEqual(input);
  });
});

describe('liteAwsSettings', () => {
  const base = { AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 's' };
  it('reads region, credentials and the service endpoint override', () => {
    expect(
      liteAwsSettings('s3', { ...base, AWS_SESSION_TOKEN: 't', AWS_ENDPOINT_URL_S3: 'http://s3:1' }),
    ).toEqual({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 's', sessionToken: 't' },
      endpoint: 'http://s3:1',
    });
  });
  it('knows the DNS suffix of each partition', () => {
    expect(
      ['eu-west-1', 'us-gov-west-1', 'cn-north-1', 'eusc-de-east-1', 'us-iso-east-1', 'us-isob-east-1'].map(
        dnsSuffix,
      ),
    ).toEqual([
      'amazonaws.com',
      'amazonaws.com',
      'amazonaws.com.cn',
      'amazonaws.eu',
      'c2s.ic.gov',
      'sc2s.sgov.gov',
    ]);
  });
  it('says why it cannot serve an environment', () => {
    expect(liteAwsSettings('dynamodb', { AWS_REGION: 'eu-west-1' })).toHaveProperty(
      'unsupported',
      expect.stringMatching(/credentials/),
    );
    expect(liteAwsSettings('dynamodb', { ...base, AWS_REGION: undefined })).toHaveProperty(
      'unsupported',
      expect.stringMatching(/AWS_REGION/),
    );
    expect(liteAwsSettings('dynamodb', { ...base, AWS_USE_FIPS_ENDPOINT: 'true' })).toHaveProperty(
      'unsupported',
      expect.stringMatching(/FIPS/),
    );
  });
});

describe('the lightweight clients under plain Node', () => {
  it('load as ES modules without a bundler (aws4 is CommonJS)', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const [d, s] = await Promise.all([import('./lib/store/aws/dynamodb.ts'), import('./lib/store/aws/s3.ts')]); console.log(typeof d.liteDynamoRequests, typeof s.liteS3Requests);",
      ],
      { encoding: 'utf8' },
    );
    expect(out.trim()).toBe('function function');
  });
});
