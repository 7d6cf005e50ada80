/**
 * Reading an S3 output the way every reader must: through its manifests. A manifest is written last,
 * after every object it lists, and only for a committed epoch; an object no manifest lists is not
 * committed output (a delivery under way, or the leftover of one that a later delivery completed
 * under other keys). The reader protocol:
 *
 * 1. list `<prefix>/<pipeline>/<output>/manifests/` (or one task's folder below it): keys come out
 *    per task in epoch order (zero-padded), tasks in key order;
 * 2. per manifest, GET each object it lists, in order; its lines are the epoch's outputs of that
 *    output, in emit order (gunzip first for `jsonl.gz`);
 * 3. remember, per task, the last epoch read: manifests appear in epoch order per task (a task's
 *    next epoch commits only after the previous one's outputs were delivered), so a later listing
 *    can start after it (`afterEpoch`) and never misses one.
 *
 * The AWS SDK is loaded on first use, like the sink's.
 */
import { gunzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { S3OutputCorruptError } from '../../errors.ts';
import {
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  manifestKey,
  manifestPrefix,
  type S3OutputLocation,
  type S3OutputManifest,
  sha256Hex,
} from './layout.ts';
import { S3_OUTPUT_DEFAULTS } from './s3Output.ts';

export interface ReadS3OutputsOptions {
  readonly bucket: string;
  /** The output's prefix. Default `tidemark-outputs` (as `s3Output`'s). */
  readonly prefix?: string;
  readonly pipeline: string;
  /** The output's declared name. */
  readonly output: string;
  /** Only this topic (and partition). */
  readonly topic?: string;
  readonly partition?: number;
  /** Only epochs above this one (needs `topic` and `partition`: epochs are per task). */
  readonly afterEpoch?: number;
  /** Default: a client from the standard AWS environment (closed when the reading ends). */
  readonly client?: S3Client;
}

/** One committed output, as a reader gets it back. */
export interface S3OutputRecord<T = unknown> {
  readonly value: T;
  /** `pipeline/topic/partition/epoch/seq`, when the output writes ids (`withIds`). */
  readonly id: string | undefined;
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  /** The object it was read from. */
  readonly key: string;
}

interface Sdk {
  client: S3Client;
  sdk: typeof import('@aws-sdk/client-s3');
  owned: boolean;
}

async function connect(client: S3Client | undefined): Promise<Sdk> {
  const sdk = await import('@aws-sdk/client-s3');
  if (client) return { client, sdk, owned: false };
  const { createS3Client } = await import('../../store/clients.ts');
  return { client: createS3Client(), sdk, owned: true };
}

async function getBytes(s: Sdk, bucket: string, key: string): Promise<Uint8Array> {
  const out = await s.client.send(new s.sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
  return out.Body ? await out.Body.transformToByteArray() : new Uint8Array(0);
}

function location(o: ReadS3OutputsOptions): S3OutputLocation {
  return { prefix: o.prefix ?? S3_OUTPUT_DEFAULTS.prefix, pipeline: o.pipeline, output: o.output };
}

function listPrefix(o: ReadS3OutputsOptions): { prefix: string; startAfter: string | undefined } {
  if (o.partition !== undefined && o.topic === undefined) throw new TypeError('partition needs topic');
  if (o.afterEpoch !== undefined && (o.topic === undefined || o.partition === undefined)) {
    throw new TypeError('afterEpoch needs topic and partition');
  }
  const loc = location(o);
  const prefix = manifestPrefix(
    loc,
    o.topic === undefined ? undefined : { topic: o.topic, partition: o.partition },
  );
  const startAfter =
    o.afterEpoch === undefined
      ? undefined
      : manifestKey(loc, { topic: o.topic!, partition: o.partition! }, o.afterEpoch);
  return { prefix, startAfter };
}

function parseManifest(key: string, bytes: Uint8Array, o: ReadS3OutputsOptions): S3OutputManifest {
  let m: S3OutputManifest;
  try {
    m = JSON.parse(Buffer.from(bytes).toString('utf8')) as S3OutputManifest;
  } catch (err) {
    throw new S3OutputCorruptError(key, 'manifest is not JSON', { cause: err });
  }
  if (m?.format !== MANIFEST_FORMAT || m.version !== MANIFEST_VERSION) {
    throw new S3OutputCorruptError(key, `not a manifest of version ${MANIFEST_VERSION}`);
  }
  if (m.pipeline !== o.pipeline || m.output !== o.output || manifestKey(location(o), m, m.epoch) !== key) {
    throw new S3OutputCorruptError(
      key,
      `manifest of ${m.pipeline}/${m.output} ${m.topic}-${m.partition} epoch ${m.epoch} at the wrong key`,
    );
  }
  return m;
}

/**
 * The committed manifests of an output, per task in epoch order (tasks in key order). Each is
 * checked to be a manifest of this output at its own key.
 */
export async function* listS3OutputManifests(
  options: ReadS3OutputsOptions,
): AsyncGenerator<S3OutputManifest> {
  const { prefix, startAfter } = listPrefix(options);
  const s = await connect(options.client);
  try {
    for await (const page of s.sdk.paginateListObjectsV2(
      { client: s.client },
      { Bucket: options.bucket, Prefix: prefix, ...(startAfter ? { StartAfter: startAfter } : {}) },
    )) {
      for (const o of page.Contents ?? []) {
        if (!o.Key?.endsWith('.json')) continue;
        yield parseManifest(o.Key, await getBytes(s, options.bucket, o.Key), options);
      }
    }
  } finally {
    if (s.owned) s.client.destroy();
  }
}

/**
 * Every committed output of an S3 output, in order: per task, epoch by epoch, in emit order. Each
 * object is checked against its manifest (record count and content hash): a mismatch rejects with
 * `S3OutputCorruptError`. `parse` turns a line (a value's JSON) into the value (default `JSON.parse`).
 */
export async function* readS3Outputs<T = unknown>(
  options: ReadS3OutputsOptions & { readonly parse?: (line: string) => T },
): AsyncGenerator<S3OutputRecord<T>> {
  const parse = options.parse ?? ((line: string) => JSON.parse(line) as T);
  const s = await connect(options.client);
  try {
    for await (const m of listS3OutputManifests({ ...options, client: s.client })) {
      let count = 0;
      for (const object of m.objects) {
        const stored = await getBytes(s, options.bucket, object.key);
        let content: Buffer;
        try {
          content = m.encoding === 'jsonl.gz' ? gunzipSync(stored) : Buffer.from(stored);
        } catch (err) {
          throw new S3OutputCorruptError(object.key, 'not gzip', { cause: err });
        }
        if (sha256Hex(content) !== object.sha256) {
          throw new S3OutputCorruptError(
            object.key,
            'content differs from what the manifest lists (SHA-256)',
          );
        }
        const text = content.toString('utf8');
        const lines = text.length === 0 ? [] : text.slice(0, -1).split('\n');
        if (!text.endsWith('\n') || lines.length !== object.records) {
          throw new S3OutputCorruptError(
            object.key,
            `${lines.length} line(s), the manifest lists ${object.records}`,
          );
        }
        for (const line of lines) {
          let id: string | undefined;
          let value: T;
          if (m.withIds) {
            // `{"id":"…","value":<the value's line>}`, as the sink writes it: the value's own text is cut out.
            id = (JSON.parse(line) as { id: string }).id;
            value = parse(line.slice(`{"id":${JSON.stringify(id)},"value":`.length, -1));
          } else {
            value = parse(line);
          }
          count++;
          yield { value, id, topic: m.topic, partition: m.partition, epoch: m.epoch, key: object.key };
        }
      }
      if (count !== m.records) {
        throw new S3OutputCorruptError(
          manifestKey(location(options), m, m.epoch),
          `${count} record(s) in its objects, it says ${m.records}`,
        );
      }
    }
  } finally {
    if (s.owned) s.client.destroy();
  }
}
