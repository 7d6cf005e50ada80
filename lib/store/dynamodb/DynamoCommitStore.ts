import { createHash } from 'node:crypto';
import type { AttributeValue, DynamoDBClient, TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { COMMIT_SK, taskPk, taskPkPrefix } from '../../checkpoint/layout.ts';
import type {
  CheckpointSummary,
  CommitRecord,
  CommitStore,
  OutboxRef,
  SnapshotRef,
  TaskId,
  TaskTimeSummary,
} from '../../checkpoint/stores.ts';
import { CommitConflictError, ConfigurationError, StoreError, StoreMissingError } from '../../errors.ts';
import type { AttachedWrites } from '../../output/types.ts';
import { big, type Item, int, list, MalformedItemError, N, S, snapshotKind, str } from './attributes.ts';
import type { DynamoOperation, DynamoOperations, DynamoRequests } from './requests.ts';

/** Actions of one TransactWriteItems. */
const MAX_TRANSACTION_ACTIONS = 100;

/** Cancellation reasons a retry can overcome (`None`: that action was fine). */
const TRANSIENT_CANCELLATIONS = new Set([
  'None',
  'TransactionConflict',
  'ThrottlingError',
  'ProvisionedThroughputExceeded',
  'RequestLimitExceeded',
  'InternalServerError',
]);

interface SdkError {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Maps an SDK error to the Tidemark tree. */
export function dynamoError(operation: string, table: string, err: unknown): StoreError {
  const e = (err ?? {}) as SdkError;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  if (name === 'ResourceNotFoundException')
    return new StoreMissingError('dynamodb', operation, `table ${table}`, { cause: err });
  if (name === 'AccessDeniedException' || name === 'UnrecognizedClientException') {
    return new StoreMissingError('dynamodb', operation, `table ${table} (${name})`, { cause: err });
  }
  const retriable =
    status === undefined ||
    status >= 500 ||
    /Throttl|ProvisionedThroughputExceeded|RequestLimitExceeded|InternalServerError|ServiceUnavailable/.test(
      name,
    );
  const message = err instanceof Error ? err.message : String(err);
  return new StoreError('dynamodb', operation, `${name}${status ? ` (HTTP ${status})` : ''}: ${message}`, {
    cause: err,
    retriable,
  });
}

/**
 * Marshals a commit record compactly, so the item stays under the 1 KB of one write unit in most
 * cases: snapshot references are stored once (`refs`, with short attribute names and keys relative
 * to the task's snapshot directory `dir`) and the current chain and every retained chain are lists
 * of indices into them (chains share their base and older deltas). An inline link carries its
 * snapshot's bytes as a binary attribute (`i`), stored once however many retained chains share it.
 * Offsets are DynamoDB numbers, exact to 38 digits.
 */
export function commitToItem(c: CommitRecord): Item {
  const all = [c.chain, ...c.history.map((h) => h.chain)];
  const first = all.find((chain) => chain.length > 0)?.[0]?.key ?? '';
  const dir = first.slice(0, first.lastIndexOf('/') + 1);
  const index = new Map<string, number>();
  const refs: AttributeValue[] = [];
  const indices = (chain: readonly SnapshotRef[]): AttributeValue => ({
    L: chain.map((r) => {
      let n = index.get(r.key);
      if (n === undefined) {
        n = refs.length;
        index.set(r.key, n);
        refs.push({
          M: {
            k: S(dir && r.key.startsWith(dir) ? r.key.slice(dir.length) : `/${r.key}`),
            b: N(r.bytes),
            c: S(r.checksum),
            t: S(r.kind),
            e: N(r.epoch),
            n: N(r.entries),
            ...(r.inline ? { i: { B: r.inline } } : {}),
          },
        });
      }
      return N(n);
    }),
  });
  const chain = indices(c.chain);
  const history: AttributeValue = {
    L: c.history.map((h) => ({
      M: { e: N(h.epoch), o: N(h.committedOffset), u: S(h.updatedAt), c: indices(h.chain) },
    })),
  };
  return {
    pk: S(taskPk(c)),
    sk: S(COMMIT_SK),
    pipeline: S(c.pipeline),
    topic: S(c.topic),
    partition: N(c.partition),
    epoch: N(c.epoch),
    committedOffset: N(c.committedOffset),
    updatedAt: S(c.updatedAt),
    quarantined: N(c.quarantined),
    applied: N(c.applied),
    attempt: S(c.attempt),
    dir: S(dir),
    refs: { L: refs },
    chain,
    history,
    ...(c.outbox ? { outbox: outboxToAttr(c.outbox) } : {}),
    ...(c.time ? { time: timeToAttr(c.time) } : {}),
  };
}

/** The task's time summary (`w` watermark, `d` due at; either may be absent). */
function timeToAttr(t: TaskTimeSummary): AttributeValue {
  return {
    M: {
      ...(t.watermark !== undefined ? { w: N(t.watermark) } : {}),
      ...(t.dueAt !== undefined ? { d: N(t.dueAt) } : {}),
    },
  };
}

function attrToTime(a: AttributeValue): TaskTimeSummary {
  const m = a.M;
  if (!m) throw new MalformedItemError('time is not a map');
  const num = (f: string) => {
    const v = m[f]?.N;
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new MalformedItemError(`time.${f} is not an integer`);
    return n;
  };
  const watermark = num('w');
  const dueAt = num('d');
  return { ...(watermark !== undefined ? { watermark } : {}), ...(dueAt !== undefined ? { dueAt } : {}) };
}

function outboxToAttr(o: OutboxRef): AttributeValue {
  return {
    M: {
      e: N(o.epoch),
      n: N(o.count),
      b: N(o.bytes),
      c: S(o.checksum),
      ...(o.key !== undefined ? { k: S(o.key) } : {}),
      ...(o.inline !== undefined ? { i: { B: o.inline } } : {}),
      ...(o.settled ? { s: { BOOL: true } } : {}),
    },
  };
}

function attrToOutbox(a: AttributeValue): OutboxRef {
  const m = a.M;
  if (!m) throw new MalformedItemError('outbox is not a map');
  const inline = m.i?.B;
  const key = m.k?.S;
  if (inline === undefined && key === undefined)
    throw new MalformedItemError('outbox has neither key nor bytes');
  return {
    epoch: int(m, 'e'),
    count: int(m, 'n'),
    bytes: int(m, 'b'),
    checksum: str(m, 'c'),
    ...(key !== undefined ? { key } : {}),
    ...(inline !== undefined ? { inline } : {}),
    ...(m.s?.BOOL ? { settled: true } : {}),
  };
}

/** Unmarshals a commit item; a malformed item is a non-retriable `StoreError`. */
export function itemToCommit(item: Item): CommitRecord {
  try {
    const dir = str(item, 'dir');
    const refs = list(item, 'refs').map((a): SnapshotRef => {
      const m = a.M;
      if (!m) throw new MalformedItemError('snapshot reference is not a map');
      const kind = snapshotKind(str(m, 't'));
      const k = str(m, 'k');
      const ref: SnapshotRef = {
        key: k.startsWith('/') ? k.slice(1) : dir + k,
        bytes: int(m, 'b'),
        checksum: str(m, 'c'),
        kind,
        epoch: int(m, 'e'),
        entries: int(m, 'n'),
      };
      const inline = m.i?.B;
      return inline ? { ...ref, inline } : ref;
    });
    const chainOf = (a: AttributeValue | undefined, what: string): SnapshotRef[] => {
      if (!a?.L) throw new MalformedItemError(`${what} is not a list`);
      return a.L.map((x) => {
        const ref = refs[Number(x.N)];
        if (!ref) throw new MalformedItemError(`${what} points at a missing reference`);
        return ref;
      });
    };
    return {
      pipeline: str(item, 'pipeline'),
      topic: str(item, 'topic'),
      partition: int(item, 'partition'),
      epoch: int(item, 'epoch'),
      committedOffset: big(item, 'committedOffset'),
      chain: chainOf(item.chain, 'chain'),
      updatedAt: str(item, 'updatedAt'),
      quarantined: int(item, 'quarantined'),
      applied: int(item, 'applied'),
      attempt: str(item, 'attempt'),
      history: list(item, 'history').map((h, i): CheckpointSummary => {
        const m = h.M;
        if (!m) throw new MalformedItemError('history entry is not a map');
        return {
          epoch: int(m, 'e'),
          committedOffset: big(m, 'o'),
          updatedAt: str(m, 'u'),
          chain: chainOf(m.c, `history[${i}]`),
        };
      }),
      ...(item.outbox ? { outbox: attrToOutbox(item.outbox) } : {}),
      ...(item.time ? { time: attrToTime(item.time) } : {}),
    };
  } catch (err) {
    if (!(err instanceof MalformedItemError)) throw err;
    throw new StoreError(
      'dynamodb',
      'read',
      `commit item ${item.pk?.S ?? '?'} is malformed: ${err.message}`,
      {
        retriable: false,
        cause: err,
      },
    );
  }
}

export interface DynamoCommitStoreOptions {
  /** An AWS SDK v3 client, or requests of another client (the handler's lightweight transport). */
  client: DynamoDBClient | DynamoRequests;
  table: string;
}

function isRequests(client: DynamoDBClient | DynamoRequests): client is DynamoRequests {
  return typeof (client as DynamoRequests).client === 'string';
}

/**
 * Requests sent by an SDK client, whose adapter (and with it the SDK's commands) loads on first use.
 * A bundle built for the lightweight transport (the CDK construct defines
 * `process.env.TIDEMARK_BUNDLED_AWS_CLIENT` as `lite`) leaves this branch out, and the SDK with it.
 */
export function sdkRequestsOnFirstUse(client: DynamoDBClient): DynamoRequests {
  let loaded: Promise<DynamoRequests> | undefined;
  return {
    client: 'sdk',
    async send<K extends DynamoOperation>(operation: K, input: DynamoOperations[K]['input']) {
      if ((process.env.TIDEMARK_BUNDLED_AWS_CLIENT ?? 'sdk') === 'sdk') {
        loaded ??= import('./sdkRequests.ts').then((m) => m.sdkDynamoRequests(client));
        return (await loaded).send(operation, input);
      }
      throw new ConfigurationError(
        'TIDEMARK_BUNDLED_AWS_CLIENT',
        'this bundle was built without the AWS SDK DynamoDB client (awsClient: lite); pass no client, or bundle with awsClient: sdk',
      );
    },
  };
}

/**
 * `CommitStore` on DynamoDB. The commit is one PutItem conditioned on the stored epoch, with
 * `ReturnValuesOnConditionCheckFailure: ALL_OLD` so a lost race returns the winner without a read.
 */
export class DynamoCommitStore implements CommitStore {
  readonly kind = 'dynamodb';
  readonly table: string;
  private readonly client: DynamoRequests;

  constructor(options: DynamoCommitStoreOptions) {
    this.client = isRequests(options.client) ? options.client : sdkRequestsOnFirstUse(options.client);
    this.table = options.table;
  }

  /** Which client sends the requests (`sdk` or `lite`). */
  get clientKind(): 'sdk' | 'lite' {
    return this.client.client;
  }

  async read(task: TaskId): Promise<CommitRecord | undefined> {
    let out: { Item?: Item };
    try {
      out = await this.client.send('GetItem', {
        TableName: this.table,
        Key: { pk: S(taskPk(task)), sk: S(COMMIT_SK) },
        ConsistentRead: true,
      });
    } catch (err) {
      throw dynamoError('read', this.table, err);
    }
    return out.Item ? itemToCommit(out.Item) : undefined;
  }

  async commit(next: CommitRecord, expectedEpoch: number, attached?: AttachedWrites): Promise<void> {
    const condition =
      expectedEpoch === 0
        ? { ConditionExpression: 'attribute_not_exists(pk)' }
        : {
            ConditionExpression: '#epoch = :expected',
            ExpressionAttributeNames: { '#epoch': 'epoch' },
            ExpressionAttributeValues: { ':expected': N(expectedEpoch) },
          };
    const put = {
      TableName: this.table,
      Item: commitToItem(next),
      ...condition,
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const,
    };
    if (attached && attached.writes.length > 0)
      return this.commitTransaction(next, expectedEpoch, put, attached);
    try {
      await this.client.send('PutItem', put);
    } catch (err) {
      if ((err as SdkError)?.name === 'ConditionalCheckFailedException') {
        const item = (err as { Item?: Item }).Item;
        throw new CommitConflictError(expectedEpoch, item ? itemToCommit(item) : undefined, { cause: err });
      }
      throw dynamoError('commit', this.table, err);
    }
  }

  /**
   * The commit and the outputs attached to it in one `TransactWriteItems` (up to 100 actions, 4 MB):
   * all or nothing. Its client request token is derived from the commit (task, epoch, attempt), so an
   * SDK retry of a transaction whose response was lost succeeds instead of meeting its own commit.
   */
  private async commitTransaction(
    next: CommitRecord,
    expectedEpoch: number,
    put: TransactWriteItem['Put'],
    attached: AttachedWrites,
  ): Promise<void> {
    if (attached.store !== this.kind) {
      throw new ConfigurationError(
        'TIDEMARK_COMMIT_STORE',
        `outputs attached writes for ${attached.store} to a commit in ${this.kind}`,
      );
    }
    if (attached.writes.length + 1 > MAX_TRANSACTION_ACTIONS) {
      throw new ConfigurationError(
        'processor.outputs',
        `outputs attached ${attached.writes.length} writes to a commit; a DynamoDB transaction holds ${MAX_TRANSACTION_ACTIONS} actions, the commit included`,
      );
    }
    const token = createHash('sha256')
      .update(`${taskPk(next)}\u0000${next.epoch}\u0000${next.attempt}`)
      .digest('hex')
      .slice(0, 36);
    try {
      await this.client.send('TransactWriteItems', {
        TransactItems: [{ Put: put }, ...(attached.writes as TransactWriteItem[])],
        ClientRequestToken: token,
      });
    } catch (err) {
      const reasons = (err as { CancellationReasons?: Array<{ Code?: string; Item?: Item }> })
        .CancellationReasons;
      if (
        (err as SdkError)?.name === 'TransactionCanceledException' &&
        reasons?.[0]?.Code === 'ConditionalCheckFailed'
      ) {
        const item = reasons[0].Item;
        throw new CommitConflictError(expectedEpoch, item ? itemToCommit(item) : undefined, { cause: err });
      }
      const codes = (reasons ?? []).map((r) => r.Code ?? 'None');
      const detail = codes.some((c) => c !== 'None')
        ? ` (${codes
            .map((c, i) => (c === 'None' ? '' : `action ${i}: ${c}`))
            .filter(Boolean)
            .join(', ')}; action 0 is the commit, the others outputs)`
        : '';
      const mapped = dynamoError('commit', `${this.table} (with output tables)`, err);
      const canceled = (err as SdkError)?.name === 'TransactionCanceledException';
      throw new StoreError('dynamodb', 'commit', `${mapped.message}${detail}`, {
        cause: err,
        // A transaction canceled only by contention or throttling succeeds when retried; one canceled
        // by a validation error, a size limit or an output's own condition will not.
        retriable: canceled
          ? codes.every((c) => TRANSIENT_CANCELLATIONS.has(c)) && codes.some((c) => c !== 'None')
          : mapped.retriable,
      });
    }
  }

  async probe(): Promise<void> {
    try {
      await this.client.send('DescribeTable', { TableName: this.table });
    } catch (err) {
      throw dynamoError('probe', this.table, err);
    }
  }

  async *list(pipeline: string): AsyncIterable<CommitRecord> {
    try {
      let start: Item | undefined;
      do {
        const page = await this.client.send('Scan', {
          TableName: this.table,
          ConsistentRead: true,
          FilterExpression: 'begins_with(pk, :p) AND sk = :sk',
          ExpressionAttributeValues: { ':p': S(taskPkPrefix(pipeline)), ':sk': S(COMMIT_SK) },
          ...(start ? { ExclusiveStartKey: start } : {}),
        });
        for (const item of page.Items ?? []) yield itemToCommit(item);
        start = page.LastEvaluatedKey;
      } while (start);
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw dynamoError('list', this.table, err);
    }
  }
}
