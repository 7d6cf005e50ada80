/**
 * Benchmark 1, overhead: the same events and the same user function (`balances`) run
 * (a) as a raw loop — decode each record, call the function with its state in a plain Map, no
 *     durability — and
 * (b) through Tidemark (`createKafkaHandler`) with the in-memory stores, at several epoch sizes.
 * Each repeat measures (a) and (b) back to back (alternating which goes first) and reports the
 * throughput ratio (b)/(a) of that repeat, so machine noise hits both sides alike. Neither side does
 * I/O (memory stores), so the ratio is taken from the CPU time each used: on a shared machine, time
 * spent waiting for a core would otherwise land on whichever side was unlucky. The wall-clock rates
 * and their ratio are reported beside it.
 */

import { type Account, balances } from '../examples/balances.ts';
import type { ProcessContext } from '../lib/checkpoint/processor.ts';
import type { KafkaEvent, KafkaRecord } from '../lib/event/types.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../lib/store/memory/memoryStores.ts';
import { type Spread, spread, timedCpu } from './stats.ts';
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
  /** Tidemark ÷ raw throughput per repeat, from the CPU time each used. */
  ratio: Spread;
  /** The same from wall-clock time (absent in runs before CPU time was measured). */
  wallRatio?: Spread;
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
      {
        raw: [] as number[],
        tm: [] as number[],
        ratio: [] as number[],
        wallRatio: [] as number[],
        epochs: 0,
      },
    ]),
  );
  for (let rep = 0; rep < o.repeats; rep++) {
    for (const size of o.epochSizes) {
      const s = samples.get(size)!;
      const runRaw = () => timedCpu(() => rawLoop(events));
      const runTm = async () => {
        const t = await timedCpu(() => tidemarkLoop(events, size));
        s.epochs = t.value;
        return t;
      };
      let raw: { ms: number; cpuMs: number };
      let tm: { ms: number; cpuMs: number };
      if (rep % 2 === 0) {
        raw = await runRaw();
        tm = await runTm();
      } else {
        tm = await runTm();
        raw = await runRaw();
      }
      s.raw.push(rate(raw.ms));
      s.tm.push(rate(tm.ms));
      s.ratio.push(raw.cpuMs / tm.cpuMs);
      s.wallRatio.push(raw.ms / tm.ms);
      log(
        `overhead: epoch ${size}, repeat ${rep + 1}/${o.repeats}: raw ${Math.round(rate(raw.ms))} rec/s, tidemark ${Math.round(rate(tm.ms))} rec/s, ratio ${(raw.cpuMs / tm.cpuMs).toFixed(3)} (CPU; wall ${(raw.ms / tm.ms).toFixed(3)})`,
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
        wallRatio: spread(s.wallRatio),
      };
    }),
  };
}
