/**
 * Windows (lib/time/windows.ts) through the real engine (TestDriver), with conformance scenarios
 * ported from the anchors' own test suites, each citing its source:
 *
 *   Kafka Streams  streams/src/test/java/org/apache/kafka/streams/kstream/internals/
 *                  KStreamWindowAggregateTest.java, SuppressScenarioTest.java
 *   Flink          flink-streaming-java/src/test/java/org/apache/flink/streaming/runtime/operators/
 *                  windowing/WindowOperatorTest.java
 *
 * Mapping. Kafka Streams' stream time is the largest timestamp seen and a window closes once
 * stream time ≥ end + grace: the same points as Tidemark with maxOutOfOrdernessMs 0 (watermark =
 * max − 1) and allowedLatenessMs = grace, closing at watermark ≥ end − 1 + lateness. Its "raw"
 * (cache-less) output is `emit: 'onUpdate'`, `suppress(untilWindowCloses)` is `emit: 'onClose'`, and
 * its record timestamp is the result's `timestamp` (largest input time). Flink's test harness injects
 * watermarks; the ports send marker records carrying them (punctuated watermarks, `watermarkOf`), and
 * a Flink result's timestamp is the window's `end - 1`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { customOutput } from '../../lib/output/custom.ts';
import type { OutputDescriptor } from '../../lib/output/types.ts';
import type { StateDescriptors } from '../../lib/state/descriptors.ts';
import { TestDriver, type TestDriverOptions, type TestRecord } from '../../lib/testing/index.ts';
import {
  type Aggregate,
  hoppingWindows,
  type LateRecord,
  sessionWindows,
  tumblingWindows,
  type WindowAssigner,
  type WindowResult,
  windowedAggregate,
} from '../../lib/time/windows.ts';

type Value = string;
const sum: Aggregate<Value, number> = {
  init: () => 0,
  add: (a, v) => a + Number(v),
  merge: (a, b) => a + b,
};
/** Kafka Streams' MockAggregator.TOSTRING_ADDER with MockInitializer.STRING_INIT ("0"). */
const concat = (init: string): Aggregate<Value, string> => ({
  init: () => init,
  add: (a, v) => `${a}+${v}`,
});
const count: Aggregate<Value, number> = { init: () => 0, add: (a) => a + 1, merge: (a, b) => a + b };

interface Setup<A> {
  windows: WindowAssigner;
  aggregate: Aggregate<Value, A>;
  lateness?: number;
  late?: 'drop' | 'sideOutput' | 'update';
  /** Flink's harness: watermarks come from marker records only. */
  punctuated?: boolean;
  outOfOrderness?: number;
}

/**
 * A processor with two windowed aggregates over the same records: `raw` emits on every update and
 * `final` on close (Kafka Streams' raw and suppressed outputs). A record's key is its state key, its
 * value the aggregated value; a record with key `wm` carries a watermark in its value (punctuated).
 */
function windowed<A>(s: Setup<A>) {
  const results = customOutput<WindowResult<A>>({ deliver: async () => {} });
  const lateOut = customOutput<LateRecord<Value>>({ deliver: async () => {} });
  const common = {
    windows: s.windows,
    aggregate: s.aggregate,
    allowedLatenessMs: s.lateness ?? 0,
    late: s.late ?? 'drop',
  } as const;
  const final = windowedAggregate({
    ...common,
    name: 'final',
    onResult: (r, ctx) => ctx.outputs.final.emit(r),
    onLate: (l, ctx) => ctx.outputs.late.emit(l),
  });
  const raw = windowedAggregate({
    ...common,
    name: 'raw',
    emit: 'onUpdate',
    late: s.late === 'sideOutput' ? 'drop' : (s.late ?? 'drop'),
    onResult: (r, ctx) => ctx.outputs.raw.emit(r),
  });
  return defineProcessor({
    state: { ...final.state, ...raw.state },
    outputs: { final: results, raw: results, late: lateOut },
    time: {
      maxOutOfOrdernessMs: s.outOfOrderness ?? 0,
      ...(s.punctuated
        ? { watermarkOf: (r) => (r.key?.toString() === 'wm' ? Number(r.value!.toString()) : undefined) }
        : {}),
    },
    process(record, ctx) {
      if (ctx.key === 'wm') return;
      const v = record.value!.toString();
      final.add(ctx, v);
      raw.add(ctx, v);
    },
    onTimer(timer, ctx) {
      final.onTimer(timer, ctx);
      raw.onTimer(timer, ctx);
    },
  });
}

type Results = OutputDescriptor<WindowResult<unknown>, string, WindowResult<unknown>>;
type Driver = TestDriver<
  StateDescriptors,
  { final: Results; raw: Results; late: OutputDescriptor<LateRecord<Value>, string, LateRecord<Value>> }
>;

function driver<A>(s: Setup<A>, options: TestDriverOptions = {}): Driver {
  return new TestDriver(windowed(s), options) as unknown as Driver;
}

const el = (key: string, value: string | number, timestamp: number): TestRecord => ({
  partition: 0,
  key,
  value: String(value),
  timestamp,
});
const wm = (watermark: number): TestRecord => ({
  partition: 0,
  key: 'wm',
  value: String(watermark),
  timestamp: 0,
});

/** Kafka Streams' Windowed#toString of a time window: `[key@start/end]`. */
const ks = (r: WindowResult<unknown>) => [`[${r.key}@${r.start}/${r.end}]`, r.value, r.timestamp];
/** Kafka Streams' session window: `[key@first/last]`; its last record is the result's timestamp. */
const ksSession = (r: WindowResult<unknown>) => [
  `[${r.key}@${r.start}/${r.timestamp}]`,
  r.value,
  r.timestamp,
];
/** Flink's `StreamRecord(Tuple2(key, sum), window.maxTimestamp())`. */
const flink = (r: WindowResult<unknown>) => [r.key, r.value, r.end - 1];
const sorted = (rows: unknown[][]) =>
  [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
const values = <T>(xs: Array<{ value: T }>) => xs.map((x) => x.value);

describe('Kafka Streams conformance', () => {
  it('KStreamWindowAggregateTest.testAggBasic: hopping windows (10/5), an update per record, late records within grace', async () => {
    // Kafka Streams' hopping windows never start below 0; Flink's and Tidemark's do ([-5, 5) holds a
    // record at 0). Times are shifted by 1000 and the windows starting below it are left out.
    const T = 1000;
    const d = driver({ windows: hoppingWindows(10, 5), aggregate: concat('0'), lateness: 86_400_000 });
    const input: Array<[string, string, number]> = [
      ['A', '1', 0],
      ['B', '2', 1],
      ['C', '3', 2],
      ['D', '4', 3],
      ['A', '1', 4],
      ['A', '1', 5],
      ['B', '2', 6],
      ['D', '4', 7],
      ['B', '2', 8],
      ['C', '3', 9],
      ['A', '1', 10],
      ['B', '2', 11],
      ['D', '4', 12],
      ['B', '2', 13],
      ['C', '3', 14],
      ['B', '1', 3],
      ['B', '2', 2],
      ['B', '3', 9],
    ];
    await d.send(input.map(([k, v, t]) => el(k, v, T + t)));
    const expected: Array<[string, string, number, string, number]> = [
      ['A', '0', 10, '0+1', 0],
      ['B', '0', 10, '0+2', 1],
      ['C', '0', 10, '0+3', 2],
      ['D', '0', 10, '0+4', 3],
      ['A', '0', 10, '0+1+1', 4],
      ['A', '0', 10, '0+1+1+1', 5],
      ['A', '5', 15, '0+1', 5],
      ['B', '0', 10, '0+2+2', 6],
      ['B', '5', 15, '0+2', 6],
      ['D', '0', 10, '0+4+4', 7],
      ['D', '5', 15, '0+4', 7],
      ['B', '0', 10, '0+2+2+2', 8],
      ['B', '5', 15, '0+2+2', 8],
      ['C', '0', 10, '0+3+3', 9],
      ['C', '5', 15, '0+3', 9],
      ['A', '5', 15, '0+1+1', 10],
      ['A', '10', 20, '0+1', 10],
      ['B', '5', 15, '0+2+2+2', 11],
      ['B', '10', 20, '0+2', 11],
      ['D', '5', 15, '0+4+4', 12],
      ['D', '10', 20, '0+4', 12],
      ['B', '5', 15, '0+2+2+2+2', 13],
      ['B', '10', 20, '0+2+2', 13],
      ['C', '5', 15, '0+3+3', 14],
      ['C', '10', 20, '0+3', 14],
      ['B', '0', 10, '0+2+2+2+1', 8],
      ['B', '0', 10, '0+2+2+2+1+2', 8],
      ['B', '0', 10, '0+2+2+2+1+2+3', 9],
      ['B', '5', 15, '0+2+2+2+2+3', 13],
    ];
    const got = values(d.outputs('raw')).filter((r) => r.start >= T);
    expect(got.map(ks)).toEqual(
      expected.map(([k, s, e, v, t]) => [`[${k}@${T + Number(s)}/${T + e}]`, v, T + t]),
    );
  });

  it('KStreamWindowAggregateTest.shouldLogAndMeterWhenSkippingExpiredWindowByGrace: tumbling 10, grace 90', async () => {
    const d = driver({ windows: tumblingWindows(10), aggregate: concat(''), lateness: 90 });
    await d.send([
      el('k', '100', 200),
      el('k', '0', 100),
      el('k', '1', 101),
      el('k', '2', 102),
      el('k', '3', 103),
      el('k', '4', 104),
      el('k', '5', 105),
      el('k', '6', 6),
    ]);
    expect(values(d.outputs('raw')).map(ks)).toEqual([['[k@200/210]', '+100', 200]]);
    expect(d.state('raw.late')).toBe(7); // "dropped-records-total" 7
  });

  it('SuppressScenarioTest.shouldSupportFinalResultsForTimeWindows: size 2, grace 1', async () => {
    const d = driver({ windows: tumblingWindows(2), aggregate: count, lateness: 1 });
    await d.send([0, 1, 2, 1, 0, 5, 0].map((t) => el('k1', 'v1', t))); // the last 0 is out of grace
    expect(values(d.outputs('raw')).map(ks)).toEqual([
      ['[k1@0/2]', 1, 0],
      ['[k1@0/2]', 2, 1],
      ['[k1@2/4]', 1, 2],
      ['[k1@0/2]', 3, 1],
      ['[k1@0/2]', 4, 1],
      ['[k1@4/6]', 1, 5],
    ]);
    expect(values(d.outputs('final')).map(ks)).toEqual([
      ['[k1@0/2]', 4, 1],
      ['[k1@2/4]', 1, 2],
    ]);
  });

  it('SuppressScenarioTest.shouldSupportFinalResultsForTimeWindowsWithLargeJump: size 2, grace 2', async () => {
    const d = driver({ windows: tumblingWindows(2), aggregate: count, lateness: 2 });
    await d.send([0, 1, 2, 0, 3, 0, 4, 0, 30].map((t) => el('k1', 'v1', t)));
    expect(values(d.outputs('raw')).map(ks)).toEqual([
      ['[k1@0/2]', 1, 0],
      ['[k1@0/2]', 2, 1],
      ['[k1@2/4]', 1, 2],
      ['[k1@0/2]', 3, 1],
      ['[k1@2/4]', 2, 3],
      ['[k1@0/2]', 4, 1],
      ['[k1@4/6]', 1, 4],
      ['[k1@30/32]', 1, 30],
    ]);
    expect(values(d.outputs('final')).map(ks)).toEqual([
      ['[k1@0/2]', 4, 1],
      ['[k1@2/4]', 2, 3],
      ['[k1@4/6]', 1, 4],
    ]);
  });

  it('SuppressScenarioTest.shouldSupportFinalResultsForSessionWindows: gap 5, no grace', async () => {
    const d = driver({ windows: sessionWindows(5), aggregate: count });
    await d.send([
      el('k1', 'v1', 0),
      el('k1', 'v1', 5),
      el('k1', 'v1', 1),
      el('k2', 'v1', 11),
      el('k1', 'v1', 5),
      el('k1', 'v1', 30),
    ]);
    // Kafka Streams also emits a tombstone for each session a merge replaces; Tidemark emits the merged one only.
    expect(values(d.outputs('raw')).map(ksSession)).toEqual([
      ['[k1@0/0]', 1, 0],
      ['[k1@0/5]', 2, 5],
      ['[k1@0/5]', 3, 5],
      ['[k2@11/11]', 1, 11],
      ['[k1@30/30]', 1, 30],
    ]);
    expect(values(d.outputs('final')).map(ksSession)).toEqual([
      ['[k1@0/5]', 3, 5],
      ['[k2@11/11]', 1, 11],
    ]);
    expect(d.state('final.late')).toBe(1);
  });
});

describe('Flink conformance (WindowOperatorTest)', () => {
  const elements = [
    el('key2', 1, 3999),
    el('key2', 1, 3000),
    el('key1', 1, 20),
    el('key1', 1, 0),
    el('key1', 1, 999),
    el('key2', 1, 1998),
    el('key2', 1, 1999),
    el('key2', 1, 1000),
  ];

  it('testTumblingEventTimeWindows: 3 s windows, a snapshot and restore in the middle', async () => {
    const d = driver({ windows: tumblingWindows(3000), aggregate: sum, punctuated: true });
    await d.send([...elements, wm(999), wm(1999)]);
    expect(d.outputs('final')).toEqual([]);
    await d.restart(); // "do a snapshot, close and restore again"
    await d.send([wm(2999)]);
    expect(sorted(values(d.outputs('final')).map(flink))).toEqual([
      ['key1', 3, 2999],
      ['key2', 3, 2999],
    ]);
    await d.send([wm(3999), wm(4999), wm(5999)]);
    expect(values(d.outputs('final')).map(flink).slice(2)).toEqual([['key2', 2, 5999]]);
    await d.send([wm(6999), wm(7999)]); // "those don't have any effect..."
    expect(d.outputs('final')).toHaveLength(3);
  });

  it('testSlidingEventTimeWindows: 3 s windows every 1 s, a snapshot and restore in the middle', async () => {
    const d = driver({ windows: hoppingWindows(3000, 1000), aggregate: sum, punctuated: true });
    await d.send([...elements, wm(999)]);
    expect(values(d.outputs('final')).map(flink)).toEqual([['key1', 3, 999]]);
    await d.send([wm(1999)]);
    expect(sorted(values(d.outputs('final')).map(flink).slice(1))).toEqual([
      ['key1', 3, 1999],
      ['key2', 3, 1999],
    ]);
    await d.send([wm(2999)]);
    expect(sorted(values(d.outputs('final')).map(flink).slice(3))).toEqual([
      ['key1', 3, 2999],
      ['key2', 3, 2999],
    ]);
    await d.restart();
    await d.send([wm(3999)]);
    await d.send([wm(4999)]);
    await d.send([wm(5999)]);
    expect(values(d.outputs('final')).map(flink).slice(5)).toEqual([
      ['key2', 5, 3999],
      ['key2', 2, 4999],
      ['key2', 2, 5999],
    ]);
    await d.send([wm(6999), wm(7999)]);
    expect(d.outputs('final')).toHaveLength(8);
  });

  it('testLateness: 2 s windows, 500 ms lateness; the element beyond it goes to the side output, counted once', async () => {
    const d = driver({
      windows: tumblingWindows(2000),
      aggregate: sum,
      lateness: 500,
      late: 'sideOutput',
      punctuated: true,
    });
    await d.send([el('key2', 1, 500), wm(1500), el('key2', 1, 1300), wm(2300)]);
    // Flink's EventTimeTrigger fires at end - 1 (1999) and again for each allowed-late element; with
    // emit 'onClose' the window emits once, when it closes at end - 1 + lateness = 2499.
    expect(d.outputs('final')).toEqual([]);
    await d.send([el('key2', 1, 1997), wm(6000)]); // 1999 + 500 > 2300: not late
    expect(values(d.outputs('final')).map(flink)).toEqual([['key2', 3, 1999]]);
    await d.send([el('key2', 1, 1998), wm(7000)]); // 1999 + 500 < 6000: late
    expect(values(d.outputs('late')).map((l) => [l.key, l.value, l.eventTime])).toEqual([
      ['key2', '1', 1998],
    ]);
    expect(d.state('final.late')).toBe(1);
  });

  it('testSideOutputDueToLatenessTumbling', async () => {
    const d = driver({
      windows: tumblingWindows(2000),
      aggregate: sum,
      late: 'sideOutput',
      punctuated: true,
    });
    await d.send([el('key2', 1, 1000), wm(1985), el('key2', 1, 1980), wm(1999)]);
    expect(values(d.outputs('final')).map(flink)).toEqual([['key2', 2, 1999]]);
    await d.send([el('key2', 1, 1998), el('key2', 1, 2001), wm(2999), wm(3999)]);
    expect(values(d.outputs('late')).map((l) => [l.key, l.eventTime])).toEqual([['key2', 1998]]);
    expect(values(d.outputs('final')).map(flink)).toEqual([
      ['key2', 2, 1999],
      ['key2', 1, 3999],
    ]);
  });

  it('testSideOutputDueToLatenessSliding: an element some of whose windows are open is not late', async () => {
    const d = driver({
      windows: hoppingWindows(3000, 1000),
      aggregate: sum,
      late: 'sideOutput',
      punctuated: true,
    });
    await d.send([el('key2', 1, 1000), wm(1999)]);
    await d.send([el('key2', 1, 2000), wm(3000)]);
    await d.send([
      el('key1', 1, 3001),
      el('key2', 1, 2400),
      el('key2', 1, 2400),
      el('key1', 1, 3001),
      el('key2', 1, 3900),
      wm(6000),
    ]);
    await d.send([el('key1', 1, 3001), wm(25000)]);
    expect(sorted(values(d.outputs('final')).map(flink))).toEqual(
      sorted([
        ['key2', 1, 1999],
        ['key2', 2, 2999],
        ['key2', 5, 3999],
        ['key1', 2, 3999],
        ['key2', 4, 4999],
        ['key1', 2, 4999],
        ['key2', 1, 5999],
        ['key1', 2, 5999],
      ]),
    );
    expect(values(d.outputs('late')).map((l) => [l.key, l.eventTime])).toEqual([['key1', 3001]]);
  });

  it('testSideOutputDueToLatenessSessionZeroLateness: merging sessions, late elements not merged', async () => {
    const d = driver({
      windows: sessionWindows(3000),
      aggregate: count,
      late: 'sideOutput',
      punctuated: true,
    });
    await d.send([el('key2', 1, 1000), wm(1999), el('key2', 1, 2000), wm(4998)]);
    await d.send([el('key2', 1, 4500), el('key2', 1, 8500), wm(7400)]); // 4500 joins: the session is still open
    await d.send([el('key2', 1, 7000), wm(11501)]); // merges the two sessions
    await d.send([el('key2', 1, 11600), wm(14600)]);
    await d.send([el('key2', 1, 10000)]); // late
    await d.send([el('key2', 1, 14500), wm(20000), wm(100000)]);
    // Flink's ReducedSessionWindowFunction emits ("key-count", start, end) at end - 1.
    expect(values(d.outputs('final')).map((r) => [`${r.key}-${r.value}`, r.start, r.end, r.end - 1])).toEqual(
      [
        ['key2-5', 1000, 11500, 11499],
        ['key2-1', 11600, 14600, 14599],
        ['key2-1', 14500, 17500, 17499],
      ],
    );
    expect(values(d.outputs('late')).map((l) => [l.key, l.eventTime])).toEqual([['key2', 10000]]);
  });
});

describe('windows', () => {
  it("late: 'update' emits a late record's own result for its closed windows; 'drop' only counts", async () => {
    const d = driver({ windows: tumblingWindows(10), aggregate: sum, late: 'update' });
    await d.send([el('a', 5, 1), el('a', 7, 20), el('a', 2, 3)]);
    expect(values(d.outputs('final')).map((r) => [r.start, r.value, r.count, r.kind])).toEqual([
      [0, 5, 1, 'final'],
      [0, 2, 1, 'late'],
    ]);
    expect(d.state('final.late')).toBe(1);
  });

  it('refuses bad definitions', () => {
    expect(() => tumblingWindows(0)).toThrow(RangeError);
    expect(() => hoppingWindows(10, 20)).toThrow(RangeError);
    const base = { onResult: () => {} };
    expect(() =>
      windowedAggregate({ ...base, name: 's', windows: sessionWindows(5), aggregate: concat('') }),
    ).toThrow(/merge/);
    expect(() =>
      windowedAggregate({
        ...base,
        name: 's',
        windows: tumblingWindows(5),
        aggregate: sum,
        late: 'sideOutput',
      }),
    ).toThrow(/onLate/);
  });

  it('emits every window result exactly once however the input is batched, retried and restored (property)', async () => {
    const input = fc.array(
      fc.record({
        key: fc.constantFrom('a', 'b'),
        t: fc.integer({ min: 0, max: 120 }),
        v: fc.integer({ min: 1, max: 9 }),
      }),
      { minLength: 1, maxLength: 40 },
    );
    const assigners = fc.constantFrom(tumblingWindows(20), hoppingWindows(20, 10), sessionWindows(7));
    await fc.assert(
      fc.asyncProperty(
        input,
        assigners,
        fc.integer({ min: 0, max: 15 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 5 }),
        async (records, windows, lateness, cuts, epochMax) => {
          const setup = { windows, aggregate: sum, lateness, outOfOrderness: 3 };
          const once = driver(setup);
          await once.send(records.map((r) => el(r.key, r.v, r.t)));
          const d = driver(setup, { config: { epochMaxRecords: epochMax } });
          let i = 0;
          for (const n of [...cuts, records.length]) {
            const batch = records.slice(i, i + n);
            if (batch.length === 0) break;
            const events = batch.map((r) => el(r.key, r.v, r.t));
            await d.send(events);
            await d.redeliver(); // a duplicate delivery: skipped
            await d.restart();
            i += batch.length;
          }
          const show = (xs: Array<{ value: WindowResult<unknown> }>) => xs.map((x) => ks(x.value));
          expect(show(d.outputs('final'))).toEqual(show(once.outputs('final')));
          expect(show(d.outputs('raw'))).toEqual(show(once.outputs('raw')));
          const ids = d.outputs('final').map((o) => `${o.value.key}@${o.value.start}`);
          expect(new Set(ids).size).toBe(ids.length);
        },
      ),
      { numRuns: 20 },
    );
  });
});
