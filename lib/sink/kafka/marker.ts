/**
 * The Kafka sink's names and its delivery marker (no I/O here; the sink and the tests share it).
 *
 * - Transactional id of a task: `<prefix><pipeline>.<topic>.<partition>`. One per task, so a newer
 *   producer of the task (another container, a retry) fences every older one (a zombie).
 * - Marker: each delivery's transaction also commits, through `sendOffsets`, one offset for the task
 *   into a consumer group that no consumer ever joins (the marker group). The slot is the task's own
 *   input topic-partition (or `markerTopic`'s partition of that number, when the outputs go to
 *   another cluster than the input); the offset is the epoch's committed input offset (so Kafka's
 *   own tools show how far delivery got), and the offset's metadata names the epoch. The marker
 *   commits with the outputs or not at all, so it says which epoch of the task Kafka already holds.
 *
 * Why the epoch decides and not the offset: epochs only grow, while a rollback or a savepoint
 * restore moves the committed offset back (the records after it are processed again, under new
 * epochs, and their outputs are new outputs that must be delivered).
 */
import type { TaskId } from '../../checkpoint/stores.ts';
import { KafkaOutputMarkerError } from '../../errors.ts';

/** Where a task's marker lives. */
export interface MarkerSlot {
  readonly groupId: string;
  readonly topic: string;
  readonly partition: number;
}

/** What the marker group holds for a task. */
export type Marker =
  | { readonly kind: 'absent' }
  | { readonly kind: 'epoch'; readonly epoch: number; readonly offset: bigint }
  | { readonly kind: 'foreign'; readonly offset: bigint; readonly metadata: string | null };

/** What a delivery does after reading the marker. */
export type MarkerDecision = 'deliver' | 'skip';

export interface MarkerPolicy {
  /** How long the cluster keeps the marker group's offsets (`offsets.retention.minutes`). */
  readonly markerRetentionMs: number;
  /** What to do when the marker of an unsettled epoch older than that retention is gone. */
  readonly onMissingMarker: 'fail' | 'deliver' | 'skip';
}

/** The part of a delivery the decision looks at. */
export interface MarkedDelivery {
  readonly task: TaskId;
  readonly epoch: number;
  readonly committedOffset: bigint;
  readonly committedAt?: string;
}

const METADATA = /^tidemark:1:epoch=(\d{1,15})$/;

/**
 * Clocks of the function and of the brokers may differ, and Kafka expires offsets on its own clock:
 * an epoch committed less than this before the retention ends is treated as possibly expired.
 */
export const MARKER_CLOCK_MARGIN_MS = 3_600_000;

export function transactionalIdOf(prefix: string, task: TaskId): string {
  return `${prefix}${task.pipeline}.${task.topic}.${task.partition}`;
}

/**
 * The marker slot of a task: its input topic-partition in the group `<prefix><pipeline>.outputs`; with
 * a `markerTopic` (outputs to another cluster, where the input topic does not exist), that topic's
 * partition of the same number, in one group per input topic.
 */
export function markerSlotOf(
  cluster: { readonly transactionalIdPrefix: string; readonly markerTopic?: string | undefined },
  task: TaskId,
): MarkerSlot {
  const group = `${cluster.transactionalIdPrefix}${task.pipeline}.outputs`;
  return cluster.markerTopic
    ? { groupId: `${group}.${task.topic}`, topic: cluster.markerTopic, partition: task.partition }
    : { groupId: group, topic: task.topic, partition: task.partition };
}

/** The offset metadata a delivery of `epoch` commits. */
export function markerMetadata(epoch: number): string {
  return `tidemark:1:epoch=${epoch}`;
}

/** Reads a committed offset as kafkajs returns it (`-1`: none). */
export function parseMarker(offset: string, metadata: string | null | undefined): Marker {
  const o = BigInt(offset);
  if (o < 0n) return { kind: 'absent' };
  const m = METADATA.exec(metadata ?? '');
  if (!m) return { kind: 'foreign', offset: o, metadata: metadata ?? null };
  return { kind: 'epoch', epoch: Number(m[1]), offset: o };
}

/**
 * Whether a delivery must happen, from the marker as read after this producer's InitProducerId
 * (which aborted or completed any transaction an older producer of the task left open, so the marker
 * cannot change under it: any later producer fences this one).
 *
 *   marker                          | meaning                                          | decision
 *   --------------------------------+--------------------------------------------------+---------------
 *   epoch > E                       | a later epoch was delivered, so E was (the next  | skip
 *                                   | epoch commits only after E is delivered)         |
 *   epoch = E, offset = E's offset  | E was delivered                                  | skip
 *   epoch = E, another offset       | another history of the pipeline (commit items    | KafkaOutputMarkerError
 *                                   | replaced, marker group kept)                     | ('history')
 *   epoch < E                       | E not delivered (the marker only moves forward)  | deliver
 *   absent, E committed recently    | never delivered: a delivery would have left a    | deliver
 *   (or commit time unknown)        | marker younger than the retention                |
 *   absent, E older than retention  | never delivered, or delivered and the marker     | onMissingMarker (default:
 *                                   | expired before the outbox was settled            | KafkaOutputMarkerError 'missing')
 *   not written by this sink        | something else commits to the marker group       | KafkaOutputMarkerError ('foreign')
 */
export function decideDelivery(
  marker: Marker,
  delivery: MarkedDelivery,
  policy: MarkerPolicy,
  now: number,
  transactionalId: string,
): MarkerDecision {
  const e = delivery.epoch;
  const where = `${delivery.task.topic}-${delivery.task.partition} epoch ${e}`;
  switch (marker.kind) {
    case 'epoch':
      if (marker.epoch > e) return 'skip';
      if (marker.epoch < e) return 'deliver';
      if (marker.offset === delivery.committedOffset) return 'skip';
      throw new KafkaOutputMarkerError(
        transactionalId,
        'history',
        `the delivery marker of ${where} records committed offset ${marker.offset}, but the epoch committed offset ${delivery.committedOffset}: the marker belongs to another history of this pipeline (its commit items were replaced while its marker group was kept). Delete the marker group's offsets for this task (or use another transactionalIdPrefix) and retry`,
      );
    case 'foreign':
      throw new KafkaOutputMarkerError(
        transactionalId,
        'foreign',
        `the marker group holds offset ${marker.offset} for ${where} with metadata ${JSON.stringify(marker.metadata)}, which this sink did not write: something else commits offsets to the marker group (give it its own group, or use another transactionalIdPrefix)`,
      );
    case 'absent': {
      const committedAt = delivery.committedAt === undefined ? Number.NaN : Date.parse(delivery.committedAt);
      const recent =
        Number.isNaN(committedAt) || now - committedAt < policy.markerRetentionMs - MARKER_CLOCK_MARGIN_MS;
      if (recent || policy.onMissingMarker === 'deliver') return 'deliver';
      if (policy.onMissingMarker === 'skip') return 'skip';
      throw new KafkaOutputMarkerError(
        transactionalId,
        'missing',
        `${where} committed at ${delivery.committedAt}, its outbox is not settled and its delivery marker is gone (markers expire after ${Math.round(policy.markerRetentionMs / 3_600_000)} h): Tidemark cannot tell whether its outputs reached Kafka. Look for records with header tidemark-id ${delivery.task.pipeline}/${delivery.task.topic}/${delivery.task.partition}/${e}/… in the output topics, then deploy once with onMissingMarker 'skip' (they are there) or 'deliver' (they are not)`,
      );
    }
  }
}
