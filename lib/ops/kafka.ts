/**
 * Kafka access of the operator commands (kafkajs): a client factory with the authentication options
 * real clusters need (TLS, SASL/PLAIN, SASL/SCRAM, IAM for Amazon MSK), and the consumer-group and
 * topic-offset operations `status` and `savepoint restore` use, behind the small `KafkaOps`
 * interface so procedures can be tested with a fake.
 */
import { readFileSync } from 'node:fs';
import { type Admin, Kafka, type KafkaConfig, logLevel, type SASLOptions } from 'kafkajs';
import { OperationError } from '../errors.ts';

/** Environment variables the Kafka options fall back to (operator machines and CI, not the function). */
let warningsFiltered = false;

/** kafkajs schedules timers with negative delays on Node 24, and Node warns each time: drop those. */
export function quietKafkajsWarnings(): void {
  if (warningsFiltered) return;
  warningsFiltered = true;
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (w.name !== 'TimeoutNegativeWarning') process.stderr.write(`${w.name}: ${w.message}\n`);
  });
}

export const KAFKA_ENV = {
  brokers: 'TIDEMARK_KAFKA_BROKERS',
  username: 'TIDEMARK_KAFKA_USERNAME',
  password: 'TIDEMARK_KAFKA_PASSWORD',
} as const;

export const SASL_MECHANISMS = ['scram-sha-256', 'scram-sha-512', 'plain', 'aws-iam'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export interface KafkaConnectionOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: readonly string[];
  /** TLS. Implied by `aws-iam` (MSK's IAM listener is TLS-only). */
  ssl?: boolean;
  /** PEM file of the CA that signed the brokers' certificates (default: Node's trusted CAs). */
  caFile?: string;
  saslMechanism?: SaslMechanism;
  saslUsername?: string;
  saslPassword?: string;
  /** Region of the MSK cluster, for `aws-iam`. */
  region?: string;
  clientId?: string;
}

export interface KafkaConfigDeps {
  readFile?: (path: string) => string;
  /** Signs an MSK IAM token (default: the official signer, see lib/store/msk). */
  iamToken?: (region: string) => Promise<{ value: string }>;
}

/** Splits `a:9092,b:9092` into brokers, refusing anything that is not `host:port`. */
export function parseBrokers(list: string): string[] {
  const brokers = list
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length === 0) throw new OperationError('no Kafka broker given');
  for (const b of brokers) {
    if (!/^[^\s:/]+:\d{1,5}$/.test(b) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(b)) {
      throw new OperationError(`broker ${JSON.stringify(b)} is not host:port`);
    }
  }
  return brokers;
}

/**
 * The kafkajs client configuration for these options. Each mechanism's requirements are checked
 * here, so a missing password or region fails before any connection is attempted.
 */
export function kafkaClientConfig(options: KafkaConnectionOptions, deps: KafkaConfigDeps = {}): KafkaConfig {
  const readFile = deps.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const mechanism = options.saslMechanism;
  if (mechanism !== undefined && !(SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
    throw new OperationError(
      `SASL mechanism ${JSON.stringify(mechanism)} is not one of ${SASL_MECHANISMS.join(', ')}`,
    );
  }
  let sasl: SASLOptions | undefined;
  if (mechanism === 'aws-iam') {
    const region = options.region;
    if (!region) throw new OperationError('--sasl-mechanism aws-iam needs --region (or AWS_REGION)');
    // Loaded on first use: the signer brings the AWS credential providers with it.
    const sign =
      deps.iamToken ?? (async (r: string) => (await import('../store/msk/mskIamToken.ts')).mskIamToken(r));
    sasl = {
      mechanism: 'oauthbearer',
      oauthBearerProvider: async () => ({ value: (await sign(region)).value }),
    };
  } else if (mechanism) {
    const { saslUsername: username, saslPassword: password } = options;
    if (!username || !password) {
      throw new OperationError(
        `--sasl-mechanism ${mechanism} needs --sasl-username and --sasl-password (or ${KAFKA_ENV.username} and ${KAFKA_ENV.password})`,
      );
    }
    sasl = { mechanism, username, password } as SASLOptions;
  } else if (options.saslUsername || options.saslPassword) {
    throw new OperationError('a SASL username or password was given without --sasl-mechanism');
  }
  const tls = options.ssl || options.caFile !== undefined || mechanism === 'aws-iam';
  const ssl = tls ? (options.caFile ? { ca: [readFile(options.caFile)] } : true) : false;
  return {
    clientId: options.clientId ?? 'tidemark-cli',
    brokers: [...options.brokers],
    ssl,
    ...(sasl ? { sasl } : {}),
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    // kafkajs logs to stdout at INFO; operators get errors through exceptions. KAFKAJS_LOG_LEVEL
    // (e.g. `debug`) overrides this to diagnose connection problems.
    logLevel: logLevel.NOTHING,
    retry: { retries: 5 },
  };
}

export interface GroupMember {
  memberId: string;
  clientId: string;
  clientHost: string;
}

export interface GroupDescription {
  /** Kafka's group state: Empty, Dead (no such group), Stable, PreparingRebalance, … */
  state: string;
  members: GroupMember[];
}

export interface PartitionOffsets {
  partition: number;
  /** Earliest offset still in the log. */
  low: bigint;
  /** The end of the log (the next offset to be written). */
  high: bigint;
}

export interface GroupOffset {
  topic: string;
  partition: number;
  /** Committed offset of the group (the next to read); null when the group has none. */
  offset: bigint | null;
}

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  offset: bigint;
}

/** What the operator commands need from a Kafka cluster. */
export interface KafkaOps {
  describeGroup(groupId: string): Promise<GroupDescription>;
  /** Partition ids of a topic; throws `OperationError` when the topic does not exist. */
  partitions(topic: string): Promise<number[]>;
  topicOffsets(topic: string): Promise<PartitionOffsets[]>;
  groupOffsets(groupId: string, topics: readonly string[]): Promise<GroupOffset[]>;
  /**
   * Sets a group's committed offsets. The group must be empty: this joins it, checks it was given
   * every partition (no other member), commits, and leaves.
   */
  setGroupOffsets(groupId: string, offsets: readonly TopicPartitionOffset[]): Promise<void>;
  close(): Promise<void>;
}

export interface KafkajsOpsOptions {
  /** How long joining the group to commit offsets may take. Default 60 s. */
  joinTimeoutMs?: number;
}

/** `KafkaOps` over kafkajs. The admin client connects lazily and is shared by every call. */
export function createKafkaOps(config: KafkaConfig, options: KafkajsOpsOptions = {}): KafkaOps {
  const kafka = new Kafka(config);
  let admin: Promise<Admin> | undefined;
  const getAdmin = () => {
    admin ??= (async () => {
      const a = kafka.admin();
      await a.connect();
      return a;
    })();
    return admin;
  };
  const ops: KafkaOps = {
    async describeGroup(groupId) {
      const { groups } = await (await getAdmin()).describeGroups([groupId]);
      const g = groups[0];
      if (!g) return { state: 'Dead', members: [] };
      return {
        state: g.state,
        members: g.members.map((m) => ({
          memberId: m.memberId,
          clientId: m.clientId,
          clientHost: m.clientHost,
        })),
      };
    },
    async partitions(topic) {
      try {
        const { topics } = await (await getAdmin()).fetchTopicMetadata({ topics: [topic] });
        const t = topics.find((x) => x.name === topic);
        if (!t || t.partitions.length === 0) throw new Error('no partitions');
        return t.partitions.map((p) => p.partitionId).sort((a, b) => a - b);
      } catch (err) {
        throw new OperationError(
          `topic ${topic} does not exist or is not readable: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    },
    async topicOffsets(topic) {
      const offsets = await (await getAdmin()).fetchTopicOffsets(topic);
      return offsets
        .map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) }))
        .sort((a, b) => a.partition - b.partition);
    },
    async groupOffsets(groupId, topics) {
      const out: GroupOffset[] = [];
      if (topics.length === 0) return out;
      const res = await (await getAdmin()).fetchOffsets({ groupId, topics: [...topics] });
      for (const t of res) {
        for (const p of t.partitions) {
          const o = BigInt(p.offset);
          out.push({ topic: t.topic, partition: p.partition, offset: o < 0n ? null : o });
        }
      }
      return out.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
    },
    async setGroupOffsets(groupId, offsets) {
      await joinAndCommit(kafka, groupId, offsets, options.joinTimeoutMs ?? 60_000);
    },
    async close() {
      const a = admin;
      admin = undefined;
      if (a) await (await a.catch(() => undefined))?.disconnect();
    },
  };
  return ops;
}

/**
 * The rewind: join the group as its only member (nothing is fetched: every topic is paused and
 * nothing is auto-committed), commit the offsets, leave. This is what kafkajs's `admin.setOffsets`
 * does, minus its 5 s fetch wait and for several topics in one join; it works on any broker.
 */
async function joinAndCommit(
  kafka: Kafka,
  groupId: string,
  offsets: readonly TopicPartitionOffset[],
  timeoutMs: number,
): Promise<void> {
  const topics = [...new Set(offsets.map((o) => o.topic))];
  const consumer = kafka.consumer({
    groupId,
    maxWaitTimeInMs: 100,
    sessionTimeout: 30_000,
    allowAutoTopicCreation: false,
    retry: { retries: 3 },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    const joined = new Promise<Record<string, number[]>>((resolve, reject) => {
      consumer.on(consumer.events.GROUP_JOIN, (e) => resolve(e.payload.memberAssignment));
      consumer.on(consumer.events.CRASH, (e) => reject(e.payload.error));
      timer = setTimeout(
        () => reject(new OperationError(`joining consumer group ${groupId} took more than ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => {} });
    consumer.pause(topics.map((topic) => ({ topic })));
    const assignment = await joined;
    const missing = offsets.filter((o) => !(assignment[o.topic] ?? []).includes(o.partition));
    if (missing.length > 0) {
      throw new OperationError(
        `another member joined consumer group ${groupId} while its offsets were being reset (partitions ${missing
          .map((m) => `${m.topic}-${m.partition}`)
          .join(', ')} went to it); stop it and run again`,
      );
    }
    await consumer.commitOffsets(
      offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset.toString() })),
    );
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}

/** Lag of a group on one partition: end of log minus committed offset (from the earliest when none). */
export function lagOf(committed: bigint | null, offsets: PartitionOffsets): bigint {
  const from = committed ?? offsets.low;
  return offsets.high > from ? offsets.high - from : 0n;
}
