/**
 * Savepoints (`tidemark savepoint create|list|delete|restore`): see docs/operations.md for the
 * procedure and its failure cases, lib/checkpoint/savepoints.ts for what a savepoint holds.
 */
import { randomBytes } from 'node:crypto';
import { savepointObjectKey, savepointPrefix, snapshotKey, taskLabel } from '../checkpoint/layout.ts';
import { loadCheckpoint } from '../checkpoint/restore.ts';
import {
  compareTasks,
  SAVEPOINT_NAME_PATTERN,
  type SavepointMeta,
  type SavepointStore,
  type SavepointTask,
} from '../checkpoint/savepoints.ts';
import type { CommitRecord, CommitStore, SnapshotRef, SnapshotStore, TaskId } from '../checkpoint/stores.ts';
import { OperationError, SnapshotMissingError } from '../errors.ts';
import { installCheckpoint } from './checkpoints.ts';
import { type EventSourceControl, findMapping, pollUntil, setMappingEnabled } from './eventSources.ts';
import type { GroupMember, KafkaOps, TopicPartitionOffset } from './kafka.ts';

export interface SavepointStores {
  snapshots: SnapshotStore;
  commits: CommitStore;
  savepoints: SavepointStore;
}

/** Copies an object with the store's server-side copy, or by reading and writing it. */
export async function copyObject(snapshots: SnapshotStore, fromKey: string, toKey: string): Promise<boolean> {
  if (snapshots.copy) return snapshots.copy(fromKey, toKey);
  const body = await snapshots.get(fromKey);
  if (!body) return false;
  await snapshots.put(toKey, body, { ifAbsent: false, contentType: 'application/octet-stream' });
  return true;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function checkName(name: string): void {
  if (!SAVEPOINT_NAME_PATTERN.test(name)) {
    throw new OperationError(`savepoint name ${JSON.stringify(name)} must match ${SAVEPOINT_NAME_PATTERN}`);
  }
}

const MAX_CAPTURE_ATTEMPTS = 8;

/**
 * Copies a task's current checkpoint into the savepoint and verifies the copies. The engine may
 * commit (and delete the objects of subsumed checkpoints) meanwhile: a source object that vanished
 * means a newer commit exists, so the capture starts again from it.
 */
async function captureTask(
  stores: SavepointStores,
  prefix: string,
  name: string,
  first: CommitRecord,
): Promise<SavepointTask> {
  const task: TaskId = { pipeline: first.pipeline, topic: first.topic, partition: first.partition };
  const written = new Set<string>();
  let commit: CommitRecord | undefined = first;
  for (let attempt = 1; commit; attempt++) {
    const c: CommitRecord = commit;
    const copies = await Promise.all(
      c.chain.map(async (ref): Promise<SnapshotRef | undefined> => {
        const key = savepointObjectKey(prefix, task, name, ref.key);
        const { inline, ...link } = ref;
        if (inline) {
          // A link carried inside the commit item: the savepoint keeps it as an object of its own
          // (the commit item lets go of it once no retained checkpoint references it).
          await stores.snapshots.put(key, inline, {
            ifAbsent: false,
            contentType: 'application/octet-stream',
          });
        } else if (!(await copyObject(stores.snapshots, ref.key, key))) return undefined;
        written.add(key);
        return { ...link, key };
      }),
    );
    if (copies.every((r) => r !== undefined)) {
      const chain = copies as SnapshotRef[];
      // Verify what the savepoint holds (bytes, checksums, identity, chain order), not the source.
      await loadCheckpoint(stores.snapshots, task, { ...c, chain }, {});
      const keep = new Set(chain.map((r) => r.key));
      const stale = [...written].filter((k) => !keep.has(k));
      if (stale.length > 0) await stores.snapshots.delete(stale);
      return {
        ...task,
        name,
        status: 'committed',
        epoch: c.epoch,
        committedOffset: c.committedOffset,
        chain,
        sourceUpdatedAt: c.updatedAt,
        applied: c.applied,
        quarantined: c.quarantined,
      };
    }
    const current = await stores.commits.read(task);
    if (attempt >= MAX_CAPTURE_ATTEMPTS || (current?.epoch === c.epoch && current.attempt === c.attempt)) {
      const missing = c.chain.find((_, i) => copies[i] === undefined);
      throw new SnapshotMissingError(missing?.key ?? '?');
    }
    commit = current;
  }
  throw new OperationError(`task ${taskLabel(task)} has no checkpoint any more`);
}

export interface CreateSavepointOptions {
  prefix: string;
  pipeline: string;
  name: string;
  /** Only these topics (default: every topic the pipeline has commit items for). */
  topics?: readonly string[];
  /**
   * Partition count per topic, from Kafka (exact). Without it, the layout is inferred from the
   * commit items (the highest partition seen, plus one).
   */
  layout?: Readonly<Record<string, number>>;
  concurrency?: number;
  now?: () => number;
}

/**
 * Creates a savepoint: a retained copy of every task's current checkpoint (objects copied under the
 * savepoint's prefix, where GC never deletes anything). Safe while the pipeline runs: each task's
 * entry is one committed checkpoint. Names are unique per pipeline. On failure everything written
 * so far is removed again.
 */
export async function createSavepoint(
  stores: SavepointStores,
  options: CreateSavepointOptions,
): Promise<SavepointMeta> {
  checkName(options.name);
  const now = options.now ?? Date.now;
  const { pipeline, name, prefix } = options;
  const commits: CommitRecord[] = [];
  for await (const c of stores.commits.list(pipeline)) {
    if (!options.topics || options.topics.includes(c.topic)) commits.push(c);
  }
  commits.sort(compareTasks);
  const topics: Record<string, number> = {};
  const wanted = options.topics ?? [...new Set(commits.map((c) => c.topic))];
  for (const t of wanted) {
    if (options.layout) {
      const n = options.layout[t];
      if (n === undefined) throw new OperationError(`no partition count given for topic ${t}`);
      const beyond = commits.find((c) => c.topic === t && c.partition >= n);
      if (beyond) {
        throw new OperationError(
          `topic ${t} has ${n} partitions but the pipeline has a checkpoint of partition ${beyond.partition}: was the topic recreated?`,
        );
      }
      topics[t] = n;
    } else {
      const parts = commits.filter((c) => c.topic === t).map((c) => c.partition);
      if (parts.length > 0) topics[t] = Math.max(...parts) + 1;
    }
  }
  if (Object.keys(topics).length === 0) {
    throw new OperationError(
      `pipeline ${pipeline} has no checkpoint${options.topics ? ` of topic ${options.topics.join(', ')}` : ''} to save (pass --brokers and --topic to record a layout of partitions that never committed)`,
    );
  }
  const meta: SavepointMeta = {
    pipeline,
    name,
    status: 'creating',
    createdAt: new Date(now()).toISOString(),
    completedAt: null,
    topics,
    layoutSource: options.layout ? 'kafka' : 'commits',
    tasks: 0,
    bytes: 0,
  };
  await stores.savepoints.create(meta);
  try {
    const entries: SavepointTask[] = [];
    const byTask = new Map(commits.map((c) => [`${c.topic}\u0000${c.partition}`, c]));
    const slots: Array<{ topic: string; partition: number }> = [];
    for (const [topic, n] of Object.entries(topics))
      for (let partition = 0; partition < n; partition++) slots.push({ topic, partition });
    await eachLimited(slots, options.concurrency ?? 8, async (slot) => {
      const c = byTask.get(`${slot.topic}\u0000${slot.partition}`);
      const entry: SavepointTask = c
        ? await captureTask(stores, prefix, name, c)
        : {
            pipeline,
            name,
            ...slot,
            status: 'not-started',
            epoch: 0,
            committedOffset: null,
            chain: [],
            sourceUpdatedAt: null,
            applied: 0,
            quarantined: 0,
          };
      await stores.savepoints.putTask(entry);
      entries.push(entry);
    });
    const complete: SavepointMeta = {
      ...meta,
      status: 'complete',
      completedAt: new Date(now()).toISOString(),
      tasks: entries.length,
      bytes: entries.reduce((n, e) => n + e.chain.reduce((m, r) => m + r.bytes, 0), 0),
    };
    await stores.savepoints.updateMeta(complete);
    return complete;
  } catch (err) {
    await deleteSavepointData(stores, prefix, pipeline, name).catch(() => {});
    throw err;
  }
}

export async function listSavepoints(savepoints: SavepointStore, pipeline: string): Promise<SavepointMeta[]> {
  const out: SavepointMeta[] = [];
  for await (const m of savepoints.list(pipeline)) out.push(m);
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name));
}

async function deleteSavepointData(
  stores: SavepointStores,
  prefix: string,
  pipeline: string,
  name: string,
): Promise<number> {
  const keys: string[] = [];
  for await (const o of stores.snapshots.list(savepointPrefix(prefix, pipeline, name))) keys.push(o.key);
  if (keys.length > 0) await stores.snapshots.delete(keys);
  await stores.savepoints.delete(pipeline, name);
  return keys.length;
}

/** Deletes a savepoint: its objects, then its items (the meta item last). */
export async function deleteSavepoint(
  stores: SavepointStores,
  options: { prefix: string; pipeline: string; name: string },
): Promise<{ objects: number }> {
  checkName(options.name);
  const sp = await stores.savepoints.read(options.pipeline, options.name);
  if (!sp) throw new OperationError(`no savepoint ${options.name} in pipeline ${options.pipeline}`);
  return { objects: await deleteSavepointData(stores, options.prefix, options.pipeline, options.name) };
}

export interface RestoreOptions {
  prefix: string;
  /** Checkpoints kept per task, the current one included (the pipeline's `TIDEMARK_RETAINED_CHECKPOINTS`). */
  retainedCheckpoints?: number;
  pipeline: string;
  name: string;
  /** The ESM's consumer group (the CDK construct's default: the pipeline id). */
  group: string;
  /** Disable the function's event source mapping for the restore, and enable it again afterwards. */
  functionName?: string;
  eventSources?: EventSourceControl;
  /** Check everything and print the plan; change nothing. */
  dryRun?: boolean;
  /** How long to wait for the mapping to be Disabled/Enabled and for the group to empty. Default 300 s. */
  waitMs?: number;
  pollIntervalMs?: number;
  concurrency?: number;
  log?: (line: string) => void;
  now?: () => number;
}

export interface RestoreTaskPlan {
  topic: string;
  partition: number;
  /** `restore`: the savepoint's state and offset; `reset`: empty state from the earliest offset. */
  action: 'restore' | 'reset';
  /** The offset the task and the consumer group are set to. */
  offset: string;
  savepointEpoch: number;
  /** The task's current epoch (0 when it has no commit item). */
  currentEpoch: number;
  currentOffset: string | null;
  /** The epoch of the commit that installs it (after the restore). */
  newEpoch?: number;
}

export interface RestoreResult {
  dryRun: boolean;
  group: string;
  tasks: RestoreTaskPlan[];
  mapping?: { uuid: string; reEnabled: boolean };
}

function membersText(members: readonly GroupMember[]): string {
  return members
    .map((m) => {
      const who = [m.clientId && `client ${m.clientId}`, m.clientHost && `host ${m.clientHost}`].filter(
        Boolean,
      );
      return who.length > 0 ? `${m.memberId} (${who.join(', ')})` : m.memberId;
    })
    .join(', ');
}

/**
 * Restores a savepoint: the documented procedure of docs/operations.md.
 *
 * 1. Checks, before any change: the savepoint is complete and of this pipeline; it covers every
 *    topic the pipeline has tasks of (and the ESM's topics, with `--function`); each topic still has
 *    the savepoint's partition count; each offset is still in the log; every object verifies.
 * 2. Stops consumption: with `functionName`, disables the ESM and waits for Disabled and for the
 *    group to be empty; otherwise refuses unless the group is already empty.
 * 3. Copies each task's savepoint objects back under fresh keys and installs them with a fenced
 *    commit (epoch + 1; the replaced checkpoint stays retained), and sets the consumer group's
 *    offsets to the savepoint's, in the order that never puts a group offset ahead of its task's
 *    checkpoint (tasks moving forward first, then the group, then tasks moving back): wherever the
 *    restore stops, every task is consistent and running it again finishes the job.
 * 5. Enables the ESM again if it was enabled.
 */
export async function restoreSavepoint(
  stores: SavepointStores,
  kafka: KafkaOps,
  options: RestoreOptions,
): Promise<RestoreResult> {
  checkName(options.name);
  const log = options.log ?? (() => {});
  const { pipeline, name, group } = options;
  const sp = await stores.savepoints.read(pipeline, name);
  if (!sp)
    throw new OperationError(`no savepoint ${name} in pipeline ${pipeline} (see tidemark savepoint list)`);
  if (sp.meta.status !== 'complete') {
    throw new OperationError(
      `savepoint ${name} is incomplete (its creation was interrupted); delete it and create another`,
    );
  }
  const foreign = [sp.meta, ...sp.tasks].find((x) => x.pipeline !== pipeline);
  if (foreign) {
    throw new OperationError(`savepoint ${name} belongs to pipeline ${foreign.pipeline}, not ${pipeline}`);
  }
  const spTopics = Object.keys(sp.meta.topics).sort();
  const current = new Map<string, CommitRecord>();
  for await (const c of stores.commits.list(pipeline)) current.set(`${c.topic}\u0000${c.partition}`, c);
  const strangers = [...new Set([...current.values()].map((c) => c.topic))].filter(
    (t) => !spTopics.includes(t),
  );
  if (strangers.length > 0) {
    throw new OperationError(
      `pipeline ${pipeline} has tasks of topic ${strangers.join(', ')}, which savepoint ${name} does not cover (it covers ${spTopics.join(', ')})`,
    );
  }
  let mapping: { uuid: string; wasEnabled: boolean } | undefined;
  if (options.functionName) {
    if (!options.eventSources)
      throw new OperationError('no Lambda API client to control the event source mapping');
    const m = await findMapping(options.eventSources, options.functionName, group);
    const esmTopics = [...m.topics].sort();
    if (esmTopics.join(',') !== spTopics.join(',')) {
      throw new OperationError(
        `event source mapping ${m.uuid} consumes topic(s) ${esmTopics.join(', ')}; savepoint ${name} covers ${spTopics.join(', ')}`,
      );
    }
    mapping = { uuid: m.uuid, wasEnabled: m.state !== 'Disabled' && m.state !== 'Disabling' };
  }

  // Plan every task of the savepoint's layout against the topic as it is now.
  const saved = new Map(sp.tasks.map((t) => [`${t.topic}\u0000${t.partition}`, t]));
  const plan: Array<RestoreTaskPlan & { entry: SavepointTask | undefined }> = [];
  for (const topic of spTopics) {
    const expected = sp.meta.topics[topic]!;
    const partitions = await kafka.partitions(topic);
    if (partitions.length !== expected) {
      throw new OperationError(
        `topic ${topic} has ${partitions.length} partitions now; savepoint ${name} was taken with ${expected}. Keyed state is spread over partitions by key, so a savepoint restores only onto the same partition layout`,
      );
    }
    const logOffsets = new Map((await kafka.topicOffsets(topic)).map((o) => [o.partition, o]));
    for (const partition of partitions) {
      const entry = saved.get(`${topic}\u0000${partition}`);
      const cur = current.get(`${topic}\u0000${partition}`);
      const lo = logOffsets.get(partition);
      if (!lo) throw new OperationError(`no offsets for ${topic}-${partition}`);
      let offset: bigint;
      if (entry?.status === 'committed' && entry.committedOffset !== null) {
        offset = entry.committedOffset;
        if (offset < lo.low) {
          throw new OperationError(
            `${topic}-${partition}: the savepoint's offset ${offset} is below the earliest offset still in the topic (${lo.low}); records in between were deleted by retention, so the restored state could not catch up exactly`,
          );
        }
        if (offset > lo.high) {
          throw new OperationError(
            `${topic}-${partition}: the savepoint's offset ${offset} is beyond the end of the topic (${lo.high}): was the topic recreated?`,
          );
        }
      } else offset = lo.low;
      plan.push({
        topic,
        partition,
        action: entry?.status === 'committed' ? 'restore' : 'reset',
        offset: offset.toString(),
        savepointEpoch: entry?.epoch ?? 0,
        currentEpoch: cur?.epoch ?? 0,
        currentOffset: cur ? cur.committedOffset.toString() : null,
        entry,
      });
    }
  }
  const orphanTasks = [...current.values()].filter(
    (c) => !plan.some((p) => p.topic === c.topic && p.partition === c.partition),
  );
  if (orphanTasks.length > 0) {
    throw new OperationError(
      `the pipeline has tasks ${orphanTasks.map(taskLabel).join(', ')} that are not in the topic's partition layout any more`,
    );
  }
  // Every object must load and verify before anything changes.
  await eachLimited(plan, options.concurrency ?? 8, async (p) => {
    const e = p.entry;
    if (e?.status !== 'committed' || e.committedOffset === null) return;
    await loadCheckpoint(
      stores.snapshots,
      { pipeline, topic: p.topic, partition: p.partition },
      {
        epoch: e.epoch,
        committedOffset: e.committedOffset,
        chain: e.chain,
        updatedAt: e.sourceUpdatedAt ?? '',
      },
      {},
    );
  });
  const result = (extra: Partial<RestoreResult> = {}): RestoreResult => ({
    dryRun: options.dryRun ?? false,
    group,
    tasks: plan.map(({ entry: _entry, ...p }) => p),
    ...(mapping ? { mapping: { uuid: mapping.uuid, reEnabled: false } } : {}),
    ...extra,
  });
  log(`savepoint ${name}: ${plan.length} task(s) verified`);
  if (options.dryRun) {
    const g = await kafka.describeGroup(group);
    if (g.members.length > 0 && !mapping) {
      log(
        `consumer group ${group} has active members (${membersText(g.members)}): a real restore would refuse`,
      );
    }
    return result();
  }

  const wait = { timeoutMs: options.waitMs ?? 300_000, intervalMs: options.pollIntervalMs ?? 2_000 };
  let disabledByUs = false;
  if (mapping && options.eventSources) {
    log(`disabling event source mapping ${mapping.uuid}…`);
    await setMappingEnabled(options.eventSources, mapping.uuid, false, wait);
    disabledByUs = mapping.wasEnabled;
    try {
      await pollUntil(
        `consumer group ${group} to have no members`,
        async () => ((await kafka.describeGroup(group)).members.length === 0 ? true : undefined),
        wait,
      );
    } catch (err) {
      if (disabledByUs) await setMappingEnabled(options.eventSources, mapping.uuid, true, wait);
      throw err;
    }
  } else {
    const g = await kafka.describeGroup(group);
    if (g.members.length > 0) {
      throw new OperationError(
        `consumer group ${group} has active members: ${membersText(g.members)}. Disable the event source mapping first (aws lambda update-event-source-mapping --uuid <uuid> --no-enabled), or pass --function <name> to let restore do it; nothing was changed`,
      );
    }
  }

  const offsets: TopicPartitionOffset[] = plan.map((p) => ({
    topic: p.topic,
    partition: p.partition,
    offset: BigInt(p.offset),
  }));
  const install = async (p: (typeof plan)[number]) => {
    const task: TaskId = { pipeline, topic: p.topic, partition: p.partition };
    const chain: SnapshotRef[] = [];
    const tag = `sp${randomBytes(4).toString('hex')}`;
    for (const ref of p.entry?.status === 'committed' ? p.entry.chain : []) {
      if (ref.inline) {
        chain.push(ref); // carried by the entry itself: installed inline as it is
        continue;
      }
      const key = snapshotKey(options.prefix, task, ref.epoch, tag, ref.kind);
      if (!(await copyObject(stores.snapshots, ref.key, key))) throw new SnapshotMissingError(ref.key);
      chain.push({ ...ref, key });
    }
    const latest = await stores.commits.read(task);
    const next = await installCheckpoint(
      stores.commits,
      task,
      latest,
      { committedOffset: BigInt(p.offset), chain },
      {
        attempt: 'restore',
        counters: { applied: p.entry?.applied ?? 0, quarantined: p.entry?.quarantined ?? 0 },
        retainedCheckpoints: options.retainedCheckpoints,
        ...(options.now ? { now: options.now } : {}),
      },
    );
    p.newEpoch = next.epoch;
  };
  // The invariant that keeps every task exact at any point where this may stop: the group's offset
  // of a partition is never ahead of its task's committed offset (the engine skips what its commit
  // covers, but can never fill a gap). So tasks that move forward are installed before the group
  // moves, and tasks that move back after it.
  const forward = plan.filter((p) => p.currentOffset !== null && BigInt(p.offset) > BigInt(p.currentOffset));
  const others = plan.filter((p) => !forward.includes(p));
  let step = 'installing the savepoint as the checkpoints of tasks that move forward';
  try {
    await eachLimited(forward, options.concurrency ?? 8, install);
    step = 'resetting the consumer group offsets';
    log(`resetting consumer group ${group} to the savepoint's offsets…`);
    await kafka.setGroupOffsets(group, offsets);
    const after = await kafka.groupOffsets(group, spTopics);
    const wrong = offsets.filter(
      (o) => after.find((a) => a.topic === o.topic && a.partition === o.partition)?.offset !== o.offset,
    );
    if (wrong.length > 0) {
      throw new OperationError(
        `consumer group ${group} did not take the offsets of ${wrong.map((w) => `${w.topic}-${w.partition}`).join(', ')}`,
      );
    }
    step = 'installing the savepoint as the tasks’ checkpoints';
    await eachLimited(others, options.concurrency ?? 8, install);
    log(`${plan.length} task(s) restored`);
  } catch (err) {
    const message = `restore of savepoint ${name} stopped while ${step}: ${(err as Error).message}. ${
      mapping ? `Event source mapping ${mapping.uuid} stays disabled. ` : ''
    }Every task is still consistent (a group offset is never ahead of its task's checkpoint); run the same restore again`;
    throw new OperationError(message, { cause: err });
  }
  let reEnabled = false;
  if (mapping && options.eventSources && disabledByUs) {
    log(`enabling event source mapping ${mapping.uuid}…`);
    await setMappingEnabled(options.eventSources, mapping.uuid, true, wait);
    reEnabled = true;
  }
  return result(mapping ? { mapping: { uuid: mapping.uuid, reEnabled } } : {});
}
