/**
 * How the Iceberg sink reads and writes files: by `s3://bucket/key` URI, as Iceberg tables name
 * every file. `S3FileIO` is the implementation; `ifAbsent` is S3's conditional create
 * (`If-None-Match: *`), which the catalogs and the staged-epoch records rely on.
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { IcebergError } from '../../errors.ts';
import { s3Error } from '../../store/s3/S3SnapshotStore.ts';

export interface IcebergFileIO {
  /** Writes a whole object. With `ifAbsent`, returns false (and writes nothing) when it already exists. */
  put(
    uri: string,
    body: Uint8Array,
    options?: { ifAbsent?: boolean; contentType?: string },
  ): Promise<boolean>;
  /** The object's bytes, or undefined when it does not exist. */
  get(uri: string): Promise<Uint8Array | undefined>;
  /** Deletes objects (missing ones are fine). */
  delete(uris: readonly string[]): Promise<void>;
  /** URIs of every object whose URI starts with `prefix`, in key order. */
  list(prefix: string): Promise<string[]>;
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3a?:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m) throw new IcebergError(`not an s3:// location: ${uri}`);
  return { bucket: m[1] as string, key: m[2] as string };
}

interface SdkError {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

function status(err: unknown): number | undefined {
  return (err as SdkError | undefined)?.$metadata?.httpStatusCode;
}

export class S3FileIO implements IcebergFileIO {
  private readonly client: S3Client;

  constructor(options: { client: S3Client }) {
    this.client = options.client;
  }

  async put(
    uri: string,
    body: Uint8Array,
    options: { ifAbsent?: boolean; contentType?: string } = {},
  ): Promise<boolean> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentLength: body.byteLength,
          ...(options.contentType ? { ContentType: options.contentType } : {}),
          ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}),
        }),
      );
      return true;
    } catch (err) {
      // 412: the object exists. 409: a concurrent conditional write to the same key is in flight;
      // S3 lets one of them win, so this one is treated as having lost.
      if (options.ifAbsent && (status(err) === 412 || status(err) === 409)) return false;
      throw s3Error('put', bucket, err);
    }
  }

  async get(uri: string): Promise<Uint8Array | undefined> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
    } catch (err) {
      const e = err as SdkError;
      if (e.name === 'NoSuchKey' || (status(err) === 404 && e.name !== 'NoSuchBucket')) return undefined;
      throw s3Error('get', bucket, err);
    }
  }

  async delete(uris: readonly string[]): Promise<void> {
    const byBucket = new Map<string, string[]>();
    for (const uri of uris) {
      const { bucket, key } = parseS3Uri(uri);
      byBucket.set(bucket, [...(byBucket.get(bucket) ?? []), key]);
    }
    for (const [bucket, keys] of byBucket) {
      for (let i = 0; i < keys.length; i += 1000) {
        try {
          const out = await this.client.send(
            new DeleteObjectsCommand({
              Bucket: bucket,
              Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
            }),
          );
          const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
          if (failed.length > 0) {
            throw new IcebergError(
              `deleting ${failed.length} object(s) failed, first ${failed[0]?.Key}: ${failed[0]?.Code}`,
              {
                retriable: true,
              },
            );
          }
        } catch (err) {
          if (err instanceof IcebergError) throw err;
          throw s3Error('delete', bucket, err);
        }
      }
    }
  }

  async list(prefix: string): Promise<string[]> {
    const { bucket, key } = parseS3Uri(prefix);
    const out: string[] = [];
    try {
      for await (const page of paginateListObjectsV2(
        { client: this.client },
        { Bucket: bucket, Prefix: key },
      )) {
        for (const o of page.Contents ?? []) if (o.Key) out.push(`s3://${bucket}/${o.Key}`);
      }
    } catch (err) {
      throw s3Error('list', bucket, err);
    }
    return out;
  }
}
