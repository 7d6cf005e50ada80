/**
 * Where things live. DynamoDB (one table, string `pk`/`sk`):
 *   commit item   pk = task#<pipeline>#<topic>#<partition>   sk = commit
 *   savepoints    pk = savepoint#<pipeline>#<name>           sk = <topic>#<partition> (a task)
 *                                                              sk = #meta (one per savepoint)
 * S3 (one bucket, everything of a pipeline under <prefix>/<pipeline>/):
 *   snapshots     tasks/<topic>/<partition>/<epoch, 12 digits>-<attempt>.snap (full) | .delta
 *   outboxes      tasks/<topic>/<partition>/<epoch, 12 digits>-<attempt>.outbox (outputs awaiting delivery)
 *   quarantine    quarantine/<topic>/<partition>/<offset, 20 digits>.json
 *                 quarantine/<topic>/<partition>/timers/<domain>-<timestamp>-<hash>.json (failed timers)
 *   savepoints    savepoints/<name>/<topic>/<partition>/<the source object's file name>
 * Kafka topic names use [A-Za-z0-9._-] only, so `#` and `/` are safe separators. Zero-padded
 * numbers make S3 listings come out in epoch and offset order.
 */
import { createHash } from 'node:crypto';
import { pipelinePrefix, savepointPkPrefix, taskPkPrefix } from '../config/definitions.ts';
import type { TaskId } from './stores.ts';

export { pipelinePrefix, savepointPkPrefix, taskPkPrefix };

export const COMMIT_SK = 'commit';

export function taskPk(task: TaskId): string {
  return `${taskPkPrefix(task.pipeline)}${task.topic}#${task.partition}`;
}

export function taskLabel(task: Pick<TaskId, 'topic' | 'partition'>): string {
  return `${task.topic}-${task.partition}`;
}

export function taskSnapshotPrefix(prefix: string, task: TaskId): string {
  return `${pipelinePrefix(prefix, task.pipeline)}tasks/${task.topic}/${task.partition}/`;
}

export function snapshotKey(
  prefix: string,
  task: TaskId,
  epoch: number,
  attempt: string,
  kind: 'full' | 'delta',
): string {
  return `${taskSnapshotPrefix(prefix, task)}${String(epoch).padStart(12, '0')}-${attempt}.${kind === 'full' ? 'snap' : 'delta'}`;
}

/** Where an epoch's outbox is kept when it is too large to travel inline in the commit item. */
export function outboxKey(prefix: string, task: TaskId, epoch: number, attempt: string): string {
  return `${taskSnapshotPrefix(prefix, task)}${String(epoch).padStart(12, '0')}-${attempt}.outbox`;
}

/** Epoch encoded in a snapshot key, or undefined for keys that are not snapshots. */
export function epochOfSnapshotKey(key: string): number | undefined {
  const m = /\/(\d{12})-[0-9a-z]+\.(snap|delta|outbox)$/.exec(key);
  return m ? Number(m[1]) : undefined;
}

export function quarantinePrefix(prefix: string, task: TaskId): string {
  return `${pipelinePrefix(prefix, task.pipeline)}quarantine/${task.topic}/${task.partition}/`;
}

export function quarantineKey(prefix: string, task: TaskId, offset: bigint): string {
  return `${quarantinePrefix(prefix, task)}${offset.toString().padStart(20, '0')}.json`;
}

/**
 * Where a timer whose callback failed for good is set aside: `timers/<domain>-<timestamp>-<id>.json`,
 * `id` a hash of its tag and key (the same timer always lands on the same key, whichever attempt).
 */
export function timerQuarantineKey(
  prefix: string,
  task: TaskId,
  timer: { domain: string; timestamp: number; tag: string; key: string },
): string {
  const id = createHash('sha256').update(`${timer.tag}\u0000${timer.key}`).digest('hex').slice(0, 16);
  return `${quarantinePrefix(prefix, task)}timers/${timer.domain}-${timer.timestamp}-${id}.json`;
}

export function savepointPrefix(prefix: string, pipeline: string, name: string): string {
  return `${pipelinePrefix(prefix, pipeline)}savepoints/${name}/`;
}

export const SAVEPOINT_META_SK = '#meta';

export function savepointPk(pipeline: string, name: string): string {
  return `${savepointPkPrefix(pipeline)}${name}`;
}

export function savepointTaskSk(task: Pick<TaskId, 'topic' | 'partition'>): string {
  return `${task.topic}#${task.partition}`;
}

/** Where a savepoint keeps its copy of a task's snapshot object (same file name as the source). */
export function savepointObjectKey(prefix: string, task: TaskId, name: string, sourceKey: string): string {
  const file = sourceKey.slice(sourceKey.lastIndexOf('/') + 1);
  return `${savepointPrefix(prefix, task.pipeline, name)}${task.topic}/${task.partition}/${file}`;
}
