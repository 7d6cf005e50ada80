/**
 * Benchmark 1, overhead: the same events and the same user function (`balances`) run
 * (a) as a raw loop — decode each record, call the function with its state in a plain Map, no
 *     durability — and
 * (b) through Tidemark (`createKafkaHandler`) with the in-memory stores, at several epoch sizes.
 * Each repeat measures (a) and (b) back to back (alternating which goes first) and reports the
 * throughput ratio (b)/(a) of that repeat, so machine noise hits both sides alike.
 */

import { type Account, balances } from '../examples/balances.ts';
import type { ProcessContext } from '../lib/checkpoint/processor.ts';
import type { KafkaEvent, KafkaRecord } from '../lib/event/types.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../lib/store/memory/memoryStores.ts';
import { type Spread, spread, timed } from './stats.ts';
import { BalancesWorkload } from './workload.ts';

export interface OverheadOptions {
  epochSizes: number[];
  /** Records per measurement (one partition, so epochs really reach the epoch size). */
  records: number;
  /** Records per ESM batch (the ESM's largest is 10,000). */
  batchRecords: number;
  accounts: number;
  repeats: number;
  seed: number;
}

export interface OverheadPoint {
  epochRecords: number;
  epochsPerMeasurement: number;
  rawRecordsPerSecond: Spread;
  tidemarkRecordsPerSecond: Spread;
  /** Tidemark ÷ raw, per repeat. */
  ratio: Spread;
}

export interface OverheadResult {
  records: number;
  batchRecords: number;
  accounts: number;
  snapshotMode: string;
  compression: string;
  points: OverheadPoint[];
}

type BalancesState = typeof balances.state;

/** (a): what a user writes without Tidemark — decode, call the function, keep the state in a Map. */
export function rawLoop(events: readonly KafkaEvent[]): Map<string, Account> {
  const accounts = new Map<string, Account>();
  const ctx = {
    key: null as string | null,
    pipeline: 'raw',
    topic: '',
    partition: 0,
    state: {
      account: {
        get: () => accounts.get(ctx.key!),
        set: (v: Account) => {
          accounts.set(ctx.key!, v);
        },
        clear: () => {
          accounts.delete(ctx.key!);
        },
      },
    },
  };
  const context = ctx as unknown as ProcessContext<BalancesState>;
  for (const event of events) {
    for (const list of Object.values(event.records)) {
      for (const r of list) {
        const key = r.key ? Buffer.from(r.key, 'base64') : null;
        const value = r.value ? Buffer.from(r.value, 'base64') : null;
        const record: KafkaRecord = {
          topic: r.topic,
          partition: r.partition,
          offset: BigInt(r.offset),
          timestamp: r.timestamp,
          timestampType: r.timestampType,
          key,
          value,
          headers: [],
          size: (key?.length ?? 0) + (value?.length ?? 0),
        };
        ctx.key = key ? key.toString('utf8') : null;
        ctx.topic = r.topic;
        ctx.partition = r.partition;
        try {
          balances.process(record, context);
        } catch {
          // a poison record: skipped (the workload has none)
        }
      }
    }
  }
  return accounts;
}

/** (b): the same events through Tidemark with in-memory stores. Returns the epochs committed. */
export async function tidemarkLoop(events: readonly KafkaEvent[], epochRecords: number): Promise<number> {
  const handler = createKafkaHandler(balances, {
    env: {},
    telemetry: false,
    stores: { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() },
    config: {
      bucket: 'bench',
      table: 'bench',
      pipeline: 'bench-overhead',
      epochMaxRecords: epochRecords,
      epochMaxBytes: 1 << 30,
    },
  });
  const context = { getRemainingTimeInMillis: () => 900_000 };
  let epochs = 0;
  for (const event of events) epochs += (await handler(event, context)).epochsCommitted;
  return epochs;
}

function buildEvents(o: OverheadOptions): KafkaEvent[] {
  const w = new BalancesWorkload({ topic: 'bench', partitions: 1, accounts: o.accounts, seed: o.seed });
  const events: KafkaEvent[] = [];
  for (let done = 0; done < o.records; done += o.batchRecords) {
    events.push(w.batch(Math.min(o.batchRecords, o.records - done)));
  }
  return events;
}

export async function runOverhead(
  o: OverheadOptions,
  log: (line: string) => void = () => {},
): Promise<OverheadResult> {
  const events = buildEvents(o);
  const rate = (ms: number) => o.records / (ms / 1000);
  const probe = createKafkaHandler(balances, {
    env: {},
    telemetry: false,
    stores: { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() },
    config: { bucket: 'bench', table: 'bench', pipeline: 'bench-overhead' },
  });
  // Warm-up (not measured): lets the JIT compile both paths before anything is timed.
  rawLoop(events.slice(0, 2));
  await tidemarkLoop(events.slice(0, 2), Math.min(...o.epochSizes));

  const samples = new Map(
    o.epochSizes.map((s) => [
      s,
      { raw: [] as number[], tm: [] as number[], ratio: [] as number[], epochs: 0 },
    ]),
  );
  for (let rep = 0; rep < o.repeats; rep++) {
    for (const size of o.epochSizes) {
      const s = samples.get(size)!;
      const runRaw = async () => (await timed(() => rawLoop(events))).ms;
      const runTm = async () => {
        const t = await timed(() => tidemarkLoop(events, size));
        s.epochs = t.value;
        return t.ms;
      };
      let rawMs: number;
      let tmMs: number;
      if (rep % 2 === 0) {
        rawMs = await runRaw();
        tmMs = await runTm();
      } else {
        tmMs = await runTm();
        rawMs = await runRaw();
      }
      s.raw.push(rate(rawMs));
      s.tm.push(rate(tmMs));
      s.ratio.push(rawMs / tmMs);
      log(
        `overhead: epoch ${size}, repeat ${rep + 1}/${o.repeats}: raw ${Math.round(rate(rawMs))} rec/s, tidemark ${Math.round(rate(tmMs))} rec/s, ratio ${(rawMs / tmMs).toFixed(3)}`,
      );
    }
  }
  return {
    records: o.records,
    batchRecords: o.batchRecords,
    accounts: o.accounts,
    snapshotMode: probe.runtime.config.snapshotMode,
    compression: probe.runtime.config.compression,
    points: o.epochSizes.map((size) => {
      const s = samples.get(size)!;
      return {
        epochRecords: size,
        epochsPerMeasurement: s.epochs,
        rawRecordsPerSecond: spread(s.raw),
        tidemarkRecordsPerSecond: spread(s.tm),
        ratio: spread(s.ratio),
      };
    }),
  };
}
