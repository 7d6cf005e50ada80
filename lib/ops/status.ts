/**
 * `tidemark status`: every task of a pipeline (epoch, committed offset, snapshot size, last commit,
 * quarantined records) and, with a Kafka connection, the consumer group's committed offsets, the
 * topics' end offsets and the group's lag.
 */
import { compareTasks } from '../checkpoint/savepoints.ts';
import type { CommitStore, TaskTimeSummary } from '../checkpoint/stores.ts';
import { type GroupMember, type KafkaOps, lagOf } from './kafka.ts';

export interface TaskStatus {
  topic: string;
  partition: number;
  /** 0 when the task never committed. */
  epoch: number;
  /** Next offset to read (decimal string); null when the task never committed. */
  committedOffset: string | null;
  /** Bytes of the snapshot chain the commit references (full snapshot plus deltas). */
  snapshotBytes: number;
  chainLength: number;
  updatedAt: string | null;
  applied: number;
  quarantined: number;
  /** Event time (docs/time.md): the task's watermark and when a tick next has work for it (ISO-8601). */
  time?: { watermark: string | null; dueAt: string | null };
  /** With Kafka: the group's committed offset (null: none), the log's bounds and the group's lag. */
  kafka?: { groupOffset: string | null; earliest: string; end: string; lag: string };
}

export interface PipelineStatus {
  pipeline: string;
  tasks: TaskStatus[];
  group?: { id: string; state: string; members: GroupMember[] };
}

const isoOrNull = (ms: number | undefined) =>
  ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString();

/** A commit item's time summary as operators read it. */
export function timeOf(t: TaskTimeSummary): { watermark: string | null; dueAt: string | null } {
  return { watermark: isoOrNull(t.watermark), dueAt: isoOrNull(t.dueAt) };
}

export async function pipelineStatus(
  stores: { commits: CommitStore },
  options: {
    pipeline: string;
    kafka?: KafkaOps;
    /** Consumer group (default: the pipeline id). */
    group?: string;
    /** Topics to show besides those the pipeline has commit items for. */
    topics?: readonly string[];
  },
): Promise<PipelineStatus> {
  const tasks: TaskStatus[] = [];
  for await (const c of stores.commits.list(options.pipeline)) {
    tasks.push({
      topic: c.topic,
      partition: c.partition,
      epoch: c.epoch,
      committedOffset: c.committedOffset.toString(),
      snapshotBytes: c.chain.reduce((n, r) => n + r.bytes, 0),
      chainLength: c.chain.length,
      updatedAt: c.updatedAt,
      applied: c.applied,
      quarantined: c.quarantined,
      ...(c.time ? { time: timeOf(c.time) } : {}),
    });
  }
  const kafka = options.kafka;
  if (!kafka) return { pipeline: options.pipeline, tasks: tasks.sort(compareTasks) };
  const groupId = options.group ?? options.pipeline;
  const topics = [...new Set([...tasks.map((t) => t.topic), ...(options.topics ?? [])])].sort();
  const group = await kafka.describeGroup(groupId);
  const groupOffsets = await kafka.groupOffsets(groupId, topics);
  for (const topic of topics) {
    for (const o of await kafka.topicOffsets(topic)) {
      let t = tasks.find((x) => x.topic === topic && x.partition === o.partition);
      if (!t) {
        t = {
          topic,
          partition: o.partition,
          epoch: 0,
          committedOffset: null,
          snapshotBytes: 0,
          chainLength: 0,
          updatedAt: null,
          applied: 0,
          quarantined: 0,
        };
        tasks.push(t);
      }
      const g = groupOffsets.find((x) => x.topic === topic && x.partition === o.partition)?.offset ?? null;
      t.kafka = {
        groupOffset: g === null ? null : g.toString(),
        earliest: o.low.toString(),
        end: o.high.toString(),
        lag: lagOf(g, o).toString(),
      };
    }
  }
  return {
    pipeline: options.pipeline,
    tasks: tasks.sort(compareTasks),
    group: { id: groupId, state: group.state, members: group.members },
  };
}
