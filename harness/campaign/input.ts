/**
 * The campaign's input: a keyed stream per task (topic-partition) in the shape the Kafka ESM
 * delivers (base64 keys and values, signed header bytes, offsets as JSON numbers — or decimal
 * strings beyond 2^53). Offsets skip numbers now and then (compaction, transaction markers), some
 * tasks start just below 2^53 and cross it. A few records are poison (null key, key not UTF-8,
 * value not JSON, amount not a safe integer, value not valid base64) and a few are tombstones.
 */
import type { RawKafkaRecord } from '../../lib/event/types.ts';
import type { SeededRandom } from '../seededRandom.ts';

export type RecordKind =
  | 'deposit'
  | 'tombstone'
  | 'poison-null-key'
  | 'poison-key-not-utf8'
  | 'poison-not-json'
  | 'poison-bad-amount'
  | 'poison-bad-base64';

export interface CampaignRecord {
  readonly offset: bigint;
  /** What the ESM delivers for it. */
  readonly raw: RawKafkaRecord;
  /** The generator's intent (the oracle classifies the raw record on its own and cross-checks). */
  readonly kind: RecordKind;
}

export interface CampaignTask {
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
  /** `<topic>-<partition>`, as the ESM groups records. */
  readonly label: string;
  readonly records: readonly CampaignRecord[];
}

const TWO_53 = 2n ** 53n;
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export function generateTaskRecords(
  rnd: SeededRandom,
  topic: string,
  partition: number,
  count: number,
  keys: number,
): CampaignRecord[] {
  const crossing = rnd.chance(0.25);
  let offset = crossing ? TWO_53 - BigInt(Math.floor(count / 2)) : BigInt(rnd.int(0, 5_000_000));
  const accounts = Array.from({ length: keys }, (_, i) => `acct-${partition}-${i}`);
  const out: CampaignRecord[] = [];
  for (let i = 0; i < count; i++) {
    if (rnd.chance(0.08)) offset += BigInt(rnd.int(1, 6)); // compaction gap
    const kind = rnd.weighted<RecordKind>({
      deposit: 900,
      tombstone: 25,
      'poison-null-key': 20,
      'poison-key-not-utf8': 10,
      'poison-not-json': 20,
      'poison-bad-amount': 20,
      'poison-bad-base64': 15,
    });
    const account = rnd.pick(accounts);
    // Amounts unique enough that a lost record and a doubled one never cancel out in a balance.
    const amount = rnd.int(1, 2 ** 31 - 1) * (rnd.chance(0.3) ? -1 : 1);
    const memo = rnd.chance(0.02) ? 'x'.repeat(rnd.int(1_000, 40_000)) : rnd.chance(0.5) ? '' : 'memo';
    let key: string | null = b64(account);
    let value: string | null;
    switch (kind) {
      case 'deposit':
        value = b64(JSON.stringify(memo ? { amount, memo } : { amount }));
        break;
      case 'tombstone':
        value = null;
        break;
      case 'poison-null-key':
        key = null;
        value = b64(JSON.stringify({ amount }));
        break;
      case 'poison-key-not-utf8':
        // The account id with a byte that is never UTF-8: the engine cannot compute the state key.
        key = Buffer.concat([Buffer.from(account, 'utf8'), Buffer.from([0xff])]).toString('base64');
        value = b64(JSON.stringify({ amount }));
        break;
      case 'poison-not-json':
        value = b64(`{"amount": ${amount}`);
        break;
      case 'poison-bad-amount':
        value = b64(
          rnd.pick([
            `{"amount": ${amount}.5}`,
            `{"amount": "${amount}"}`,
            '{"amount": 1e300}',
            '{}',
            '[1]',
            'null',
          ]),
        );
        break;
      case 'poison-bad-base64':
        value = rnd.pick(['%%%=', 'abc', 'ab=c', '====']);
        break;
    }
    const headers = rnd.chance(0.2)
      ? [{ trace: Array.from({ length: rnd.int(0, 8) }, () => rnd.int(-128, 127)) }]
      : [];
    out.push({
      offset,
      kind,
      raw: {
        topic,
        partition,
        offset:
          offset <= BigInt(Number.MAX_SAFE_INTEGER) && rnd.chance(0.8) ? Number(offset) : offset.toString(),
        timestamp: 1_700_000_000_000 + i,
        timestampType: 'CREATE_TIME',
        key,
        value,
        headers,
      },
    });
    offset += 1n;
  }
  return out;
}
