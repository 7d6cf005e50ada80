import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureKafkaMock } from '../../harness/kafka/build.ts';
import { KafkaMockError, KafkaMockToolchainError } from '../../harness/kafka/errors.ts';
import { type KafkaMock, startKafkaMock } from '../../harness/kafka/kafkaMock.ts';

function whichDir(tool: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    try {
      const p = path.join(dir, tool);
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  throw new Error(`${tool} not on PATH`);
}

/** Whether a TCP connection to `address` is refused (true) or accepted (false). */
function refused(address: string): Promise<boolean> {
  const [host, port] = address.split(':');
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

const BUILD_TIMEOUT_MS = 600_000;

describe('Kafka mock cluster', () => {
  let mock: KafkaMock;
  let kafka: Kafka;

  // The first run builds the cluster (about 35 s on two idle cores, minutes on a busy machine).
  beforeAll(async () => {
    mock = await startKafkaMock({ brokers: 3, topics: { orders: 4 } });
    kafka = new Kafka({ clientId: 'mock-test', brokers: [...mock.brokers], logLevel: logLevel.NOTHING });
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await mock?.stop();
  });

  it('speaks the Kafka protocol: produce, consume in a group, createTopics and describeGroups', async () => {
    expect(mock.brokers).toHaveLength(3);
    expect(mock.brokerIds).toEqual([1, 2, 3]);
    const admin = kafka.admin();
    await admin.connect();
    expect(await admin.createTopics({ topics: [{ topic: 'created', numPartitions: 2 }] })).toBe(true);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic: 'orders',
      messages: [0, 1, 2, 3].map((p) => ({ partition: p, key: `k${p}`, value: `v${p}` })),
    });
    const seen: string[] = [];
    const consumer = kafka.consumer({ groupId: 'g1', sessionTimeout: 6_000, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'orders', fromBeginning: true });
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          seen.push(String(message.value));
          if (seen.length === 4) resolve();
        },
      });
    });
    const described = await admin.describeGroups(['g1']);
    expect(described.groups[0]?.state).toBe('Stable');
    await consumer.disconnect();
    expect(seen.sort()).toEqual(['v0', 'v1', 'v2', 'v3']);
    expect((await admin.describeGroups(['g1'])).groups[0]?.state).toBe('Empty');
    await producer.disconnect();
    await admin.disconnect();
  });

  /** After `inject`, one produce to orders/0 is refused with NOT_ENOUGH_REPLICAS and the next one passes. */
  async function expectOneProduceRefused(inject: () => Promise<void>): Promise<void> {
    const producer = kafka.producer({ retry: { retries: 0 } });
    await producer.connect();
    await inject();
    const err = (await producer
      .send({ topic: 'orders', messages: [{ partition: 0, value: 'x' }] })
      .catch((e: unknown) => e)) as { type?: string; cause?: { type?: string } };
    expect(err.type ?? err.cause?.type).toBe('NOT_ENOUGH_REPLICAS');
    await producer.send({ topic: 'orders', messages: [{ partition: 0, value: 'y' }] });
    await producer.disconnect();
  }

  it('injects request errors through its control channel', async () => {
    await expectOneProduceRefused(() => mock.failRequests('Produce', 'NOT_ENOUGH_REPLICAS', 1));
  });

  it('scripts the next requests of one broker (a delayed error) and refuses an unknown broker', async () => {
    const admin = kafka.admin();
    await admin.connect();
    const meta = await admin.fetchTopicMetadata({ topics: ['orders'] });
    await admin.disconnect();
    const leader = meta.topics[0]!.partitions.find((p) => p.partitionId === 0)!.leader;
    await expectOneProduceRefused(() =>
      mock.scriptBrokerRequests(leader, 'Produce', 1, { error: 'NOT_ENOUGH_REPLICAS', delayMs: 10 }),
    );
    await expect(mock.scriptBrokerRequests(99, 'Produce', 1, {})).rejects.toThrow(/no such broker/);
  });

  it('takes a broker down and brings it back', async () => {
    const address = mock.brokers[1]!;
    await mock.brokerDown(2);
    expect(await refused(address)).toBe(true);
    await mock.brokerUp(2);
    expect(await refused(address)).toBe(false);
  });

  it('refuses unknown or malformed commands with a typed error', async () => {
    await expect(mock.control('explode 1')).rejects.toBeInstanceOf(KafkaMockError);
    await expect(mock.control('down')).rejects.toThrow(/unknown command/);
    await expect(mock.brokerDown(99)).rejects.toThrow(/no such broker/);
    await expect(mock.control('up 1\ndown 1')).rejects.toThrow(/one command/);
    await expect(mock.control('txn-marker-delay -1')).rejects.toThrow(/delay must be/);
    await expect(mock.control('txn-marker-delay soon')).rejects.toThrow(/unknown command/);
  });

  it('stops: the cluster stops listening and further commands fail', async () => {
    const other = await startKafkaMock({ brokers: 1 });
    await other.stop();
    await other.stop(); // idempotent
    expect(await refused(other.brokers[0]!)).toBe(true);
    await expect(other.brokerUp(1)).rejects.toThrow(/stopped|exited/);
  });
});

describe('building the Kafka mock cluster', () => {
  it('names the missing build tools in a typed error', async () => {
    const bin = mkdtempSync(path.join(tmpdir(), 'tidemark-nobuildtools-'));
    const out = path.join(bin, 'out');
    mkdirSync(out);
    try {
      // Everything the build script needs except the compiler toolchain.
      for (const tool of ['bash', 'dirname', 'cat', 'cut', 'sha256sum', 'tar', 'node', 'npm', 'flock']) {
        symlinkSync(whichDir(tool), path.join(bin, tool));
      }
      const err = await ensureKafkaMock({ dir: out, env: { ...process.env, PATH: bin } }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KafkaMockToolchainError);
      expect((err as KafkaMockToolchainError).missing).toEqual(['gcc', 'make', 'patch']);
      expect((err as Error).message).toMatch(/apt-get install -y gcc make patch/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('rejects a KAFKA_MOCK_BIN that is not executable', async () => {
    await expect(
      ensureKafkaMock({ env: { KAFKA_MOCK_BIN: '/nonexistent/kafka-mock' } }),
    ).rejects.toBeInstanceOf(KafkaMockError);
  });
});
