/**
 * Names and limits of the DynamoDB output sink, in one place (see docs/outputs.md#dynamodb).
 */
import { ENV } from '../../config/env.ts';

/**
 * Attributes the sink adds to every item it puts or updates (never to a delete: the item is gone):
 * the identity of the output that last wrote the item. `epoch` also orders the writes of one task,
 * so a stale write never replaces a newer one. User items must not carry attributes with the
 * `tidemark` prefix.
 */
export const ITEM_ATTRIBUTES = {
  pipeline: 'tidemarkPipeline',
  topic: 'tidemarkTopic',
  partition: 'tidemarkPartition',
  epoch: 'tidemarkEpoch',
  seq: 'tidemarkSeq',
} as const;

/**
 * The fence item of a task in an output table (one per table and task), written by every
 * post-commit delivery transaction: the last (epoch, chunk) delivered, the number of chunks of that
 * epoch and the commit's offset. It shares the identity attributes with output items.
 */
export const FENCE_ATTRIBUTES = {
  ...ITEM_ATTRIBUTES,
  chunk: 'tidemarkChunk',
  chunks: 'tidemarkChunks',
  offset: 'tidemarkOffset',
} as const;

/** The reserved prefix of attribute names (user items must not use it). */
export const RESERVED_PREFIX = 'tidemark';

/** The fence item's partition key (string or binary keys): `tidemark#fence#<pipeline>#<topic>#<partition>`. */
export const FENCE_KEY_PREFIX = 'tidemark#fence#';

/** The fence item's sort key value, when the table has one of string or binary type (0 for a number). */
export const FENCE_SORT_KEY = 'tidemark#fence';

/** The default environment variable naming an output's table. */
export const DEFAULT_TABLE_ENV = ENV.dynamodbOutputTable;

/** DynamoDB's limits the sink checks (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html). */
export const LIMITS = {
  /** Largest item, attribute names and values included (400 KB). */
  itemBytes: 409_600,
  /** Actions in one TransactWriteItems. */
  transactionActions: 100,
  /** Aggregate size of the items of one TransactWriteItems ("4 MB", taken as 4,000,000 bytes). */
  transactionBytes: 4_000_000,
  /** Largest partition key value (bytes). */
  partitionKeyBytes: 2048,
  /** Largest sort key value (bytes). */
  sortKeyBytes: 1024,
  /** Nesting levels, the item included: at most 31 lists and maps inside one another. */
  depth: 32,
  /** Significant digits of a number. */
  numberDigits: 38,
  /** Magnitude of a number: 1E-130 ≤ |n| < 1E+126. */
  numberMinExponent: -130,
  numberMaxExponent: 125,
} as const;

/**
 * What the in-commit path leaves for the commit item in the transaction: the largest item DynamoDB
 * accepts (the commit item's real size is not known when its outputs are attached).
 */
export const COMMIT_ITEM_RESERVE = LIMITS.itemBytes;

/** Output writes that fit with the commit Put in one transaction. */
export const ATTACH_MAX_WRITES = LIMITS.transactionActions - 1;

/** Bytes reserved for each fence item in a delivery transaction (its key and a few numbers). */
export const FENCE_RESERVE_BYTES = 4096 + 512;
