import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';

/** Counts of requests sent, by command name (e.g. `PutObjectCommand`), every retry included. */
export type RequestCounts = Map<string, number>;

/**
 * Adds an SDK middleware that counts every request a client sends (at the finalize step, so SDK
 * retries count). For tests and benchmarks that measure I/O.
 */
export function countRequests(
  client: S3Client | DynamoDBClient,
  counts: RequestCounts = new Map(),
): RequestCounts {
  (client as S3Client).middlewareStack.add(
    (next, context) => async (args) => {
      const name = (context as { commandName?: string }).commandName ?? 'unknown';
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'finalizeRequest', name: 'tidemarkRequestCounter', override: true },
  );
  return counts;
}
