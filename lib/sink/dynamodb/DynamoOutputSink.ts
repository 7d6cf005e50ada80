/**
 * The sink of every DynamoDB output of a processor (docs/outputs.md#dynamodb).
 *
 * - `attach`: when commits are in DynamoDB and an epoch's writes (one per item, merged) fit the
 *   commit's transaction (99 writes besides the commit Put, and its size), they are written in it:
 *   atomically with the epoch, or not at all.
 * - `deliver`: otherwise, after the commit, in transactions of at most 100 actions; each carries the
 *   task's fence in every table it touches, advanced to (epoch, chunk) on condition it is not there
 *   yet. A chunk refused by a fence was delivered already (by this container, another, or a retry),
 *   or the fence is at a newer epoch (this delivery is stale: a zombie's): nothing is written twice
 *   and nothing stale is written. Every write is also conditioned on the item holding no newer write
 *   of the task (`transactions.ts`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type DynamoDBClient,
  type TransactWriteItem,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { ConfigurationError, OutputDeliveryError } from '../../errors.ts';
import type { AttachedWrites, Delivery, OutputPart, Sink, SinkEnvironment } from '../../output/types.ts';
import { createDynamoDBClient } from '../../store/clients.ts';
import { ATTACH_MAX_WRITES, COMMIT_ITEM_RESERVE, LIMITS } from './constants.ts';
import { type DynamoEntry, dynamoOutputTable, type ResolvedDynamoOutputOptions } from './dynamoOutput.ts';
import type { AttributeMap } from './itemSize.ts';
import {
  chunkTables,
  chunkToken,
  chunkWrites,
  fenceAction,
  fencePosition,
  type ItemWrite,
  itemAction,
  itemId,
  mergeWrites,
  sameKeySchema,
  type TableEntry,
  type TableFence,
} from './transactions.ts';

/** Attempts of one delivery transaction that meets a concurrent one (TransactionConflict, in progress). */
const CONFLICT_ATTEMPTS = 6;
const CONFLICT_BACKOFF_MS = 20;

const SINK = 'dynamodb';

interface Plan {
  writes: ItemWrite[];
  fences: Map<string, TableFence>;
}

type ChunkOutcome =
  | { kind: 'applied' }
  /** A fence refused it: delivered already up to `chunk` of this epoch, or a newer epoch (`stale`). */
  | { kind: 'fenced'; stale: boolean; chunk: number };

interface CancellationReason {
  Code?: string;
  Item?: AttributeMap;
  Message?: string;
}

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  CancellationReasons?: CancellationReason[];
}

const TRANSIENT_REASON = /TransactionConflict|Throttl|ProvisionedThroughputExceeded|RequestLimitExceeded/;

export class DynamoOutputSink implements Sink {
  private readonly env: SinkEnvironment;
  /** The client the sink was built with (undefined: the default one, built on first use). */
  private readonly given: DynamoDBClient | undefined;
  private own: DynamoDBClient | undefined;
  /** The client the outputs name, if any (checked to be one). */
  private named: DynamoDBClient | undefined;

  constructor(env: SinkEnvironment, options: { client?: DynamoDBClient | undefined } = {}) {
    this.env = env;
    this.given = options.client;
  }

  private get client(): DynamoDBClient {
    if (this.given) return this.given;
    this.own ??= createDynamoDBClient(this.env.env);
    return this.own;
  }

  /** One write per item of the delivery, and the fence of each table (throws on a misconfiguration). */
  private plan(delivery: Delivery): Plan {
    const entries: TableEntry[] = [];
    const fences = new Map<string, TableFence>();
    const schemas = new Map<string, ResolvedDynamoOutputOptions['key']>();
    for (const part of delivery.parts) {
      const options = this.optionsOf(part);
      const table = dynamoOutputTable(options, this.env.env);
      const known = schemas.get(table);
      if (known) sameKeySchema(table, known, options.key);
      else schemas.set(table, options.key);
      const fenceKey = options.fenceKey(delivery.task);
      const fence = fences.get(table);
      if (!fence) fences.set(table, { table, key: fenceKey });
      else if (itemId(table, fence.key, options.key) !== itemId(table, fenceKey, options.key)) {
        throw new ConfigurationError(
          'fenceKey',
          `dynamoOutput: two outputs to table ${table} give the task different fence keys`,
        );
      }
      for (const e of part.entries) {
        entries.push({ table, key: options.key, seq: e.seq, entry: e.entry as DynamoEntry });
      }
    }
    const writes = mergeWrites(delivery.task, entries);
    for (const w of writes) {
      if (w.id === itemId(w.table, fences.get(w.table)!.key, schemas.get(w.table)!)) {
        throw new ConfigurationError(
          'fenceKey',
          `dynamoOutput: an output writes the task's fence item in ${w.table}`,
        );
      }
    }
    return { writes, fences };
  }

  private optionsOf(part: OutputPart): ResolvedDynamoOutputOptions {
    const options = part.descriptor.options as ResolvedDynamoOutputOptions;
    // One transaction spans the outputs: those that name a client must name the same one.
    if (options.client) {
      this.named ??= options.client;
      if (options.client !== this.named) {
        throw new ConfigurationError(
          'processor.outputs',
          `dynamoOutput '${part.name}': the DynamoDB outputs of a processor that give a client must give the same one`,
        );
      }
    }
    return options;
  }

  attach(delivery: Delivery): AttachedWrites | undefined {
    // Whichever path the writes take, a missing table fails the epoch now, before its commit.
    for (const p of delivery.parts) dynamoOutputTable(this.optionsOf(p), this.env.env);
    if (this.env.commitStore !== 'dynamodb') return undefined;
    if (delivery.parts.some((p) => !this.optionsOf(p).inCommit)) return undefined;
    const { writes } = this.plan(delivery);
    if (writes.length > ATTACH_MAX_WRITES) return undefined;
    const bytes = writes.reduce((n, w) => n + w.bytes, 0);
    if (bytes > LIMITS.transactionBytes - COMMIT_ITEM_RESERVE) return undefined;
    return { store: 'dynamodb', writes: writes.map((w) => itemAction(w, delivery.task, delivery.epoch)) };
  }

  async deliver(delivery: Delivery): Promise<void> {
    const { writes, fences } = this.plan(delivery);
    const chunks = chunkWrites(writes);
    let c = 0;
    while (c < chunks.length) {
      const chunk = chunks[c]!;
      const actions = [
        ...chunkTables(chunk).map((t) =>
          fenceAction(
            fences.get(t)!,
            delivery.task,
            delivery.epoch,
            c,
            chunks.length,
            delivery.committedOffset,
          ),
        ),
        ...chunk.map((w) => itemAction(w, delivery.task, delivery.epoch)),
      ];
      const outcome = await this.send(delivery, c, actions, chunkTables(chunk).length);
      if (outcome.kind === 'applied') c++;
      else if (outcome.stale) return;
      else c = Math.max(c + 1, outcome.chunk + 1);
    }
  }

  /** Sends one delivery transaction; `fences` is how many fence actions lead it. */
  private async send(
    delivery: Delivery,
    chunk: number,
    actions: TransactWriteItem[],
    fences: number,
  ): Promise<ChunkOutcome> {
    const token = chunkToken(delivery.task, delivery.epoch, delivery.committedOffset, chunk, actions);
    const where = `${delivery.task.topic}-${delivery.task.partition} epoch ${delivery.epoch} chunk ${chunk}`;
    for (let attempt = 1; ; attempt++) {
      let err: SdkError;
      try {
        await this.client.send(
          new TransactWriteItemsCommand({ TransactItems: actions, ClientRequestToken: token }),
        );
        return { kind: 'applied' };
      } catch (e) {
        err = (e ?? {}) as SdkError;
      }
      const reasons = err.name === 'TransactionCanceledException' ? (err.CancellationReasons ?? []) : [];
      // A fence refused the chunk: where is it?
      const refused = reasons.slice(0, fences).filter((r) => r.Code === 'ConditionalCheckFailed');
      if (refused.length > 0) {
        const positions = refused.map((r) => fencePosition(r.Item));
        if (positions.some((p) => p && p.epoch > delivery.epoch))
          return { kind: 'fenced', stale: true, chunk };
        const here = positions.filter((p) => p?.epoch === delivery.epoch).map((p) => p!.chunk);
        if (here.length > 0) return { kind: 'fenced', stale: false, chunk: Math.max(...here) };
      }
      const stale = reasons.findIndex((r, i) => i >= fences && r.Code === 'ConditionalCheckFailed');
      if (stale >= 0) {
        const w = actions[stale]!;
        const table = w.Put?.TableName ?? w.Update?.TableName ?? w.Delete?.TableName;
        throw new OutputDeliveryError(
          SINK,
          `${where}: an item of ${table} holds a newer write of this task than the epoch being delivered, though the task's fence let the delivery through (was the fence item deleted, or the pipeline's commits reset without its fences?)`,
          { cause: err, retriable: false },
        );
      }
      const transient =
        err.name === 'TransactionInProgressException' ||
        (reasons.length > 0 && reasons.some((r) => TRANSIENT_REASON.test(r.Code ?? '')));
      if (transient && attempt < CONFLICT_ATTEMPTS) {
        await sleep(CONFLICT_BACKOFF_MS * 2 ** (attempt - 1) * (0.5 + Math.random()));
        continue;
      }
      throw deliveryError(where, err, transient);
    }
  }

  async close(): Promise<void> {
    this.own?.destroy();
    this.own = undefined;
  }
}

/** An SDK error as an `OutputDeliveryError`, retriable unless retrying the same request cannot help. */
function deliveryError(where: string, err: SdkError, transient: boolean): OutputDeliveryError {
  const name = err.name ?? 'Error';
  const status = err.$metadata?.httpStatusCode;
  const codes = (err.CancellationReasons ?? [])
    .map((r, i) =>
      r.Code && r.Code !== 'None' ? `#${i}: ${r.Code}${r.Message ? ` (${r.Message})` : ''}` : '',
    )
    .filter(Boolean);
  const permanent =
    name === 'ResourceNotFoundException' ||
    name === 'AccessDeniedException' ||
    name === 'ValidationException' ||
    codes.some((c) => /ValidationError|ItemCollectionSizeLimitExceeded/.test(c));
  const retriable =
    !permanent &&
    (transient ||
      status === undefined ||
      status >= 500 ||
      /Throttl|ProvisionedThroughputExceeded|RequestLimitExceeded|IdempotentParameterMismatch|TransactionInProgress/.test(
        name,
      ));
  return new OutputDeliveryError(
    SINK,
    `${where}: ${name}${status ? ` (HTTP ${status})` : ''}: ${err.message ?? ''}${codes.length ? ` [${codes.join(', ')}]` : ''}`,
    { cause: err, retriable },
  );
}
