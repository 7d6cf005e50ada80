/**
 * The error tree of Tidemark. Every error the library throws is a `TidemarkError` with:
 * - `retriable`: whether re-running the same invocation can succeed (the ESM retries a failed
 *   invocation either way; this flag tells operators and callers which failures are transient);
 * - `cause`: the underlying error, when there is one.
 *
 * Names start with the domain they belong to, and each class sets `name`, so logs and
 * `instanceof` checks stay readable after bundling.
 */

import type { CommitRecord } from './checkpoint/stores.ts';

export interface TidemarkErrorOptions {
  cause?: unknown;
  retriable?: boolean;
}

export class TidemarkError extends Error {
  readonly retriable: boolean;
  constructor(message: string, options: TidemarkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TidemarkError';
    this.retriable = options.retriable ?? false;
  }
}

/** A required setting is missing or invalid. Raised at cold start, naming the setting. */
export class ConfigurationError extends TidemarkError {
  readonly setting: string;
  constructor(setting: string, message: string, options: TidemarkErrorOptions = {}) {
    super(message, { ...options, retriable: false });
    this.name = 'ConfigurationError';
    this.setting = setting;
  }
}

/** The invocation event is not a Kafka ESM event Tidemark can trust (structure, types, identity). */
export class MalformedEventError extends TidemarkError {
  /** JSON-path-like location of the problem, e.g. `records["orders-0"][3].offset`. */
  readonly path: string;
  constructor(path: string, message: string, options: TidemarkErrorOptions = {}) {
    super(`malformed Kafka event at ${path}: ${message}`, { ...options, retriable: false });
    this.name = 'MalformedEventError';
    this.path = path;
  }
}

/** Identity of one Kafka record, carried by record-level errors. */
export interface RecordRef {
  topic: string;
  partition: number;
  offset: bigint;
}

function refText(ref: RecordRef): string {
  return `${ref.topic}-${ref.partition}@${ref.offset}`;
}

/**
 * A record that cannot be processed and never will be (bad payload, missing key, a processor
 * error that is not marked retriable). Under the `quarantine` policy it is set aside; under
 * `fail` the invocation fails.
 */
export class PoisonRecordError extends TidemarkError {
  readonly record: RecordRef | undefined;
  constructor(message: string, options: TidemarkErrorOptions & { record?: RecordRef } = {}) {
    super(options.record ? `${message} (record ${refText(options.record)})` : message, {
      ...options,
      retriable: false,
    });
    this.name = 'PoisonRecordError';
    this.record = options.record;
  }
}

/** The user's processor threw a retriable error: the record is not quarantined, the invocation fails. */
export class ProcessingError extends TidemarkError {
  readonly record: RecordRef;
  constructor(record: RecordRef, options: TidemarkErrorOptions = {}) {
    const detail = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`processing record ${refText(record)} failed: ${detail}`, options);
    this.name = 'ProcessingError';
    this.record = record;
  }
}

/** Keyed state misuse: undeclared state, keyed access without a key, values that cannot be encoded. */
export class StateError extends TidemarkError {
  constructor(message: string, options: TidemarkErrorOptions = {}) {
    super(message, { ...options, retriable: false });
    this.name = 'StateError';
  }
}

/** A snapshot object that must not be loaded. Never retriable: the bytes will not change. */
export class SnapshotError extends TidemarkError {
  readonly key: string | undefined;
  constructor(message: string, options: TidemarkErrorOptions & { key?: string } = {}) {
    super(options.key ? `snapshot ${options.key}: ${message}` : message, { ...options, retriable: false });
    this.name = 'SnapshotError';
    this.key = options.key;
  }
}

/** Wrong magic, unknown version, bad checksum, truncated or extended bytes, undecodable body. */
export class SnapshotCorruptError extends SnapshotError {
  constructor(message: string, options: TidemarkErrorOptions & { key?: string } = {}) {
    super(message, options);
    this.name = 'SnapshotCorruptError';
  }
}

/** A well-formed snapshot whose identity (task, epoch, offset, size, checksum) is not the committed one. */
export class SnapshotIdentityError extends SnapshotError {
  constructor(message: string, options: TidemarkErrorOptions & { key?: string } = {}) {
    super(message, options);
    this.name = 'SnapshotIdentityError';
  }
}

/** The commit item references a snapshot object that does not exist. */
export class SnapshotMissingError extends SnapshotError {
  constructor(key: string, options: TidemarkErrorOptions = {}) {
    super('object referenced by the commit item does not exist', { ...options, key });
    this.name = 'SnapshotMissingError';
  }
}

/**
 * The conditional commit failed: another attempt (a zombie, a concurrent duplicate invocation)
 * committed first. Carries the winner's commit when the store returned it.
 */
export class CommitConflictError extends TidemarkError {
  readonly expectedEpoch: number;
  /** The commit item that won (as stored when the condition failed), if the store returned it. */
  readonly current: CommitRecord | undefined;
  constructor(expectedEpoch: number, current: CommitRecord | undefined, options: TidemarkErrorOptions = {}) {
    super(`commit conflict: expected stored epoch ${expectedEpoch}, another attempt committed first`, {
      ...options,
      retriable: true,
    });
    this.name = 'CommitConflictError';
    this.expectedEpoch = expectedEpoch;
    this.current = current;
  }
}

/** The backends a store error can come from. */
export type StoreName = 's3' | 'dynamodb' | 'memory' | 'postgres' | 'mysql' | 'redis';

/** A stored outbox (an epoch's outputs awaiting delivery) is not the one its commit item references. */
export class OutboxCorruptError extends TidemarkError {
  constructor(message: string, options: TidemarkErrorOptions = {}) {
    super(message, { ...options, retriable: false });
    this.name = 'OutboxCorruptError';
  }
}

/**
 * Delivering a committed epoch's outputs to a sink failed. The epoch stays committed; its outputs are
 * delivered (idempotently) by the retry, before the task's next epoch commits.
 */
export class OutputDeliveryError extends TidemarkError {
  /** The sink (`kafka`, `dynamodb`, …, or the custom sink's id). */
  readonly sink: string;
  constructor(sink: string, message: string, options: TidemarkErrorOptions = {}) {
    super(`output delivery to ${sink} failed: ${message}`, { retriable: true, ...options });
    this.name = 'OutputDeliveryError';
    this.sink = sink;
  }
}

/**
 * An S3 output object or manifest already exists with other content than this delivery writes: two
 * pipelines (or two outputs) share a prefix, or an earlier attempt of the same epoch wrote it with
 * other options. Never retriable: nothing is overwritten, the key must be freed or the options restored.
 */
export class S3OutputConflictError extends OutputDeliveryError {
  readonly bucket: string;
  readonly key: string;
  constructor(bucket: string, key: string, detail: string, options: TidemarkErrorOptions = {}) {
    super('s3', `s3://${bucket}/${key} already exists with other content: ${detail}`, {
      ...options,
      retriable: false,
    });
    this.name = 'S3OutputConflictError';
    this.bucket = bucket;
    this.key = key;
  }
}

/**
 * Delivering a task-epoch's Kafka outputs (one Kafka transaction) failed; nothing of that transaction
 * is visible to `read_committed` readers. Retriable unless the cluster refused the configuration
 * (authorization, a missing topic, a transaction timeout above the broker's maximum).
 */
export class KafkaOutputError extends OutputDeliveryError {
  /** The task's transactional id. */
  readonly transactionalId: string;
  constructor(transactionalId: string, message: string, options: TidemarkErrorOptions = {}) {
    super('kafka', `transactional id ${transactionalId}: ${message}`, options);
    this.name = 'KafkaOutputError';
    this.transactionalId = transactionalId;
  }
}

/**
 * Another producer of the task's transactional id started after this one (another container delivers
 * the task now, or a zombie woke up): this producer's transaction was aborted and it can commit
 * nothing more. Retriable: the retry delivers with a new producer, or finds the epoch delivered.
 */
export class KafkaProducerFencedError extends KafkaOutputError {
  constructor(transactionalId: string, options: TidemarkErrorOptions = {}) {
    super(transactionalId, 'fenced by a newer producer of the same transactional id', {
      ...options,
      retriable: true,
    });
    this.name = 'KafkaProducerFencedError';
  }
}

/**
 * The Kafka sink's delivery marker (the offset it commits for the task in its marker consumer group)
 * cannot tell whether an epoch was delivered: it expired while the epoch's outbox was not settled
 * (`missing`), it was written by something else than this sink (`foreign`), or it belongs to another
 * history of the pipeline (`history`: its commit items were replaced, the marker group was not).
 * Never retriable: an operator decides (docs/outputs.md#kafka).
 */
export class KafkaOutputMarkerError extends KafkaOutputError {
  readonly reason: 'missing' | 'foreign' | 'history';
  constructor(
    transactionalId: string,
    reason: 'missing' | 'foreign' | 'history',
    message: string,
    options: TidemarkErrorOptions = {},
  ) {
    super(transactionalId, message, { ...options, retriable: false });
    this.name = 'KafkaOutputMarkerError';
    this.reason = reason;
  }
}

/** A committed S3 output (an object a manifest lists, or the manifest) is not what the manifest says. */
export class S3OutputCorruptError extends TidemarkError {
  readonly key: string;
  constructor(key: string, message: string, options: TidemarkErrorOptions = {}) {
    super(`S3 output ${key}: ${message}`, { ...options, retriable: false });
    this.name = 'S3OutputCorruptError';
    this.key = key;
  }
}

/** A store request (S3, DynamoDB, a database) failed after the client's own retries. */
export class StoreError extends TidemarkError {
  readonly store: StoreName;
  readonly operation: string;
  constructor(store: StoreName, operation: string, message: string, options: TidemarkErrorOptions = {}) {
    super(`${store} ${operation}: ${message}`, { retriable: true, ...options });
    this.name = 'StoreError';
    this.store = store;
    this.operation = operation;
  }
}

/** The bucket or table does not exist (or is not accessible). Not retriable until someone fixes it. */
export class StoreMissingError extends StoreError {
  readonly resource: string;
  constructor(store: StoreName, operation: string, resource: string, options: TidemarkErrorOptions = {}) {
    super(store, operation, `${resource} does not exist or is not accessible`, {
      ...options,
      retriable: false,
    });
    this.name = 'StoreMissingError';
    this.resource = resource;
  }
}

/**
 * The store's server is set up in a way that breaks exactly-once (a Redis that evicts keys under
 * memory pressure, …). Not retriable until someone changes the server's configuration.
 */
export class StoreUnsafeError extends StoreError {
  constructor(store: StoreName, operation: string, message: string, options: TidemarkErrorOptions = {}) {
    super(store, operation, message, { ...options, retriable: false });
    this.name = 'StoreUnsafeError';
  }
}

/** An object that must be created once already exists (If-None-Match: * failed). */
export class ObjectExistsError extends StoreError {
  readonly key: string;
  constructor(key: string, options: TidemarkErrorOptions = {}) {
    super('s3', 'put', `object ${key} already exists`, { ...options, retriable: true });
    this.name = 'ObjectExistsError';
    this.key = key;
  }
}

/**
 * The invocation's remaining time cannot fit another epoch and its commit. Everything before this
 * point is committed; the ESM's retry resumes after it.
 */
export class TimeBudgetExceededError extends TidemarkError {
  readonly remainingMs: number;
  constructor(remainingMs: number, message: string) {
    super(message, { retriable: true });
    this.name = 'TimeBudgetExceededError';
    this.remainingMs = remainingMs;
  }
}

/** One or more tasks of a batch did not commit through their last record. */
export class BatchFailedError extends TidemarkError {
  readonly failures: ReadonlyArray<{ task: string; error: unknown }>;
  constructor(failures: ReadonlyArray<{ task: string; error: unknown }>) {
    const first = failures[0];
    const retriable = failures.some((f) => isRetriable(f.error));
    const detail = failures
      .map(
        (f) =>
          `${f.task}: ${f.error instanceof Error ? `${f.error.name}: ${f.error.message}` : String(f.error)}`,
      )
      .join('; ');
    super(`${failures.length} task(s) not committed: ${detail}`, { retriable, cause: first?.error });
    this.name = 'BatchFailedError';
    this.failures = failures;
  }
}

/** An operator command that cannot be carried out as asked (nothing was changed). */
export class OperationError extends TidemarkError {
  constructor(message: string, options: TidemarkErrorOptions = {}) {
    super(message, { retriable: false, ...options });
    this.name = 'OperationError';
  }
}

/** The Iceberg sink: a table, its metadata or a catalog cannot be used as asked. */
export class IcebergError extends TidemarkError {
  /** `namespace.name` of the table, when known. */
  readonly table: string | undefined;
  constructor(message: string, options: TidemarkErrorOptions & { table?: string } = {}) {
    super(options.table ? `iceberg table ${options.table}: ${message}` : message, options);
    this.name = 'IcebergError';
    this.table = options.table;
  }
}

/** A table declaration, or a row, that does not fit the Iceberg schema. Never retriable. */
export class IcebergSchemaError extends IcebergError {
  constructor(message: string, options: TidemarkErrorOptions & { table?: string } = {}) {
    super(message, { ...options, retriable: false });
    this.name = 'IcebergSchemaError';
  }
}

/**
 * The catalog's atomic swap failed: another writer changed the table since it was loaded. The
 * committer reloads and retries by itself; this surfaces only when its attempts are exhausted.
 */
export class IcebergCommitConflictError extends IcebergError {
  readonly attempts: number;
  constructor(attempts: number, options: TidemarkErrorOptions & { table?: string } = {}) {
    super(`commit conflict: the table changed under ${attempts} attempt(s) in a row`, {
      ...options,
      retriable: true,
    });
    this.name = 'IcebergCommitConflictError';
    this.attempts = attempts;
  }
}

/** Whether an error (Tidemark's or anybody's) says it is worth retrying. */
export function isRetriable(error: unknown): boolean {
  if (error instanceof TidemarkError) return error.retriable;
  if (typeof error === 'object' && error !== null && 'retriable' in error) {
    return (error as { retriable: unknown }).retriable === true;
  }
  return false;
}
