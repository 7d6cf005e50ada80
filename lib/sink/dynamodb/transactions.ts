/**
 * The DynamoDB output sink's writes, as pure functions (no client): an epoch's entries merged into one
 * write per item, the transaction actions for them (each conditioned on the item's version), their
 * split into delivery transactions ("chunks", each carrying the task's fence in every table it
 * touches), and each chunk's client request token.
 *
 * Merging: a transaction may not hold two actions on one item, and several writes of one item in an
 * epoch become the one write that leaves what applying them in order would leave:
 *
 *     before \ then   put P            update (S, R)                      delete
 *     (none)          put P            update (S, R)                      delete
 *     put I           put P            put I − R + S                      delete
 *     update (S0,R0)  put P            update (S0 − R + S, R0 − S + R)    delete
 *     delete          put P            put key + S (the item is created)  delete
 */
import { createHash } from 'node:crypto';
import type { AttributeValue, TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { TaskId } from '../../checkpoint/stores.ts';
import { ConfigurationError } from '../../errors.ts';
import { FENCE_ATTRIBUTES, FENCE_RESERVE_BYTES, ITEM_ATTRIBUTES, LIMITS } from './constants.ts';
import type { DynamoEntry, DynamoKeySchema } from './dynamoOutput.ts';
import { type AttributeMap, itemSize } from './itemSize.ts';

/** An entry with where it goes. */
export interface TableEntry {
  readonly table: string;
  readonly key: DynamoKeySchema;
  readonly seq: number;
  readonly entry: DynamoEntry;
}

/** The one write of an item in an epoch. */
export type ItemWrite = {
  readonly table: string;
  /** The item's identity in its table (its key, canonical). */
  readonly id: string;
  readonly key: AttributeMap;
  /** The sequence number of the last output that wrote the item (its identity attributes). */
  readonly seq: number;
  /** Bytes the write sends (item or key and attributes set), the sink's attributes included. */
  readonly bytes: number;
} & (
  | { readonly op: 'put'; readonly item: AttributeMap }
  | { readonly op: 'update'; readonly set: AttributeMap; readonly remove: readonly string[] }
  | { readonly op: 'delete' }
);

function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** A key value as a string that differs whenever DynamoDB sees different keys. */
function keyValueId(v: AttributeValue | undefined): string {
  const a = v as { S?: string; N?: string; B?: Uint8Array } | undefined;
  if (a?.S !== undefined) return `S${a.S}`;
  if (a?.N !== undefined) return `N${canonicalNumber(a.N)}`;
  if (a?.B !== undefined) return `B${b64(a.B)}`;
  return '?';
}

/** `1`, `1.0` and `10e-1` are one number to DynamoDB (and so one key). */
function canonicalNumber(n: string): string {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(n);
  if (!m) return n;
  const all = (m[2] ?? '') + (m[3] ?? '');
  const first = all.search(/[1-9]/);
  if (first < 0) return '0';
  const exponent = (m[2] ?? '').length - 1 - first + Number(m[4] ?? 0);
  return `${m[1] === '-' ? '-' : ''}${all.slice(first).replace(/0+$/, '')}e${exponent}`;
}

/** The key attributes of an item or key, in schema order. */
export function keyOf(attributes: AttributeMap, key: DynamoKeySchema): AttributeMap {
  return {
    [key.partition.name]: attributes[key.partition.name]!,
    ...(key.sort ? { [key.sort.name]: attributes[key.sort.name]! } : {}),
  };
}

/** An item's identity: its table and key. */
export function itemId(table: string, attributes: AttributeMap, key: DynamoKeySchema): string {
  const sort = key.sort ? `\u0000${keyValueId(attributes[key.sort.name])}` : '';
  return `${table}\u0000${keyValueId(attributes[key.partition.name])}${sort}`;
}

type Merged =
  | { op: 'put'; item: AttributeMap }
  | { op: 'update'; set: AttributeMap; remove: Set<string> }
  | { op: 'delete' };

function without(m: AttributeMap, names: Iterable<string>): AttributeMap {
  const out = { ...m };
  for (const n of names) delete out[n];
  return out;
}

/** Applies `e` after `before` (the table at the top of this file). */
function mergeOne(before: Merged | undefined, e: DynamoEntry, key: AttributeMap): Merged {
  if (e.op === 'put') return { op: 'put', item: e.item };
  if (e.op === 'delete') return { op: 'delete' };
  if (!before) return { op: 'update', set: { ...e.set }, remove: new Set(e.remove) };
  switch (before.op) {
    case 'put':
      return { op: 'put', item: { ...without(before.item, e.remove), ...e.set } };
    case 'delete':
      return { op: 'put', item: { ...key, ...e.set } };
    default: {
      const remove = new Set([...before.remove].filter((n) => !(n in e.set)));
      for (const n of e.remove) remove.add(n);
      return { op: 'update', set: { ...without(before.set, e.remove), ...e.set }, remove };
    }
  }
}

/** Bytes of the identity attributes of one task's writes (epoch and sequence at their largest). */
function identityBytes(task: TaskId): number {
  const names = Object.values(ITEM_ATTRIBUTES).reduce((n, a) => n + a.length, 0);
  return names + Buffer.byteLength(task.pipeline) + Buffer.byteLength(task.topic) + 3 * 21;
}

/**
 * One write per item, in the order of the outputs that last wrote them (merged as the table at the
 * top of this file says).
 */
export function mergeWrites(task: TaskId, entries: readonly TableEntry[]): ItemWrite[] {
  const byItem = new Map<
    string,
    { table: string; key: AttributeMap; schema: DynamoKeySchema; seq: number; merged: Merged }
  >();
  for (const e of [...entries].sort((a, b) => a.seq - b.seq)) {
    const attributes = e.entry.op === 'put' ? e.entry.item : e.entry.key;
    const id = itemId(e.table, attributes, e.key);
    const prev = byItem.get(id);
    const key = prev?.key ?? keyOf(attributes, e.key);
    byItem.set(id, {
      table: e.table,
      key,
      schema: e.key,
      seq: e.seq,
      merged: mergeOne(prev?.merged, e.entry, key),
    });
  }
  const identity = identityBytes(task);
  return [...byItem]
    .sort(([, a], [, b]) => a.seq - b.seq)
    .map(([id, w]): ItemWrite => {
      const base = { table: w.table, id, key: w.key, seq: w.seq };
      const m = w.merged;
      if (m.op === 'put') return { ...base, op: 'put', item: m.item, bytes: itemSize(m.item) + identity };
      if (m.op === 'delete') return { ...base, op: 'delete', bytes: itemSize(w.key) };
      const remove = [...m.remove];
      const bytes =
        itemSize(w.key) + itemSize(m.set) + remove.reduce((n, r) => n + Buffer.byteLength(r), 0) + identity;
      return { ...base, op: 'update', set: m.set, remove, bytes };
    });
}

const N = (n: number | bigint): AttributeValue => ({ N: String(n) });
const S = (s: string): AttributeValue => ({ S: s });

const ITEM_NAMES = {
  '#tPipeline': ITEM_ATTRIBUTES.pipeline,
  '#tTopic': ITEM_ATTRIBUTES.topic,
  '#tPartition': ITEM_ATTRIBUTES.partition,
  '#tEpoch': ITEM_ATTRIBUTES.epoch,
};

/**
 * The condition of every output write: the item holds no write of this task's that is as new or
 * newer. Timeline of one item (task T):
 *
 *     epoch 4 (T) puts it ──► epoch 5 (T) deletes it ──► a stale epoch-4 write arrives
 *                                                        (the fence stops it before this matters)
 *     epoch 4 (T) puts it ──► epoch 5 (T) updates it ──► a stale epoch-4 write: tidemarkEpoch 5 ≥ 4 → refused
 *     task U (another partition) wrote it            ──► T's write goes through (no order between tasks)
 */
const itemHasNoNewerWriteOfThisTask = [
  'attribute_not_exists(#tEpoch)', // new, or not written by the sink
  'NOT (#tPipeline = :tPipeline AND #tTopic = :tTopic AND #tPartition = :tPartition)', // another task's write
  '#tEpoch < :tEpoch', // an older epoch of this task
].join(' OR ');

function taskValues(task: TaskId, epoch: number): AttributeMap {
  return {
    ':tPipeline': S(task.pipeline),
    ':tTopic': S(task.topic),
    ':tPartition': N(task.partition),
    ':tEpoch': N(epoch),
  };
}

/** The identity attributes of an output (item attributes). */
export function identityAttributes(task: TaskId, epoch: number, seq: number): AttributeMap {
  return {
    [ITEM_ATTRIBUTES.pipeline]: S(task.pipeline),
    [ITEM_ATTRIBUTES.topic]: S(task.topic),
    [ITEM_ATTRIBUTES.partition]: N(task.partition),
    [ITEM_ATTRIBUTES.epoch]: N(epoch),
    [ITEM_ATTRIBUTES.seq]: N(seq),
  };
}

/** The transaction action of one write, conditioned on the item's version (see above). */
export function itemAction(w: ItemWrite, task: TaskId, epoch: number): TransactWriteItem {
  const common = {
    TableName: w.table,
    ConditionExpression: itemHasNoNewerWriteOfThisTask,
    ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const,
  };
  if (w.op === 'put') {
    return {
      Put: {
        ...common,
        Item: { ...w.item, ...identityAttributes(task, epoch, w.seq) },
        ExpressionAttributeNames: ITEM_NAMES,
        ExpressionAttributeValues: taskValues(task, epoch),
      },
    };
  }
  if (w.op === 'delete') {
    return {
      Delete: {
        ...common,
        Key: w.key,
        ExpressionAttributeNames: ITEM_NAMES,
        ExpressionAttributeValues: taskValues(task, epoch),
      },
    };
  }
  const names: Record<string, string> = { ...ITEM_NAMES, '#tSeq': ITEM_ATTRIBUTES.seq };
  const values: AttributeMap = { ...taskValues(task, epoch), ':tSeq': N(w.seq) };
  const sets: string[] = [];
  Object.entries(w.set).forEach(([name, value], i) => {
    names[`#s${i}`] = name;
    values[`:s${i}`] = value;
    sets.push(`#s${i} = :s${i}`);
  });
  for (const t of ['#tPipeline', '#tTopic', '#tPartition', '#tEpoch', '#tSeq'])
    sets.push(`${t} = :${t.slice(1)}`);
  const removes = w.remove.map((name, i) => {
    names[`#r${i}`] = name;
    return `#r${i}`;
  });
  return {
    Update: {
      ...common,
      Key: w.key,
      UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    },
  };
}

/** A table's fence: where it lives. */
export interface TableFence {
  readonly table: string;
  readonly key: AttributeMap;
}

/**
 * The fence of a task in one table, advanced by a delivery transaction to (epoch, chunk) on
 * condition that it is not there yet. Timeline (epoch E delivered in chunks 0, 1, 2):
 *
 *     chunk 0 → fence (E,0) ─ crash ─ retry: chunk 0 refused (fence (E,0) not < (E,0)) → skip to 1
 *     chunk 1 → fence (E,1) → chunk 2 → fence (E,2) → commit E+1 … → fence (E+1,·)
 *     a zombie re-delivering E: any chunk refused (fence past (E,c)) → nothing written
 */
const fenceIsBehind = [
  'attribute_not_exists(#tEpoch)', // the task's first post-commit delivery to this table
  '#tEpoch < :tEpoch', // the last one delivered was an older epoch
  '(#tEpoch = :tEpoch AND #tChunk < :tChunk)', // an earlier chunk of this epoch
].join(' OR ');

export function fenceAction(
  fence: TableFence,
  task: TaskId,
  epoch: number,
  chunk: number,
  chunks: number,
  committedOffset: bigint,
): TransactWriteItem {
  return {
    Update: {
      TableName: fence.table,
      Key: fence.key,
      UpdateExpression:
        'SET #tPipeline = :tPipeline, #tTopic = :tTopic, #tPartition = :tPartition, #tEpoch = :tEpoch, #tChunk = :tChunk, #tChunks = :tChunks, #tOffset = :tOffset',
      ConditionExpression: fenceIsBehind,
      ExpressionAttributeNames: {
        ...ITEM_NAMES,
        '#tChunk': FENCE_ATTRIBUTES.chunk,
        '#tChunks': FENCE_ATTRIBUTES.chunks,
        '#tOffset': FENCE_ATTRIBUTES.offset,
      },
      ExpressionAttributeValues: {
        ...taskValues(task, epoch),
        ':tChunk': N(chunk),
        ':tChunks': N(chunks),
        ':tOffset': N(committedOffset),
      },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  };
}

/** The (epoch, chunk) a fence item records, from its attributes. */
export function fencePosition(item: AttributeMap | undefined): { epoch: number; chunk: number } | undefined {
  const e = (item?.[FENCE_ATTRIBUTES.epoch] as { N?: string } | undefined)?.N;
  const c = (item?.[FENCE_ATTRIBUTES.chunk] as { N?: string } | undefined)?.N;
  return e === undefined || c === undefined ? undefined : { epoch: Number(e), chunk: Number(c) };
}

/**
 * Splits an epoch's writes into delivery transactions, in order: each holds at most 100 actions (its
 * writes plus one fence per table it touches) and 4 MB. Deterministic: every container cuts the
 * same epoch the same way (the fence counts chunks).
 */
export function chunkWrites(writes: readonly ItemWrite[]): ItemWrite[][] {
  const chunks: ItemWrite[][] = [];
  let current: ItemWrite[] = [];
  let tables = new Set<string>();
  let bytes = 0;
  for (const w of writes) {
    const newTable = !tables.has(w.table);
    const actions = current.length + 1 + tables.size + (newTable ? 1 : 0);
    const size = bytes + w.bytes + (newTable ? FENCE_RESERVE_BYTES : 0);
    if (current.length > 0 && (actions > LIMITS.transactionActions || size > LIMITS.transactionBytes)) {
      chunks.push(current);
      current = [];
      tables = new Set();
      bytes = 0;
    }
    if (!tables.has(w.table)) {
      tables.add(w.table);
      bytes += FENCE_RESERVE_BYTES;
    }
    current.push(w);
    bytes += w.bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** The tables of a chunk, in order of first write. */
export function chunkTables(chunk: readonly ItemWrite[]): string[] {
  return [...new Set(chunk.map((w) => w.table))];
}

/**
 * The client request token of a delivery transaction: a digest of the task, the epoch, the chunk and
 * the actions themselves (binary values by content, whatever their JavaScript type). A retry of the
 * same transaction — by the SDK after a lost response, or by another container within DynamoDB's
 * 10 minutes — is then answered as the first was, without applying it twice.
 */
export function chunkToken(
  task: TaskId,
  epoch: number,
  committedOffset: bigint,
  chunk: number,
  actions: readonly TransactWriteItem[],
): string {
  const canonical = JSON.stringify(actions, function (this: Record<string, unknown>, k: string, v: unknown) {
    const raw = this[k];
    return raw instanceof Uint8Array ? { $b: b64(raw) } : v;
  });
  return createHash('sha256')
    .update(
      `tidemark-dynamodb-output/1\u0000${task.pipeline}\u0000${task.topic}\u0000${task.partition}\u0000${epoch}\u0000${committedOffset}\u0000${chunk}\u0000`,
    )
    .update(canonical)
    .digest('hex')
    .slice(0, 36);
}

/** Refuses two outputs that declare one table with different keys. */
export function sameKeySchema(table: string, a: DynamoKeySchema, b: DynamoKeySchema): void {
  const same =
    a.partition.name === b.partition.name &&
    a.partition.type === b.partition.type &&
    a.sort?.name === b.sort?.name &&
    a.sort?.type === b.sort?.type;
  if (!same) {
    throw new ConfigurationError(
      'processor.outputs',
      `dynamoOutput: two outputs declare table ${table} with different keys`,
    );
  }
}
