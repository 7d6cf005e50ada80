import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SnapshotStore, StoredObject } from '../../checkpoint/stores.ts';
import { ConfigurationError, ObjectExistsError, StoreError, StoreMissingError } from '../../errors.ts';
import type { S3Operation, S3Operations, S3Requests } from './requests.ts';

/** Bodies above this go through a multipart upload (still conditional: If-None-Match on complete). */
export const MULTIPART_THRESHOLD = 64 * 1024 * 1024;
const MULTIPART_PART_SIZE = 16 * 1024 * 1024;
/** Parts of one multipart upload in flight at once. */
const MULTIPART_CONCURRENCY = 4;

interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

/** Maps an SDK error to the Tidemark tree. */
export function s3Error(operation: string, bucket: string, err: unknown): StoreError {
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? e.Code ?? 'Error';
  if (name === 'NoSuchBucket')
    return new StoreMissingError('s3', operation, `bucket ${bucket}`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  // 4xx other than throttling and conflicts will not get better by retrying.
  const retriable =
    status === undefined ||
    status >= 500 ||
    status === 429 ||
    status === 409 ||
    status === 408 ||
    name === 'SlowDown';
  if (status === 403 && /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch/.test(name)) {
    return new StoreMissingError('s3', operation, `bucket ${bucket} (${name})`, { cause: err });
  }
  return new StoreError('s3', operation, `${name}${status ? ` (HTTP ${status})` : ''}: ${message}`, {
    cause: err,
    retriable,
  });
}

function isPreconditionFailed(err: unknown): boolean {
  const e = (err ?? {}) as SdkError;
  return e.$metadata?.httpStatusCode === 412 || e.name === 'PreconditionFailed';
}

/** 409: another conditional write of the key was in progress (ConditionalRequestConflict). */
function isConflict(err: unknown): boolean {
  return ((err ?? {}) as SdkError).$metadata?.httpStatusCode === 409;
}

/**
 * A conditional PUT answered 409 is sent again, up to this many times in all, after a short
 * jittered backoff (the SDK's retry strategy does not retry a 409). S3 answers 409 when another
 * conditional write of the same key is in progress, as when the SDK's retry of this very PUT
 * overtakes its first attempt, still uploading: the next try meets the finished object (412,
 * `ObjectExistsError`) or, if that upload was abandoned, writes it.
 */
export const CONFLICT_ATTEMPTS = 5;
const CONFLICT_BACKOFF_MS = 50;

function isNoSuchKey(err: unknown): boolean {
  const e = (err ?? {}) as SdkError;
  return e.name === 'NoSuchKey' || (e.$metadata?.httpStatusCode === 404 && e.name !== 'NoSuchBucket');
}

function isRequests(client: S3Client | S3Requests): client is S3Requests {
  return typeof (client as S3Requests).client === 'string';
}

/**
 * Requests sent by an SDK client, whose adapter (and with it the SDK's commands) loads on first use.
 * A bundle built for the lightweight transport (the CDK construct defines
 * `process.env.TIDEMARK_BUNDLED_AWS_CLIENT` as `lite`) leaves this branch out, and the SDK with it.
 */
export function sdkS3RequestsOnFirstUse(client: S3Client): S3Requests {
  let loaded: Promise<S3Requests> | undefined;
  return {
    client: 'sdk',
    async send<K extends S3Operation>(operation: K, input: S3Operations[K]['input']) {
      if ((process.env.TIDEMARK_BUNDLED_AWS_CLIENT ?? 'sdk') === 'sdk') {
        loaded ??= import('./sdkRequests.ts').then((m) => m.sdkS3Requests(client));
        return (await loaded).send(operation, input);
      }
      throw new ConfigurationError(
        'TIDEMARK_BUNDLED_AWS_CLIENT',
        'this bundle was built without the AWS SDK S3 client (awsClient: lite); pass no client, or bundle with awsClient: sdk',
      );
    },
  };
}

export interface S3SnapshotStoreOptions {
  /** An AWS SDK v3 client, or requests of another client (the handler's lightweight transport). */
  client: S3Client | S3Requests;
  bucket: string;
  /** Bodies above this many bytes go through a multipart upload. Default 64 MiB (tests lower it). */
  multipartThresholdBytes?: number;
  /** Part size of a multipart upload (S3's minimum is 5 MiB, its last part excepted). Default 16 MiB. */
  multipartPartBytes?: number;
}

/** `SnapshotStore` on S3: immutable objects created with `If-None-Match: *`. */
export class S3SnapshotStore implements SnapshotStore {
  readonly bucket: string;
  private readonly client: S3Requests;
  private readonly multipartThreshold: number;
  private readonly partBytes: number;

  constructor(options: S3SnapshotStoreOptions) {
    this.client = isRequests(options.client) ? options.client : sdkS3RequestsOnFirstUse(options.client);
    this.bucket = options.bucket;
    this.multipartThreshold = options.multipartThresholdBytes ?? MULTIPART_THRESHOLD;
    this.partBytes = options.multipartPartBytes ?? MULTIPART_PART_SIZE;
  }

  async put(
    key: string,
    body: Uint8Array,
    options: { ifAbsent?: boolean; contentType?: string } = {},
  ): Promise<void> {
    const params = {
      Bucket: this.bucket,
      Key: key,
      Body: body,
      ContentType: options.contentType ?? 'application/octet-stream',
      ...((options.ifAbsent ?? true) ? { IfNoneMatch: '*' } : {}),
    };
    // A loop, not a retry library: one error, a handful of tries.
    for (let attempt = 1; ; attempt++) {
      try {
        if (body.length > this.multipartThreshold) {
          await this.putMultipart(params, body);
        } else {
          await this.client.send('PutObject', params);
        }
        return;
      } catch (err) {
        if (isPreconditionFailed(err)) throw new ObjectExistsError(key, { cause: err });
        if (params.IfNoneMatch === undefined || !isConflict(err) || attempt >= CONFLICT_ATTEMPTS) {
          throw s3Error('put', this.bucket, err);
        }
        // Full jitter: 0–50 ms, 0–100 ms, 0–200 ms, 0–400 ms.
        await sleep(Math.random() * CONFLICT_BACKOFF_MS * 2 ** (attempt - 1));
      }
    }
  }

  /**
   * A multipart upload of an object too large for one PUT, conditional on its completion (S3 checks
   * `If-None-Match` when it completes the upload); an upload that fails is aborted. Written here with
   * the client's own commands instead of `@aws-sdk/lib-storage`, which would add the whole S3 client's
   * command set to the Lambda bundle for objects this rare (and stream support Tidemark does not need).
   */
  private async putMultipart(
    params: { Bucket: string; Key: string; ContentType: string; IfNoneMatch?: string },
    body: Uint8Array,
  ): Promise<void> {
    const { Bucket, Key, ContentType, IfNoneMatch } = params;
    const { UploadId } = await this.client.send('CreateMultipartUpload', { Bucket, Key, ContentType });
    if (!UploadId)
      throw new StoreError('s3', 'put', `no upload id for a multipart upload of ${Key}`, { retriable: true });
    try {
      const count = Math.ceil(body.length / this.partBytes);
      const etags = new Array<string>(count);
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          const part = body.subarray(i * this.partBytes, Math.min(body.length, (i + 1) * this.partBytes));
          const out = await this.client.send('UploadPart', {
            Bucket,
            Key,
            UploadId,
            PartNumber: i + 1,
            Body: part,
          });
          etags[i] = out.ETag!;
        }
      };
      await Promise.all(Array.from({ length: Math.min(MULTIPART_CONCURRENCY, count) }, worker));
      await this.client.send('CompleteMultipartUpload', {
        Bucket,
        Key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        ...(IfNoneMatch ? { IfNoneMatch } : {}),
      });
    } catch (err) {
      // Best effort: the bucket's lifecycle rule aborts incomplete uploads anyway.
      await this.client.send('AbortMultipartUpload', { Bucket, Key, UploadId }).catch(() => undefined);
      throw err;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return (await this.client.send('GetObject', { Bucket: this.bucket, Key: key })).Body;
    } catch (err) {
      if (isNoSuchKey(err)) return undefined;
      throw s3Error('get', this.bucket, err);
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const chunk = keys.slice(i, i + 1000);
      let out: { Errors?: Array<{ Key?: string; Code?: string; Message?: string }> };
      try {
        out = await this.client.send('DeleteObjects', {
          Bucket: this.bucket,
          Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true },
        });
      } catch (err) {
        throw s3Error('delete', this.bucket, err);
      }
      const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        throw new StoreError(
          's3',
          'delete',
          `${errors.length} object(s) not deleted, first ${errors[0]?.Key}: ${errors[0]?.Code}`,
        );
      }
    }
  }

  /** Server-side CopyObject (objects up to 5 GB, the single-request limit). */
  async copy(fromKey: string, toKey: string): Promise<boolean> {
    const source = `${this.bucket}/${fromKey}`.split('/').map(encodeURIComponent).join('/');
    try {
      await this.client.send('CopyObject', { Bucket: this.bucket, Key: toKey, CopySource: source });
      return true;
    } catch (err) {
      if (isNoSuchKey(err)) return false;
      throw s3Error('copy', this.bucket, err);
    }
  }

  async probe(): Promise<void> {
    try {
      await this.client.send('HeadBucket', { Bucket: this.bucket });
    } catch (err) {
      const status = (err as SdkError).$metadata?.httpStatusCode;
      if (status === 404 || status === 403) {
        throw new StoreMissingError('s3', 'probe', `bucket ${this.bucket}`, { cause: err });
      }
      throw s3Error('probe', this.bucket, err);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    try {
      let token: string | undefined;
      do {
        const page = await this.client.send('ListObjectsV2', {
          Bucket: this.bucket,
          Prefix: prefix,
          ...(token !== undefined ? { ContinuationToken: token } : {}),
        });
        for (const o of page.Contents ?? []) {
          if (o.Key) yield { key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (err) {
      throw s3Error('list', this.bucket, err);
    }
  }
}
