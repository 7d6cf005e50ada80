/**
 * Partial batch responses (`ReportBatchItemFailures` on the Kafka event source mapping): when some
 * tasks of a batch commit and others fail, the invocation succeeds and names, per failed task, the
 * record the mapping must re-deliver from; the committed tasks' records are not delivered again.
 *
 * The shape is the one Lambda reads for Kafka: `{ batchItemFailures: [{ itemIdentifier: { partition:
 * "<topic>-<partition>", offset } }] }`, where `partition` is the key of the event's `records` map. As
 * for the other stream sources, the mapping resumes each reported topic-partition from its lowest
 * reported offset, and an identifier naming no record of the event fails the whole batch.
 *
 * Which record: the first one at or after the task's committed offset (earlier ones are committed,
 * and a retry would skip them as duplicates anyway). Re-delivering a record that is committed is
 * always safe; skipping one that is not never is. So, when a task committed everything it was given
 * but still failed (its outbox not delivered), its last record is named: the retry skips it and
 * delivers the outbox. Offsets must be exact as JSON numbers (below 2^53): otherwise no partial
 * response is possible and the whole batch fails, as without the setting.
 *
 * Only when the mapping has `ReportBatchItemFailures` on (`TIDEMARK_REPORT_BATCH_ITEM_FAILURES`,
 * which the CDK construct sets with it): a mapping without it takes any returned value as success and
 * would move past the failed records for good.
 */
import { isRetriable } from '../errors.ts';
import type { TaskBatch } from '../event/types.ts';
import { taskLabel } from './layout.ts';

/** One reported failure, as the Kafka event source mapping reads it. */
export interface KafkaBatchItemFailure {
  itemIdentifier: {
    /** The key of the event's `records` map: `<topic>-<partition>`. */
    partition: string;
    /** Offset of the first record to deliver again. */
    offset: number;
  };
}

export interface FailedTask {
  task: string;
  error: unknown;
  /** The task's records in this batch (offset order). */
  batch: TaskBatch;
}

/**
 * The items to report for these failed tasks, or undefined when a partial response cannot say it
 * exactly (an offset beyond 2^53, a task with no record). `committed` holds the committed offset
 * (next to read) of each task that committed during the invocation.
 */
export function batchItemFailures(
  failed: readonly FailedTask[],
  committed: ReadonlyMap<string, bigint>,
): KafkaBatchItemFailure[] | undefined {
  const items: KafkaBatchItemFailure[] = [];
  for (const f of failed) {
    const records = f.batch.records;
    const last = records[records.length - 1];
    if (!last) return undefined;
    const from = committed.get(taskLabel(f.batch));
    const first = from === undefined ? records[0]! : (records.find((r) => r.offset >= from) ?? last);
    if (first.offset > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    items.push({ itemIdentifier: { partition: taskLabel(f.batch), offset: Number(first.offset) } });
  }
  return items;
}

/** The failed tasks of a partial response, JSON-safe (for the invocation's result and its logs). */
export function failedTasks(
  failed: readonly FailedTask[],
): Array<{ task: string; error: string; retriable: boolean }> {
  return failed.map((f) => ({
    task: f.task,
    error: f.error instanceof Error ? `${f.error.name}: ${f.error.message}` : String(f.error),
    retriable: isRetriable(f.error),
  }));
}
