/**
 * `tidemark bootstrap`: creates a pipeline's initial checkpoints from JSON lines (the format of
 * `export`, see ./exportState.ts) and offsets. Each task gets a full snapshot and an epoch-1 commit
 * conditioned on no commit item existing: bootstrap never overwrites a task that has a checkpoint.
 *
 * The input is read twice: a first pass validates everything (format, declarations, values,
 * offsets) and checks that none of the tasks exists, so a bad file or an existing task changes
 * nothing; the second pass writes, one task's state in memory at a time.
 */
import { randomBytes } from 'node:crypto';
import { snapshotKey, taskLabel } from '../checkpoint/layout.ts';
import type { CommitStore, SnapshotRef, SnapshotStore, TaskId } from '../checkpoint/stores.ts';
import { OperationError } from '../errors.ts';
import type { StateKind, StateScope } from '../state/descriptors.ts';
import { encodeSnapshot, fullSections, snapshotChecksum } from '../state/snapshotCodec.ts';
import { type StateTable, TASK_KEY } from '../state/stateStore.ts';
import { installCheckpoint } from './checkpoints.ts';
import { EXPORT_FORMAT, EXPORT_VERSION, type StateDeclaration } from './exportState.ts';
import { fromTaggedJson } from './taggedJson.ts';

const ID = /^[A-Za-z0-9._-]{1,249}$/;

/** Parses `orders:0=42,orders:1=7` (offsets are int64 decimal strings). */
export function parseOffsets(list: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const part of list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9._-]+):(\d{1,10})=(\d{1,19})$/.exec(part);
    if (!m) throw new OperationError(`offset ${JSON.stringify(part)} is not topic:partition=offset`);
    const offset = BigInt(m[3]!);
    if (offset > 2n ** 63n - 1n) throw new OperationError(`offset ${m[3]} is beyond int64`);
    out.set(`${m[1]}:${Number(m[2])}`, offset);
  }
  return out;
}

export interface BootstrapOptions {
  prefix: string;
  /** Checkpoints kept per task, the current one included (the pipeline's `TIDEMARK_RETAINED_CHECKPOINTS`). */
  retainedCheckpoints?: number;
  /** The pipeline to create checkpoints for (default: the file's). */
  pipeline?: string;
  /** Committed offsets by `topic:partition`: override the file's; a task only listed here starts empty. */
  offsets?: ReadonlyMap<string, bigint>;
  compression?: 'zstd' | 'none';
  now?: () => number;
}

export interface BootstrappedTask {
  topic: string;
  partition: number;
  committedOffset: string;
  entries: number;
  bytes: number;
}

export interface BootstrapResult {
  pipeline: string;
  tasks: BootstrappedTask[];
}

interface TaskHeader {
  line: number;
  pipeline: string | undefined;
  topic: string;
  partition: number;
  committedOffset: bigint | undefined;
  applied: number;
  quarantined: number;
  states: Map<string, StateDeclaration>;
}

type Parsed =
  | { type: 'export'; pipeline: string | undefined }
  | { type: 'task'; header: TaskHeader }
  | { type: 'entry'; state: string; key: string; value: unknown };

const KINDS: readonly StateKind[] = ['value', 'map', 'list'];
const SCOPES: readonly StateScope[] = ['key', 'task'];

function fail(line: number, message: string): never {
  throw new OperationError(`line ${line}: ${message}`);
}

function parseLine(text: string, n: number, task: TaskHeader | undefined): Parsed | undefined {
  if (text.trim() === '') return undefined;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return fail(n, 'not valid JSON');
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) fail(n, 'not a JSON object');
  const count = (f: string) => {
    const v = o[f] ?? 0;
    if (!Number.isSafeInteger(v) || (v as number) < 0) fail(n, `${f} must be a non-negative integer`);
    return v as number;
  };
  switch (o.type) {
    case 'export': {
      if (o.format !== EXPORT_FORMAT) fail(n, `format ${JSON.stringify(o.format)} is not ${EXPORT_FORMAT}`);
      if (o.version !== EXPORT_VERSION) fail(n, `version ${JSON.stringify(o.version)} is not supported`);
      return { type: 'export', pipeline: typeof o.pipeline === 'string' ? o.pipeline : undefined };
    }
    case 'task': {
      if (typeof o.topic !== 'string' || !ID.test(o.topic)) fail(n, 'topic is missing or invalid');
      if (!Number.isSafeInteger(o.partition) || (o.partition as number) < 0) fail(n, 'partition is invalid');
      let committedOffset: bigint | undefined;
      if (o.committedOffset !== undefined && o.committedOffset !== null) {
        if (typeof o.committedOffset !== 'string' || !/^\d{1,19}$/.test(o.committedOffset))
          fail(n, 'committedOffset must be a decimal string');
        committedOffset = BigInt(o.committedOffset);
      }
      if (!Array.isArray(o.states)) fail(n, 'states must be a list of declarations');
      const states = new Map<string, StateDeclaration>();
      for (const s of o.states as Array<Record<string, unknown>>) {
        const ok =
          s !== null &&
          typeof s === 'object' &&
          typeof s.name === 'string' &&
          KINDS.includes(s.kind as StateKind) &&
          SCOPES.includes(s.scope as StateScope) &&
          Number.isSafeInteger(s.version) &&
          (s.version as number) >= 1;
        if (!ok) fail(n, `state declaration ${JSON.stringify(s)} needs name, kind, scope and version`);
        if (states.has(s.name as string)) fail(n, `state ${s.name} is declared twice`);
        states.set(s.name as string, {
          name: s.name as string,
          kind: s.kind as StateKind,
          scope: s.scope as StateScope,
          version: s.version as number,
          entries: 0,
        });
      }
      return {
        type: 'task',
        header: {
          line: n,
          pipeline: typeof o.pipeline === 'string' ? o.pipeline : undefined,
          topic: o.topic as string,
          partition: o.partition as number,
          committedOffset,
          applied: count('applied'),
          quarantined: count('quarantined'),
          states,
        },
      };
    }
    case 'entry': {
      if (!task) fail(n, 'an entry before any task line');
      if (typeof o.state !== 'string' || typeof o.key !== 'string')
        fail(n, 'entry needs state and key strings');
      const decl = task.states.get(o.state as string);
      if (!decl) fail(n, `state ${o.state} is not declared by the task (line ${task.line})`);
      if (decl.scope === 'task' && o.key !== TASK_KEY) fail(n, `task-scoped state ${decl.name} has key ""`);
      let value: unknown;
      try {
        if (decl.kind === 'map') {
          const m = o.value;
          if (m === null || typeof m !== 'object' || Array.isArray(m))
            fail(n, 'a map-state value is an object');
          value = new Map(Object.entries(m as object).map(([k, v]) => [k, fromTaggedJson(v)]));
        } else {
          value = fromTaggedJson(o.value);
          if (decl.kind === 'list' && !Array.isArray(value)) fail(n, 'a list-state value is an array');
        }
      } catch (err) {
        if (err instanceof OperationError && err.message.startsWith('line ')) throw err;
        fail(n, (err as Error).message);
      }
      return { type: 'entry', state: decl.name, key: o.key as string, value };
    }
    default:
      return fail(n, `unknown line type ${JSON.stringify(o.type)}`);
  }
}

/** Parses the input, calling `onTask` with each task's header and its state tables. */
async function readTasks(
  lines: AsyncIterable<string>,
  onExport: (pipeline: string | undefined) => void,
  onTask: (header: TaskHeader, tables: Map<string, StateTable>) => Promise<void>,
): Promise<void> {
  let n = 0;
  let header: TaskHeader | undefined;
  let tables = new Map<string, StateTable>();
  for await (const text of lines) {
    n++;
    const p = parseLine(text, n, header);
    if (!p) continue;
    if (p.type === 'export') {
      if (n !== 1) fail(n, 'the export line must come first');
      onExport(p.pipeline);
    } else if (p.type === 'task') {
      if (header) await onTask(header, tables);
      header = p.header;
      tables = new Map(
        [...header.states.values()].map((d) => [
          d.name,
          { name: d.name, kind: d.kind, scope: d.scope, version: d.version, data: new Map() },
        ]),
      );
    } else {
      const t = tables.get(p.state)!;
      if (t.data.has(p.key)) fail(n, `key ${JSON.stringify(p.key)} of state ${p.state} appears twice`);
      // Empty maps and lists are never stored (lib/state/stateStore.ts): they are simply absent.
      const empty =
        (p.value instanceof Map && p.value.size === 0) || (Array.isArray(p.value) && p.value.length === 0);
      if (!empty && p.value !== undefined) t.data.set(p.key, p.value);
    }
  }
  if (header) await onTask(header, tables);
}

/**
 * Creates checkpoints from an export. `open` is called twice (validate, then write) and must
 * return the same lines each time.
 */
export async function bootstrapState(
  stores: { snapshots: SnapshotStore; commits: CommitStore },
  open: () => AsyncIterable<string>,
  options: BootstrapOptions,
): Promise<BootstrapResult> {
  const now = options.now ?? Date.now;
  // Pass 1: validate, find the pipeline and every task.
  let filePipeline: string | undefined;
  const headers: TaskHeader[] = [];
  await readTasks(
    open(),
    (p) => {
      filePipeline = p;
    },
    async (h) => {
      headers.push(h);
    },
  );
  const pipelines = new Set([filePipeline, ...headers.map((h) => h.pipeline)].filter((p) => p !== undefined));
  const pipeline = options.pipeline ?? (pipelines.size === 1 ? [...pipelines][0] : undefined);
  if (!pipeline) {
    throw new OperationError(
      pipelines.size > 1
        ? `the input holds several pipelines (${[...pipelines].join(', ')}): pass --pipeline`
        : 'the input names no pipeline: pass --pipeline',
    );
  }
  if (!ID.test(pipeline)) throw new OperationError(`pipeline ${JSON.stringify(pipeline)} is not a valid id`);
  const seen = new Set<string>();
  for (const h of headers) {
    const id = `${h.topic}:${h.partition}`;
    if (seen.has(id)) fail(h.line, `task ${taskLabel(h)} appears twice`);
    seen.add(id);
  }
  const offsets = options.offsets ?? new Map<string, bigint>();
  const offsetOf = (t: { topic: string; partition: number }) =>
    offsets.get(`${t.topic}:${t.partition}`) ??
    headers.find((h) => h.topic === t.topic && h.partition === t.partition)?.committedOffset;
  const noOffset = headers.filter((h) => offsetOf(h) === undefined);
  if (noOffset.length > 0) {
    throw new OperationError(
      `no committed offset for ${noOffset.map(taskLabel).join(', ')}: give them with --offsets topic:partition=offset`,
    );
  }
  const onlyOffsets = [...offsets.keys()]
    .filter((k) => !seen.has(k))
    .map((k) => {
      const i = k.lastIndexOf(':');
      return { topic: k.slice(0, i), partition: Number(k.slice(i + 1)) };
    });
  const all: TaskId[] = [...headers, ...onlyOffsets].map((t) => ({
    pipeline,
    topic: t.topic,
    partition: t.partition,
  }));
  if (all.length === 0) throw new OperationError('the input holds no task');
  const existing: string[] = [];
  for (const t of all) {
    const c = await stores.commits.read(t);
    if (c) existing.push(`${taskLabel(t)} (epoch ${c.epoch}, offset ${c.committedOffset})`);
  }
  if (existing.length > 0) {
    throw new OperationError(
      `pipeline ${pipeline} already has checkpoints for ${existing.join(', ')}; bootstrap only creates tasks that have none (nothing was written)`,
    );
  }

  // Pass 2: write a full snapshot and an epoch-1 commit per task.
  const result: BootstrappedTask[] = [];
  const create = async (
    t: { topic: string; partition: number; applied: number; quarantined: number },
    tables: Map<string, StateTable>,
  ) => {
    const task: TaskId = { pipeline, topic: t.topic, partition: t.partition };
    const committedOffset = offsetOf(t)!;
    const attempt = `bs${randomBytes(4).toString('hex')}`;
    const entries = [...tables.values()].reduce((n, x) => n + x.data.size, 0);
    const chain: SnapshotRef[] = [];
    if (tables.size > 0) {
      const body = encodeSnapshot(
        {
          pipeline,
          topic: t.topic,
          partition: t.partition,
          epoch: 1,
          committedOffset,
          kind: 'full',
          baseEpoch: null,
          parentEpoch: null,
          attempt,
          createdAt: new Date(now()).toISOString(),
        },
        fullSections(tables.values()),
        options.compression ?? 'zstd',
      );
      const key = snapshotKey(options.prefix, task, 1, attempt, 'full');
      await stores.snapshots.put(key, body, { ifAbsent: true, contentType: 'application/octet-stream' });
      chain.push({
        key,
        bytes: body.length,
        checksum: snapshotChecksum(body),
        kind: 'full',
        epoch: 1,
        entries,
      });
    }
    try {
      await installCheckpoint(
        stores.commits,
        task,
        undefined,
        { committedOffset, chain },
        {
          attempt: 'bootstrap',
          counters: { applied: t.applied, quarantined: t.quarantined },
          retainedCheckpoints: options.retainedCheckpoints,
          now,
        },
      );
    } catch (err) {
      await stores.snapshots.delete(chain.map((r) => r.key)).catch(() => {});
      throw err;
    }
    result.push({
      topic: t.topic,
      partition: t.partition,
      committedOffset: committedOffset.toString(),
      entries,
      bytes: chain.reduce((n, r) => n + r.bytes, 0),
    });
  };
  await readTasks(open(), () => {}, create);
  for (const t of onlyOffsets) await create({ ...t, applied: 0, quarantined: 0 }, new Map());
  return { pipeline, tasks: result };
}
