import {
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
  paginateQuery,
  paginateScan,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import {
  SAVEPOINT_META_SK,
  savepointPk,
  savepointPkPrefix,
  savepointTaskSk,
} from '../../checkpoint/layout.ts';
import {
  compareTasks,
  type Savepoint,
  type SavepointMeta,
  type SavepointStore,
  type SavepointTask,
} from '../../checkpoint/savepoints.ts';
import { OperationError, StoreError } from '../../errors.ts';
import { attrToRef, type Item, int, N, NULL, refToAttr, S, str, strOrNull } from './attributes.ts';
import { dynamoError } from './DynamoCommitStore.ts';

export function metaToItem(m: SavepointMeta): Item {
  return {
    pk: S(savepointPk(m.pipeline, m.name)),
    sk: S(SAVEPOINT_META_SK),
    pipeline: S(m.pipeline),
    name: S(m.name),
    status: S(m.status),
    createdAt: S(m.createdAt),
    completedAt: m.completedAt === null ? NULL : S(m.completedAt),
    topics: { M: Object.fromEntries(Object.entries(m.topics).map(([t, n]) => [t, N(n)])) },
    layoutSource: S(m.layoutSource),
    tasks: N(m.tasks),
    bytes: N(m.bytes),
  };
}

export function taskToItem(t: SavepointTask): Item {
  return {
    pk: S(savepointPk(t.pipeline, t.name)),
    sk: S(savepointTaskSk(t)),
    pipeline: S(t.pipeline),
    name: S(t.name),
    topic: S(t.topic),
    partition: N(t.partition),
    status: S(t.status),
    epoch: N(t.epoch),
    committedOffset: t.committedOffset === null ? NULL : N(t.committedOffset),
    chain: { L: t.chain.map(refToAttr) },
    sourceUpdatedAt: t.sourceUpdatedAt === null ? NULL : S(t.sourceUpdatedAt),
    applied: N(t.applied),
    quarantined: N(t.quarantined),
  };
}

export function itemToMeta(item: Item): SavepointMeta {
  const status = str(item, 'status');
  const layoutSource = str(item, 'layoutSource');
  if (status !== 'creating' && status !== 'complete') throw new Error(`status ${status} is unknown`);
  if (layoutSource !== 'kafka' && layoutSource !== 'commits')
    throw new Error(`layoutSource ${layoutSource} is unknown`);
  const topics: Record<string, number> = {};
  for (const [t, v] of Object.entries(item.topics?.M ?? {})) topics[t] = int({ v }, 'v');
  return {
    pipeline: str(item, 'pipeline'),
    name: str(item, 'name'),
    status,
    createdAt: str(item, 'createdAt'),
    completedAt: strOrNull(item, 'completedAt'),
    topics,
    layoutSource,
    tasks: int(item, 'tasks'),
    bytes: int(item, 'bytes'),
  };
}

export function itemToTask(item: Item): SavepointTask {
  const status = str(item, 'status');
  if (status !== 'committed' && status !== 'not-started') throw new Error(`status ${status} is unknown`);
  const offset = item.committedOffset?.NULL ? null : item.committedOffset?.N;
  if (offset !== null && (offset === undefined || !/^\d+$/.test(offset)))
    throw new Error('attribute committedOffset is not an offset');
  return {
    pipeline: str(item, 'pipeline'),
    name: str(item, 'name'),
    topic: str(item, 'topic'),
    partition: int(item, 'partition'),
    status,
    epoch: int(item, 'epoch'),
    committedOffset: offset === null ? null : BigInt(offset),
    chain: (item.chain?.L ?? []).map(attrToRef),
    sourceUpdatedAt: strOrNull(item, 'sourceUpdatedAt'),
    applied: int(item, 'applied'),
    quarantined: int(item, 'quarantined'),
  };
}

function malformed(item: Item, err: unknown): StoreError {
  return new StoreError(
    'dynamodb',
    'read',
    `savepoint item ${item.pk?.S ?? '?'} ${item.sk?.S ?? '?'} is malformed: ${(err as Error).message}`,
    { retriable: false, cause: err },
  );
}

export interface DynamoSavepointStoreOptions {
  client: DynamoDBClient;
  table: string;
}

/** `SavepointStore` on DynamoDB, in the commit items' table (layout in lib/checkpoint/layout.ts). */
export class DynamoSavepointStore implements SavepointStore {
  readonly table: string;
  private readonly client: DynamoDBClient;

  constructor(options: DynamoSavepointStoreOptions) {
    this.client = options.client;
    this.table = options.table;
  }

  async create(meta: SavepointMeta): Promise<void> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: metaToItem(meta),
          // nameIsFree: no meta item (hence no savepoint) of this name exists in the pipeline.
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (err) {
      if (
        err instanceof ConditionalCheckFailedException ||
        (err as { name?: string })?.name === 'ConditionalCheckFailedException'
      ) {
        throw new OperationError(
          `savepoint ${meta.name} already exists in pipeline ${meta.pipeline} (delete it first, or pick another name)`,
          { cause: err },
        );
      }
      throw dynamoError('savepoint-create', this.table, err);
    }
  }

  private async put(item: Item, operation: string): Promise<void> {
    try {
      await this.client.send(new PutItemCommand({ TableName: this.table, Item: item }));
    } catch (err) {
      throw dynamoError(operation, this.table, err);
    }
  }

  putTask(task: SavepointTask): Promise<void> {
    return this.put(taskToItem(task), 'savepoint-put-task');
  }

  updateMeta(meta: SavepointMeta): Promise<void> {
    return this.put(metaToItem(meta), 'savepoint-update');
  }

  private async *items(pipeline: string, name: string): AsyncIterable<Item> {
    try {
      const pages = paginateQuery(
        { client: this.client },
        {
          TableName: this.table,
          ConsistentRead: true,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': S(savepointPk(pipeline, name)) },
        },
      );
      for await (const page of pages) yield* page.Items ?? [];
    } catch (err) {
      throw dynamoError('savepoint-read', this.table, err);
    }
  }

  async read(pipeline: string, name: string): Promise<Savepoint | undefined> {
    let meta: SavepointMeta | undefined;
    const tasks: SavepointTask[] = [];
    for await (const item of this.items(pipeline, name)) {
      try {
        if (item.sk?.S === SAVEPOINT_META_SK) meta = itemToMeta(item);
        else tasks.push(itemToTask(item));
      } catch (err) {
        throw malformed(item, err);
      }
    }
    if (!meta) return undefined;
    return { meta, tasks: tasks.sort(compareTasks) };
  }

  async *list(pipeline: string): AsyncIterable<SavepointMeta> {
    const pages = paginateScan(
      { client: this.client },
      {
        TableName: this.table,
        ConsistentRead: true,
        FilterExpression: 'begins_with(pk, :p) AND sk = :sk',
        ExpressionAttributeValues: { ':p': S(savepointPkPrefix(pipeline)), ':sk': S(SAVEPOINT_META_SK) },
      },
    );
    try {
      for await (const page of pages) {
        for (const item of page.Items ?? []) {
          try {
            yield itemToMeta(item);
          } catch (err) {
            throw malformed(item, err);
          }
        }
      }
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw dynamoError('savepoint-list', this.table, err);
    }
  }

  async delete(pipeline: string, name: string): Promise<void> {
    const keys: Item[] = [];
    for await (const item of this.items(pipeline, name)) keys.push({ pk: item.pk!, sk: item.sk! });
    // Task items first, the meta item last: an interrupted delete still lists the savepoint.
    keys.sort((a, b) => (a.sk?.S === SAVEPOINT_META_SK ? 1 : 0) - (b.sk?.S === SAVEPOINT_META_SK ? 1 : 0));
    const tasks = keys.filter((k) => k.sk?.S !== SAVEPOINT_META_SK);
    const meta = keys.filter((k) => k.sk?.S === SAVEPOINT_META_SK);
    for (const group of [tasks, meta]) {
      for (let i = 0; i < group.length; i += 25) {
        let requests: WriteRequest[] = group.slice(i, i + 25).map((Key) => ({ DeleteRequest: { Key } }));
        for (let attempt = 0; requests.length > 0; attempt++) {
          if (attempt >= 8)
            throw new StoreError('dynamodb', 'savepoint-delete', 'items left unprocessed after 8 attempts');
          if (attempt > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
          try {
            const out = await this.client.send(
              new BatchWriteItemCommand({ RequestItems: { [this.table]: requests } }),
            );
            requests = out.UnprocessedItems?.[this.table] ?? [];
          } catch (err) {
            throw dynamoError('savepoint-delete', this.table, err);
          }
        }
      }
    }
  }
}
