/**
 * The keyed stream the main job produces: account transactions for the balances example, drawn
 * from a seed. Keys are account ids (each account lives on one partition); values are JSON
 * `{"amount": n}`; about 1% are tombstones (the account is closed) and about 0.2% are poison
 * records of several kinds. Some records carry headers with non-ASCII bytes.
 */
import type { SeededRandom } from './seededRandom.ts';

export const POISON_KINDS = [
  'null-key',
  'null-key-tombstone',
  'invalid-utf8-key',
  'not-json',
  'not-an-object',
  'fractional-amount',
  'string-amount',
  'unsafe-amount',
] as const;
export type PoisonKind = (typeof POISON_KINDS)[number];

export type StreamRecordKind = 'deposit' | 'tombstone' | PoisonKind;

export interface StreamRecord {
  readonly partition: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: Record<string, Buffer>;
  readonly timestamp: number;
  /** What the generator meant it to be (the oracle classifies records on its own). */
  readonly kind: StreamRecordKind;
}

export interface StreamSpec {
  records: number;
  partitions: number;
  /** Distinct accounts. Default: records / 10, at least 10 per partition. */
  accounts?: number;
  tombstoneRate?: number;
  poisonRate?: number;
  /** Timestamp of the first record (ms); later ones advance by about 1 ms each. */
  startTime?: number;
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8');

export function accountCount(spec: StreamSpec): number {
  return spec.accounts ?? Math.max(10 * spec.partitions, Math.round(spec.records / 10));
}

export function accountId(n: number): string {
  return `acct-${String(n).padStart(6, '0')}`;
}

/** The stream, in production order. */
export function* generateStream(spec: StreamSpec, random: SeededRandom): Generator<StreamRecord> {
  const accounts = accountCount(spec);
  const tombstoneRate = spec.tombstoneRate ?? 0.01;
  const poisonRate = spec.poisonRate ?? 0.002;
  let timestamp = spec.startTime ?? Date.now();
  for (let i = 0; i < spec.records; i++) {
    timestamp += random.int(0, 2);
    const account = random.int(0, accounts - 1);
    const partition = account % spec.partitions;
    const key = Buffer.from(accountId(account), 'utf8');
    const headers = random.chance(0.05)
      ? {
          source: Buffer.from('mobile-app-ë', 'utf8'),
          trace: Buffer.from([0x80, 0xff, 0x00, random.int(0, 255)]),
        }
      : undefined;
    const r = random.float();
    if (r < poisonRate) {
      const kind = random.pick(POISON_KINDS);
      yield { ...poison(kind, key, random), partition, headers, timestamp, kind };
    } else if (r < poisonRate + tombstoneRate) {
      yield { partition, key, value: null, headers, timestamp, kind: 'tombstone' };
    } else {
      yield {
        partition,
        key,
        value: json({ amount: random.int(-500, 1_000) }),
        headers,
        timestamp,
        kind: 'deposit',
      };
    }
  }
}

function poison(
  kind: PoisonKind,
  key: Buffer,
  random: SeededRandom,
): { key: Buffer | null; value: Buffer | null } {
  const amount = random.int(1, 100);
  switch (kind) {
    case 'null-key':
      return { key: null, value: json({ amount }) };
    case 'null-key-tombstone':
      return { key: null, value: null };
    case 'invalid-utf8-key':
      return { key: Buffer.from([0x61, 0xff, 0xfe, 0x62]), value: json({ amount }) };
    case 'not-json':
      return { key, value: Buffer.from(`amount=${amount}`, 'utf8') };
    case 'not-an-object':
      return { key, value: json([amount]) };
    case 'fractional-amount':
      return { key, value: json({ amount: amount + 0.5 }) };
    case 'string-amount':
      return { key, value: json({ amount: String(amount) }) };
    case 'unsafe-amount':
      return { key, value: Buffer.from(`{"amount":${2n ** 60n + BigInt(amount)}}`, 'utf8') };
  }
}
