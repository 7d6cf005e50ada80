/**
 * The windowed example: each account's spend per 1-minute tumbling window of event time, with 10 s of
 * allowed lateness, one result per window emitted to Kafka exactly once when the window closes.
 *
 * Input: the balances example's deposit records (key: the account id, UTF-8; value: JSON
 * `{"amount": <safe integer>}`), event time = the record's timestamp. A window [start, start + 60 s)
 * closes when the watermark (the largest timestamp seen, minus 1 ms) reaches start + 60 s - 1 + 10 s:
 * records up to 10 s behind are counted in their window; later ones are late, dropped and counted
 * (state `spend.late`). Tombstones are ignored; null keys, values that are not JSON and amounts that
 * are not safe integers are poison records, quarantined. A partition idle for 30 s has its event time
 * advanced by the wall clock at the next scheduled tick, so its last windows close too.
 *
 * Output (topic `spend-per-minute`, key: the account id): JSON `SpendWindow`.
 */
import { defineProcessor } from '../lib/checkpoint/processor.ts';
import { PoisonRecordError } from '../lib/errors.ts';
import type { OutputDescriptor } from '../lib/output/types.ts';
import { kafkaOutput } from '../lib/sink/kafka/kafkaOutput.ts';
import { tumblingWindows, type WindowResult, windowedAggregate } from '../lib/time/windows.ts';
import { addToBalance, depositAmount } from './balances.ts';

export const SPEND_PIPELINE = 'spend';
export const SPEND_OUTPUT_TOPIC = 'spend-per-minute';
export const SPEND_WINDOW_MS = 60_000;
export const SPEND_LATENESS_MS = 10_000;
/** A partition with no record for this long has its event time advanced by the wall clock at ticks. */
export const SPEND_IDLE_ADVANCE_MS = 30_000;

/** One account's spend in one window, as the output topic receives it. */
export interface SpendWindow {
  account: string;
  /** Window start and end (exclusive), ms since the epoch. */
  start: number;
  end: number;
  /** Sum of the amounts, and how many deposits. */
  total: number;
  count: number;
}

interface Spend {
  total: number;
  count: number;
}

export function spendWindow(r: WindowResult<Spend>): SpendWindow {
  return { account: r.key, start: r.start, end: r.end, total: r.value.total, count: r.value.count };
}

const spendPerMinute = windowedAggregate({
  name: 'spend',
  windows: tumblingWindows(SPEND_WINDOW_MS),
  aggregate: {
    init: (): Spend => ({ total: 0, count: 0 }),
    add: (acc: Spend, amount: number): Spend => ({
      total: addToBalance(acc.total, amount),
      count: acc.count + 1,
    }),
  },
  allowedLatenessMs: SPEND_LATENESS_MS,
  emit: 'onClose',
  late: 'drop',
  onResult: (result, ctx) => ctx.outputs.windows.emit(spendWindow(result)),
});

/**
 * The processor, with its output (default: the Kafka topic `spend-per-minute` on the cluster of
 * `TIDEMARK_KAFKA_OUTPUT_*`). The fault campaign and tests give another output of the same values.
 */
export function spendProcessor(
  options: { windows?: OutputDescriptor<SpendWindow>; idleAdvanceAfterMs?: number | null } = {},
) {
  const idle = options.idleAdvanceAfterMs === undefined ? SPEND_IDLE_ADVANCE_MS : options.idleAdvanceAfterMs;
  return defineProcessor({
    state: { ...spendPerMinute.state },
    outputs: { windows: options.windows ?? kafkaOutput<SpendWindow>({ topic: SPEND_OUTPUT_TOPIC }) },
    poisonPolicy: 'quarantine',
    config: { pipeline: SPEND_PIPELINE },
    time: { maxOutOfOrdernessMs: 0, ...(idle === null ? {} : { idleAdvanceAfterMs: idle }) },
    process(record, ctx) {
      if (ctx.key === null) throw new PoisonRecordError('record has no key (an account id is required)');
      if (record.value === null) return; // a tombstone closes an account's balance, not its spend
      spendPerMinute.add(ctx, depositAmount(record.value));
    },
    onTimer(timer, ctx) {
      spendPerMinute.onTimer(timer, ctx);
    },
  });
}

export const spend = spendProcessor();
