/**
 * The benchmark input: balances records (key = account id, value = JSON `{"amount": n}`) in Amazon
 * MSK event shape (base64 key and value), as the Kafka event source mapping delivers them. The
 * stream is deterministic (seeded), so every approach in a run sees exactly the same records.
 */
import type { KafkaEvent, RawKafkaRecord } from '../lib/event/types.ts';

export interface WorkloadOptions {
  topic: string;
  partitions: number;
  /** Distinct account ids (keys), drawn uniformly. */
  accounts: number;
  seed: number;
  /** Keep the expected balances per partition (a plain fold), to check results afterwards. */
  track?: boolean;
}

export interface AccountTotals {
  balance: number;
  count: number;
}

const MIN_AMOUNT = -100;
const MAX_AMOUNT = 999;

/** mulberry32: a tiny, well-known seeded PRNG (quality is ample for picking keys). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function accountId(n: number): string {
  return `acct-${String(n).padStart(7, '0')}`;
}

export class BalancesWorkload {
  readonly options: WorkloadOptions;
  /** Next offset per partition. */
  private readonly next: bigint[];
  private readonly random: () => number;
  private readonly keys: string[];
  private readonly values: string[];
  /** Expected state per partition (only with `track`). */
  readonly expected: Array<Map<string, AccountTotals>>;
  produced = 0;

  constructor(options: WorkloadOptions) {
    this.options = options;
    this.next = Array.from({ length: options.partitions }, () => 0n);
    this.random = prng(options.seed);
    // Encoded once: generating a batch must cost little next to processing it.
    this.keys = Array.from({ length: options.accounts }, (_, i) =>
      Buffer.from(accountId(i), 'utf8').toString('base64'),
    );
    this.values = [];
    for (let a = MIN_AMOUNT; a <= MAX_AMOUNT; a++) {
      this.values.push(Buffer.from(JSON.stringify({ amount: a }), 'utf8').toString('base64'));
    }
    this.expected = Array.from({ length: options.partitions }, () => new Map());
  }

  /**
   * One ESM batch of `records` records, spread evenly over the partitions (the first partitions get
   * one more when it does not divide), with contiguous offsets per partition.
   */
  batch(records: number): KafkaEvent {
    const { topic, partitions, accounts } = this.options;
    const groups: Record<string, RawKafkaRecord[]> = {};
    for (let p = 0; p < partitions; p++) {
      const n = Math.floor(records / partitions) + (p < records % partitions ? 1 : 0);
      if (n === 0) continue;
      const list = new Array<RawKafkaRecord>(n);
      for (let i = 0; i < n; i++) {
        const account = Math.floor(this.random() * accounts);
        const amountIndex = Math.floor(this.random() * this.values.length);
        const offset = this.next[p]!;
        this.next[p] = offset + 1n;
        list[i] = {
          topic,
          partition: p,
          offset: Number(offset),
          timestamp: 1_700_000_000_000 + this.produced,
          timestampType: 'CREATE_TIME',
          key: this.keys[account]!,
          value: this.values[amountIndex]!,
          headers: [],
        };
        this.produced++;
        if (this.options.track) {
          const m = this.expected[p]!;
          const id = accountId(account);
          const cur = m.get(id);
          m.set(id, {
            balance: (cur?.balance ?? 0) + MIN_AMOUNT + amountIndex,
            count: (cur?.count ?? 0) + 1,
          });
        }
      }
      groups[`${topic}-${p}`] = list;
    }
    return {
      eventSource: 'aws:kafka',
      eventSourceArn:
        'arn:aws:kafka:us-east-1:123456789012:cluster/bench/00000000-0000-0000-0000-000000000000-1',
      bootstrapServers: 'b-1.bench.kafka.us-east-1.amazonaws.com:9092',
      records: groups,
    };
  }
}

/** Every record of an event, in partition then offset order. */
export function recordsOf(event: KafkaEvent): RawKafkaRecord[] {
  return Object.values(event.records).flat();
}
