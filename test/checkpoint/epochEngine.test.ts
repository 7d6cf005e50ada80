/**
 * The epoch engine on in-memory stores: protocol behaviour, fast. The same scenarios run against
 * DynamoDB Local and the S3 server in epochEngine.integration.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { deposit, mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { gate, HookedCommitStore, HookedSnapshotStore, SimulatedCrash } from '../../harness/faultyStores.ts';
import { foldBalances } from '../../harness/oracle.ts';
import { type BatchSummary, EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import type { EngineObserver } from '../../lib/checkpoint/observer.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { loadConfig, type TidemarkConfig } from '../../lib/config/config.ts';
import {
  BatchFailedError,
  CommitConflictError,
  ConfigurationError,
  PoisonRecordError,
  ProcessingError,
  TidemarkError,
  TimeBudgetExceededError,
} from '../../lib/errors.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { listState, taskValueState } from '../../lib/state/descriptors.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

const PIPELINE = 'balances';

/**
 * The protocol runs twice: with every snapshot in S3 (a PUT, then the commit), and with small
 * snapshots inline in the commit item (the commit alone), the default for states this small.
 */
const MODES = [
  ['snapshots in S3', { snapshotInlineMaxBytes: 0 }],
  ['inline snapshots', {}],
] as const satisfies ReadonlyArray<readonly [string, Partial<TidemarkConfig>]>;
let mode: Partial<TidemarkConfig> = MODES[0][1];
const inline = () => mode.snapshotInlineMaxBytes !== 0;

function config(overrides: Partial<TidemarkConfig> = {}): TidemarkConfig {
  return loadConfig(
    {},
    { bucket: 'b', table: 't', pipeline: PIPELINE, poisonPolicy: 'quarantine', ...mode, ...overrides },
  );
}

function setup(overrides: Partial<TidemarkConfig> = {}) {
  const snapshots = new HookedSnapshotStore(new MemorySnapshotStore());
  const commits = new HookedCommitStore(new MemoryCommitStore());
  const cfg = config(overrides);
  const engine = (observer?: EngineObserver) =>
    new EpochEngine({ processor: balances, config: cfg, snapshots, commits, observer });
  return {
    snapshots,
    commits,
    engine,
    memSnapshots: snapshots.inner as MemorySnapshotStore,
    memCommits: commits.inner as MemoryCommitStore,
  };
}

async function stateOf(
  stores: { snapshots: HookedSnapshotStore; commits: HookedCommitStore },
  topic = 'orders',
  partition = 0,
) {
  return inspectTask(stores, { pipeline: PIPELINE, topic, partition });
}

function expectBalances(state: Record<string, Record<string, unknown>>, records: TestRecord[]) {
  expect(state.account ?? {}).toEqual(Object.fromEntries(foldBalances(records)));
}

async function failure(p: Promise<unknown>): Promise<BatchFailedError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BatchFailedError);
    return err as BatchFailedError;
  }
  throw new Error('expected the batch to fail');
}

const stream = (n: number, topic = 'orders', partition = 0, start = 0): TestRecord[] =>
  Array.from({ length: n }, (_, i) =>
    deposit(topic, partition, start + i, `acct-${(start + i) % 7}`, ((start + i) % 11) - 3),
  );

describe.each(MODES)('EpochEngine (%s)', (_name, modeConfig) => {
  beforeAll(() => {
    mode = modeConfig;
  });

  it('applies a batch once and skips every record of a duplicate delivery', async () => {
    const s = setup();
    const e = s.engine();
    const records = stream(20);
    const first = await e.processEvent(mskEvent(records));
    expect(first).toMatchObject({ applied: 20, duplicatesSkipped: 0, epochsCommitted: 1 });
    const again = await e.processEvent(mskEvent(records));
    expect(again).toMatchObject({ applied: 0, duplicatesSkipped: 20, epochsCommitted: 0 });
    const cold = await s.engine().processEvent(mskEvent(records));
    expect(cold).toMatchObject({ applied: 0, duplicatesSkipped: 20 });
    const r = await stateOf(s);
    expect(r).toMatchObject({ epoch: 1, committedOffset: '20' });
    expectBalances(r.state, records);
  });

  it('handles a retried batch with another composition (earlier start, later end, other partitions)', async () => {
    const s = setup();
    const p0 = stream(30, 'orders', 0);
    const p1 = stream(10, 'orders', 1);
    await s.engine().processEvent(mskEvent(p0.slice(10, 20)));
    const retry = await s.engine().processEvent(mskEvent([...p0.slice(5, 30), ...p1]));
    // 5-19 are below the committed offset (20): skipped; 20-29 and all of partition 1 are applied.
    expect(retry).toMatchObject({ applied: 10 + 10, duplicatesSkipped: 15 });
    const r0 = await stateOf(s, 'orders', 0);
    expectBalances(r0.state, p0.slice(10, 30));
    expect(r0.committedOffset).toBe('30');
    expectBalances((await stateOf(s, 'orders', 1)).state, p1);
  });

  it('lets exactly one of two concurrent invocations commit each epoch, and both end right', async () => {
    const s = setup();
    const records = stream(50);
    const results = await Promise.all([
      s.engine().processEvent(mskEvent(records)),
      s.engine().processEvent(mskEvent(records)),
    ]);
    const conflicts = results.reduce((n, r) => n + r.commitConflicts, 0);
    expect(conflicts).toBe(1);
    const r = await stateOf(s);
    expect(r.epoch).toBe(1);
    expectBalances(r.state, records);
    expect(s.memCommits.calls.commit).toBe(2);
  });

  it('recovers from a crash after the snapshot PUT (or the inline delta) and before the commit (the orphan is never loaded)', async () => {
    const s = setup();
    const records = stream(10);
    await s.engine().processEvent(mskEvent(records.slice(0, 5)));
    s.commits.beforeCommit = () => {
      throw new SimulatedCrash('before commit');
    };
    const f = await failure(s.engine().processEvent(mskEvent(records)));
    expect(f.failures[0]!.error).toBeInstanceOf(SimulatedCrash);
    // An inline snapshot exists nowhere until its commit: the crash leaves nothing behind.
    const orphans = [...s.memSnapshots.objects.keys()].filter((k) => k.includes('/000000000002-'));
    expect(orphans).toHaveLength(inline() ? 0 : 1);
    s.commits.beforeCommit = undefined;
    const retry = await s.engine().processEvent(mskEvent(records));
    expect(retry).toMatchObject({ applied: 5, duplicatesSkipped: 5 });
    const r = await stateOf(s);
    expect(r.epoch).toBe(2);
    expect(r.snapshot!.keys[0]).not.toBe(orphans[0]);
    expectBalances(r.state, records);
  });

  it('recovers from a crash after the commit and before the handler returns (warm and cold)', async () => {
    for (const warm of [true, false]) {
      const s = setup();
      const records = stream(10);
      const e = s.engine();
      s.commits.afterCommit = () => {
        throw new SimulatedCrash('after commit');
      };
      await failure(e.processEvent(mskEvent(records)));
      s.commits.afterCommit = undefined;
      const retry = await (warm ? e : s.engine()).processEvent(mskEvent(records));
      expect(retry).toMatchObject({ applied: 0, duplicatesSkipped: 10 });
      expectBalances((await stateOf(s)).state, records);
    }
  });

  it('makes a zombie lose: paused after its snapshot PUT (or before its commit) while a retry commits, then resumed', async () => {
    const s = setup();
    const records = stream(8);
    const pause = gate();
    const reached = gate();
    let paused = false;
    const stop = async () => {
      if (paused) return;
      paused = true;
      reached.open();
      await pause.wait;
    };
    if (inline()) s.commits.beforeCommit = stop;
    else
      s.snapshots.afterPut = async (key) => {
        if (key.endsWith('.snap')) await stop();
      };
    const zombie = s.engine().processEvent(mskEvent(records));
    await reached.wait;
    const retry = await s.engine().processEvent(mskEvent(records));
    expect(retry.epochsCommitted).toBe(1);
    pause.open();
    const z = await zombie;
    expect(z.commitConflicts).toBe(1);
    expect(z.applied).toBe(0);
    const r = await stateOf(s);
    expect(r.epoch).toBe(1);
    expectBalances(r.state, records);
  });

  it('cuts epochs by record count and by bytes', async () => {
    const s = setup({ epochMaxRecords: 4 });
    const records = stream(10);
    expect((await s.engine().processEvent(mskEvent(records))).epochsCommitted).toBe(3);
    const b = setup({ epochMaxBytes: 40 });
    const big = Array.from({ length: 6 }, (_, i) => ({
      ...deposit('orders', 0, i, 'k', 1),
      value: { amount: 1, pad: 'x' },
    }));
    // 23 bytes per record (key 1 + value 22): an epoch reaches 40 bytes after its second record.
    expect((await b.engine().processEvent(mskEvent(big))).epochsCommitted).toBe(3);
  });

  it('commits what fits in the time budget, fails retriably, and the retry completes', async () => {
    const s = setup({ timeReserveMs: 1000, epochMaxRecords: 3 });
    const records = stream(10);
    let remaining = 1005;
    const context = { getRemainingTimeInMillis: () => (remaining -= 2) };
    const f = await failure(s.engine().processEvent(mskEvent(records), context));
    const err = f.failures[0]!.error;
    expect(err).toBeInstanceOf(TimeBudgetExceededError);
    expect(f.retriable).toBe(true);
    const partial = await stateOf(s);
    expect(Number(partial.committedOffset)).toBeGreaterThan(0);
    expect(Number(partial.committedOffset)).toBeLessThan(10);
    const retry = await s
      .engine()
      .processEvent(mskEvent(records), { getRemainingTimeInMillis: () => 60_000 });
    expect(retry.duplicatesSkipped).toBe(Number(partial.committedOffset));
    const r = await stateOf(s);
    expect(r.committedOffset).toBe('10');
    expectBalances(r.state, records);
  });

  it('cuts an epoch short when time runs out in the middle of it, and commits it', async () => {
    const s = setup({ timeReserveMs: 1000, epochMaxRecords: 1000 });
    const records = stream(100);
    let calls = 0;
    // Plenty of time for the first checks (before the epoch, after 16 and 32 records), then not.
    const context = { getRemainingTimeInMillis: () => (++calls <= 3 ? 60_000 : 500) };
    const f = await failure(s.engine().processEvent(mskEvent(records), context));
    expect(f.failures[0]!.error).toBeInstanceOf(TimeBudgetExceededError);
    const partial = await stateOf(s);
    expect(partial).toMatchObject({ epoch: 1, committedOffset: '48' });
    expectBalances(partial.state, records.slice(0, 48));
  });

  it('fails at once, committing nothing, when even one epoch does not fit', async () => {
    const s = setup({ timeReserveMs: 5000 });
    const f = await failure(
      s.engine().processEvent(mskEvent(stream(3)), { getRemainingTimeInMillis: () => 4000 }),
    );
    expect(f.failures[0]!.error).toBeInstanceOf(TimeBudgetExceededError);
    expect(s.memCommits.calls.commit).toBe(0);
  });

  it('quarantines poison records in the same epoch commit and counts them', async () => {
    const s = setup();
    const records: TestRecord[] = [
      deposit('orders', 0, 0, 'a', 5),
      { topic: 'orders', partition: 0, offset: 1, key: null, value: { amount: 1 } },
      { topic: 'orders', partition: 0, offset: 2, key: 'a', value: 'not json' },
      { topic: 'orders', partition: 0, offset: 3, key: 'a', value: { amount: 1.5 } },
      deposit('orders', 0, 4, 'a', 2),
    ];
    const event = mskEvent(records);
    event.records['orders-0']!.push({ ...event.records['orders-0']![0]!, offset: 5, value: '%%%' });
    const summary = await s.engine().processEvent(event);
    expect(summary).toMatchObject({ applied: 2, quarantined: 4, epochsCommitted: 1 });
    const r = await stateOf(s);
    expect(r).toMatchObject({ quarantined: 4, committedOffset: '6' });
    expect(r.state.account).toEqual({ a: { balance: 7, count: 2 } });
    const q = [...s.memSnapshots.objects.keys()].filter((k) => k.includes('/quarantine/')).sort();
    expect(q).toEqual(
      [1, 2, 3, 5].map((o) => `tidemark/${PIPELINE}/quarantine/orders/0/${String(o).padStart(20, '0')}.json`),
    );
    const doc = JSON.parse(s.memSnapshots.objects.get(q[1]!)!.body.toString());
    expect(doc).toMatchObject({
      offset: '2',
      topic: 'orders',
      partition: 0,
      error: { name: 'PoisonRecordError' },
    });
    expect(Buffer.from(doc.value, 'base64').toString()).toBe('not json');
    // A re-delivery quarantines nothing twice.
    expect((await s.engine().processEvent(event)).quarantined).toBe(0);
    expect((await stateOf(s)).quarantined).toBe(4);
  });

  it('fails the invocation on a poison record under the fail policy, after committing what came before', async () => {
    const s = setup({ poisonPolicy: 'fail' });
    const records = [
      deposit('orders', 0, 0, 'a', 1),
      deposit('orders', 0, 1, 'a', 2),
      { topic: 'orders', partition: 0, offset: 2, key: 'a', value: 'x' },
    ];
    const f = await failure(s.engine().processEvent(mskEvent(records)));
    expect(f.failures[0]!.error).toBeInstanceOf(PoisonRecordError);
    expect(f.retriable).toBe(false);
    const r = await stateOf(s);
    expect(r).toMatchObject({ committedOffset: '2', quarantined: 0 });
    expect(r.state.account).toEqual({ a: { balance: 3, count: 2 } });
  });

  it('never leaves partial state from a record that threw, and does not quarantine retriable errors', async () => {
    let failNext: 'poison' | 'retriable' | undefined;
    const processor = defineProcessor({
      state: { log: listState<number>(), total: taskValueState<number>() },
      poisonPolicy: 'quarantine',
      process(record, { state }) {
        const n = Number(record.value!.toString());
        state.log.add(n);
        state.total.set((state.total.get() ?? 0) + n);
        if (n === 3 && failNext === 'poison') throw new Error('bad record');
        if (n === 3 && failNext === 'retriable')
          throw new TidemarkError('downstream busy', { retriable: true });
      },
    });
    const snapshots = new MemorySnapshotStore();
    const commits = new MemoryCommitStore();
    const engine = new EpochEngine({ processor, config: config(), snapshots, commits });
    const records = [1, 2, 3, 4].map((n) => ({ offset: n, key: 'k', value: String(n) }));
    failNext = 'retriable';
    const f = await failure(engine.processEvent(mskEvent(records)));
    expect(f.failures[0]!.error).toBeInstanceOf(ProcessingError);
    expect(f.retriable).toBe(true);
    let r = await inspectTask({ snapshots, commits }, { pipeline: PIPELINE, topic: 'orders', partition: 0 });
    expect(r.state).toEqual({ log: { k: [1, 2] }, total: { '': 3 } });
    failNext = 'poison';
    await engine.processEvent(mskEvent(records));
    r = await inspectTask({ snapshots, commits }, { pipeline: PIPELINE, topic: 'orders', partition: 0 });
    expect(r.state).toEqual({ log: { k: [1, 2, 4] }, total: { '': 7 } });
    expect(r.quarantined).toBe(1);
  });

  it('refuses an asynchronous processor', async () => {
    const processor = defineProcessor({ state: {}, process: (async () => {}) as unknown as () => void });
    const engine = new EpochEngine({
      processor,
      config: config(),
      snapshots: new MemorySnapshotStore(),
      commits: new MemoryCommitStore(),
    });
    const f = await failure(engine.processEvent(mskEvent([{ offset: 0 }])));
    expect(f.failures[0]!.error).toBeInstanceOf(ConfigurationError);
  });

  it('applies tombstones as deletions', async () => {
    const s = setup();
    const records: TestRecord[] = [
      deposit('orders', 0, 0, 'a', 5),
      deposit('orders', 0, 1, 'b', 1),
      { topic: 'orders', partition: 0, offset: 2, key: 'a', value: null },
    ];
    await s.engine().processEvent(mskEvent(records));
    expect((await stateOf(s)).state.account).toEqual({ b: { balance: 1, count: 1 } });
  });

  it('keeps offsets beyond 2^53 exact', async () => {
    const s = setup();
    const base = 2n ** 60n;
    const records = [0n, 1n, 3n].map((d) => deposit('orders', 0, base + d, 'a', 1));
    await s.engine().processEvent(mskEvent(records));
    expect((await stateOf(s)).committedOffset).toBe((base + 4n).toString());
    const again = await s
      .engine()
      .processEvent(mskEvent([...records, deposit('orders', 0, base + 4n, 'a', 1)]));
    expect(again).toMatchObject({ duplicatesSkipped: 3, applied: 1 });
  });

  it('does no read on a warm container in the steady state', async () => {
    const s = setup();
    const e = s.engine();
    await e.processEvent(mskEvent(stream(5)));
    const reads = { snap: s.memSnapshots.calls.get, commit: s.memCommits.calls.read };
    for (let i = 1; i < 5; i++) await e.processEvent(mskEvent(stream(5, 'orders', 0, i * 5)));
    expect(s.memSnapshots.calls.get).toBe(reads.snap);
    expect(s.memCommits.calls.read).toBe(reads.commit);
    expect(s.memCommits.calls.commit).toBe(5);
    expect(s.memSnapshots.calls.put).toBe(inline() ? 0 : 5);
  });

  it('reloads the winner and goes on when another container advanced the task', async () => {
    const s = setup();
    const records = stream(30);
    const a = s.engine();
    const b = s.engine();
    await a.processEvent(mskEvent(records.slice(0, 10)));
    await b.processEvent(mskEvent(records.slice(0, 20))); // cold: reads a's commit, commits epoch 2
    const summary = await a.processEvent(mskEvent(records.slice(10))); // warm but stale: loses, reloads, goes on
    expect(summary).toMatchObject({ commitConflicts: 1, applied: 10, duplicatesSkipped: 10 });
    const r = await stateOf(s);
    expect(r).toMatchObject({ epoch: 3, committedOffset: '30' });
    expectBalances(r.state, records);
  });

  it('checks a warm copy is current before skipping records (one read, only on re-delivery)', async () => {
    const s = setup();
    const records = stream(30);
    const a = s.engine();
    await a.processEvent(mskEvent(records.slice(0, 20)));
    const reads = s.memCommits.calls.read;
    await a.processEvent(mskEvent(records.slice(20, 25))); // starts at the committed offset: no read
    expect(s.memCommits.calls.read).toBe(reads);
    await a.processEvent(mskEvent(records.slice(15, 30))); // a re-delivery: one read, then skips
    expect(s.memCommits.calls.read).toBe(reads + 1);
    expectBalances((await stateOf(s)).state, records);
  });

  it('gives up after too many lost races, retriably', async () => {
    const s = setup();
    s.commits.beforeCommit = (next) => {
      throw new CommitConflictError(next.epoch - 1, undefined);
    };
    const f = await failure(s.engine().processEvent(mskEvent(stream(2))));
    expect(f.failures[0]!.error).toBeInstanceOf(CommitConflictError);
    expect(f.retriable).toBe(true);
  });

  it('keeps the last N checkpoints and deletes older snapshots after a commit', async () => {
    const s = setup({ retainedCheckpoints: 2 });
    const e = s.engine();
    for (let i = 0; i < 5; i++) await e.processEvent(mskEvent(stream(3, 'orders', 0, i * 3)));
    const snaps = [...s.memSnapshots.objects.keys()].filter((k) => k.endsWith('.snap'));
    expect(snaps.map((k) => Number(/\/(\d{12})-/.exec(k)![1]))).toEqual(inline() ? [] : [4, 5]);
    const r = await stateOf(s);
    expect(r.retained.map((h) => h.epoch)).toEqual([4]);
    const c = (await s.memCommits.read({ pipeline: PIPELINE, topic: 'orders', partition: 0 }))!;
    expect([c, ...c.history].map((x) => x.chain.every((l) => l.inline !== undefined))).toEqual(
      inline() ? [true, true] : [false, false],
    );
  });

  it('processes the tasks of a batch concurrently and reports each', async () => {
    const s = setup({ taskConcurrency: 3 });
    const records = [0, 1, 2, 3, 4].flatMap((p) => stream(4, 'orders', p));
    const summary: BatchSummary = await s.engine().processEvent(mskEvent(records));
    expect(summary.tasks.map((t) => [t.partition, t.applied, t.committedOffset])).toEqual(
      [0, 1, 2, 3, 4].map((p) => [p, 4, '4']),
    );
  });

  it('commits the other tasks when one task fails', async () => {
    const s = setup();
    s.commits.beforeCommit = (next) => {
      if (next.partition === 1) throw new SimulatedCrash('p1');
    };
    const f = await failure(
      s.engine().processEvent(mskEvent([...stream(3, 'orders', 0), ...stream(3, 'orders', 1)])),
    );
    expect(f.failures.map((x) => x.task)).toEqual(['orders-1']);
    expect((await stateOf(s, 'orders', 0)).committedOffset).toBe('3');
    expect((await stateOf(s, 'orders', 1)).committedOffset).toBeNull();
  });

  it('with reportBatchItemFailures, names only the failed tasks: from their first uncommitted record', async () => {
    const s = setup({ reportBatchItemFailures: true, epochMaxRecords: 2 });
    const e = s.engine();
    // Partition 1 commits its first epoch (offsets 10, 11), then its second commit fails.
    let p1Commits = 0;
    s.commits.beforeCommit = (next) => {
      if (next.partition === 1 && ++p1Commits === 2) throw new SimulatedCrash('p1');
    };
    const p0 = stream(5, 'orders', 0);
    const p1 = stream(5, 'orders', 1, 10);
    const summary = await e.processEvent(mskEvent([...p0, ...p1]));
    expect(summary.batchItemFailures).toEqual([{ itemIdentifier: { partition: 'orders-1', offset: 12 } }]);
    expect(summary.failedTasks).toEqual([
      { task: 'orders-1', error: expect.stringMatching(/SimulatedCrash/), retriable: false },
    ]);
    expect(summary.tasks.map((t) => [t.partition, t.committedOffset])).toEqual([[0, '5']]);
    expect((await stateOf(s, 'orders', 1)).committedOffset).toBe('12');
    // The mapping delivers partition 1 again from 12 only: it completes, nothing counted twice.
    s.commits.beforeCommit = undefined;
    const retry = await e.processEvent(mskEvent(p1.slice(2)));
    expect(retry).toMatchObject({ applied: 3, duplicatesSkipped: 0 });
    expect(retry.batchItemFailures).toBeUndefined();
    expectBalances((await stateOf(s, 'orders', 0)).state, p0);
    expectBalances((await stateOf(s, 'orders', 1)).state, p1);
  });

  it('with reportBatchItemFailures, still fails the whole batch when no task committed, or an offset is beyond 2^53', async () => {
    const s = setup({ reportBatchItemFailures: true });
    s.commits.beforeCommit = () => {
      throw new SimulatedCrash('all');
    };
    await failure(s.engine().processEvent(mskEvent([...stream(3, 'orders', 0), ...stream(3, 'orders', 1)])));
    s.commits.beforeCommit = (next) => {
      if (next.partition === 1) throw new SimulatedCrash('p1');
    };
    const big = 2n ** 60n;
    const f = await failure(
      s
        .engine()
        .processEvent(
          mskEvent([
            ...stream(3, 'orders', 0),
            deposit('orders', 1, big, 'a', 1),
            deposit('orders', 1, big + 1n, 'a', 1),
          ]),
        ),
    );
    expect(f.failures.map((x) => x.task)).toEqual(['orders-1']);
  });

  it('reports through the observer', async () => {
    const s = setup();
    const seen: string[] = [];
    const observer: EngineObserver = {
      epochCommitted: (i) => seen.push(`epoch ${i.epoch} ${i.applied} ${i.snapshotKind} keys=${i.stateKeys}`),
      duplicatesSkipped: (_t, n) => seen.push(`dup ${n}`),
      warmHit: () => seen.push('warm'),
    };
    const e = s.engine(observer);
    await e.processEvent(mskEvent(stream(3)));
    await e.processEvent(mskEvent(stream(3)));
    expect(seen).toEqual(['epoch 1 3 full keys=3', 'warm', 'dup 3']);
  });

  it('rejects malformed events before touching any store', async () => {
    const s = setup();
    await expect(s.engine().processEvent({ eventSource: 'aws:kafka' })).rejects.toThrow(/records/);
    expect(s.memCommits.calls.read).toBe(0);
  });
});

describe('EpochEngine and lost responses', () => {
  it('takes its own snapshot key existing for its own applied PUT (the SDK retried it after a lost response)', async () => {
    const s = setup({ snapshotInlineMaxBytes: 0 });
    s.snapshots.afterPut = async (key) => {
      // The PUT was applied but its response is lost: the SDK sends it again, and the conditional
      // create now fails because the object (this attempt's own) exists.
      if (key.includes('/tasks/')) await s.snapshots.inner.put(key, new Uint8Array([1]), { ifAbsent: true });
    };
    const records = stream(5);
    expect(await s.engine().processEvent(mskEvent(records))).toMatchObject({
      applied: 5,
      epochsCommitted: 1,
    });
    expectBalances((await stateOf(s)).state, records);
  });
});
