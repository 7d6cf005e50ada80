/**
 * `S3Requests` over the S3 REST API: the ten calls the snapshot store makes, signed by the
 * lightweight transport. Addressing: with an endpoint override (local servers) path-style,
 * `<endpoint>/<bucket>/<key>`; on AWS virtual-hosted, `https://<bucket>.s3.<region>.amazonaws.com`,
 * path-style for bucket names with dots (a virtual host would not match the certificate).
 *
 * S3 answers in XML. The responses read here are S3's documented, flat shapes (an error's `Code` and
 * `Message`, an `UploadId`, a delete result's `Error` entries, a listing's `Contents`), so a few lines
 * of extraction with XML entity decoding do instead of an XML library: keeping one out of the
 * bundle is the point of this client (cold start, docs/performance.md).
 */
import { createHash } from 'node:crypto';
import type { S3Operation, S3Operations, S3Requests } from '../s3/requests.ts';
import { dnsSuffix, type LiteAwsSettings } from './environment.ts';
import {
  type AwsRequest,
  type AwsResponse,
  AwsServiceError,
  AwsTransport,
  type AwsTransportOptions,
  header,
} from './transport.ts';

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Decodes XML character and entity references. */
export function xmlText(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' ? Number.parseInt(ref.slice(2), 16) : Number.parseInt(ref.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return ENTITIES[ref] ?? m;
  });
}

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${Object.entries(ENTITIES).find(([, v]) => v === c)![0]};`);
}

/** The texts of every `<tag>…</tag>` in `xml` (elements without attributes, as S3 writes them). */
export function xmlAll(xml: string, tag: string): string[] {
  const out: string[] = [];
  const open = `<${tag}>`;
  const close = `</${tag}>`;
  for (let at = xml.indexOf(open); at >= 0; at = xml.indexOf(open, at)) {
    const end = xml.indexOf(close, at + open.length);
    if (end < 0) break;
    out.push(xml.slice(at + open.length, end));
    at = end + close.length;
  }
  return out;
}

export function xmlFirst(xml: string, tag: string): string | undefined {
  const v = xmlAll(xml, tag)[0];
  return v === undefined ? undefined : xmlText(v);
}

/** The error of an S3 response: `<Error><Code>…</Code><Message>…</Message></Error>`, or by status without a body (HEAD). */
export function parseS3Error(response: AwsResponse): { code: string; message: string } {
  const xml = response.body.toString('utf8');
  const code = xmlFirst(xml, 'Code');
  if (code) return { code, message: xmlFirst(xml, 'Message') ?? code };
  const byStatus: Record<number, string> = {
    301: 'PermanentRedirect',
    400: 'BadRequest',
    403: 'Forbidden',
    404: 'NotFound',
    409: 'Conflict',
    412: 'PreconditionFailed',
    503: 'SlowDown',
  };
  const name = byStatus[response.status] ?? `Http${response.status}`;
  return { code: name, message: `HTTP ${response.status}` };
}

/** S3 may answer CopyObject and CompleteMultipartUpload with 200 and an error in the body. */
function errorInBody(response: AwsResponse): void {
  const xml = response.body.toString('utf8', 0, Math.min(response.body.length, 512));
  if (!/<Error>/.test(xml)) return;
  const { code, message } = parseS3Error(response);
  throw new AwsServiceError(code, message, { status: response.status, retryable: true });
}

/** RFC 3986 encoding of one path segment (what SigV4 expects; `encodeURIComponent` leaves `!'()*`). */
function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function encodeKey(key: string): string {
  return key.split('/').map(encodeSegment).join('/');
}

/**
 * Where a request for `bucket` (and `key`) goes: path-style on an endpoint override or for a bucket
 * name with dots, virtual-hosted otherwise (`hostname` set).
 */
export function s3Address(
  settings: Pick<LiteAwsSettings, 'region' | 'endpoint'>,
  bucket: string,
  key?: string,
): Pick<AwsRequest, 'path' | 'hostname'> {
  const rest = key === undefined ? '' : encodeKey(key);
  if (settings.endpoint !== undefined || bucket.includes('.')) {
    return { path: key === undefined ? `/${encodeSegment(bucket)}` : `/${encodeSegment(bucket)}/${rest}` };
  }
  return { hostname: `${bucket}.s3.${settings.region}.${dnsSuffix(settings.region)}`, path: `/${rest}` };
}

export type LiteS3Options = Pick<
  AwsTransportOptions,
  'onRequest' | 'interceptAttempt' | 'maxAttempts' | 'timeouts'
>;

export function liteS3Requests(settings: LiteAwsSettings, options: LiteS3Options = {}): S3Requests {
  const regional = `s3.${settings.region}.${dnsSuffix(settings.region)}`;
  const transport = new AwsTransport({
    service: 's3',
    region: settings.region,
    endpoint: settings.endpoint ?? `https://${regional}`,
    credentials: settings.credentials,
    parseError: parseS3Error,
    ...options,
  });
  const target = (bucket: string, key?: string) => s3Address(settings, bucket, key);

  const send = (operation: S3Operation, request: AwsRequest) => transport.send(operation, request);

  const handlers: {
    [K in S3Operation]: (input: S3Operations[K]['input']) => Promise<S3Operations[K]['output']>;
  } = {
    async PutObject(i) {
      await send('PutObject', {
        method: 'PUT',
        ...target(i.Bucket, i.Key),
        headers: {
          'Content-Type': i.ContentType ?? 'application/octet-stream',
          ...(i.IfNoneMatch ? { 'If-None-Match': i.IfNoneMatch } : {}),
        },
        body: i.Body,
      });
      return {};
    },
    async CreateMultipartUpload(i) {
      const r = await send('CreateMultipartUpload', {
        method: 'POST',
        ...target(i.Bucket, i.Key),
        query: { uploads: '' },
        headers: { 'Content-Type': i.ContentType ?? 'application/octet-stream' },
      });
      const UploadId = xmlFirst(r.body.toString('utf8'), 'UploadId');
      return UploadId ? { UploadId } : {};
    },
    async UploadPart(i) {
      const r = await send('UploadPart', {
        method: 'PUT',
        ...target(i.Bucket, i.Key),
        query: { partNumber: String(i.PartNumber), uploadId: i.UploadId },
        body: i.Body,
      });
      const ETag = header(r.headers, 'etag');
      return ETag ? { ETag } : {};
    },
    async CompleteMultipartUpload(i) {
      const parts = i.MultipartUpload.Parts.map(
        (p) => `<Part><PartNumber>${p.PartNumber}</PartNumber><ETag>${xmlEscape(p.ETag)}</ETag></Part>`,
      ).join('');
      await send('CompleteMultipartUpload', {
        method: 'POST',
        ...target(i.Bucket, i.Key),
        query: { uploadId: i.UploadId },
        headers: {
          'Content-Type': 'application/xml',
          ...(i.IfNoneMatch ? { 'If-None-Match': i.IfNoneMatch } : {}),
        },
        body: `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${parts}</CompleteMultipartUpload>`,
        verify: errorInBody,
      });
      return {};
    },
    async AbortMultipartUpload(i) {
      await send('AbortMultipartUpload', {
        method: 'DELETE',
        ...target(i.Bucket, i.Key),
        query: { uploadId: i.UploadId },
      });
      return {};
    },
    async GetObject(i) {
      const r = await send('GetObject', { method: 'GET', ...target(i.Bucket, i.Key) });
      return { Body: new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength) };
    },
    async DeleteObjects(i) {
      const objects = i.Delete.Objects.map((o) => `<Object><Key>${xmlEscape(o.Key)}</Key></Object>`).join('');
      const body = `<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>${i.Delete.Quiet ? 'true' : 'false'}</Quiet>${objects}</Delete>`;
      const r = await send('DeleteObjects', {
        method: 'POST',
        ...target(i.Bucket),
        query: { delete: '' },
        headers: {
          'Content-Type': 'application/xml',
          // S3 requires an integrity header on DeleteObjects.
          'Content-MD5': createHash('md5').update(body).digest('base64'),
        },
        body,
      });
      const errors = xmlAll(r.body.toString('utf8'), 'Error').map((e) => ({
        Key: xmlFirst(e, 'Key'),
        Code: xmlFirst(e, 'Code'),
        Message: xmlFirst(e, 'Message'),
      }));
      return errors.length > 0 ? { Errors: errors } : {};
    },
    async CopyObject(i) {
      await send('CopyObject', {
        method: 'PUT',
        ...target(i.Bucket, i.Key),
        headers: { 'x-amz-copy-source': i.CopySource.startsWith('/') ? i.CopySource : `/${i.CopySource}` },
        verify: errorInBody,
      });
      return {};
    },
    async HeadBucket(i) {
      await send('HeadBucket', { method: 'HEAD', ...target(i.Bucket) });
      return {};
    },
    async ListObjectsV2(i) {
      const r = await send('ListObjectsV2', {
        method: 'GET',
        ...target(i.Bucket),
        query: {
          'list-type': '2',
          ...(i.Prefix !== undefined ? { prefix: i.Prefix } : {}),
          ...(i.ContinuationToken !== undefined ? { 'continuation-token': i.ContinuationToken } : {}),
          ...(i.MaxKeys !== undefined ? { 'max-keys': String(i.MaxKeys) } : {}),
        },
      });
      const xml = r.body.toString('utf8');
      const Contents = xmlAll(xml, 'Contents').map((c) => {
        const size = xmlFirst(c, 'Size');
        const modified = xmlFirst(c, 'LastModified');
        return {
          Key: xmlFirst(c, 'Key'),
          ...(size !== undefined ? { Size: Number(size) } : {}),
          ...(modified !== undefined ? { LastModified: new Date(modified) } : {}),
        };
      });
      const next = xmlFirst(xml, 'NextContinuationToken');
      return {
        Contents,
        IsTruncated: xmlFirst(xml, 'IsTruncated') === 'true',
        ...(next !== undefined ? { NextContinuationToken: next } : {}),
      };
    },
  };

  return {
    client: 'lite',
    send: (operation, input) =>
      (handlers[operation] as (i: typeof input) => Promise<S3Operations[typeof operation]['output']>)(input),
  };
}
