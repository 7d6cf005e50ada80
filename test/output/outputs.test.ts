/**
 * Outputs through the real engine (memory stores, memory sinks): the contract of issue 12 §1.
 * Sink-specific proofs live with each sink (test/sink/*).
 */
import { describe, expect, it } from 'vitest';
import { mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { gate, HookedCommitStore, HookedSnapshotStore } from '../../harness/faultyStores.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { loadConfig, type TidemarkConfig } from '../../lib/config/config.ts';
import { BatchFailedError, OutputDeliveryError, PoisonRecordError } from '../../lib/errors.ts';
import type { Delivery, OutputDescriptor, Sink } from '../../lib/output/types.ts';
import { valueState } from '../../lib/state/descriptors.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';
import { MemorySink } from '../../lib/testing/memorySink.ts';
import { TestDriver } from '../../lib/testing/testDriver.ts';

/** A plain JSON output of a given kind, for the engine's side of the contract. */
function jsonOutput<T>(kind = 'test', sinkId = kind): OutputDescriptor<T, string, T> {
  return {
    kind,
    sinkId,
    options: {},
    encode: (value) => {
      const s = JSON.stringify(value);
      if (s === undefined) throw new TypeError('not JSON');
      return s;
    },
    decode: (entry) => JSON.parse(entry),
    createSink: () => {
      throw new Error('tests supply the sinks');
    },
  };
}

/** Running totals per key, an event per deposit, and an alert when a balance goes negative. */
const processor = defineProcessor({
  state: { balance: valueState<number>() },
  outputs: {
    totals: jsonOutput<{ key: string; balance: number }>(),
    alerts: jsonOutput<{ key: string; balance: number }>('test', 'alerts-sink'),
  },
  poisonPolicy: 'quarantine',
  process(record, { state, outputs, key }) {
    const amount = Number(record.value!.toString('utf8'));
    const balance = (state.balance.get() ?? 0) + amount;
    outputs.totals.emit({ key: key!, balance });
    if (balance < 0) outputs.alerts.emit({ key: key!, balance });
    if (!Number.isFinite(amount)) throw new PoisonRecordError('not a number'); // after emitting: rolled back
    state.balance.set(balance);
  },
});

const rec = (offset: number, key: string, amount: string | number, partition = 0): TestRecord => ({
  topic: 'in',
  partition,
  offset,
  key,
  value: String(amount),
});

/** The expected totals of a record sequence (a plain fold). */
function fold(records: ReadonlyArray<{ key: string; amount: number }>) {
  const balances = new Map<string, number>();
  const totals: Array<{ key: string; balance: number }> = [];
  const alerts: Array<{ key: string; balance: number }> = [];
  for (const r of records) {
    if (!Number.isFinite(r.amount)) continue;
    const b = (balances.get(r.key) ?? 0) + r.amount;
    balances.set(r.key, b);
    totals.push({ key: r.key, balance: b });
    if (b < 0) alerts.push({ key: r.key, balance: b });
  }
  return { totals, alerts };
}

function config(overrides: Partial<TidemarkConfig> = {}): TidemarkConfig {
  return loadConfig({}, { bucket: 'b', table: 't', pipeline: 'p', poisonPolicy: 'quarantine', ...overrides });
}

describe('outputs through the engine', () => {
  it('emits each committed output once, in emit order, with stable ids; a failing record emits nothing', async () => {
    const driver = new TestDriver(processor, { topic: 'in' });
    const input = [
      { key: 'a', amount: 5 },
      { key: 'a', amount: -7 },
      { key: 'b', amount: Number.NaN }, // poison: its emits are rolled back with it
      { key: 'b', amount: 2 },
    ];
    await driver.send(input.map((r) => ({ key: r.key, value: String(r.amount) })));
    const expected = fold(input);
    expect(driver.outputs('totals').map((o) => o.value)).toEqual(expected.totals);
    expect(driver.outputs('alerts').map((o) => o.value)).toEqual(expected.alerts);
    expect(driver.outputs('totals').map((o) => o.id)).toEqual([
      'test/in/0/1/0',
      'test/in/0/1/1',
      'test/in/0/1/3',
    ]);
    expect(driver.outputs('alerts').map((o) => o.id)).toEqual(['test/in/0/1/2']);
    expect(driver.quarantined().map((q) => q.offset)).toEqual([2n]);
    // Redelivered, after a restart too: nothing new downstream.
    await driver.redeliver();
    await driver.restart();
    await driver.redeliver();
    expect(driver.outputs('totals')).toHaveLength(3);
    await driver.send([{ key: 'a', value: '1' }]);
    expect(driver.outputs('totals').map((o) => o.value)).toEqual([
      ...expected.totals,
      { key: 'a', balance: -1 },
    ]);
    expect(() => driver.outputs('nope' as 'totals')).toThrow(/declares no output 'nope'/);
  });

  it('refuses a value that cannot be encoded as a poison record (nothing of it is committed)', async () => {
    const p = defineProcessor({
      state: {},
      outputs: { out: jsonOutput<unknown>() },
      poisonPolicy: 'quarantine',
      process(record, { outputs }) {
        outputs.out.emit('before');
        outputs.out.emit(record.value!.toString() === 'bad' ? undefined : 'ok');
      },
    });
    const driver = new TestDriver(p);
    await driver.send([
      { key: 'k', value: 'bad' },
      { key: 'k', value: 'good' },
    ]);
    expect(driver.outputs('out').map((o) => o.value)).toEqual(['before', 'ok']);
    expect(driver.quarantined()[0]!.error.message).toMatch(
      /output 'out': the value cannot be encoded \(not JSON\)/,
    );
  });

  it('keeps a small outbox inline in the commit item and a large one as an object, collected once subsumed', async () => {
    const driver = new TestDriver(processor, { topic: 'in', config: { outboxInlineMaxBytes: 200 } });
    await driver.send([{ key: 'a', value: '1' }]);
    const inline = [...driver.commits.items.values()][0]!;
    expect(inline.outbox).toMatchObject({ epoch: 1, count: 1 });
    expect(inline.outbox!.inline).toBeInstanceOf(Uint8Array);
    await driver.send(Array.from({ length: 30 }, () => ({ key: 'a', value: '1' })));
    const big = [...driver.commits.items.values()][0]!;
    expect(big.outbox).toMatchObject({ epoch: 2, count: 30 });
    expect(big.outbox!.key).toMatch(/\/000000000002-[0-9a-f]+\.outbox$/);
    expect(driver.snapshots.objects.has(big.outbox!.key!)).toBe(true);
    // A cold container delivers from the object (decoded, verified); the sink already has it.
    await driver.restart();
    await driver.send([{ key: 'a', value: '1' }]);
    expect(driver.duplicateDeliveries).toBe(1);
    expect(driver.outputs('totals').map((o) => o.value.balance)).toEqual(
      Array.from({ length: 32 }, (_, i) => i + 1),
    );
    // The next commit subsumed the large outbox: it is deleted after that commit.
    expect(driver.snapshots.objects.has(big.outbox!.key!)).toBe(false);
  });

  it('fails the invocation when delivery fails, keeps the epoch committed, and delivers once on retry', async () => {
    let failures = 1;
    const sink = new MemorySink({ inCommit: false });
    const flaky: Sink = {
      attach: () => undefined,
      deliver: async (d) => {
        if (failures-- > 0) throw new Error('broker unavailable');
        await sink.deliver(d);
      },
    };
    const snapshots = new MemorySnapshotStore();
    const commits = new MemoryCommitStore();
    const engine = () =>
      new EpochEngine({ processor, config: config(), snapshots, commits, sinks: () => flaky });
    const warm = engine();
    const batch = mskEvent([rec(0, 'a', 1), rec(1, 'a', 2)]);
    const err = await warm.processEvent(batch).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchFailedError);
    expect((err as BatchFailedError).failures[0]!.error).toBeInstanceOf(OutputDeliveryError);
    expect((err as BatchFailedError).retriable).toBe(true);
    expect((await commits.read({ pipeline: 'p', topic: 'in', partition: 0 }))?.epoch).toBe(1);
    expect(sink.received.get('totals')).toBeUndefined();
    // The ESM retries: the epoch is skipped, its outbox delivered.
    expect(await warm.processEvent(batch)).toMatchObject({ applied: 0, duplicatesSkipped: 2 });
    expect(sink.received.get('totals')?.map((o) => o.value)).toEqual([
      { key: 'a', balance: 1 },
      { key: 'a', balance: 3 },
    ]);
  });

  it('never delivers the outputs of an attempt that lost its commit race (a zombie)', async () => {
    const sink = new MemorySink({ inCommit: false });
    const snapshots = new HookedSnapshotStore(new MemorySnapshotStore());
    const commits = new HookedCommitStore(new MemoryCommitStore());
    const engine = () =>
      new EpochEngine({ processor, config: config(), snapshots, commits, sinks: () => sink });
    const zombie = engine();
    const live = engine();
    const paused = gate();
    const reached = gate();
    let first = true;
    commits.beforeCommit = async () => {
      if (!first) return;
      first = false;
      reached.open();
      await paused.wait; // the zombie stops right before its commit
    };
    const batch = mskEvent([rec(0, 'a', 10), rec(1, 'b', -1)]);
    const z = zombie.processEvent(batch).catch((e: unknown) => e);
    await reached.wait;
    await live.processEvent(mskEvent([rec(0, 'a', 1), rec(1, 'b', 1)])); // a different batch content wins
    paused.open();
    const zr = await z;
    // The zombie lost, reloaded the winner, skipped everything: success, nothing of its own delivered.
    expect(zr).toMatchObject({ commitConflicts: 1, applied: 0 });
    expect(sink.received.get('totals')?.map((o) => o.value)).toEqual([
      { key: 'a', balance: 1 },
      { key: 'b', balance: 1 },
    ]);
    expect(sink.received.get('alerts')).toBeUndefined();
  });

  it('a container paused between its commit and its delivery delivers nothing twice when it resumes', async () => {
    const downstream = new MemorySink({ inCommit: false });
    const held = gate();
    const reached = gate();
    let hold = true;
    const slow: Sink = {
      deliver: async (d: Delivery) => {
        if (hold) {
          hold = false;
          reached.open();
          await held.wait;
        }
        await downstream.deliver(d);
      },
    };
    const snapshots = new MemorySnapshotStore();
    const commits = new MemoryCommitStore();
    const a = new EpochEngine({ processor, config: config(), snapshots, commits, sinks: () => slow });
    const b = new EpochEngine({ processor, config: config(), snapshots, commits, sinks: () => slow });
    const first = mskEvent([rec(0, 'a', 1)]);
    const pa = a.processEvent(first);
    await reached.wait; // A committed epoch 1 and hangs delivering it
    await b.processEvent(mskEvent([rec(0, 'a', 1), rec(1, 'a', 1)])); // B restores, delivers 1, commits 2
    held.open();
    await pa;
    expect(
      downstream.received.get('totals')?.map((o) => [o.id, (o.value as { balance: number }).balance]),
    ).toEqual([
      ['p/in/0/1/0', 1],
      ['p/in/0/2/0', 2],
    ]);
    expect(downstream.duplicateDeliveries).toBe(1);
  });

  it('commits outputs of in-commit kinds atomically with the epoch: a lost race writes none of them', async () => {
    const p = defineProcessor({
      state: { n: valueState<number>() },
      outputs: { rows: jsonOutput<number>('dynamodb') },
      process(_r, { state, outputs }) {
        const n = (state.n.get() ?? 0) + 1;
        state.n.set(n);
        outputs.rows.emit(n);
      },
    });
    const sink = new MemorySink({ inCommit: true });
    let delivered = 0;
    const counting: Sink = { attach: (d) => sink.attach(d), deliver: async () => void delivered++ };
    const commits = new HookedCommitStore(new MemoryCommitStore());
    const snapshots = new MemorySnapshotStore();
    const engine = () =>
      new EpochEngine({ processor: p, config: config(), snapshots, commits, sinks: () => counting });
    const zombie = engine();
    const paused = gate();
    const reached = gate();
    let first = true;
    commits.beforeCommit = async () => {
      if (!first) return;
      first = false;
      reached.open();
      await paused.wait;
    };
    const z = zombie.processEvent(mskEvent([rec(0, 'k', 1), rec(1, 'k', 1)]));
    await reached.wait;
    await engine().processEvent(mskEvent([rec(0, 'k', 1)]));
    paused.open();
    await z;
    expect(sink.received.get('rows')?.map((o) => [o.id, o.value])).toEqual([
      ['p/in/0/1/0', 1],
      ['p/in/0/2/0', 2],
    ]);
    expect(delivered).toBe(0); // attached: never delivered after the commit
    const item = await commits.read({ pipeline: 'p', topic: 'in', partition: 0 });
    expect(item?.outbox).toBeUndefined();
  });
});
