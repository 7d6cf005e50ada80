/**
 * The Kafka output sink: delivers each committed task-epoch's Kafka outputs in ONE Kafka
 * transaction, exactly once (docs/outputs.md#kafka). The only module of the sink that loads kafkajs.
 *
 * One delivery (task T, epoch E), with the task's producer (transactional id `<prefix><pipeline>.<T>`):
 *
 *   step                                   | a crash here leaves…                   | the next delivery of T…
 *   ---------------------------------------+----------------------------------------+-----------------------------------
 *   1 InitProducerId (a new producer only;  | nothing (an older producer's open      | starts again at 1
 *     kafkajs does it at its first         | transaction is already aborted, one     |
 *     transaction): fences every older     | that was committing already completed)  |
 *     producer of T                        |                                        |
 *   2 read T's marker (a new producer       | nothing                                | starts again at 1
 *     only; then the producer keeps it):   |                                        |
 *     skip E if Kafka already has it       |                                        |
 *   3 send the records, in requests of     | an open transaction: read_committed    | aborts it (its InitProducerId),
 *     `maxRequestBytes` (one kafkajs send  | readers of its partitions wait at it   | else the cluster aborts it after
 *     per partition), header `tidemark-id` | (bounded: see step 1 / the timeout)    | transactionTimeoutMs; sends again
 *   4 sendOffsets: T's marker = E, with    | as 3                                   | as 3
 *     E's committed input offset           |                                        |
 *   5 commit (EndTxn)                      | committed or not, unknown: a new       | waits for it to complete (step 1),
 *                                          | producer is made, which finds out      | then step 2 decides
 *   6 done; the engine settles E           | E committed in Kafka, not settled      | step 2 finds marker = E: skips
 *
 * A producer that is fenced (another container took T over) or fails otherwise is dropped; the
 * delivery is tried once more with a new producer (which re-reads the marker), except after a fence
 * of a producer made for this very delivery (someone else is delivering T right now). Never falls back
 * to sending outside a transaction. Producers are kept per task (at most `maxProducers`).
 *
 * A producer kept from an earlier delivery skips step 2: any delivery of T by another producer since
 * this one's InitProducerId had to fence it first, so its send would fail and the retry re-reads.
 */
import {
  type Admin,
  CompressionTypes,
  type IHeaders,
  Kafka,
  type KafkaConfig,
  logLevel,
  type Message,
  Partitioners,
  type PartitionMetadata,
  type Producer,
  type RecordMetadata,
  type TopicMessages,
  type Transaction,
} from 'kafkajs';
import type { TaskId } from '../../checkpoint/stores.ts';
import {
  ConfigurationError,
  KafkaOutputError,
  KafkaOutputMarkerError,
  KafkaProducerFencedError,
  TidemarkError,
} from '../../errors.ts';
import {
  type Delivery,
  type OutputPart,
  outputIdString,
  type Sink,
  type SinkEnvironment,
} from '../../output/types.ts';
import { type KafkaConnectionDeps, kafkaOutputClientConfig } from './connection.ts';
import {
  type KafkaOutputEntry,
  OUTPUT_ID_HEADER,
  type ResolvedKafkaCluster,
  type ResolvedKafkaOutputOptions,
} from './kafkaOutput.ts';
import {
  decideDelivery,
  type Marker,
  type MarkerSlot,
  markerMetadata,
  markerSlotOf,
  parseMarker,
  transactionalIdOf,
} from './marker.ts';
import { sendPerPartition } from './sendPerPartition.ts';

/** Points of a delivery attempt where tests can hold or fail it (`KafkaSinkHooks.step`). */
export const KAFKA_DELIVERY_STEPS = [
  'ready',
  'marker-read',
  'request-sent',
  'offsets-sent',
  'committed',
] as const;
export type KafkaDeliveryStep = (typeof KAFKA_DELIVERY_STEPS)[number];

export interface KafkaDeliveryStepInfo {
  readonly transactionalId: string;
  readonly epoch: number;
  /** 1 or 2 (the retry with a new producer). */
  readonly attempt: number;
  /** For `request-sent`: which request (0, 1, …) of how many. */
  readonly request?: number;
  readonly requests?: number;
}

export interface KafkaSinkHooks {
  /**
   * Runs at each step of a delivery attempt, after it: `ready` (the producer initialized, the
   * transaction begun), `marker-read`, `request-sent`, `offsets-sent`, `committed` (before the
   * engine learns of it). A returned promise holds the delivery there; a throw fails the step.
   */
  step?(step: KafkaDeliveryStep, info: KafkaDeliveryStepInfo): void | Promise<void>;
}

export interface KafkaSinkDeps extends KafkaConnectionDeps {
  readonly hooks?: KafkaSinkHooks;
  /** Wall clock (ms), for the age of an epoch whose marker is missing. */
  readonly now?: () => number;
  /** The kafkajs configuration to use as is (tests); default: from the cluster options and env. */
  readonly kafkaConfig?: KafkaConfig;
}

interface ProducerEntry {
  readonly transactionalId: string;
  readonly producer: Producer;
  /** Connected and not dropped. */
  connected: Promise<void>;
  /** The task's marker as this producer knows it (read after its InitProducerId, then its own commits). */
  marker: Marker | undefined;
  lastUsed: number;
}

/** One request of a delivery: its records by topic, in emit order. */
type Request = TopicMessages[];

/** Protocol error types that mean a newer producer of the transactional id exists. */
const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']);
/** Protocol error types a retry cannot fix: the cluster refuses the configuration. */
const REFUSED = new Set([
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'INVALID_TRANSACTION_TIMEOUT',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
]);
/** How long an abort of a failed transaction may take before the producer is dropped anyway. */
const ABORT_TIMEOUT_MS = 5_000;
/** Partition counts are refreshed after this long (kafkajs's own metadata max age). */
const METADATA_MAX_AGE_MS = 300_000;

/** The protocol error types along an error's cause chain (kafkajs wraps retried errors). */
function errorTypes(err: unknown): string[] {
  const types: string[] = [];
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 8; depth++) {
    const t = (e as { type?: unknown }).type;
    if (typeof t === 'string') types.push(t);
    e = (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  }
  return types;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const expired = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    });
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export class KafkaOutputSink implements Sink {
  /** Kafka keeps the marker (an offset of a group nobody joins) only `offsets.retention.minutes`. */
  readonly needsSettle = true;

  private readonly cluster: ResolvedKafkaCluster;
  private readonly clusterKey: string;
  private readonly kafka: Kafka;
  private readonly hooks: KafkaSinkHooks;
  private readonly now: () => number;
  private readonly producers = new Map<string, ProducerEntry>();
  /** Deliveries of one task run one at a time (a producer has one transaction at a time). */
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private readonly metadata = new Map<string, { partitions: PartitionMetadata[]; at: number }>();
  private admin: Promise<Admin> | undefined;
  private closed = false;
  private tick = 0;

  /** Builds the sink of an output cluster (the connection settings are resolved, not connected). */
  static async create(
    env: SinkEnvironment,
    options: ResolvedKafkaOutputOptions,
    deps: KafkaSinkDeps = {},
  ): Promise<KafkaOutputSink> {
    const config =
      deps.kafkaConfig ?? (await kafkaOutputClientConfig(options.cluster, env.pipeline, env.env, deps));
    return new KafkaOutputSink(options, config, deps);
  }

  constructor(options: ResolvedKafkaOutputOptions, config: KafkaConfig, deps: KafkaSinkDeps = {}) {
    this.cluster = options.cluster;
    this.clusterKey = options.clusterKey;
    this.hooks = deps.hooks ?? {};
    this.now = deps.now ?? Date.now;
    this.kafka = new Kafka({
      connectionTimeout: 5_000,
      requestTimeout: 30_000,
      // Errors reach the engine as exceptions; KAFKAJS_LOG_LEVEL overrides this to diagnose.
      logLevel: logLevel.NOTHING,
      ...config,
      // Retries inside one request (a leader moved, a coordinator loading); a delivery that still
      // fails is retried as a whole by the engine.
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
  }

  /** The transactional id of a task (see marker.ts). */
  transactionalId(task: TaskId): string {
    return transactionalIdOf(this.cluster.transactionalIdPrefix, task);
  }

  /** Never attaches (Kafka cannot join the commit store's transaction); checks the outputs agree. */
  attach(delivery: Delivery): undefined {
    this.checkParts(delivery.parts);
    return undefined;
  }

  async deliver(delivery: Delivery): Promise<void> {
    if (this.closed) throw new KafkaOutputError(this.transactionalId(delivery.task), 'the sink is closed');
    this.checkParts(delivery.parts);
    const transactionalId = this.transactionalId(delivery.task);
    const queued = (this.queues.get(transactionalId) ?? Promise.resolve()).then(() =>
      this.deliverExclusive(delivery, transactionalId),
    );
    const tail = queued.catch(() => undefined);
    this.queues.set(transactionalId, tail);
    try {
      return await queued;
    } finally {
      if (this.queues.get(transactionalId) === tail) this.queues.delete(transactionalId);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const entries = [...this.producers.values()];
    this.producers.clear();
    const admin = this.admin;
    this.admin = undefined;
    await Promise.allSettled([
      ...entries.map((e) => e.producer.disconnect()),
      ...(admin ? [admin.then((a) => a.disconnect())] : []),
    ]);
  }

  private checkParts(parts: readonly OutputPart[]): void {
    for (const p of parts) {
      const o = p.descriptor.options as unknown as ResolvedKafkaOutputOptions;
      if (p.descriptor.kind !== 'kafka' || o.clusterKey !== this.clusterKey) {
        throw new ConfigurationError(
          `processor.outputs.${p.name}`,
          `Kafka output '${p.name}' shares the transactional id prefix '${this.cluster.transactionalIdPrefix}' with other Kafka outputs but not their cluster options: outputs of one cluster need equal cluster options, outputs of another cluster another transactionalIdPrefix`,
        );
      }
    }
  }

  private async deliverExclusive(delivery: Delivery, transactionalId: string): Promise<void> {
    const requests = await this.requests(delivery);
    for (let attempt = 1; ; attempt++) {
      const entry = await this.producer(transactionalId);
      const kept = entry.marker !== undefined;
      try {
        await this.attempt(delivery, requests, entry, attempt);
        return;
      } catch (err) {
        if (err instanceof KafkaOutputMarkerError) throw err; // a decision: the producer is fine
        this.drop(entry);
        const types = errorTypes(err);
        const refused = types.find((t) => REFUSED.has(t));
        if (refused) {
          throw new KafkaOutputError(
            transactionalId,
            `the cluster refused the delivery of epoch ${delivery.epoch} (${refused}): ${messageOf(err)}`,
            { cause: err, retriable: false },
          );
        }
        if (err instanceof TidemarkError && !err.retriable) throw err;
        const fenced = types.some((t) => FENCED.has(t));
        // A fence of a producer kept from earlier deliveries may be old news (another container
        // delivered meanwhile, or this one after a drop): a new producer re-reads the marker.
        if (attempt >= 2 || (fenced && !kept)) {
          throw fenced
            ? new KafkaProducerFencedError(transactionalId, { cause: err })
            : new KafkaOutputError(
                transactionalId,
                `delivery of epoch ${delivery.epoch} failed: ${messageOf(err)}`,
                {
                  cause: err,
                  retriable: true,
                },
              );
        }
      }
    }
  }

  /** One attempt: steps 1 to 6 of the table above. */
  private async attempt(
    delivery: Delivery,
    requests: Request[],
    entry: ProducerEntry,
    attempt: number,
  ): Promise<void> {
    const info = { transactionalId: entry.transactionalId, epoch: delivery.epoch, attempt };
    const slot = markerSlotOf(this.cluster, delivery.task);
    await entry.connected;
    // Step 1: kafkajs sends InitProducerId at a producer's first transaction.
    const tx = await entry.producer.transaction();
    let ending = false;
    try {
      await this.hooks.step?.('ready', info);
      // Step 2.
      if (entry.marker === undefined) {
        entry.marker = await this.readMarker(slot, entry.transactionalId);
        await this.hooks.step?.('marker-read', info);
      }
      const decision = decideDelivery(
        entry.marker,
        delivery,
        this.cluster,
        this.now(),
        entry.transactionalId,
      );
      if (decision === 'skip') {
        ending = true;
        await tx.abort(); // nothing was added to it: ends it locally, no request
        return;
      }
      // Step 3.
      for (let i = 0; i < requests.length; i++) {
        const written = await this.send(tx, requests[i]!);
        this.checkWritten(requests[i]!, written, entry.transactionalId, delivery.epoch);
        await this.hooks.step?.('request-sent', { ...info, request: i, requests: requests.length });
      }
      // Step 4.
      await tx.sendOffsets({
        consumerGroupId: slot.groupId,
        topics: [
          {
            topic: slot.topic,
            partitions: [
              // kafkajs passes `metadata` through to TxnOffsetCommit; its types omit it.
              {
                partition: slot.partition,
                offset: delivery.committedOffset.toString(),
                metadata: markerMetadata(delivery.epoch),
              } as { partition: number; offset: string },
            ],
          },
        ],
      });
      await this.hooks.step?.('offsets-sent', info);
      // Step 5. A failure here leaves the outcome unknown: the caller drops this producer.
      ending = true;
      await tx.commit();
      entry.marker = { kind: 'epoch', epoch: delivery.epoch, offset: delivery.committedOffset };
      await this.hooks.step?.('committed', info);
    } catch (err) {
      if (!ending && tx.isActive()) await this.abortQuietly(tx);
      throw err;
    }
  }

  /** Sends one request's records, one kafkajs send per partition (see sendPerPartition). */
  private send(tx: Transaction, request: Request): Promise<RecordMetadata[]> {
    const compression = this.cluster.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    return sendPerPartition(tx, request, { acks: -1, compression });
  }

  /**
   * Throws (retriable: the attempt aborts and sends again) when a partition of the request has no
   * answer. kafkajs 2.2.4 retries a failed produce only towards brokers that have not answered yet:
   * when a partition's new leader already answered for other partitions of the same send, the
   * partition's records are never sent, and the send resolves without them (kafkajs issue 1303).
   * Sends of one partition each (see `send`) leave no other partition to answer for; this stays as
   * a guard.
   */
  private checkWritten(
    request: Request,
    written: RecordMetadata[],
    transactionalId: string,
    epoch: number,
  ): void {
    const answered = new Set(written.map((m) => `${m.topicName}\u0000${m.partition}`));
    const missing: string[] = [];
    for (const { topic, messages } of request) {
      for (const partition of new Set(messages.map((m) => m.partition))) {
        if (!answered.has(`${topic}\u0000${partition}`)) missing.push(`${topic}-${partition}`);
      }
    }
    if (missing.length > 0) {
      throw new KafkaOutputError(
        transactionalId,
        `delivery of epoch ${epoch}: the producer returned no answer for ${missing.join(', ')} (a partition leadership change during the send); the transaction is aborted and the records sent again`,
        { retriable: true },
      );
    }
  }

  /** Aborts a failed transaction at once (best effort: the next InitProducerId would abort it too). */
  private async abortQuietly(tx: Transaction): Promise<void> {
    await withTimeout(
      tx.abort().catch(() => undefined),
      ABORT_TIMEOUT_MS,
    );
  }

  private async readMarker(slot: MarkerSlot, transactionalId: string): Promise<Marker> {
    const admin = await this.getAdmin();
    let offsets: Awaited<ReturnType<Admin['fetchOffsets']>>;
    try {
      offsets = await admin.fetchOffsets({ groupId: slot.groupId, topics: [slot.topic] });
    } catch (err) {
      if (errorTypes(err).includes('UNKNOWN_TOPIC_OR_PARTITION')) {
        throw new KafkaOutputError(
          transactionalId,
          `the marker topic ${slot.topic} does not exist in the output cluster (outputs to another cluster than the input need cluster.markerTopic)`,
          { cause: err, retriable: false },
        );
      }
      throw err;
    }
    const p = offsets
      .find((t) => t.topic === slot.topic)
      ?.partitions.find((x) => x.partition === slot.partition);
    if (!p) {
      throw new KafkaOutputError(
        transactionalId,
        `the marker topic ${slot.topic} has no partition ${slot.partition} in the output cluster (cluster.markerTopic needs at least as many partitions as the input topics)`,
        { retriable: false },
      );
    }
    return parseMarker(p.offset, p.metadata);
  }

  /** The records of a delivery, in emit order (all outputs), cut into requests of `maxRequestBytes`. */
  private async requests(delivery: Delivery): Promise<Request[]> {
    const t = delivery.task;
    const records: Array<{ seq: number; topic: string; entry: KafkaOutputEntry }> = [];
    for (const part of delivery.parts) {
      const topic = (part.descriptor.options as unknown as ResolvedKafkaOutputOptions).topic;
      for (const e of part.entries) records.push({ seq: e.seq, topic, entry: e.entry as KafkaOutputEntry });
    }
    records.sort((a, b) => a.seq - b.seq);
    const requests: Request[] = [];
    let current = new Map<string, Message[]>();
    let bytes = 0;
    for (const r of records) {
      const [key, value, headers, explicit, timestamp] = r.entry;
      const partitions = await this.partitions(r.topic, delivery, explicit);
      const keyBuf = key === null ? null : asBuffer(key);
      const partition =
        explicit ??
        (keyBuf === null
          ? t.partition % partitions.length
          : this.partitioner({
              topic: r.topic,
              partitionMetadata: partitions,
              message: { key: keyBuf, value: null },
            }));
      const h: IHeaders = {};
      for (const [name, v] of headers ?? []) {
        const prev = h[name];
        const b = asBuffer(v);
        h[name] = prev === undefined ? b : Array.isArray(prev) ? [...prev, b] : [prev as Buffer, b];
      }
      h[OUTPUT_ID_HEADER] = outputIdString({ ...t, epoch: delivery.epoch, seq: r.seq });
      const message: Message = {
        key: keyBuf,
        value: value === null ? null : asBuffer(value),
        partition,
        headers: h,
        ...(timestamp === null ? {} : { timestamp: String(timestamp) }),
      };
      const size = (keyBuf?.length ?? 0) + (value?.length ?? 0) + 64;
      if (bytes > 0 && bytes + size > this.cluster.maxRequestBytes) {
        requests.push(toRequest(current));
        current = new Map();
        bytes = 0;
      }
      const list = current.get(r.topic) ?? [];
      list.push(message);
      current.set(r.topic, list);
      bytes += size;
    }
    if (bytes > 0) requests.push(toRequest(current));
    return requests;
  }

  /** A topic's partitions (cached like kafkajs's metadata; refreshed when a partition is missing). */
  private async partitions(
    topic: string,
    delivery: Delivery,
    explicit: number | null,
  ): Promise<PartitionMetadata[]> {
    let m = this.metadata.get(topic);
    const stale =
      !m || this.now() - m.at > METADATA_MAX_AGE_MS || (explicit !== null && explicit >= m.partitions.length);
    if (stale) {
      const admin = await this.getAdmin();
      let meta: Awaited<ReturnType<Admin['fetchTopicMetadata']>>;
      try {
        meta = await admin.fetchTopicMetadata({ topics: [topic] });
      } catch (err) {
        if (errorTypes(err).includes('UNKNOWN_TOPIC_OR_PARTITION')) {
          throw new KafkaOutputError(
            this.transactionalId(delivery.task),
            `the output topic ${topic} does not exist`,
            {
              cause: err,
              retriable: false,
            },
          );
        }
        throw err;
      }
      const partitions = [...(meta.topics.find((x) => x.name === topic)?.partitions ?? [])].sort(
        (a, b) => a.partitionId - b.partitionId,
      );
      if (partitions.length === 0) {
        throw new KafkaOutputError(
          this.transactionalId(delivery.task),
          `the output topic ${topic} has no partitions`,
          {
            retriable: false,
          },
        );
      }
      m = { partitions, at: this.now() };
      this.metadata.set(topic, m);
    }
    if (explicit !== null && explicit >= m!.partitions.length) {
      throw new KafkaOutputError(
        this.transactionalId(delivery.task),
        `epoch ${delivery.epoch} has a record for partition ${explicit} of ${topic}, which has ${m!.partitions.length} partitions (add partitions to deliver it)`,
        { retriable: false },
      );
    }
    return m!.partitions;
  }

  private getAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin();
      const connecting = admin.connect().then(() => admin);
      connecting.catch(() => {
        if (this.admin === connecting) this.admin = undefined;
      });
      this.admin = connecting;
    }
    return this.admin;
  }

  /** The task's producer: kept from earlier deliveries, else a new one (the least recently used goes). */
  private async producer(transactionalId: string): Promise<ProducerEntry> {
    let entry = this.producers.get(transactionalId);
    if (!entry) {
      const producer = this.kafka.producer({
        transactionalId,
        transactionTimeout: this.cluster.transactionTimeoutMs,
        maxInFlightRequests: 1,
        // Transactional sends are idempotent whatever this says (kafkajs sends them with the
        // transactional producer id and sequence numbers); `true` would only add a second,
        // non-transactional InitProducerId and unbounded retries.
        idempotent: false,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      const created: ProducerEntry = {
        transactionalId,
        producer,
        connected: producer.connect(),
        marker: undefined,
        lastUsed: 0,
      };
      created.connected.catch(() => this.drop(created));
      entry = created;
      this.producers.set(transactionalId, entry);
      this.evict();
    }
    entry.lastUsed = ++this.tick;
    return entry;
  }

  private evict(): void {
    while (this.producers.size > this.cluster.maxProducers) {
      let oldest: ProducerEntry | undefined;
      for (const e of this.producers.values()) {
        if (!this.queues.has(e.transactionalId) && (!oldest || e.lastUsed < oldest.lastUsed)) oldest = e;
      }
      if (!oldest) return;
      this.drop(oldest);
    }
  }

  /** Forgets a producer and disconnects it in the background (it will commit nothing more). */
  private drop(entry: ProducerEntry): void {
    if (this.producers.get(entry.transactionalId) === entry) this.producers.delete(entry.transactionalId);
    entry.marker = undefined;
    void entry.connected.then(
      () => entry.producer.disconnect().catch(() => undefined),
      () => undefined,
    );
  }
}

function toRequest(byTopic: Map<string, Message[]>): Request {
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}
