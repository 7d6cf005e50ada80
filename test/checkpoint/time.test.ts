/**
 * Event time through the real engine (TestDriver on memory stores): the watermark, event-time and
 * processing-time timers, ticks, idle advance and TTL, and that each timer fires exactly once however
 * batches are cut, retried, restored or raced (docs/time.md).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { BatchFailedError, TidemarkError } from '../../lib/errors.ts';
import { createRuntime } from '../../lib/handler/runtime.ts';
import { customOutput } from '../../lib/output/custom.ts';
import { valueState } from '../../lib/state/descriptors.ts';
import { TestDriver, type TestRecord } from '../../lib/testing/index.ts';

interface Fired {
  key: string;
  domain: string;
  ts: number;
  count: number;
  watermark: number;
}

const out = () => customOutput<Fired>({ deliver: async () => {} });

/**
 * Counts records per key; a record whose value is `t:<ts>` sets an event-time timer, `p:<ts>` a
 * processing-time timer, `d:<ts>` deletes the event-time timer. A timer emits what it saw.
 */
function timersProcessor(options: { outOfOrderness?: number; idleAfter?: number; failAt?: number } = {}) {
  return defineProcessor({
    state: { count: valueState<number>() },
    outputs: { fired: out() },
    poisonPolicy: 'quarantine',
    time: {
      maxOutOfOrdernessMs: options.outOfOrderness ?? 0,
      ...(options.idleAfter !== undefined ? { idleAdvanceAfterMs: options.idleAfter } : {}),
    },
    process(record, ctx) {
      ctx.state.count.set((ctx.state.count.get() ?? 0) + 1);
      const v = record.value?.toString('utf8') ?? '';
      const [op, arg] = v.split(':');
      if (op === 't') ctx.timers.registerEventTime(Number(arg));
      if (op === 'p') ctx.timers.registerProcessingTime(Number(arg));
      if (op === 'd') ctx.timers.deleteEventTime(Number(arg));
    },
    onTimer(timer, ctx) {
      if (timer.timestamp === options.failAt) throw new Error('timer callback failed');
      ctx.outputs.fired.emit({
        key: ctx.key!,
        domain: timer.domain,
        ts: timer.timestamp,
        count: ctx.state.count.get() ?? 0,
        watermark: ctx.watermark,
      });
    },
  });
}

const rec = (key: string, timestamp: number, value = ''): TestRecord => ({
  partition: 0,
  key,
  value,
  timestamp,
});
const fired = (d: { outputs(name: 'fired'): Array<{ value: Fired }> }) =>
  d.outputs('fired').map((o) => `${o.value.key}@${o.value.ts}`);

describe('event time', () => {
  it('fires event-time timers after the record that moves the watermark past them, in order, once', async () => {
    const d = new TestDriver(timersProcessor(), { partitions: 2 });
    await d.send([rec('a', 100, 't:150'), rec('b', 120, 't:140'), rec('a', 140)]);
    expect(fired(d)).toEqual([]); // watermark 139: nothing due
    expect(d.watermark(0)).toBe(139);
    await d.send([rec('b', 141)]); // watermark 140: b@140 fires, after b's record is counted
    expect(d.outputs('fired').map((o) => o.value)).toEqual([
      { key: 'b', domain: 'event', ts: 140, count: 2, watermark: 140 },
    ]);
    // A late record does not move the watermark back; nothing fires twice.
    await d.send([rec('a', 10), rec('a', 151, 't:151')]);
    expect(fired(d)).toEqual(['b@140', 'a@150']);
    expect(d.watermark(0)).toBe(150);
    expect(d.timers(0)).toEqual([{ domain: 'event', timestamp: 151, key: 'a', tag: '' }]);
    // Tasks are independent: partition 1 has no watermark.
    expect(d.watermark(1)).toBeUndefined();
  });

  it('restores the watermark and the timers with the checkpoint', async () => {
    const d = new TestDriver(timersProcessor({ outOfOrderness: 10 }));
    await d.send([rec('a', 1000, 't:1005'), rec('a', 1010)]); // watermark 999
    await d.restart();
    // A record at 995 is behind the watermark and moves nothing; one at 1016 makes 1005 due.
    await d.send([rec('a', 995)]);
    expect(fired(d)).toEqual([]);
    expect(d.watermark()).toBe(999);
    await d.send([rec('a', 1016)]);
    expect(d.outputs('fired').map((o) => o.value)).toEqual([
      { key: 'a', domain: 'event', ts: 1005, count: 4, watermark: 1005 },
    ]);
  });

  it('fires the same timers in the same order however the input is cut into batches and epochs, restored or retried', async () => {
    const keys = ['a', 'b', 'c'];
    const recordArb = fc.record({
      key: fc.constantFrom(...keys),
      ts: fc.integer({ min: 0, max: 200 }),
      op: fc.constantFrom('', '', 't', 'd'),
      at: fc.integer({ min: 0, max: 220 }),
    });
    const run = async (
      records: Array<{ key: string; ts: number; op: string; at: number }>,
      cuts: number[],
      epochMax: number,
      restarts: boolean,
    ) => {
      const d = new TestDriver(timersProcessor({ outOfOrderness: 5 }), {
        config: { epochMaxRecords: epochMax },
      });
      let i = 0;
      for (const n of [...cuts, records.length]) {
        const batch = records.slice(i, i + Math.max(1, n));
        if (batch.length === 0) break;
        await d.send(batch.map((r) => rec(r.key, r.ts, r.op ? `${r.op}:${r.at}` : '')));
        if (restarts) await d.restart();
        i += batch.length;
      }
      expect(i).toBe(records.length);
      return d.outputs('fired').map((o) => o.value);
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(recordArb, { minLength: 1, maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 10 }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 7 }),
        fc.boolean(),
        async (records, cuts, epochMax, restarts) => {
          const reference = await run(records, [], 10_000, false);
          expect(await run(records, cuts, epochMax, restarts)).toEqual(reference);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('a firing belongs to the epoch that commits it: a failed commit fires nothing, its retry fires once', async () => {
    const d = new TestDriver(timersProcessor());
    await d.send([rec('a', 100, 't:150')]);
    const commit = d.commits.commit.bind(d.commits);
    let fail = true;
    d.commits.commit = async (...args) => {
      if (fail) {
        fail = false;
        throw new TidemarkError('store unavailable', { retriable: true });
      }
      return commit(...args);
    };
    const r = await d.trySend([rec('a', 200)]);
    expect(r.ok).toBe(false);
    expect(fired(d)).toEqual([]);
    expect(d.timers()).toHaveLength(1); // still in the committed checkpoint
    await d.redeliver();
    await d.redeliver(); // a duplicate delivery changes nothing
    await d.restart();
    await d.redeliver();
    expect(fired(d)).toEqual(['a@150']);
    expect(d.timers()).toEqual([]);
    expect(d.state('count', 'a')).toBe(2);
  });

  it('a timer set at or behind the watermark fires right after the record that set it', async () => {
    const d = new TestDriver(timersProcessor());
    await d.send([rec('a', 100), rec('b', 50, 't:20'), rec('a', 101)]);
    expect(d.outputs('fired').map((o) => o.value)).toEqual([
      { key: 'b', domain: 'event', ts: 20, count: 1, watermark: 99 },
    ]);
  });

  it('fires processing-time timers when an epoch starts at or after them, and records when they are due in the commit item', async () => {
    const d = new TestDriver(timersProcessor());
    d.setTime(1_000);
    await d.send([rec('a', 1, 'p:5000')]);
    expect(d.commits.items.values().next().value?.time).toEqual({ watermark: 0, dueAt: 5_000 });
    d.setTime(4_999);
    await d.send([rec('b', 2)]);
    expect(fired(d)).toEqual([]);
    d.advanceTime(1);
    await d.send([rec('b', 3)]);
    expect(d.outputs('fired').map((o) => o.value)).toEqual([
      { key: 'a', domain: 'processing', ts: 5_000, count: 1, watermark: 1 },
    ]);
  });
});

describe('ticks', () => {
  it('fire due processing-time timers of idle partitions, and skip tasks with nothing due', async () => {
    const d = new TestDriver(timersProcessor(), { partitions: 2 });
    d.setTime(0);
    await d.send([rec('a', 1, 'p:60000'), { ...rec('z', 1), partition: 1 }]);
    d.setTime(59_999);
    expect(await d.tick()).toMatchObject({ records: 0, epochsCommitted: 0, timersFired: 0, tasks: [] });
    d.setTime(60_000);
    const s = await d.tick();
    expect(s).toMatchObject({ epochsCommitted: 1, timersFired: 1, outputs: 1 });
    expect(s.tasks.map((t) => t.partition)).toEqual([0]);
    expect(fired(d)).toEqual(['a@60000']);
    expect(d.committed(0)).toEqual({ epoch: 2, offset: 1n }); // an epoch of no records
    expect(d.commits.items.values().next().value?.time?.dueAt).toBeUndefined();
    expect((await d.tick()).tasks).toEqual([]);
    // The next batch carries on from the tick's checkpoint.
    await d.send([rec('a', 2)]);
    expect(d.state('count', 'a')).toBe(2);
    expect(d.committed(0)).toEqual({ epoch: 3, offset: 2n });
  });

  it('advance event time by the wall clock on idle partitions only when the processor opts in', async () => {
    // A 60 s window's timer at 59,999; one record at 5 s, B = 0 (the acceptance case).
    for (const idleAfter of [undefined, 0]) {
      const d = new TestDriver(timersProcessor(idleAfter === undefined ? {} : { idleAfter }));
      d.setTime(5_000);
      await d.send([rec('acct', 5_000, 't:59999')]);
      d.setTime(60_000);
      await d.tick();
      d.setTime(120_000);
      await d.tick();
      if (idleAfter === undefined) {
        expect(fired(d)).toEqual([]);
        expect(d.watermark()).toBe(4_999);
      } else {
        expect(d.commits.items.size).toBe(1);
        expect(fired(d)).toEqual(['acct@59999']);
        expect(d.watermark()).toBe(59_999); // advanced to 4,999 + (60,000 - 5,000) at the first tick
      }
    }
  });

  it('a tick racing a batch of the same task commits once: the timer fires once', async () => {
    for (const winner of ['tick', 'batch'] as const) {
      const processor = timersProcessor();
      const d = new TestDriver(processor);
      d.setTime(0);
      await d.send([rec('a', 1, 'p:1000')]);
      d.setTime(1_000);
      // A second container over the same stores runs the tick; the driver's runs the batch. The first
      // to reach the conditional write wins; the other meets its commit, reloads and finds the timer gone.
      const other = createRuntime(processor, {
        env: {},
        config: { bucket: 'tidemark-test', table: 'tidemark-test', pipeline: d.pipeline },
        stores: { snapshots: d.snapshots, commits: d.commits },
        sinks: () => ({ deliver: async () => {} }),
        telemetry: false,
        now: () => 1_000,
      });
      const commit = d.commits.commit.bind(d.commits);
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      let first = true;
      d.commits.commit = async (...args) => {
        if (first) {
          first = false;
          await held; // the first commit waits until the other attempt committed
        }
        return commit(...args);
      };
      const loser = winner === 'tick' ? d.send([rec('a', 2)]) : other.invoke({ tidemark: 'tick' });
      await new Promise((r) => setTimeout(r, 0));
      d.commits.commit = commit;
      const won = await (winner === 'tick' ? other.invoke({ tidemark: 'tick' }) : d.send([rec('a', 2)]));
      release();
      const lost = await loser;
      expect(won.timersFired + lost.timersFired).toBe(1);
      expect(lost.commitConflicts + won.commitConflicts).toBe(1);
      expect(d.timers()).toEqual([]);
      expect(d.state('count', 'a')).toBe(2);
    }
  });

  it('remove state whose processing-time TTL passed from the snapshot, with no record arriving', async () => {
    const processor = defineProcessor({
      state: { session: valueState<number>({ ttl: { ms: 60_000 } }) },
      process(_record, ctx) {
        ctx.state.session.set((ctx.state.session.get() ?? 0) + 1);
      },
    });
    const d = new TestDriver(processor);
    d.setTime(0);
    await d.send([rec('a', 1), rec('b', 1)]);
    d.setTime(30_000);
    await d.send([rec('b', 2)]); // b renewed: expires at 90,000
    expect(d.commits.items.values().next().value?.time?.dueAt).toBe(60_000);
    for (let t = 60_000; t <= 600_000; t += 60_000) {
      d.setTime(t);
      await d.tick();
      if (t === 60_000) {
        expect(d.state('session', 'a')).toBeUndefined();
        expect(d.state('session', 'b')).toBe(2);
      }
    }
    expect(d.state('session', 'b')).toBeUndefined();
    expect(d.committed()).toEqual({ epoch: 4, offset: 3n }); // two ticks committed, the others had nothing due
    // An expired value is never returned, even before a checkpoint removed it.
    d.setTime(700_000);
    await d.send([rec('c', 3)]);
    d.setTime(760_000);
    await d.send([rec('c', 4)]);
    expect(d.state('session', 'c')).toBe(1);
  });
});

describe('timer failures', () => {
  it('quarantine policy: a failing timer is undone, set aside and dropped; the rest goes on', async () => {
    const d = new TestDriver(timersProcessor({ failAt: 150 }));
    await d.send([rec('a', 100, 't:150'), rec('a', 101, 't:160'), rec('a', 200)]);
    expect(fired(d)).toEqual(['a@160']);
    expect(d.timers()).toEqual([]);
    expect(d.quarantinedTimers()).toEqual([
      {
        timer: { domain: 'event', timestamp: 150, key: 'a', tag: '' },
        afterOffset: 2n,
        epoch: 1,
        error: expect.objectContaining({ message: 'timer callback failed' }),
      },
    ]);
    expect(d.quarantined()).toEqual([]);
  });

  it('fail policy: the batch fails at the record whose firing failed, with that record undone', async () => {
    const base = timersProcessor({ failAt: 150 });
    const d = new TestDriver({ ...base, poisonPolicy: 'fail' });
    await d.send([rec('a', 100, 't:150')]);
    const r = await d.trySend([rec('a', 120), rec('a', 200), rec('a', 300)]);
    expect(r.ok).toBe(false);
    expect((r as { error: unknown }).error).toBeInstanceOf(BatchFailedError);
    expect(d.committed()).toEqual({ epoch: 2, offset: 2n }); // the record before it committed
    expect(d.state('count', 'a')).toBe(2);
    expect(d.timers()).toHaveLength(1);
  });

  it('timers need onTimer: setting one without it makes the record a poison record', async () => {
    const processor = defineProcessor({
      state: {},
      poisonPolicy: 'quarantine',
      time: {},
      process(_r, ctx) {
        ctx.timers.registerEventTime(5);
      },
    });
    const d = new TestDriver(processor);
    await d.send([rec('a', 1)]);
    expect(d.quarantined().map((q) => q.error.message)).toEqual([
      expect.stringContaining('timers need an onTimer callback'),
    ]);
  });
});
