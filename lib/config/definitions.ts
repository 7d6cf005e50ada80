/**
 * Definitions that the runtime (`lib/`), the CDK construct (`cdk/`) and the local ESM emulator all
 * encode, kept once. Plain constants and pure functions only, so `cdk/` can import this file without
 * pulling in runtime code.
 */

/** A pipeline id: S3 keys, DynamoDB keys and the consumer group are built from it. */
export const PIPELINE_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** The default key prefix of every object a pipeline writes. */
export const DEFAULT_PREFIX = 'tidemark';

/** Why `prefix` is not a usable key prefix, or undefined when it is. */
export function prefixProblem(prefix: string): string | undefined {
  if (!/^[A-Za-z0-9._/-]{1,256}$/.test(prefix) || prefix.startsWith('/') || prefix.endsWith('/')) {
    return "must be a relative key prefix without leading or trailing '/'";
  }
  return undefined;
}

/** Every object of a pipeline lives under `<prefix>/<pipeline>/`. */
export function pipelinePrefix(prefix: string, pipeline: string): string {
  return `${prefix}/${pipeline}/`;
}

/** Every commit item of a pipeline has a partition key starting with this. */
export function taskPkPrefix(pipeline: string): string {
  return `task#${pipeline}#`;
}

/** Every savepoint item of a pipeline has a partition key starting with this. */
export function savepointPkPrefix(pipeline: string): string {
  return `savepoint#${pipeline}#`;
}

/**
 * The Kafka event source mapping's limits and the defaults Tidemark deploys (and the local emulator
 * runs with): see docs/deployment.md for the reasoning.
 */
export const ESM = {
  /** Largest `BatchSize` a Kafka event source mapping accepts. */
  maxBatchSize: 10_000,
  /** The construct's default `BatchSize`. */
  defaultBatchSize: 1_000,
  /** Largest `MaximumBatchingWindowInSeconds`. */
  maxBatchingWindowSeconds: 300,
  /** Lambda's invocation payload limit (not configurable). */
  maxPayloadBytes: 6 * 1024 * 1024,
} as const;

/**
 * The event a scheduled tick invokes the pipeline's function with (docs/time.md#idle-partitions): the
 * construct's EventBridge rule sends it, the handler recognises it and runs the engine's tick.
 */
export const TICK_EVENT = { tidemark: 'tick' } as const;

/** Whether an invocation's event is a scheduled tick (`TICK_EVENT`). */
export function isTickEvent(event: unknown): boolean {
  return (
    typeof event === 'object' &&
    event !== null &&
    (event as Record<string, unknown>).tidemark === TICK_EVENT.tidemark
  );
}
