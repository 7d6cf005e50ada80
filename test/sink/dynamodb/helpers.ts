/**
 * Helpers of the DynamoDB output sink's tests: output tables on DynamoDB Local, reading them back,
 * and clients whose delivery transactions can be paused, crashed or lose their response.
 */
import { randomUUID } from 'node:crypto';
import {
  CreateTableCommand,
  DeleteItemCommand,
  type DynamoDBClient,
  paginateScan,
} from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { SimulatedCrash } from '../../../harness/faultyStores.ts';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import { createDynamoDBClient } from '../../../lib/store/clients.ts';

export type Item = Record<string, unknown>;

interface KeyAttribute {
  name: string;
  type: 'S' | 'N' | 'B';
}

/** Creates an output table (string `pk`, and a sort key when asked). */
export async function createOutputTable(
  client: DynamoDBClient,
  options: { partition?: KeyAttribute; sort?: KeyAttribute } = {},
): Promise<string> {
  const table = `out-${randomUUID().slice(0, 12)}`;
  const keys = [
    options.partition ?? { name: 'pk', type: 'S' as const },
    ...(options.sort ? [options.sort] : []),
  ];
  await client.send(
    new CreateTableCommand({
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: keys.map((k) => ({ AttributeName: k.name, AttributeType: k.type })),
      KeySchema: keys.map((k, i) => ({ AttributeName: k.name, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
    }),
  );
  return table;
}

/** Every item of a table, unmarshalled, split into output items (by `pk`) and fence items. */
export async function readTable(
  client: DynamoDBClient,
  table: string,
  key = 'pk',
): Promise<{ items: Map<string, Item>; fences: Item[] }> {
  const items = new Map<string, Item>();
  const fences: Item[] = [];
  for await (const page of paginateScan({ client }, { TableName: table, ConsistentRead: true })) {
    for (const raw of page.Items ?? []) {
      const item = unmarshall(raw);
      const id = String(item[key] instanceof Uint8Array ? Buffer.from(item[key]).toString() : item[key]);
      if (id.startsWith('tidemark#fence#')) fences.push(item);
      else items.set(id, item);
    }
  }
  return { items, fences };
}

/** An item without the sink's attributes. */
export function userAttributes(item: Item): Item {
  return Object.fromEntries(Object.entries(item).filter(([k]) => !k.startsWith('tidemark')));
}

/** Deletes a task's fence item (to show what the per-item versions still stop). */
export async function deleteFence(client: DynamoDBClient, table: string, task: TaskId): Promise<void> {
  await client.send(
    new DeleteItemCommand({
      TableName: table,
      Key: { pk: { S: `tidemark#fence#${task.pipeline}#${task.topic}#${task.partition}` } },
    }),
  );
}

export interface TransactHooks {
  /** Before the nth TransactWriteItems (1-based) is sent. */
  before?: (n: number) => void | Promise<void>;
  /** After the nth TransactWriteItems succeeded, before the caller gets its response. */
  after?: (n: number) => void | Promise<void>;
  /** The SDK's first HTTP attempt of the nth transaction succeeds but its response is lost (the SDK retries). */
  loseFirstResponseOf?: number;
  /**
   * Every transaction gets a new client request token, as when DynamoDB's 10-minute idempotence
   * window has passed: only the sink's fences and conditions stop a repeated transaction.
   */
  forgetTokens?: boolean;
}

export interface HookedClient {
  client: DynamoDBClient;
  hooks: TransactHooks;
  /** TransactWriteItems commands sent (each counted once, whatever the SDK retried). */
  transactions: number;
  /** HTTP attempts of TransactWriteItems (SDK retries included). */
  attempts: number;
  /** Transactions a condition refused. */
  refused: number;
}

const never = (): Promise<never> => new Promise<never>(() => {});

/** A container frozen at this point: nothing after it ever runs (a crashed process). */
export const freeze = never;

/** Throws like a process that died: the caller never learns the outcome. */
export function crash(where: string): never {
  throw new SimulatedCrash(where);
}

/** A client (from the test environment) whose transactions run through `hooks`. */
export function hookedClient(hooks: TransactHooks = {}): HookedClient {
  const client = createDynamoDBClient();
  const h: HookedClient = { client, hooks, transactions: 0, attempts: 0, refused: 0 };
  const isTransaction = (context: unknown) =>
    (context as { commandName?: string }).commandName === 'TransactWriteItemsCommand';
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (!isTransaction(context)) return next(args);
      const n = ++h.transactions;
      await h.hooks.before?.(n);
      if (h.hooks.forgetTokens)
        (args.input as { ClientRequestToken?: string }).ClientRequestToken = randomUUID();
      let out: Awaited<ReturnType<typeof next>>;
      try {
        out = await next(args);
      } catch (err) {
        if ((err as { name?: string }).name === 'TransactionCanceledException') h.refused++;
        throw err;
      }
      await h.hooks.after?.(n);
      return out;
    },
    { step: 'initialize', name: 'testTransactHooks' },
  );
  let lost = false;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (!isTransaction(context)) return next(args);
      h.attempts++;
      const out = await next(args);
      if (h.hooks.loseFirstResponseOf === h.transactions && !lost) {
        lost = true;
        throw Object.assign(new Error('socket hang up (injected: the response was lost)'), {
          name: 'TimeoutError',
          $metadata: {},
        });
      }
      return out;
    },
    { step: 'finalizeRequest', priority: 'low', name: 'testLostResponse' },
  );
  return h;
}
