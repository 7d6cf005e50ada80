/**
 * Outputs in the fault campaign: the lanes' processors emit, for every record they apply, one output
 * to each sink under test, and the sinks are read back at the end by readers that share no code with
 * them, against the reference fold (outputCheck.ts):
 *
 * - **Kafka** (`events`): one record per applied record, keyed by account, in one topic that every
 *   lane's tasks write to (their transactions interleave in its partitions); read with kcat
 *   (librdkafka) under `isolation.level=read_committed`. Markers in a topic of their own (the input
 *   topics are not in the cluster). Small requests, so a delivery spans several.
 * - **DynamoDB** (`totals`): one item per account, updated by every deposit (balance, count, last
 *   offset, and an `o<offset>` attribute naming the invocation) and deleted by a tombstone; written in
 *   the commit's transaction (`inCommit` lanes, when commits are in DynamoDB) or after it. Read with
 *   a consistent Scan.
 * - **S3** (`log`): JSON lines with ids, small objects (an epoch spans several), gzip on some lanes;
 *   read through the manifests (`readS3Outputs`).
 * - **SQL** (`sqlEvents`, `sqlTotals`; commits in PostgreSQL or MySQL/MariaDB only): an append-only
 *   table of every output and a table of each account's running total (upserted, deleted by a
 *   tombstone), both written in the commit's own transaction (sqlTables.ts). Read with the
 *   database's own client.
 *
 * Each container builds its own sinks (`sinkProvider`) on its own clients, so the campaign's faults
 * reach them: SDK middleware for S3 and DynamoDB (faults.ts), the Kafka sink's step hooks and a
 * socket factory that dies with the container for Kafka. Every output carries the request id of the
 * invocation that emitted it, so an output of an attempt that did not commit can be told apart.
 *
 * The self-check (`OutputSabotage`) breaks a sink on purpose: `lose-output` drops every delivery of
 * the epoch holding one chosen record; `duplicate-output` delivers a task's first epoch once more at
 * the end, under another task identity, so the sinks' own idempotence cannot catch it. (The SQL sink
 * has no delivery of its own: the dropped epoch's rows are kept out of its commit, and its first
 * epoch's statements, as the committed attempt attached them, are applied again in a transaction of
 * their own.)
 */
import net from 'node:net';
import { type DynamoDBClient, paginateScan } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { type ISocketFactory, Kafka, logLevel } from 'kafkajs';
import type { TaskId } from '../../lib/checkpoint/stores.ts';
import type { SinkProvider } from '../../lib/output/router.ts';
import type {
  AttachedWrites,
  Delivery,
  OutputDescriptor,
  OutputDescriptors,
  OutputHandle,
  Sink,
  SinkEnvironment,
} from '../../lib/output/types.ts';
import { DynamoOutputSink } from '../../lib/sink/dynamodb/DynamoOutputSink.ts';
import { dynamoOutput } from '../../lib/sink/dynamodb/dynamoOutput.ts';
import { kafkaOutputClientConfig } from '../../lib/sink/kafka/connection.ts';
import {
  type KafkaDeliveryStep,
  KafkaOutputSink,
  type KafkaSinkHooks,
} from '../../lib/sink/kafka/KafkaOutputSink.ts';
import {
  kafkaOutput,
  OUTPUT_ID_HEADER,
  type ResolvedKafkaOutputOptions,
} from '../../lib/sink/kafka/kafkaOutput.ts';
import { readS3Outputs } from '../../lib/sink/s3/reader.ts';
import { S3OutputSink } from '../../lib/sink/s3/S3OutputSink.ts';
import { s3Output } from '../../lib/sink/s3/s3Output.ts';
import { type SqlOutputDescriptor, sqlOutput } from '../../lib/sink/sql/index.ts';
import { fenceOpenTransactions } from '../kafka/fence.ts';
import { readCommittedWithKcat } from '../kafka/kcat.ts';
import type { CommitLedger } from './commits.ts';
import { type ContainerFaults, SimulatedCrash, type StoreFault, type StoreOp } from './faults.ts';
import {
  accountItemKey,
  type CampaignOutput,
  type CampaignSink,
  combineVerdicts,
  type ExpectedTask,
  groupKey,
  judgeSqlTotals,
  judgeStream,
  judgeTable,
  OFFSET_ATTRIBUTE,
  type SeenOutput,
  type SinkVerdict,
  type TableItem,
} from './outputCheck.ts';
import {
  applySqlDelivery,
  createSqlTables,
  readSqlEvents,
  readSqlTotals,
  type SqlTargets,
} from './sqlTables.ts';

/** The output each sink is declared as, by name (the SQL sink's table of every output). */
export const OUTPUT_NAMES: Readonly<Record<CampaignSink, string>> = {
  kafka: 'events',
  dynamodb: 'totals',
  s3: 'log',
  sql: 'sqlEvents',
};
/** The SQL sink's second output: its table of totals. */
export const SQL_TOTALS_OUTPUT = 'sqlTotals';

/** The Kafka sink's transactional id prefix (the default). */
const TRANSACTIONAL_ID_PREFIX = 'tidemark.';

export interface OutputTargets {
  readonly sinks: readonly CampaignSink[];
  readonly kafka?: {
    readonly brokers: readonly string[];
    readonly topic: string;
    readonly markerTopic: string;
    /** Partitions of the output topic. */
    readonly partitions: number;
    /** The producers' transaction timeout: how long a crashed delivery's transaction can linger. */
    readonly transactionTimeoutMs: number;
  };
  readonly dynamodb?: { readonly table: string };
  readonly s3?: { readonly bucket: string; readonly prefix: string };
  readonly sql?: SqlTargets;
}

/** A lane's own choices about its outputs (drawn per lane). */
export interface LaneOutputSettings {
  /** DynamoDB outputs go in the commit's transaction (when commits are in DynamoDB and they fit). */
  readonly inCommit: boolean;
  readonly gzip: boolean;
  readonly maxObjectBytes: number;
}

/** The Kafka request size of the campaign's deliveries: small, so larger epochs take several requests. */
const KAFKA_REQUEST_BYTES = 4_096;

export type OutputSabotage = 'lose-output' | 'duplicate-output';

/** The SQL sink's two outputs (sqlTables.ts has why the events table has no key). */
export function sqlDescriptors(t: SqlTargets): { events: SqlOutputDescriptor; totals: SqlOutputDescriptor } {
  return {
    events: sqlOutput<CampaignOutput>({
      table: t.events,
      columns: {
        task: 'text',
        kafka_offset: 'bigint',
        account: 'text',
        balance: { type: 'bigint', nullable: true },
        count: 'integer',
        inv: 'text',
      },
      identity: true,
      row: (v) => ({
        task: v.task,
        kafka_offset: BigInt(v.offset),
        account: v.account,
        balance: v.balance,
        count: v.count,
        inv: v.inv,
      }),
    }),
    totals: sqlOutput<CampaignOutput>({
      table: t.totals,
      key: 'pk',
      columns: {
        pk: { type: 'text', maxLength: 255 },
        account: 'text',
        balance: 'bigint',
        count: 'integer',
        last_offset: 'bigint',
        inv: 'text',
      },
      identity: true,
      write: (v, ctx) => {
        const pk = accountItemKey(ctx.pipeline, v.task, v.account);
        if (v.balance === null) return { delete: { pk } };
        return {
          upsert: {
            pk,
            account: v.account,
            balance: v.balance,
            count: v.count,
            last_offset: BigInt(v.offset),
            inv: v.inv,
          },
        };
      },
    }),
  };
}

/** The output descriptors of a lane's processor. */
export function outputDescriptors(targets: OutputTargets, lane: LaneOutputSettings): OutputDescriptors {
  const out: Record<string, OutputDescriptor> = {};
  if (targets.kafka && targets.sinks.includes('kafka')) {
    const k = targets.kafka;
    out[OUTPUT_NAMES.kafka] = kafkaOutput<CampaignOutput>({
      topic: k.topic,
      key: (v) => v.account,
      cluster: {
        brokers: [...k.brokers],
        markerTopic: k.markerTopic,
        transactionTimeoutMs: k.transactionTimeoutMs,
        maxRequestBytes: KAFKA_REQUEST_BYTES,
        transactionalIdPrefix: TRANSACTIONAL_ID_PREFIX,
      },
    }) as OutputDescriptor;
  }
  if (targets.dynamodb && targets.sinks.includes('dynamodb')) {
    out[OUTPUT_NAMES.dynamodb] = dynamoOutput<CampaignOutput>({
      table: targets.dynamodb.table,
      partitionKey: 'pk',
      sortKey: 'sk',
      inCommit: lane.inCommit,
      write: (v, ctx) => {
        const key = { pk: accountItemKey(ctx.pipeline, v.task, v.account), sk: 'total' };
        if (v.balance === null) return { delete: key };
        return {
          update: key,
          set: {
            account: v.account,
            balance: v.balance,
            count: v.count,
            last: v.offset,
            inv: v.inv,
            [`${OFFSET_ATTRIBUTE}${v.offset}`]: v.inv,
          },
        };
      },
    }) as OutputDescriptor;
  }
  if (targets.s3 && targets.sinks.includes('s3')) {
    out[OUTPUT_NAMES.s3] = s3Output<CampaignOutput>({
      bucket: targets.s3.bucket,
      prefix: targets.s3.prefix,
      withIds: true,
      gzip: lane.gzip,
      maxObjectBytes: lane.maxObjectBytes,
    }) as OutputDescriptor;
  }
  if (targets.sql && targets.sinks.includes('sql')) {
    const sql = sqlDescriptors(targets.sql);
    out[OUTPUT_NAMES.sql] = sql.events as OutputDescriptor;
    out[SQL_TOTALS_OUTPUT] = sql.totals as OutputDescriptor;
  }
  return out;
}

/** Emits one output to every sink of the lane. */
export function emitOutputs(
  handles: Readonly<Record<string, OutputHandle<CampaignOutput>>>,
  value: CampaignOutput,
): void {
  for (const h of Object.values(handles)) h.emit(value);
}

/** The steps of a Kafka delivery, as the campaign's fault plan names them. */
const KAFKA_STEP_OPS: Readonly<Record<KafkaDeliveryStep, StoreOp>> = {
  ready: 'kafka-init',
  'marker-read': 'kafka-marker',
  'request-sent': 'kafka-send',
  'offsets-sent': 'kafka-offsets',
  committed: 'kafka-commit',
};

/** `<topic>-<partition>` of a transactional id `<prefix><pipeline>.<topic>.<partition>`. */
function taskOfTransactionalId(id: string, pipeline: string): string {
  const rest = id.slice(TRANSACTIONAL_ID_PREFIX.length + pipeline.length + 1);
  const dot = rest.lastIndexOf('.');
  return `${rest.slice(0, dot)}-${rest.slice(dot + 1)}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What a container gives its sinks. */
export interface ContainerOutputs {
  readonly faults: ContainerFaults;
  readonly clients: { s3: S3Client; dynamodb: DynamoDBClient };
}

/**
 * A socket factory whose sockets die with the container: on its death every connection is
 * destroyed (the kernel resets a dead process's connections), and no new one is ever opened.
 */
function containerSockets(faults: ContainerFaults): ISocketFactory {
  const sockets = new Set<net.Socket>();
  void faults.death.then(() => {
    for (const s of sockets) s.destroy();
  });
  return ({ host, port, onConnect }) => {
    if (faults.dead) {
      const s = new net.Socket();
      setImmediate(() => s.destroy(faults.crashError()));
      return s;
    }
    const s = net.connect({ host, port }, onConnect);
    s.setKeepAlive(true, 60_000);
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    return s;
  };
}

/** Kafka broker faults for the campaign (started by the run, reported apart from the planned faults). */
export interface BrokerFaultSource {
  /** A broker fault was active within the last few seconds (a failure may be its doing). */
  recent(): boolean;
}

/** The run's outputs: descriptors for the lanes, sinks for the containers, the check at the end. */
export class CampaignOutputs {
  readonly targets: OutputTargets;
  private readonly ledger: CommitLedger;
  private readonly sabotage: OutputSabotage | undefined;
  /** The sabotaged task (`<pipeline>|<label>`) and, for `lose-output`, the record whose epoch is dropped. */
  private target: { key: string; task: TaskId; offset: bigint } | undefined;
  /** `duplicate-output`: the first delivery of the target task, per sink kind. */
  private readonly captured = new Map<string, Delivery>();
  /** `duplicate-output`, SQL: the target task's attached deliveries, with the invocation of each attempt. */
  private readonly attachedCandidates: Array<{ delivery: Delivery; invocation: string }> = [];
  /** Deliveries the sabotage dropped. */
  dropped = 0;

  /** Diagnostics: one line per delivery step and outcome (`--trace`). */
  readonly trace: ((line: string) => void) | undefined;

  constructor(
    targets: OutputTargets,
    ledger: CommitLedger,
    sabotage?: OutputSabotage,
    trace?: (line: string) => void,
  ) {
    this.targets = targets;
    this.ledger = ledger;
    this.sabotage = sabotage;
    this.trace = trace;
  }

  /** Creates the Kafka topics and the DynamoDB output table the targets name (when missing). */
  async setup(
    clients: { dynamodb: DynamoDBClient },
    ensureTable: (c: DynamoDBClient, t: string) => Promise<unknown>,
  ): Promise<void> {
    const k = this.targets.kafka;
    if (k) {
      const admin = new Kafka({
        clientId: 'campaign-setup',
        brokers: [...k.brokers],
        logLevel: logLevel.NOTHING,
      }).admin();
      await admin.connect();
      try {
        await admin.createTopics({
          waitForLeaders: true,
          topics: [
            { topic: k.topic, numPartitions: k.partitions },
            // One marker slot per input partition number (the markers' topic stands in for the inputs).
            { topic: k.markerTopic, numPartitions: 1_024 },
          ],
        });
      } finally {
        await admin.disconnect();
      }
    }
    if (this.targets.dynamodb) await ensureTable(clients.dynamodb, this.targets.dynamodb.table);
    if (this.targets.sql) {
      const { events, totals } = sqlDescriptors(this.targets.sql);
      await createSqlTables(this.targets.sql, [events, totals]);
    }
  }

  /** Sabotage (self-check): aims at `task`; `lose-output` at the epoch holding `offset`. */
  aim(task: TaskId, label: string, offset: bigint): void {
    this.target = { key: groupKey(task.pipeline, label), task, offset };
  }

  /** The sinks of one container, on its clients, dying with it. */
  sinkProvider(container: ContainerOutputs): SinkProvider {
    return async (descriptor: OutputDescriptor, env: SinkEnvironment): Promise<Sink> => {
      let inner: Sink;
      const fired = new Map<string, StoreFault[]>();
      switch (descriptor.kind) {
        case 'kafka': {
          const options = descriptor.options as unknown as ResolvedKafkaOutputOptions;
          const config = await kafkaOutputClientConfig(options.cluster, env.pipeline, env.env);
          inner = await KafkaOutputSink.create(env, options, {
            hooks: this.kafkaHooks(container.faults, env.pipeline, fired),
            kafkaConfig: { ...config, socketFactory: containerSockets(container.faults) },
          });
          break;
        }
        case 'dynamodb':
          inner = new DynamoOutputSink(env, { client: container.clients.dynamodb });
          break;
        case 's3':
          inner = new S3OutputSink(env, { client: container.clients.s3 });
          break;
        default:
          inner = await descriptor.createSink(env);
      }
      return new ContainerSink(inner, descriptor.kind, container.faults, fired, this);
    };
  }

  /** The Kafka sink's step hooks: the planned faults of the container's invocation, and zombie holds. */
  private kafkaHooks(
    faults: ContainerFaults,
    pipeline: string,
    fired: Map<string, StoreFault[]>,
  ): KafkaSinkHooks {
    return {
      step: async (step, info) => {
        if (faults.dead) throw faults.crashError();
        const op = KAFKA_STEP_OPS[step];
        const task = taskOfTransactionalId(info.transactionalId, pipeline);
        this.trace?.(
          `c${faults.id} ${faults.invocation} kafka ${pipeline}/${task} e${info.epoch} attempt ${info.attempt} ${step}${info.request === undefined ? '' : ` ${info.request + 1}/${info.requests}`}`,
        );
        const z = faults.zombie;
        if (z && z.op === op && z.task === task && !z.reached.opened) {
          z.reached.open();
          await z.resume.wait;
          if (faults.dead) throw faults.crashError();
        }
        const f = faults.next(op, task);
        if (!f) return;
        f.fired = true;
        fired.get(task)?.push(f);
        switch (f.kind) {
          case 'latency':
            await sleep(f.variant);
            return;
          case 'crash-before-delivery':
          case 'crash-mid-delivery':
          case 'crash-after-delivery':
            f.outcome = 'surfaced';
            faults.kill(`${f.kind} ${task} (kafka ${step})`);
            throw new SimulatedCrash(`${f.kind} ${task} (kafka ${step})`);
          case 'kafka-lost-commit':
            throw Object.assign(
              new Error('injected: the answer to EndTxn was lost (the transaction committed)'),
              {
                name: 'KafkaJSConnectionError',
                retriable: true,
              },
            );
          default:
            throw Object.assign(new Error(`injected: the connection to the broker broke (${step})`), {
              name: 'KafkaJSConnectionError',
              retriable: true,
            });
        }
      },
    };
  }

  /** Does `delivery` hold the sabotaged record (`lose-output`)? */
  holdsTarget(delivery: Delivery): boolean {
    const t = this.target;
    if (this.sabotage !== 'lose-output' || !t) return false;
    const d = delivery.task;
    if (groupKey(d.pipeline, `${d.topic}-${d.partition}`) !== t.key) return false;
    const from = delivery.epoch === 1 ? -1n : this.ledger.committedOffsetOf(d, delivery.epoch - 1);
    return from !== undefined && from <= t.offset && t.offset < delivery.committedOffset;
  }

  /** Is `delivery` of the task whose first epoch `duplicate-output` delivers again? */
  isDuplicateTarget(delivery: Delivery): boolean {
    const d = delivery.task;
    return (
      this.sabotage === 'duplicate-output' &&
      this.target?.key === groupKey(d.pipeline, `${d.topic}-${d.partition}`)
    );
  }

  capture(kind: string, delivery: Delivery): void {
    const known = this.captured.get(kind);
    if (!known || delivery.epoch < known.epoch) this.captured.set(kind, delivery);
  }

  /**
   * `duplicate-output`, SQL: an attempt's attached delivery of the target task. Whether it commits is
   * known only later; `replayCaptured` picks the committed attempt's first epoch.
   */
  captureAttached(delivery: Delivery, invocation: string): void {
    this.attachedCandidates.push({ delivery, invocation });
  }

  /** The committed attempt's earliest attached delivery of the target task. */
  private committedAttached(): Delivery | undefined {
    let best: Delivery | undefined;
    for (const { delivery, invocation } of this.attachedCandidates) {
      if (this.ledger.invocationOf(delivery.task, delivery.epoch) !== invocation) continue;
      if (!best || delivery.epoch < best.epoch) best = delivery;
    }
    return best;
  }

  /**
   * `duplicate-output`: delivers each captured delivery once more, under another task identity (its
   * topic with `.replay`), through a sink built on the run's own clients: a broken sink that
   * delivers an epoch twice.
   */
  async replayCaptured(
    clients: { s3: S3Client; dynamodb: DynamoDBClient },
    env: SinkEnvironment,
  ): Promise<number> {
    let n = 0;
    const sql = this.committedAttached();
    if (sql && this.targets.sql) {
      await applySqlDelivery(this.targets.sql, {
        ...sql,
        task: { ...sql.task, topic: `${sql.task.topic}.replay` },
      });
      n++;
    }
    for (const [kind, d] of this.captured) {
      const descriptor = d.parts[0]!.descriptor;
      let sink: Sink;
      if (kind === 'kafka') {
        const options = descriptor.options as unknown as ResolvedKafkaOutputOptions;
        sink = await KafkaOutputSink.create({ ...env, pipeline: d.task.pipeline }, options);
      } else if (kind === 'dynamodb') sink = new DynamoOutputSink(env, { client: clients.dynamodb });
      else sink = new S3OutputSink(env, { client: clients.s3 });
      try {
        await sink.deliver({
          ...d,
          task: { ...d.task, topic: `${d.task.topic}.replay` },
          committedAt: undefined,
        });
        n++;
      } finally {
        await sink.close?.();
      }
    }
    return n;
  }

  /**
   * Reads every sink back and judges it against the fold. `expected`: every task of the run with
   * the outputs the fold expects of it.
   */
  async verify(
    expected: ReadonlyMap<string, ExpectedTask>,
    clients: { s3: S3Client; dynamodb: DynamoDBClient },
    pipelines: readonly string[],
  ): Promise<Partial<Record<CampaignSink, SinkVerdict>>> {
    const out: Partial<Record<CampaignSink, SinkVerdict>> = {};
    const mine = new Set(pipelines);
    const { kafka, dynamodb, s3, sql } = this.targets;
    const reads: Array<Promise<void>> = [];
    if (kafka && this.targets.sinks.includes('kafka')) {
      const expectedCount = [...expected.values()].reduce((n, t) => n + t.outputs.length, 0);
      const read = async (): Promise<SeenOutput[]> => {
        const seen: SeenOutput[] = [];
        for (const r of await readCommittedWithKcat({
          brokers: kafka.brokers,
          topic: kafka.topic,
          // A full run's topic holds tens of thousands of outputs (and aborted ones) on a busy machine.
          timeoutMs: Math.max(120_000, 10 * expectedCount),
        })) {
          const id = r.headers.find((h) => h.name === OUTPUT_ID_HEADER)?.value?.toString('utf8') ?? '';
          const [pipeline = '', , , epoch = ''] = id.split('/');
          if (!mine.has(pipeline)) continue;
          seen.push({
            pipeline,
            epoch: Number(epoch),
            value: JSON.parse(r.value?.toString('utf8') ?? 'null') as CampaignOutput,
            lane: `partition ${r.partition}`,
          });
        }
        return seen;
      };
      reads.push(
        (async () => {
          await fenceOpenTransactions(
            kafka.brokers,
            [...expected.values()].map((t) => t.id),
            TRANSACTIONAL_ID_PREFIX,
          );
          out.kafka = judgeStream('kafka', await read(), expected, this.ledger);
        })(),
      );
    }
    if (dynamodb && this.targets.sinks.includes('dynamodb')) {
      reads.push(
        this.readTable(dynamodb.table, clients.dynamodb, mine).then((items) => {
          out.dynamodb = judgeTable(items, expected, this.ledger);
        }),
      );
    }
    if (s3 && this.targets.sinks.includes('s3')) {
      reads.push(
        (async () => {
          // Each pipeline's manifests and objects, read the way every reader must (readS3Outputs).
          const perPipeline = await Promise.all(
            pipelines.map(async (pipeline) => {
              const seen: SeenOutput[] = [];
              for await (const r of readS3Outputs<CampaignOutput>({
                bucket: s3.bucket,
                prefix: s3.prefix,
                pipeline,
                output: OUTPUT_NAMES.s3,
                client: clients.s3,
              })) {
                seen.push({ pipeline, epoch: r.epoch, value: r.value, lane: `${r.topic}/${r.partition}` });
              }
              return seen;
            }),
          );
          out.s3 = judgeStream('s3', perPipeline.flat(), expected, this.ledger);
        })(),
      );
    }
    if (sql && this.targets.sinks.includes('sql')) {
      reads.push(
        (async () => {
          const [all, totals] = await Promise.all([readSqlEvents(sql), readSqlTotals(sql)]);
          const events = all.filter((e) => mine.has(e.pipeline));
          out.sql = combineVerdicts([
            [sql.events, judgeStream('sql', events, expected, this.ledger)],
            [sql.totals, judgeSqlTotals(totals, events, expected, this.ledger)],
          ]);
        })(),
      );
    }
    await Promise.all(reads);
    return out;
  }

  /** The DynamoDB output table's items of the run's pipelines (a consistent Scan). */
  private async readTable(
    table: string,
    client: DynamoDBClient,
    mine: ReadonlySet<string>,
  ): Promise<Map<string, TableItem>> {
    const items = new Map<string, TableItem>();
    for await (const page of paginateScan({ client }, { TableName: table, ConsistentRead: true })) {
      for (const raw of page.Items ?? []) {
        const item = unmarshall(raw);
        const pk = String(item.pk);
        if (mine.has(pk.slice(0, pk.indexOf('/')))) items.set(pk, item);
      }
    }
    return items;
  }
}

/**
 * A container's sink: dead with the container (a delivery under way is abandoned at its death, as a
 * process's would be: what it sent stands), the outcome of the Kafka faults that fired in a delivery,
 * and the self-check's sabotage.
 */
class ContainerSink implements Sink {
  private readonly inner: Sink;
  private readonly kind: string;
  private readonly faults: ContainerFaults;
  private readonly fired: Map<string, StoreFault[]>;
  private readonly outputs: CampaignOutputs;

  constructor(
    inner: Sink,
    kind: string,
    faults: ContainerFaults,
    fired: Map<string, StoreFault[]>,
    outputs: CampaignOutputs,
  ) {
    this.inner = inner;
    this.kind = kind;
    this.faults = faults;
    this.fired = fired;
    this.outputs = outputs;
  }

  get needsSettle(): boolean | undefined {
    return this.inner.needsSettle;
  }

  attach(delivery: Delivery) {
    // The sabotaged epochs go through `deliver`, where they are dropped or captured; the SQL sink's
    // have no `deliver` (its rows commit with the epoch or not at all): captured here, and replayed
    // at the end only if this attempt's commit won.
    if (this.outputs.holdsTarget(delivery)) return undefined;
    if (this.outputs.isDuplicateTarget(delivery)) {
      if (this.kind !== 'sql') return undefined;
      this.outputs.captureAttached(delivery, this.faults.invocation);
    }
    const attached = this.inner.attach?.(delivery);
    if (this.kind !== 'sql' || !attached) return attached;
    return this.midTransactionCrash(delivery, attached);
  }

  /**
   * `crash-mid-delivery` at `sql-txn`: the connection dies inside the commit's transaction, after
   * the compare-and-set and the first of the epoch's statements, and the container with it. A
   * statement that makes the server kill the session's own connection is slipped in among the
   * rows' (the database then rolls the transaction back, as for a process that died there); the
   * commit store's wrapper (commits.ts) kills the container when the commit fails.
   */
  private midTransactionCrash(delivery: Delivery, attached: AttachedWrites): AttachedWrites {
    const label = `${delivery.task.topic}-${delivery.task.partition}`;
    const f = this.faults.next('sql-txn', label);
    // Counted as fired once the commit failed there (commits.ts): an attempt that loses its
    // compare-and-set first never reaches the statement.
    if (!f) return attached;
    const kill =
      attached.store === 'postgres'
        ? 'SELECT pg_terminate_backend(pg_backend_pid())'
        : 'KILL CONNECTION_ID()';
    const write = { sql: kill };
    this.faults.midCommitCrash = { write, fault: f, label };
    this.outputs.trace?.(
      `c${this.faults.id} ${this.faults.invocation} sql ${delivery.task.pipeline}/${label} e${delivery.epoch}: connection to be killed after statement 1 of ${attached.writes.length}`,
    );
    return {
      store: attached.store,
      writes: [...attached.writes.slice(0, 1), write, ...attached.writes.slice(1)],
    };
  }

  async deliver(delivery: Delivery): Promise<void> {
    if (this.faults.dead) throw this.faults.crashError();
    if (this.outputs.holdsTarget(delivery)) {
      this.outputs.dropped++;
      return;
    }
    const label = `${delivery.task.topic}-${delivery.task.partition}`;
    const where = `c${this.faults.id} ${this.faults.invocation} ${this.kind} ${delivery.task.pipeline}/${label} e${delivery.epoch} (to ${delivery.committedOffset}, ${delivery.parts.reduce((n, p) => n + p.entries.length, 0)} outputs)`;
    this.outputs.trace?.(`${where} deliver`);
    const fired: StoreFault[] = [];
    this.fired.set(label, fired);
    const running = this.inner.deliver(delivery);
    running.catch(() => {});
    let ok = false;
    try {
      await Promise.race([
        running,
        this.faults.death.then(() => {
          throw this.faults.crashError();
        }),
      ]);
      ok = true;
      this.outputs.trace?.(`${where} delivered`);
    } catch (err) {
      this.outputs.trace?.(
        `${where} failed: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
      );
      throw err;
    } finally {
      for (const f of fired) f.outcome ??= ok ? 'absorbed' : 'surfaced';
      if (this.fired.get(label) === fired) this.fired.delete(label);
    }
    if (this.outputs.isDuplicateTarget(delivery)) this.outputs.capture(this.kind, delivery);
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}
