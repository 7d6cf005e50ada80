/**
 * A real Kafka-protocol cluster for local runs and tests: librdkafka's mock cluster (see
 * `build.ts`), started as a child process on free ports of 127.0.0.1, in memory. kafkajs (and any
 * Kafka client) talks to it like to a broker: produce, consumer groups, offsets, transactions,
 * admin createTopics/describeGroups. Transactions follow a real broker's rules: a new producer of a
 * transactional id fences the previous one and aborts its open transaction, a transaction that
 * outlives its timeout is aborted, offsets sent in a transaction count only once it commits (see
 * docs/local-run.md). Faults are injected through its control channel (stdin).
 *
 * The child exits when its stdin closes, which happens when this process dies however it dies, so
 * a crashed test runner or a killed `npm start` never leaves a mock behind. Topics and groups can
 * not be deleted: start one cluster per test file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { killWithParent } from '../processGuard.ts';
import { ensureKafkaMock, type KafkaMockBuildOptions } from './build.ts';
import { KafkaMockError } from './errors.ts';
import { KAFKA_API, KAFKA_ERROR, type KafkaApiName, type KafkaErrorName } from './protocol.ts';

export interface KafkaMockOptions {
  /** Number of brokers (ids 1..n). Default 1. Replication factor is min(3, brokers). */
  brokers?: number;
  /** Topics to create at start, name → partitions. */
  topics?: Readonly<Record<string, number>>;
  /** The binary to run. Default: built (or found cached) by `ensureKafkaMock`. */
  bin?: string;
  build?: KafkaMockBuildOptions;
  /** Milliseconds to wait for the cluster to listen. Default 10,000. */
  readyTimeoutMs?: number;
}

export interface KafkaMock {
  /** Bootstrap addresses, `host:port`, one per broker. */
  readonly brokers: readonly string[];
  /** Broker ids, 1..n. */
  readonly brokerIds: readonly number[];
  /** Sends a raw control command (see scripts/kafka-mock/launcher.c); rejects when refused. */
  control(command: string): Promise<void>;
  /** The broker closes its connections and refuses new ones until `brokerUp`. */
  brokerDown(broker: number): Promise<void>;
  brokerUp(broker: number): Promise<void>;
  /** Every answer of the broker is delayed by `ms` (0 to clear). */
  setRtt(broker: number, ms: number): Promise<void>;
  /** The next `count` requests of an API (cluster-wide) fail with a (retriable) error code. */
  failRequests(api: KafkaApiName, error: KafkaErrorName, count: number): Promise<void>;
  /**
   * Scripts the next `count` requests of an API to one broker: each is answered `delayMs` later
   * (handled at once: a Produce is appended, only its answer waits) or, with `error`, fails with it.
   */
  scriptBrokerRequests(
    broker: number,
    api: KafkaApiName,
    count: number,
    answer: { error?: KafkaErrorName; delayMs?: number },
  ): Promise<void>;
  clearRequestErrors(api: KafkaApiName): Promise<void>;
  createTopic(name: string, partitions: number): Promise<void>;
  /** Moves a partition's leadership to another broker (clients get NOT_LEADER and refresh). */
  moveLeader(topic: string, partition: number, broker: number): Promise<void>;
  /** Pins a consumer group's coordinator to a broker. */
  pinCoordinator(group: string, broker: number): Promise<void>;
  /**
   * Writes the markers of a transaction `ms` after its EndTxn (or its abort by the cluster) instead
   * of at once; meanwhile the transaction is PrepareCommit/PrepareAbort, as on a real broker while
   * its markers are in flight. Markers already pending are written `ms` from now. 0 (the default)
   * writes them at once.
   */
  setTxnMarkerDelay(ms: number): Promise<void>;
  /** Holds every transaction's markers until `setTxnMarkerDelay` (0 writes the held ones at once). */
  holdTxnMarkers(): Promise<void>;
  /** Stops the cluster (idempotent). */
  stop(): Promise<void>;
}

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
  command: string;
}

const SAFE_ARG = /^[A-Za-z0-9._-]{1,249}$/;

function checkName(kind: string, name: string): string {
  if (!SAFE_ARG.test(name)) throw new KafkaMockError(`invalid ${kind} name ${JSON.stringify(name)}`);
  return name;
}

function checkInt(kind: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new KafkaMockError(`invalid ${kind} ${n}`);
  return n;
}

/** Starts a mock cluster, building the binary first if needed. */
export async function startKafkaMock(options: KafkaMockOptions = {}): Promise<KafkaMock> {
  const count = options.brokers ?? 1;
  if (!Number.isSafeInteger(count) || count < 1 || count > 32)
    throw new KafkaMockError(`brokers must be 1..32, got ${count}`);
  const topics = Object.entries(options.topics ?? {}).map(
    ([name, parts]) => `${checkName('topic', name)}:${checkInt('partition count', parts)}`,
  );
  const bin = options.bin ?? (await ensureKafkaMock(options.build));
  // Its own process group: a Ctrl-C in the terminal reaches us, and we stop the cluster in order
  // (clients leave their groups first); stdin closing or the guard below stop it if we die.
  const child: ChildProcess = spawn(bin, [String(count), ...topics], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  const release = killWithParent(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const pending: Pending[] = [];
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      release();
      const err = new KafkaMockError(
        `kafka-mock exited (${signal ?? `code ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`,
      );
      for (const p of pending.splice(0)) p.reject(err);
      resolve();
    }),
  );
  const bootstrap = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new KafkaMockError(`kafka-mock did not start within ${options.readyTimeoutMs ?? 10_000} ms`));
    }, options.readyTimeoutMs ?? 10_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('BOOTSTRAP ')) {
        clearTimeout(timer);
        resolve(line.slice('BOOTSTRAP '.length).trim().split(','));
      } else if (line.startsWith('OK ')) {
        pending.shift()?.resolve();
      } else if (line.startsWith('ERR ')) {
        const p = pending.shift();
        p?.reject(new KafkaMockError(`kafka-mock refused ${JSON.stringify(p.command)}: ${line.slice(4)}`));
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new KafkaMockError(`cannot run ${bin}: ${err.message}`, { cause: err }));
    });
    void exit.then(() => {
      clearTimeout(timer);
      reject(new KafkaMockError(`kafka-mock exited before listening${stderr ? `: ${stderr.trim()}` : ''}`));
    });
  });

  const control = (command: string): Promise<void> => {
    if (exited || !child.stdin?.writable) return Promise.reject(new KafkaMockError('kafka-mock is stopped'));
    if (/[\r\n]/.test(command)) return Promise.reject(new KafkaMockError('one command per call'));
    return new Promise<void>((resolve, reject) => {
      pending.push({ resolve, reject, command });
      child.stdin!.write(`${command}\n`);
    });
  };
  let stopping: Promise<void> | undefined;
  return {
    brokers: bootstrap,
    brokerIds: Array.from({ length: count }, (_, i) => i + 1),
    control,
    brokerDown: (b) => control(`down ${checkInt('broker', b)}`),
    brokerUp: (b) => control(`up ${checkInt('broker', b)}`),
    setRtt: (b, ms) => control(`rtt ${checkInt('broker', b)} ${checkInt('rtt', ms)}`),
    failRequests: (api, error, n) =>
      control(`err ${KAFKA_API[api]} ${KAFKA_ERROR[error]} ${checkInt('count', n)}`),
    scriptBrokerRequests: (b, api, n, answer) =>
      control(
        `berr ${checkInt('broker', b)} ${KAFKA_API[api]} ${answer.error ? KAFKA_ERROR[answer.error] : 0} ${checkInt('delay', answer.delayMs ?? 0)} ${checkInt('count', n)}`,
      ),
    clearRequestErrors: (api) => control(`clear ${KAFKA_API[api]}`),
    createTopic: (name, partitions) =>
      control(`topic ${checkName('topic', name)} ${checkInt('partition count', partitions)}`),
    moveLeader: (topic, partition, broker) =>
      control(
        `leader ${checkName('topic', topic)} ${checkInt('partition', partition)} ${checkInt('broker', broker)}`,
      ),
    pinCoordinator: (group, broker) =>
      control(`coord ${checkName('group', group)} ${checkInt('broker', broker)}`),
    setTxnMarkerDelay: (ms) => control(`txn-marker-delay ${checkInt('marker delay', ms)}`),
    holdTxnMarkers: () => control('txn-marker-delay hold'),
    stop: () => {
      stopping ??= (async () => {
        if (exited) return;
        child.stdin?.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exit;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}
