/**
 * `kafkaOutput`: an output delivered to a Kafka topic exactly once per committed epoch, in one Kafka
 * transaction per task-epoch (see docs/outputs.md#kafka and `KafkaOutputSink.ts`). This module only
 * declares the output: records are encoded to bytes at emit time here, and kafkajs is loaded when the
 * sink is first built, so a processor that declares no Kafka output never loads it.
 */
import { ConfigurationError } from '../../errors.ts';
import type { EmitContext, OutputDescriptor, SinkEnvironment } from '../../output/types.ts';

export const KAFKA_OUTPUT_DEFAULTS = {
  transactionalIdPrefix: 'tidemark.',
  transactionTimeoutMs: 60_000,
  maxRecordBytes: 1_000_000,
  maxRequestBytes: 524_288,
  maxProducers: 16,
  /** Kafka's default `offsets.retention.minutes` (7 days). */
  markerRetentionMs: 604_800_000,
  onMissingMarker: 'fail',
  compression: 'none',
} as const;

/** The header every record carries: its output id, `pipeline/topic/partition/epoch/seq`. */
export const OUTPUT_ID_HEADER = 'tidemark-id';

export const KAFKA_SASL_MECHANISMS = ['scram-sha-256', 'scram-sha-512', 'plain', 'aws-iam'] as const;
export type KafkaSaslMechanism = (typeof KAFKA_SASL_MECHANISMS)[number];

/** Record headers as `headers` returns them: a name maps to one value or several (kept in order). */
export type KafkaOutputHeaders = Readonly<
  Record<string, string | Uint8Array | readonly (string | Uint8Array)[] | undefined>
>;

/**
 * The cluster the outputs go to and how the sink delivers there. Outputs whose cluster options are
 * equal share one sink, so one task-epoch's records to all their topics commit in ONE transaction.
 * Outputs with the same `transactionalIdPrefix` must have equal cluster options (a mismatch fails
 * the epoch before it commits); outputs to another cluster need another prefix.
 */
export interface KafkaClusterOptions {
  /** Bootstrap brokers, `host:port` (an array or a comma-separated list). Default: `TIDEMARK_KAFKA_OUTPUT_BROKERS`. */
  readonly brokers?: readonly string[] | string;
  /** TLS. Default: `TIDEMARK_KAFKA_OUTPUT_TLS`, else false (true with `aws-iam` or a CA file). */
  readonly tls?: boolean;
  /** PEM file of the brokers' CA. Default: `TIDEMARK_KAFKA_OUTPUT_CA_FILE`. */
  readonly caFile?: string;
  /** Default: `TIDEMARK_KAFKA_OUTPUT_SASL_MECHANISM`, else none. `aws-iam`: Amazon MSK IAM. */
  readonly saslMechanism?: KafkaSaslMechanism;
  /**
   * Secrets Manager secret (name or ARN) holding `{"username", "password"}` (SCRAM, PLAIN).
   * Default: `TIDEMARK_KAFKA_OUTPUT_SECRET`.
   */
  readonly secret?: string;
  /** Default: `TIDEMARK_KAFKA_OUTPUT_USERNAME`. */
  readonly username?: string;
  /** Default: `TIDEMARK_KAFKA_OUTPUT_PASSWORD` (prefer `secret`). */
  readonly password?: string;
  /** Region of the MSK cluster for `aws-iam`. Default: `AWS_REGION`. */
  readonly region?: string;
  /** Default `tidemark-<pipeline>`. */
  readonly clientId?: string;
  /**
   * Start of every transactional id (`<prefix><pipeline>.<topic>.<partition>`) and of the marker
   * group (`<prefix><pipeline>.outputs`): grant the function TransactionalId WRITE and DESCRIBE and
   * Group READ on this prefix. Default `tidemark.`.
   */
  readonly transactionalIdPrefix?: string;
  /**
   * A topic of the output cluster with at least as many partitions as the input topics, to keep
   * the delivery markers on when the input topics are not in the output cluster. Default: none (the
   * markers are kept on the input topic-partitions, which must then exist in the output cluster).
   */
  readonly markerTopic?: string;
  /**
   * The producer's `transaction.timeout.ms`: a transaction left open by a crashed delivery blocks
   * `read_committed` readers of its partitions at most this long (less when the task's next
   * delivery starts first). At most the brokers' `transaction.max.timeout.ms` (15 min by default)
   * and more than a delivery can take. Default 60,000.
   */
  readonly transactionTimeoutMs?: number;
  /** Record batch compression. Default `none`. */
  readonly compression?: 'none' | 'gzip';
  /** A delivery sends its records in requests of at most about this many bytes. Default 524,288. */
  readonly maxRequestBytes?: number;
  /** Producers (one per task) a container keeps connected; the least recently used is closed. Default 16. */
  readonly maxProducers?: number;
  /** The cluster's `offsets.retention.minutes`, in ms (how long a delivery marker lasts). Default 7 days. */
  readonly markerRetentionMs?: number;
  /**
   * When the marker of an unsettled epoch older than `markerRetentionMs` is gone (docs/outputs.md#kafka):
   * `fail` (default; a `KafkaOutputMarkerError` until an operator decides), `deliver` or `skip`.
   */
  readonly onMissingMarker?: 'fail' | 'deliver' | 'skip';
}

export interface KafkaOutputOptions<T> {
  /** The topic the records go to. */
  readonly topic: string;
  /**
   * The record key (a string is written as UTF-8). Default: the state key of the record being
   * processed (`ctx.key`), so outputs keep the input's keying; null writes no key.
   */
  readonly key?: (value: T, ctx: EmitContext) => string | Uint8Array | null;
  /**
   * The record value: bytes, a string (UTF-8), or null (a tombstone). Default `JSON.stringify`. A
   * value it cannot serialize (it throws or returns anything else) fails the record.
   */
  readonly value?: (value: T, ctx: EmitContext) => string | Uint8Array | null;
  /** Extra headers. `tidemark-id` is the sink's own and cannot be set. */
  readonly headers?: (value: T, ctx: EmitContext) => KafkaOutputHeaders | undefined;
  /**
   * An explicit partition (it must exist when the epoch is delivered), or undefined for the default:
   * Kafka's default partitioner on the key (murmur2, like the Java client), and the input
   * partition modulo the topic's partition count for records without a key. Either way the same
   * outbox always goes to the same partitions, in emit order.
   */
  readonly partition?: (value: T, ctx: EmitContext) => number | undefined;
  /** The record timestamp (ms or a Date). Default: the time of delivery. */
  readonly timestamp?: (value: T, ctx: EmitContext) => number | Date | undefined;
  /**
   * A record (key, value and headers) larger than this fails at emit time, so an epoch never
   * commits a record the brokers would refuse. Default 1,000,000 (Kafka's `max.message.bytes`).
   */
  readonly maxRecordBytes?: number;
  readonly cluster?: KafkaClusterOptions;
}

/** One encoded record, as the outbox stores it: key, value, extra headers, partition, timestamp. */
export type KafkaOutputEntry = [
  key: Uint8Array | null,
  value: Uint8Array | null,
  headers: Array<[string, Uint8Array]> | null,
  partition: number | null,
  timestamp: number | null,
];

/** Cluster options with defaults applied (environment fallbacks are read by the sink). */
export interface ResolvedKafkaCluster {
  readonly brokers: readonly string[] | undefined;
  readonly tls: boolean | undefined;
  readonly caFile: string | undefined;
  readonly saslMechanism: KafkaSaslMechanism | undefined;
  readonly secret: string | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly region: string | undefined;
  readonly clientId: string | undefined;
  readonly transactionalIdPrefix: string;
  readonly markerTopic: string | undefined;
  readonly transactionTimeoutMs: number;
  readonly compression: 'none' | 'gzip';
  readonly maxRequestBytes: number;
  readonly maxProducers: number;
  readonly markerRetentionMs: number;
  readonly onMissingMarker: 'fail' | 'deliver' | 'skip';
}

/** The options as the sink reads them (`descriptor.options`). */
export interface ResolvedKafkaOutputOptions {
  readonly topic: string;
  readonly cluster: ResolvedKafkaCluster;
  /** The cluster options in one canonical string: outputs of one sink must agree on it. */
  readonly clusterKey: string;
}

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
const PREFIX = /^[A-Za-z0-9._:-]{0,128}$/;
const BROKER = /^(?:[^\s:/,]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/;
const MAX_PARTITION = 2 ** 31 - 1;

function fail(setting: string, message: string): never {
  throw new ConfigurationError(`kafkaOutput.${setting}`, `kafkaOutput: ${message}`);
}

function checkTopic(setting: string, topic: unknown): string {
  if (typeof topic !== 'string' || !TOPIC.test(topic) || topic === '.' || topic === '..') {
    fail(
      setting,
      `${setting} must be a Kafka topic name ([A-Za-z0-9._-], 1 to 249), got ${JSON.stringify(topic)}`,
    );
  }
  return topic;
}

function checkInt(setting: string, n: number, min: number, max: number): number {
  if (!Number.isSafeInteger(n) || n < min || n > max)
    fail(setting, `${setting} must be an integer from ${min} to ${max}, got ${n}`);
  return n;
}

/** Splits and checks a broker list (`host:port`, comma-separated or an array). */
export function parseBrokerList(setting: string, brokers: readonly string[] | string): string[] {
  const list = (typeof brokers === 'string' ? brokers.split(',') : [...brokers])
    .map((b) => b.trim())
    .filter(Boolean);
  if (list.length === 0) fail(setting, `${setting} names no broker`);
  for (const b of list) if (!BROKER.test(b)) fail(setting, `broker ${JSON.stringify(b)} is not host:port`);
  return list;
}

function resolveCluster(c: KafkaClusterOptions = {}): ResolvedKafkaCluster {
  const d = KAFKA_OUTPUT_DEFAULTS;
  const prefix = c.transactionalIdPrefix ?? d.transactionalIdPrefix;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    fail(
      'cluster.transactionalIdPrefix',
      `transactionalIdPrefix must match ${PREFIX}, got ${JSON.stringify(prefix)}`,
    );
  }
  const mechanism = c.saslMechanism;
  if (mechanism !== undefined && !(KAFKA_SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
    fail(
      'cluster.saslMechanism',
      `saslMechanism must be one of ${KAFKA_SASL_MECHANISMS.join(', ')}, got ${JSON.stringify(mechanism)}`,
    );
  }
  if (mechanism === 'aws-iam' && (c.username || c.password || c.secret)) {
    fail(
      'cluster.saslMechanism',
      'aws-iam authenticates with the function role: give no username, password or secret',
    );
  }
  const onMissingMarker = c.onMissingMarker ?? d.onMissingMarker;
  if (!['fail', 'deliver', 'skip'].includes(onMissingMarker)) {
    fail(
      'cluster.onMissingMarker',
      `onMissingMarker must be fail, deliver or skip, got ${JSON.stringify(onMissingMarker)}`,
    );
  }
  const compression = c.compression ?? d.compression;
  if (compression !== 'none' && compression !== 'gzip') {
    fail('cluster.compression', `compression must be none or gzip, got ${JSON.stringify(compression)}`);
  }
  return {
    brokers: c.brokers === undefined ? undefined : parseBrokerList('cluster.brokers', c.brokers),
    tls: c.tls,
    caFile: c.caFile,
    saslMechanism: mechanism,
    secret: c.secret,
    username: c.username,
    password: c.password,
    region: c.region,
    clientId: c.clientId,
    transactionalIdPrefix: prefix,
    markerTopic: c.markerTopic === undefined ? undefined : checkTopic('cluster.markerTopic', c.markerTopic),
    transactionTimeoutMs: checkInt(
      'cluster.transactionTimeoutMs',
      c.transactionTimeoutMs ?? d.transactionTimeoutMs,
      1_000,
      900_000,
    ),
    compression,
    maxRequestBytes: checkInt(
      'cluster.maxRequestBytes',
      c.maxRequestBytes ?? d.maxRequestBytes,
      1_024,
      100 * 1024 * 1024,
    ),
    maxProducers: checkInt('cluster.maxProducers', c.maxProducers ?? d.maxProducers, 1, 1_000),
    markerRetentionMs: checkInt(
      'cluster.markerRetentionMs',
      c.markerRetentionMs ?? d.markerRetentionMs,
      2 * 3_600_000,
      Number.MAX_SAFE_INTEGER,
    ),
    onMissingMarker,
  };
}

function bytesOf(what: string, v: string | Uint8Array): Uint8Array {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) return v;
  throw new TypeError(`${what} must be a string or bytes, got ${typeof v}`);
}

function encodeHeaders(headers: KafkaOutputHeaders | undefined): Array<[string, Uint8Array]> | null {
  if (headers === undefined || headers === null) return null;
  if (typeof headers !== 'object') throw new TypeError(`headers must be an object, got ${typeof headers}`);
  const out: Array<[string, Uint8Array]> = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (name === '' || name.toLowerCase() === OUTPUT_ID_HEADER) {
      throw new TypeError(
        `header name ${JSON.stringify(name)} is not allowed (${OUTPUT_ID_HEADER} is the sink's own)`,
      );
    }
    const values = Array.isArray(value) ? value : [value];
    for (const v of values as (string | Uint8Array)[]) out.push([name, bytesOf(`header ${name}`, v)]);
  }
  return out.length > 0 ? out : null;
}

/**
 * Declares an output delivered to a Kafka topic exactly once per committed epoch: each task-epoch's
 * records (of every Kafka output of the cluster) in one transaction, under the task's transactional
 * id, with a marker that makes a repeated delivery a no-op. Readers must use
 * `isolation.level=read_committed`.
 */
export function kafkaOutput<T>(options: KafkaOutputOptions<T>): OutputDescriptor<T, KafkaOutputEntry> {
  if (typeof options !== 'object' || options === null) fail('options', 'options must be an object');
  const topic = checkTopic('topic', options.topic);
  const cluster = resolveCluster(options.cluster);
  const maxRecordBytes = checkInt(
    'maxRecordBytes',
    options.maxRecordBytes ?? KAFKA_OUTPUT_DEFAULTS.maxRecordBytes,
    1,
    Number.MAX_SAFE_INTEGER,
  );
  for (const f of ['key', 'value', 'headers', 'partition', 'timestamp'] as const) {
    if (options[f] !== undefined && typeof options[f] !== 'function') fail(f, `${f} must be a function`);
  }
  const json = options.value === undefined;
  const serialize =
    options.value ??
    ((value: T): string => {
      const s = JSON.stringify(value);
      if (typeof s !== 'string') throw new TypeError(`the value serializes to ${typeof s}, not JSON`);
      return s;
    });
  const resolved: ResolvedKafkaOutputOptions = { topic, cluster, clusterKey: JSON.stringify(cluster) };
  // `decode` (for TestDriver and readers) is declared here too, so this compiles whether or not
  // OutputDescriptor lists it.
  const descriptor: OutputDescriptor<T, KafkaOutputEntry> & { decode(entry: KafkaOutputEntry): unknown } = {
    kind: 'kafka',
    // One sink (one transaction per task-epoch) per transactional id prefix: two sinks under the
    // same transactional ids would fence each other and share markers.
    sinkId: `kafka:${cluster.transactionalIdPrefix}`,
    encode(value: T, ctx: EmitContext): KafkaOutputEntry {
      const k = options.key ? options.key(value, ctx) : ctx.key;
      const key = k === null || k === undefined ? null : bytesOf('key', k);
      const v = serialize(value, ctx);
      const bytes = v === null ? null : bytesOf('value', v);
      const headers = encodeHeaders(options.headers?.(value, ctx));
      const p = options.partition?.(value, ctx);
      if (p !== undefined && (!Number.isSafeInteger(p) || p < 0 || p > MAX_PARTITION)) {
        throw new RangeError(`partition must be a non-negative integer, got ${p}`);
      }
      const t = options.timestamp?.(value, ctx);
      const ts = t instanceof Date ? t.getTime() : t;
      if (ts !== undefined && (!Number.isSafeInteger(ts) || ts < 0)) {
        throw new RangeError(`timestamp must be a non-negative integer of ms, got ${String(t)}`);
      }
      const size =
        (key?.length ?? 0) +
        (bytes?.length ?? 0) +
        (headers ?? []).reduce((n, [name, hv]) => n + Buffer.byteLength(name) + hv.length, 0);
      if (size > maxRecordBytes) {
        throw new RangeError(`the record has ${size} bytes, more than maxRecordBytes (${maxRecordBytes})`);
      }
      return [key, bytes, headers, p ?? null, ts ?? null];
    },
    decode(entry: KafkaOutputEntry): unknown {
      const value = entry[1];
      if (value === null) return null;
      const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      return json ? JSON.parse(buf.toString('utf8')) : buf;
    },
    async createSink(env: SinkEnvironment) {
      const { KafkaOutputSink } = await import('./KafkaOutputSink.ts');
      return KafkaOutputSink.create(env, resolved);
    },
    options: resolved as unknown as Readonly<Record<string, unknown>>,
  };
  return descriptor;
}
