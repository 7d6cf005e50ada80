/**
 * The main job's outputs (examples/balancesWithOutputs.ts): where they go, how the job tells the
 * attempts that emitted them apart, and how it reads them back and judges them against the
 * independent fold (harness/oracle.ts `TaskFold.applications`):
 *
 * - **Kafka** (`balance-updates`): one record per applied record. Read with kcat (librdkafka, no code
 *   shared with the sink's kafkajs) under `isolation.level=read_committed`, after every task's
 *   transactional id was fenced (a container that died mid-delivery may have left a transaction
 *   open, which would hide everything after it from a read_committed reader). Judged record by record
 *   with the fault campaign's `judgeStream`: each applied record's update exactly once, from the
 *   attempt that committed its epoch, in emit order per output partition.
 * - **DynamoDB** (the overdrawn accounts table): one item per account whose balance is below zero,
 *   its latest update. Read with a consistent Scan and judged item by item (`judgeOverdrawn`): the
 *   item of every overdrawn account is its last update, written by the committed attempt; no other
 *   account has one.
 *
 * To tell the committed attempt from the others, the job runs the example with `tagOutputs`: every
 * emitted value also carries its task (`<topic>-<partition>`) and the request id of the invocation
 * that emitted it (`inv`); a `LedgerCommitStore` in every container records which invocation
 * committed which epoch (the campaign's `CommitLedger`).
 */
import { spawnSync } from 'node:child_process';
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  paginateScan,
  ResourceInUseException,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { Processor } from '../lib/checkpoint/processor.ts';
import type { CommitRecord, CommitStore, TaskId } from '../lib/checkpoint/stores.ts';
import { CommitConflictError } from '../lib/errors.ts';
import type { KafkaRecord } from '../lib/event/types.ts';
import type { AttachedWrites, OutputDescriptors, OutputHandle } from '../lib/output/types.ts';
import { FENCE_KEY_PREFIX } from '../lib/sink/dynamodb/constants.ts';
import { OUTPUT_ID_HEADER } from '../lib/sink/kafka/kafkaOutput.ts';
import type { StateDescriptors } from '../lib/state/descriptors.ts';
import type { CommitLedger } from './campaign/commits.ts';
import {
  type CampaignOutput,
  type ExpectedTask,
  emptyVerdict,
  groupKey,
  judgeStream,
  type SeenOutput,
  type SinkVerdict,
} from './campaign/outputCheck.ts';
import { KcatNotFoundError } from './kafka/errors.ts';
import { fenceOpenTransactions } from './kafka/fence.ts';
import { readCommittedWithKcat } from './kafka/kcat.ts';

/**
 * The processor with every emitted value tagged with its task and the request id of the invocation
 * emitting it (`invocation()`, the container's current one). The example's own code is unchanged:
 * its Kafka values (JSON) and DynamoDB items (the whole update) carry the tags along.
 */
export function tagOutputs<S extends StateDescriptors, O extends OutputDescriptors>(
  processor: Processor<S, O>,
  invocation: () => string,
): Processor<S, O> {
  return {
    ...processor,
    process(record: KafkaRecord, ctx) {
      const task = `${ctx.topic}-${ctx.partition}`;
      const inv = invocation();
      const handles = ctx.outputs as unknown as Record<string, OutputHandle<object>>;
      const outputs = Object.fromEntries(
        Object.entries(handles).map(([name, h]) => [
          name,
          { emit: (value: object) => h.emit({ ...value, task, inv }) },
        ]),
      );
      const tagged = new Proxy(ctx, {
        get: (target, p) => (p === 'outputs' ? outputs : Reflect.get(target, p, target)),
      });
      return processor.process(record, tagged);
    },
  };
}

/**
 * A container's commit store, feeding the run's `CommitLedger`: every commit item it writes, reads
 * or loses a race to, and which invocation made each attempt (whoever commits epoch E+1 had to learn
 * epoch E, so the ledger sees every committed epoch).
 */
export class LedgerCommitStore implements CommitStore {
  private readonly inner: CommitStore;
  private readonly ledger: CommitLedger;
  private readonly invocation: () => string;

  constructor(inner: CommitStore, ledger: CommitLedger, invocation: () => string) {
    this.inner = inner;
    this.ledger = ledger;
    this.invocation = invocation;
  }

  get kind(): string {
    return this.inner.kind;
  }

  async read(task: TaskId): Promise<CommitRecord | undefined> {
    const r = await this.inner.read(task);
    if (r) this.ledger.noteRecord(r);
    return r;
  }

  async commit(next: CommitRecord, expectedEpoch: number, attached?: AttachedWrites): Promise<void> {
    // A rewrite of the same epoch (its outbox marked settled) keeps the attempt that made it.
    if (next.epoch === expectedEpoch + 1) this.ledger.noteAttempt(next.attempt, this.invocation());
    try {
      await this.inner.commit(next, expectedEpoch, attached);
    } catch (err) {
      if (err instanceof CommitConflictError && err.current) this.ledger.noteRecord(err.current);
      throw err;
    }
    this.ledger.noteRecord(next);
  }

  list(pipeline: string): AsyncIterable<CommitRecord> {
    return this.inner.list(pipeline);
  }

  probe(): Promise<void> {
    return this.inner.probe();
  }
}

/** Fails at once, naming the package, when kcat (the independent Kafka reader) is missing. */
export function assertKcat(bin = process.env.KCAT_BIN ?? 'kcat'): void {
  const r = spawnSync(bin, ['-V'], { stdio: 'ignore' });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new KcatNotFoundError(bin);
}

/** The overdrawn accounts table: string partition key `account`, on-demand. */
export async function ensureAccountTable(
  client: DynamoDBClient,
  table: string,
): Promise<'created' | 'exists'> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
    return 'exists';
  } catch (err) {
    if ((err as { name?: string }).name !== 'ResourceNotFoundException') throw err;
  }
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'account', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'account', KeyType: 'HASH' }],
      }),
    );
  } catch (err) {
    if (err instanceof ResourceInUseException) return 'exists';
    throw err;
  }
  await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: table });
  return 'created';
}

/** The Kafka output topic as a read_committed reader sees it, judged against the fold. */
export async function judgeKafkaOutput(options: {
  brokers: readonly string[];
  topic: string;
  pipeline: string;
  /** The input topic (outputs of other runs in the same topic are left out). */
  inputTopic: string;
  expected: ReadonlyMap<string, ExpectedTask>;
  ledger: CommitLedger;
}): Promise<SinkVerdict> {
  await fenceOpenTransactions(
    options.brokers,
    [...options.expected.values()].map((t) => t.id),
  );
  const seen: SeenOutput[] = [];
  // Where each output's copies sit in the topic, to show them when one is there twice.
  const copies = new Map<string, string[]>();
  let expectedCount = 0;
  for (const t of options.expected.values()) expectedCount += t.outputs.length;
  for (const r of await readCommittedWithKcat({
    brokers: options.brokers,
    topic: options.topic,
    // As the campaign's read: time in proportion to the outputs (a busy machine reads slowly).
    timeoutMs: Math.max(120_000, 10 * expectedCount),
  })) {
    const id = r.headers.find((h) => h.name === OUTPUT_ID_HEADER)?.value?.toString('utf8') ?? '';
    const [pipeline = '', topic = '', , epoch = ''] = id.split('/');
    if (pipeline !== options.pipeline || topic !== options.inputTopic) continue;
    const value = JSON.parse(r.value?.toString('utf8') ?? 'null') as CampaignOutput;
    seen.push({ pipeline, epoch: Number(epoch), value, lane: `partition ${r.partition}` });
    const key = `${value.task} offset ${value.offset}`;
    copies.set(key, [...(copies.get(key) ?? []), `${r.partition}@${r.offset} (${id}, ${value.inv})`]);
  }
  const verdict = judgeStream('kafka', seen, options.expected, options.ledger);
  if (verdict.duplicated > 0) {
    const twice = [...copies].filter(([, at]) => at.length > 1).slice(0, 3);
    for (const [key, at] of twice) verdict.examples.push(`kafka: ${key} at ${at.join(' and ')}`);
  }
  return verdict;
}

/** The table's items (a consistent Scan), by account; the sink's fence items left out. */
export async function readAccountTable(
  client: DynamoDBClient,
  table: string,
): Promise<Map<string, Record<string, unknown>>> {
  const items = new Map<string, Record<string, unknown>>();
  for await (const page of paginateScan({ client }, { TableName: table, ConsistentRead: true })) {
    for (const raw of page.Items ?? []) {
      const item = unmarshall(raw);
      const account = String(item.account);
      if (!account.startsWith(FENCE_KEY_PREFIX)) items.set(account, item);
    }
  }
  return items;
}

function note(v: SinkVerdict, text: string): void {
  if (v.examples.length < 8) v.examples.push(text);
}

/**
 * The overdrawn accounts table against the fold: per account of the run whose last update left it
 * below zero, the item must be that update (balance, count, offset), written by the attempt that
 * committed that record (`inv` and the sink's `tidemarkEpoch`); every other account must have no
 * item. A table is judged by what it ends with: an expected item missing or showing an older
 * update counts as lost (the last write did not land); an item left where the last write deleted it
 * as duplicated (an earlier write landed again after the delete, or the delete was lost: a table
 * cannot tell); other content, or an item of no account of the run, as unexpected. A write lost
 * and then overwritten by a later one leaves no trace in a table: the Kafka output, carrying every
 * update, is judged record by record.
 */
export function judgeOverdrawn(
  items: ReadonlyMap<string, Readonly<Record<string, unknown>>>,
  expected: ReadonlyMap<string, ExpectedTask>,
  ledger: CommitLedger,
): SinkVerdict {
  const v = emptyVerdict('dynamodb');
  v.seen = items.size;
  const claimed = new Set<string>();
  for (const [key, task] of expected) {
    const last = new Map<string, ExpectedTask['outputs'][number]>();
    for (const o of task.outputs) last.set(o.account, o);
    for (const [account, want] of last) {
      claimed.add(account);
      const item = items.get(account);
      if (want.balance === null || want.balance >= 0) {
        if (item) {
          v.duplicated++;
          note(
            v,
            `dynamodb: ${account} (${key}) has an item (offset ${String(item.offset)}), but the update of offset ${want.offset} deleted it`,
          );
        }
        continue;
      }
      v.expected++;
      if (!item) {
        v.lost++;
        note(v, `dynamodb: ${account} (${key}) has no item, expected the update of offset ${want.offset}`);
        continue;
      }
      const offset =
        typeof item.offset === 'string' && /^\d+$/.test(item.offset) ? BigInt(item.offset) : undefined;
      const same =
        offset === BigInt(want.offset) && item.balance === want.balance && item.count === want.count;
      if (!same) {
        if (offset !== undefined && offset < BigInt(want.offset)) v.lost++;
        else v.unexpected++;
        note(
          v,
          `dynamodb: ${account} (${key}) shows balance ${String(item.balance)} count ${String(item.count)} of offset ${String(item.offset)}, expected ${want.balance}/${want.count} of offset ${want.offset}`,
        );
        continue;
      }
      const p = ledger.place(task.id, BigInt(want.offset));
      if (!p || p.invocation === undefined) {
        v.unplaced++;
        note(v, `dynamodb: ${account} (${key}) offset ${want.offset}: no commit of its epoch seen`);
      } else if (item.inv !== p.invocation || item.tidemarkEpoch !== p.epoch) {
        v.uncommitted++;
        note(
          v,
          `dynamodb: ${account} (${key}) written by invocation ${String(item.inv)} in epoch ${String(item.tidemarkEpoch)}; epoch ${p.epoch} by ${p.invocation} committed it`,
        );
      }
    }
  }
  for (const account of items.keys()) {
    if (claimed.has(account)) continue;
    v.unexpected++;
    note(v, `dynamodb: item ${account} belongs to no account of the run`);
  }
  return v;
}

/** The writes to the overdrawn accounts table the fold implies (puts and deletes, before merging). */
export function overdrawnWrites(expected: ReadonlyMap<string, ExpectedTask>): number {
  let n = 0;
  for (const task of expected.values()) {
    const balance = new Map<string, number>();
    for (const o of task.outputs) {
      const after = o.balance ?? 0;
      if (after < 0 || (balance.get(o.account) ?? 0) < 0) n++;
      balance.set(o.account, after);
    }
  }
  return n;
}

/** What the fold expects of every task: `<pipeline>|<topic>-<partition>` → its outputs. */
export function expectedTasks(
  pipeline: string,
  topic: string,
  outputs: ReadonlyMap<number, ExpectedTask['outputs']>,
): Map<string, ExpectedTask> {
  const out = new Map<string, ExpectedTask>();
  for (const [partition, list] of outputs) {
    out.set(groupKey(pipeline, `${topic}-${partition}`), {
      id: { pipeline, topic, partition },
      outputs: list,
    });
  }
  return out;
}
