/**
 * Outputs: what a processor sends downstream, exactly once per committed epoch.
 *
 * A processor declares named, typed outputs next to its state (`outputs: { alerts: kafkaOutput(…) }`)
 * and emits to them while it processes a record (`ctx.outputs.alerts.emit(value)`). An emitted value
 * is encoded at once by its descriptor (`encode`, synchronous: a value that cannot be encoded fails
 * the record, which is rolled back with its state changes and its other emits). The encoded entries of
 * an epoch belong to that epoch's commit:
 *
 * - entries a sink can write *inside* the commit (`Sink.attach`: a DynamoDB table when commits are in
 *   DynamoDB, a SQL table when they are in that database) commit atomically with it;
 * - the others form the epoch's *outbox*, persisted before the commit (inline in the commit item when
 *   small, else an object written like a snapshot) and referenced by the commit item. Only a commit
 *   that wins its conditional write makes an outbox deliverable. After the commit, each sink delivers
 *   its part of the outbox (`Sink.deliver`), idempotently: a delivery that already happened, fully or
 *   partly, changes nothing when repeated (a crash after the commit, a retry, a zombie that resumes).
 *
 * The next epoch of a task commits only after the previous outbox was delivered, so the commit item
 * needs to reference one outbox at most, and outputs reach every sink in emit order per task.
 */
import type { TaskId } from '../checkpoint/stores.ts';

/** Kinds of outputs Tidemark knows. `custom` is a user-supplied sink (at least once, with ids). */
export type OutputKind = 'kafka' | 'dynamodb' | 's3' | 'custom' | 'iceberg' | 'sql' | (string & {});

/**
 * The stable identity of one output: the task that emitted it, the epoch that committed it, and its
 * sequence number within that task-epoch (0, 1, 2, … over all outputs of the task, in emit order).
 * Downstream systems see it (Kafka headers, item attributes, object metadata) and can deduplicate on it.
 */
export interface OutputId {
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly seq: number;
}

/** `pipeline/topic/partition/epoch/seq`: the output id as one string. */
export function outputIdString(id: OutputId): string {
  return `${id.pipeline}/${id.topic}/${id.partition}/${id.epoch}/${id.seq}`;
}

/** What `encode` knows besides the value. */
export interface EmitContext {
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
  /** Offset of the record being processed (or of the record whose timer fired). */
  readonly offset: bigint;
  /** The state key of the current record, or null. */
  readonly key: string | null;
}

/**
 * A declared output. `E` is the encoded entry the outbox stores: plain data (objects, arrays,
 * strings, numbers, booleans, null, bigints, Uint8Arrays) so it survives the outbox codec exactly.
 */
export interface OutputDescriptor<T = unknown, E = unknown, R = unknown> {
  readonly kind: OutputKind;
  /**
   * Identifies the sink instance that delivers this output: outputs with the same `sinkId` are
   * delivered together (for Kafka: one transaction per task-epoch for all topics of one cluster).
   */
  readonly sinkId: string;
  /** Encodes an emitted value (synchronous, deterministic). Throwing fails the record. */
  encode(value: T, ctx: EmitContext): E;
  /**
   * Turns an encoded entry back into the value a reader sees (for `TestDriver.outputs` and
   * independent readers), where the encoding allows it.
   */
  decode?(entry: E): R;
  /** Builds the sink that delivers this output (called once per container, on first use). */
  createSink(env: SinkEnvironment): Sink | Promise<Sink>;
  /**
   * Checks at cold start (when the engine is built) that this output can be delivered in this
   * environment, throwing a `ConfigurationError` otherwise (e.g. the SQL output: commits in its
   * database). Synchronous, no I/O. Not called when a `SinkProvider` replaces the sinks (TestDriver).
   */
  check?(env: SinkEnvironment): void;
  /** Sink-specific settings, read by the sink (e.g. the Kafka topic). */
  readonly options: Readonly<Record<string, unknown>>;
  /** Type carrier only; never set. */
  readonly __type?: T;
}

// biome-ignore lint/suspicious/noExplicitAny: any output value and entry type
export type OutputDescriptors = Readonly<Record<string, OutputDescriptor<any, any>>>;

/** The handle a processor emits through. */
export interface OutputHandle<T> {
  /** Emits a value (encoded at once; rolled back if the record fails). */
  emit(value: T): void;
}

export type OutputValue<D> = D extends OutputDescriptor<infer T, unknown> ? T : never;
/** What a reader gets back from an output (its descriptor's `decode`). */
// biome-ignore lint/suspicious/noExplicitAny: any value and entry type
export type OutputReceived<D> = D extends OutputDescriptor<any, any, infer R> ? R : never;
export type OutputHandles<O extends OutputDescriptors> = {
  readonly [K in keyof O]: OutputHandle<OutputValue<O[K]>>;
};

/** One encoded output of an epoch. */
export interface OutputEntry<E = unknown> {
  /** Sequence number within the task-epoch (see `OutputId`). */
  readonly seq: number;
  readonly entry: E;
}

/** The outputs of one task-epoch for one declared output. */
export interface OutputPart<E = unknown> {
  /** The output's declared name. */
  readonly name: string;
  readonly descriptor: OutputDescriptor<unknown, E>;
  /** In emit order. */
  readonly entries: readonly OutputEntry<E>[];
}

/**
 * What a sink delivers at once: one task-epoch's outputs of every output the sink serves. A
 * delivery is keyed by (task, epoch). The epoch is a sink's high-water mark: it grows strictly per
 * task, across rollbacks and savepoint restores too, while `committedOffset` (the commit's next
 * offset to read) moves back on those (the records after it are processed again as new epochs).
 */
export interface Delivery {
  readonly task: TaskId;
  readonly epoch: number;
  readonly committedOffset: bigint;
  /**
   * When the epoch committed (its commit item's `updatedAt`, ISO 8601); set for deliveries after the
   * commit, absent in `attach`. A sink whose own record of a delivery can expire (Kafka) uses it to
   * tell "never delivered" from "delivered, record since expired".
   */
  readonly committedAt?: string;
  readonly parts: readonly OutputPart[];
}

/**
 * Writes that commit atomically with the epoch, in the commit store's own transaction. `store` says
 * which commit store understands them (`dynamodb`: TransactWriteItems actions; `sql`: statements).
 */
export interface AttachedWrites {
  readonly store: string;
  readonly writes: readonly unknown[];
}

/** What a sink is built with. */
export interface SinkEnvironment {
  readonly pipeline: string;
  /** The environment variables (sink settings may come from there). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Which commit store the engine commits to (`dynamodb`, `postgres`, `memory`, …). */
  readonly commitStore: string;
}

/**
 * Delivers outputs of one kind. Implementations: `lib/sink/*` (the only code that imports the
 * downstream systems' clients) and the memory sinks of `tidemark/testing`.
 */
export interface Sink {
  /**
   * Offers the outputs of an epoch before it commits: returns writes the commit store can apply in
   * the commit's own transaction (then `deliver` is never called for this delivery), or undefined
   * (they go to the outbox and `deliver` runs after the commit). Synchronous and side-effect free.
   */
  attach?(delivery: Delivery): AttachedWrites | undefined;
  /**
   * Delivers a committed epoch's outputs, idempotently: when (part of) this delivery already
   * happened, in this container or another, nothing becomes visible twice. Rejects with a
   * `TidemarkError` (retriable when a retry can succeed); the engine retries the delivery before
   * the task's next epoch commits, on this or another container.
   */
  deliver(delivery: Delivery): Promise<void>;
  /**
   * True when `deliver`'s own idempotence record can expire (Kafka's transactional offsets): the
   * engine then records in the commit item that the outbox was delivered (`settled`), once per
   * invocation and task, so an outbox is never re-checked against an expired record.
   */
  readonly needsSettle?: boolean;
  /** Releases connections (tests, shutdown). */
  close?(): Promise<void>;
}
