/**
 * `s3Output`: an output written to S3 as JSON lines, exactly once per committed epoch (see
 * docs/outputs.md#s3 and `layout.ts`). This module declares the output; the AWS SDK is loaded only
 * when the sink is first built (`S3OutputSink.ts`), so a processor that declares no S3 output never
 * loads it through here.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { ConfigurationError } from '../../errors.ts';
import type { OutputDescriptor, SinkEnvironment } from '../../output/types.ts';

export const S3_OUTPUT_DEFAULTS = {
  prefix: 'tidemark-outputs',
  gzip: false,
  gzipLevel: 6,
  maxObjectBytes: 16 * 1024 * 1024,
  withIds: false,
} as const;

/** The largest single PUT S3 accepts. */
const MAX_OBJECT_BYTES = 5 * 1024 ** 3;

export interface S3OutputOptions<T> {
  /** Bucket. Default: `TIDEMARK_S3_OUTPUT_BUCKET`, else the pipeline's bucket (`TIDEMARK_BUCKET`). */
  readonly bucket?: string;
  /**
   * Key prefix, without leading or trailing `/`. Default `tidemark-outputs`. Keys below it are
   * `<pipeline>/<output name>/…`; two pipelines may share a prefix, as long as their ids differ.
   */
  readonly prefix?: string;
  /**
   * Turns a value into its JSON line (without the line break), at emit time. Default
   * `JSON.stringify`. A value it cannot serialize (it throws, or returns no string, or a string with
   * a line break) fails the record, which is rolled back like any failing record.
   */
  readonly serialize?: (value: T) => string;
  /** Gzip the objects (`.jsonl.gz`). Default false. */
  readonly gzip?: boolean;
  /** Gzip level, 0–9. Default 6. */
  readonly gzipLevel?: number;
  /**
   * An epoch's lines go to several objects (parts) above this many uncompressed bytes, cut at line
   * boundaries. Default 16 MiB.
   */
  readonly maxObjectBytes?: number;
  /** Write each line as `{"id":"<output id>","value":<value>}`. Default false (the value alone). */
  readonly withIds?: boolean;
  /** The S3 client. Default: one per container, from the standard AWS environment. */
  readonly client?: S3Client;
}

/** The options as the sink reads them (`descriptor.options`). */
export type ResolvedS3OutputOptions = {
  readonly bucket: string | undefined;
  readonly prefix: string;
  readonly gzip: boolean;
  readonly gzipLevel: number;
  readonly maxObjectBytes: number;
  readonly withIds: boolean;
  readonly client: S3Client | undefined;
};

/** The same alphabet as `TIDEMARK_PREFIX`. */
const PREFIX = /^[A-Za-z0-9._/-]{1,256}$/;

function resolve<T>(options: S3OutputOptions<T>): ResolvedS3OutputOptions {
  const prefix = options.prefix ?? S3_OUTPUT_DEFAULTS.prefix;
  if (!PREFIX.test(prefix) || prefix.startsWith('/') || prefix.endsWith('/') || prefix.includes('//')) {
    throw new ConfigurationError(
      's3Output.prefix',
      `s3Output: prefix must be a relative key prefix without leading or trailing '/', got ${JSON.stringify(prefix)}`,
    );
  }
  const gzipLevel = options.gzipLevel ?? S3_OUTPUT_DEFAULTS.gzipLevel;
  if (!Number.isInteger(gzipLevel) || gzipLevel < 0 || gzipLevel > 9) {
    throw new ConfigurationError(
      's3Output.gzipLevel',
      `s3Output: gzipLevel must be 0 to 9, got ${gzipLevel}`,
    );
  }
  const maxObjectBytes = options.maxObjectBytes ?? S3_OUTPUT_DEFAULTS.maxObjectBytes;
  if (!Number.isSafeInteger(maxObjectBytes) || maxObjectBytes <= 0 || maxObjectBytes > MAX_OBJECT_BYTES) {
    throw new ConfigurationError(
      's3Output.maxObjectBytes',
      `s3Output: maxObjectBytes must be a positive integer up to 5 GiB, got ${maxObjectBytes}`,
    );
  }
  if (options.bucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
    throw new ConfigurationError(
      's3Output.bucket',
      `s3Output: invalid bucket name ${JSON.stringify(options.bucket)}`,
    );
  }
  return {
    bucket: options.bucket,
    prefix,
    gzip: options.gzip ?? S3_OUTPUT_DEFAULTS.gzip,
    gzipLevel,
    maxObjectBytes,
    withIds: options.withIds ?? S3_OUTPUT_DEFAULTS.withIds,
    client: options.client,
  };
}

/** The bucket of an output: its own, else `TIDEMARK_S3_OUTPUT_BUCKET`, else `TIDEMARK_BUCKET`. */
export function s3OutputBucket(
  options: Pick<ResolvedS3OutputOptions, 'bucket'>,
  env: Readonly<Record<string, string | undefined>>,
): string {
  const bucket = options.bucket || env.TIDEMARK_S3_OUTPUT_BUCKET?.trim() || env.TIDEMARK_BUCKET?.trim();
  if (!bucket) {
    throw new ConfigurationError(
      'TIDEMARK_S3_OUTPUT_BUCKET',
      's3Output: no bucket (give `bucket`, or set TIDEMARK_S3_OUTPUT_BUCKET or TIDEMARK_BUCKET)',
    );
  }
  return bucket;
}

/**
 * Declares an output written to S3 as JSON lines, exactly once per committed epoch: each task-epoch's
 * values become objects at keys determined by (pipeline, output, task, epoch, part), then a
 * per-epoch manifest listing them, written last. Readers follow the manifests (`readS3Outputs`).
 */
export function s3Output<T>(options: S3OutputOptions<T> = {}): OutputDescriptor<T, string, T> {
  const resolved = resolve(options);
  const serialize = options.serialize ?? ((value: T) => JSON.stringify(value));
  return {
    kind: 's3',
    // One sink per container serves every S3 output (each part carries its own options).
    sinkId: 's3',
    encode(value: T): string {
      const line = serialize(value);
      if (typeof line !== 'string') {
        throw new TypeError(
          `the value serializes to ${line === undefined ? 'nothing' : typeof line}, not a JSON line`,
        );
      }
      if (line.includes('\n') || line.includes('\r')) {
        throw new TypeError('the serialized value holds a line break (a JSON line must not)');
      }
      return line;
    },
    decode: (entry: string) => JSON.parse(entry),
    async createSink(env: SinkEnvironment) {
      const { S3OutputSink } = await import('./S3OutputSink.ts');
      return new S3OutputSink(env);
    },
    options: resolved,
  };
}
