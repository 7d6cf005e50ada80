/**
 * Quarantine: under the `quarantine` poison policy a record that fails for good is set aside as a
 * JSON object under `quarantine/<topic>/<partition>/<offset>.json` (its bytes, headers, the error),
 * written with the epoch's snapshot and before its commit. The key is the record's offset, so a retry
 * of the epoch rewrites nothing: the object is already there.
 */
import { ObjectExistsError } from '../errors.ts';
import { isRecordDefect, type KafkaRecord, type RecordDefect } from '../event/types.ts';
import type { Timer } from '../state/timers.ts';
import { quarantineKey, timerQuarantineKey } from './layout.ts';
import type { SnapshotStore, TaskId } from './stores.ts';

function errorJson(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    const cause =
      error.cause instanceof Error ? { name: error.cause.name, message: error.cause.message } : undefined;
    return { name: error.name, message: error.message, cause, stack: error.stack };
  }
  return { message: String(error) };
}

/** The quarantine object of a record: task, offset, epoch, time, error, and the record's content. */
export function quarantineDocument(
  task: TaskId,
  epoch: number,
  record: KafkaRecord | RecordDefect,
  error: unknown,
  quarantinedAt: string,
): Buffer {
  const content = isRecordDefect(record)
    ? { delivered: record.raw }
    : {
        timestamp: record.timestamp,
        timestampType: record.timestampType,
        key: record.key?.toString('base64') ?? null,
        value: record.value?.toString('base64') ?? null,
        headers: record.headers.map(([name, bytes]) => ({ [name]: bytes === null ? null : [...bytes] })),
      };
  return Buffer.from(
    JSON.stringify(
      {
        pipeline: task.pipeline,
        topic: task.topic,
        partition: task.partition,
        offset: record.offset.toString(),
        epoch,
        quarantinedAt,
        error: errorJson(error),
        ...content,
      },
      (_k, v) => (typeof v === 'bigint' ? v.toString() : v),
      2,
    ),
  );
}

/** Writes a record's quarantine object; one already there (a previous attempt's) is left as it is. */
export async function quarantineRecord(
  snapshots: SnapshotStore,
  prefix: string,
  task: TaskId,
  epoch: number,
  record: KafkaRecord | RecordDefect,
  error: unknown,
  quarantinedAt: string,
): Promise<void> {
  try {
    await snapshots.put(
      quarantineKey(prefix, task, record.offset),
      quarantineDocument(task, epoch, record, error, quarantinedAt),
      { ifAbsent: true, contentType: 'application/json' },
    );
  } catch (err) {
    if (!(err instanceof ObjectExistsError)) throw err;
  }
}

/**
 * Writes the quarantine object of a timer whose callback failed for good (under the quarantine
 * policy): the timer, the offset of the record after which it fired (or the task's last applied
 * offset, at an epoch's start or a tick), the epoch, the error. One already there is left as it is.
 */
export async function quarantineTimer(
  snapshots: SnapshotStore,
  prefix: string,
  task: TaskId,
  epoch: number,
  failed: { timer: Timer; offset: bigint; error: unknown },
  quarantinedAt: string,
): Promise<void> {
  const doc = {
    pipeline: task.pipeline,
    topic: task.topic,
    partition: task.partition,
    timer: failed.timer,
    afterOffset: failed.offset.toString(),
    epoch,
    quarantinedAt,
    error: errorJson(failed.error),
  };
  try {
    await snapshots.put(
      timerQuarantineKey(prefix, task, failed.timer),
      Buffer.from(JSON.stringify(doc, null, 2)),
      { ifAbsent: true, contentType: 'application/json' },
    );
  } catch (err) {
    if (!(err instanceof ObjectExistsError)) throw err;
  }
}
