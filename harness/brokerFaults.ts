/**
 * Broker faults for the embedded Kafka mock cluster, injected through its control channel while
 * the ESM emulator consumes and the producer produces: a broker going down for a moment, a slow
 * broker, request errors (Fetch, OffsetCommit, Produce, Heartbeat) and partition leadership moves.
 * Clients must ride them out; the pipeline's result must not change.
 */
import type { KafkaMock } from './kafka/kafkaMock.ts';
import type { SeededRandom } from './seededRandom.ts';

export const BROKER_FAULT_KINDS = [
  'broker-down',
  'slow-broker',
  'fetch-errors',
  'offset-commit-errors',
  'produce-errors',
  'heartbeat-errors',
  'leader-move',
] as const;
export type BrokerFaultKind = (typeof BROKER_FAULT_KINDS)[number];

export class BrokerFaults {
  readonly injected: Record<BrokerFaultKind, number> = {
    'broker-down': 0,
    'slow-broker': 0,
    'fetch-errors': 0,
    'offset-commit-errors': 0,
    'produce-errors': 0,
    'heartbeat-errors': 0,
    'leader-move': 0,
  };
  /** Control commands the mock refused or could not take (they are skipped). */
  failures = 0;
  private readonly mock: KafkaMock;
  private readonly random: SeededRandom;
  private readonly topic: string;
  private readonly partitions: number;
  private readonly minGapMs: number;
  private readonly onFault: ((kind: BrokerFaultKind) => void) | undefined;
  private active: Promise<void> | undefined;
  private lastStart = Number.NEGATIVE_INFINITY;
  private stopped = false;

  /**
   * `minGapMs`: faults start at least this far apart (default 3 s), so that clients recover from
   * one before the next: kafkajs answers each stale-metadata error by rejoining its group, and a
   * burst of them keeps the group rebalancing for a long time.
   */
  constructor(
    mock: KafkaMock,
    random: SeededRandom,
    target: {
      topic: string;
      partitions: number;
      minGapMs?: number;
      /** Called as each fault starts. */
      onFault?: (kind: BrokerFaultKind) => void;
    },
  ) {
    this.mock = mock;
    this.random = random;
    this.topic = target.topic;
    this.partitions = target.partitions;
    this.minGapMs = target.minGapMs ?? 3_000;
    this.onFault = target.onFault;
  }

  get total(): number {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }

  /** Starts one fault (of the `allowed` kinds) unless one is still in progress. Never throws. */
  trigger(allowed: readonly BrokerFaultKind[] = BROKER_FAULT_KINDS): void {
    const now = performance.now();
    if (this.stopped || this.active || now - this.lastStart < this.minGapMs) return;
    this.lastStart = now;
    const kind = this.random.pick(allowed);
    this.onFault?.(kind);
    this.active = this.run(kind)
      .then(
        () => {
          this.injected[kind]++;
        },
        () => {
          this.failures++;
        },
      )
      .finally(() => {
        this.active = undefined;
      });
  }

  /** Lets a fault in progress finish (brokers come back up), then injects no more. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.active;
  }

  private async run(kind: BrokerFaultKind): Promise<void> {
    const m = this.mock;
    const broker = this.random.pick(m.brokerIds);
    switch (kind) {
      case 'broker-down':
        await m.brokerDown(broker);
        await sleep(this.random.int(300, 1_500));
        await m.brokerUp(broker);
        return;
      case 'slow-broker':
        await m.setRtt(broker, this.random.int(50, 300));
        await sleep(this.random.int(500, 2_000));
        await m.setRtt(broker, 0);
        return;
      case 'fetch-errors':
        // A storage error, not NOT_LEADER: kafkajs answers NOT_LEADER from each broker's fetcher
        // with a group rejoin of its own, and concurrent rejoins churn the group for minutes.
        // Leadership changes are exercised by `leader-move`.
        return m.failRequests('Fetch', 'KAFKA_STORAGE_ERROR', this.random.int(1, 3));
      case 'offset-commit-errors':
        return m.failRequests('OffsetCommit', 'COORDINATOR_NOT_AVAILABLE', this.random.int(1, 3));
      case 'produce-errors':
        return m.failRequests('Produce', 'NOT_ENOUGH_REPLICAS', this.random.int(1, 3));
      case 'heartbeat-errors':
        return m.failRequests('Heartbeat', 'COORDINATOR_NOT_AVAILABLE', this.random.int(1, 2));
      case 'leader-move':
        return m.moveLeader(this.topic, this.random.int(0, this.partitions - 1), broker);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
