/**
 * The S3 output sink: delivers a committed task-epoch's outputs as data objects, then a manifest.
 *
 * Per output of the delivery (see `layout.ts` for keys and bytes):
 *
 *   step                                  | a crash here leaves…                      | the redelivery…
 *   --------------------------------------+-------------------------------------------+---------------------------------------
 *   1 (epochs above 1 MiB) HEAD manifest: | nothing                                   | HEADs again
 *     there with this identity → done     |                                           |
 *   2 PUT each data object, If-None-Match:| some objects, no manifest: nothing a      | PUTs them again: 412 on those there;
 *     * (412: HEAD it; same content hash  | reader counts (not committed output)      | their hash matches (same outbox, same
 *     → there already, go on)             |                                           | options) → goes on
 *   3 PUT the manifest, If-None-Match: *  | every object and the manifest: delivered  | 412 on everything; the manifest there
 *     (412: HEAD it; same identity → done)|                                           | has the same identity → done
 *
 * A zombie (a container paused mid-delivery that resumes after another delivered the same epoch)
 * writes the same keys with the same bytes: every PUT of it answers 412 and changes nothing. A
 * racing conditional PUT answered 409 (ConditionalRequestConflict) is retried here.
 */
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3OutputConflictError, StoreError } from '../../errors.ts';
import type { Delivery, OutputPart, Sink, SinkEnvironment } from '../../output/types.ts';
import { createS3Client } from '../../store/clients.ts';
import { s3Error } from '../../store/s3/S3SnapshotStore.ts';
import {
  dataKey,
  encodeManifest,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  META,
  manifestKey,
  outputsSha256,
  planObjects,
  type S3OutputManifest,
  type S3OutputObject,
  sha256Hex,
} from './layout.ts';
import { type ResolvedS3OutputOptions, s3OutputBucket } from './s3Output.ts';

/** Data objects PUT at once, per output. */
const PUT_CONCURRENCY = 4;
/** Above this much data in an epoch, a redelivery first checks whether the manifest is there. */
const CHECK_MANIFEST_FIRST_ABOVE = 1024 * 1024;
/** Attempts of a conditional PUT answered 409 (a racing conditional PUT of the same key). */
const CONFLICT_ATTEMPTS = 6;

interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

const status = (err: unknown) => (err as SdkError | undefined)?.$metadata?.httpStatusCode;
const isPreconditionFailed = (err: unknown) =>
  status(err) === 412 || (err as SdkError | undefined)?.name === 'PreconditionFailed';
const isRaceConflict = (err: unknown) =>
  status(err) === 409 || (err as SdkError | undefined)?.name === 'ConditionalRequestConflict';
const isNotFound = (err: unknown) =>
  status(err) === 404 || ['NotFound', 'NoSuchKey'].includes((err as SdkError | undefined)?.name ?? '');

/** What identifies a written object's content (its `x-amz-meta-*`). */
interface ObjectIdentity {
  readonly sha256: string;
  readonly records: number;
  readonly firstId: string;
  readonly lastId: string;
}

/** What identifies an epoch's outputs, whatever their layout in objects. */
interface OutputsIdentity {
  readonly records: number;
  readonly firstId: string;
  readonly lastId: string;
  readonly outputsSha256: string;
}

function metadata(o: ObjectIdentity & Partial<OutputsIdentity>): Record<string, string> {
  return {
    [META.sha256]: o.sha256,
    [META.records]: String(o.records),
    [META.firstId]: o.firstId,
    [META.lastId]: o.lastId,
    ...(o.outputsSha256 ? { [META.outputsSha256]: o.outputsSha256 } : {}),
  };
}

export class S3OutputSink implements Sink {
  private readonly env: SinkEnvironment;
  private readonly given: S3Client | undefined;
  private defaultClient: S3Client | undefined;

  /** `client`: for the outputs that name none (default: one from the standard AWS environment). */
  constructor(env: SinkEnvironment, options: { client?: S3Client } = {}) {
    this.env = env;
    this.given = options.client;
  }

  private client(options: ResolvedS3OutputOptions): S3Client {
    if (options.client) return options.client;
    if (this.given) return this.given;
    this.defaultClient ??= createS3Client(this.env.env);
    return this.defaultClient;
  }

  async deliver(delivery: Delivery): Promise<void> {
    for (const part of delivery.parts) await this.deliverPart(delivery, part);
  }

  async close(): Promise<void> {
    this.defaultClient?.destroy();
    this.defaultClient = undefined;
  }

  private async deliverPart(delivery: Delivery, part: OutputPart): Promise<void> {
    if (part.entries.length === 0) return;
    const { task, epoch } = delivery;
    const options = part.descriptor.options as ResolvedS3OutputOptions;
    const bucket = s3OutputBucket(options, this.env.env);
    const client = this.client(options);
    const loc = { prefix: options.prefix, pipeline: task.pipeline, output: part.name };
    const planned = planObjects(task, epoch, part.entries, options);
    const manifestId: OutputsIdentity = {
      records: part.entries.length,
      firstId: planned[0]!.firstId,
      lastId: planned.at(-1)!.lastId,
      outputsSha256: outputsSha256(part.entries),
    };
    const mKey = manifestKey(loc, task, epoch);
    const put = new ConditionalPut(client, bucket);

    // Step 1: a large epoch is not uploaded again when it was delivered already.
    const total = planned.reduce((n, p) => n + p.body.length, 0);
    if (total > CHECK_MANIFEST_FIRST_ABOVE && (await put.manifestThere(mKey, manifestId))) return;

    // Step 2: the data objects.
    const objects: S3OutputObject[] = new Array(planned.length);
    let next = 0;
    const worker = async () => {
      while (next < planned.length) {
        const p = planned[next++]!;
        const key = dataKey(loc, task, epoch, p.part, options);
        const bytes = await put.data(
          key,
          p.body,
          options.gzip ? 'application/gzip' : 'application/x-ndjson',
          p,
        );
        objects[p.part] = {
          key,
          bytes,
          records: p.records,
          firstId: p.firstId,
          lastId: p.lastId,
          sha256: p.sha256,
        };
      }
    };
    // A small pool (hand-written: a dozen lines do not warrant a dependency).
    await Promise.all(Array.from({ length: Math.min(PUT_CONCURRENCY, planned.length) }, worker));

    // Step 3: the manifest, last.
    const manifest: S3OutputManifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      pipeline: task.pipeline,
      output: part.name,
      topic: task.topic,
      partition: task.partition,
      epoch,
      committedOffset: delivery.committedOffset.toString(),
      encoding: options.gzip ? 'jsonl.gz' : 'jsonl',
      withIds: options.withIds,
      ...manifestId,
      objects,
    };
    const body = encodeManifest(manifest);
    await put.manifest(mKey, body, { sha256: sha256Hex(body), ...manifestId });
  }
}

/** The conditional PUTs of one delivery, and what a 412 means for each kind of object. */
class ConditionalPut {
  private readonly client: S3Client;
  private readonly bucket: string;

  constructor(client: S3Client, bucket: string) {
    this.client = client;
    this.bucket = bucket;
  }

  /**
   * PUTs a data object unless it exists. Returns its stored size (the existing object's when it was
   * there: a gzip of another zlib version may differ in size, never in content).
   */
  async data(key: string, body: Buffer, contentType: string, id: ObjectIdentity): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      if (await this.putIfAbsent(key, body, contentType, metadata(id), attempt)) return body.length;
      const existing = await this.head(key);
      if (!existing) continue; // deleted meanwhile: create it again
      if (existing.metadata[META.sha256] === id.sha256) return existing.size;
      throw this.conflict(key, existing.metadata, 'its content hash differs');
    }
  }

  /**
   * PUTs a manifest unless it exists. An existing manifest of the same outputs means delivered, even
   * when it lists other objects (an earlier delivery, before a deploy changed `maxObjectBytes`,
   * `withIds` or `gzip`: its objects hold the same outputs).
   */
  async manifest(key: string, body: Buffer, id: ObjectIdentity & OutputsIdentity): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (await this.putIfAbsent(key, body, 'application/json', metadata(id), attempt)) return;
      const existing = await this.head(key);
      if (!existing) continue;
      if (sameOutputs(existing.metadata, id)) return;
      throw this.conflict(key, existing.metadata, 'it lists other outputs');
    }
  }

  /** Whether the manifest is there for these very outputs. */
  async manifestThere(key: string, id: OutputsIdentity): Promise<boolean> {
    const existing = await this.head(key);
    if (!existing) return false;
    if (sameOutputs(existing.metadata, id)) return true;
    throw this.conflict(key, existing.metadata, 'it lists other outputs');
  }

  /** True when created; false when the key exists (412). Retries a racing PUT's 409. */
  private async putIfAbsent(
    key: string,
    body: Buffer,
    contentType: string,
    metadata: Record<string, string>,
    round: number,
  ): Promise<boolean> {
    if (round > CONFLICT_ATTEMPTS) {
      throw new StoreError(
        's3',
        'put',
        `s3://${this.bucket}/${key}: created and deleted repeatedly meanwhile`,
      );
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: body,
            ContentType: contentType,
            Metadata: metadata,
            IfNoneMatch: '*',
          }),
        );
        return true;
      } catch (err) {
        if (isPreconditionFailed(err)) return false;
        if (isRaceConflict(err) && attempt < CONFLICT_ATTEMPTS) {
          // Another conditional PUT of the key is in flight: once it completes, ours gets 200 or 412.
          await new Promise((r) => setTimeout(r, 25 * 2 ** attempt * (0.5 + Math.random())));
          continue;
        }
        throw s3Error('put', this.bucket, err);
      }
    }
  }

  private async head(key: string): Promise<{ size: number; metadata: Record<string, string> } | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0, metadata: out.Metadata ?? {} };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Error('head', this.bucket, err);
    }
  }

  private conflict(key: string, existing: Record<string, string>, what: string): S3OutputConflictError {
    const first = existing[META.firstId];
    const detail = first
      ? `${what} (it holds ${existing[META.records]} output(s) from ${first}): another writer uses the same pipeline id, output name and prefix (two deployments of one pipeline id?), or the object was changed by hand`
      : `${what}: it was not written by Tidemark (give this output a prefix of its own)`;
    return new S3OutputConflictError(this.bucket, key, detail);
  }
}

function sameOutputs(meta: Record<string, string>, id: OutputsIdentity): boolean {
  return (
    meta[META.records] === String(id.records) &&
    meta[META.firstId] === id.firstId &&
    meta[META.lastId] === id.lastId &&
    meta[META.outputsSha256] === id.outputsSha256
  );
}
