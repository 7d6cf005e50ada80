/**
 * The custom (at-least-once) output through the real `EpochEngine` on memory stores: what `deliver`
 * receives, that failures and restores redeliver whole epochs (so receivers see duplicates), that a
 * receiver deduplicating on the output id ends up with exactly the reference fold, and that outputs
 * of an attempt that did not commit are never delivered.
 */
import { describe, expect, it } from 'vitest';
import { depositAmount } from '../../examples/balances.ts';
import { deposit, mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { gate, HookedCommitStore } from '../../harness/faultyStores.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import type { CommitStore } from '../../lib/checkpoint/stores.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { BatchFailedError, OutputDeliveryError } from '../../lib/errors.ts';
import { type CustomOutputBatch, type CustomOutputMessage, customOutput } from '../../lib/output/custom.ts';
import { valueState } from '../../lib/state/descriptors.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

interface Total {
  account: string;
  balance: number;
  by?: string;
}

/** A downstream system: keeps every message it received, can fail a call after receiving it. */
class Receiver {
  readonly batches: CustomOutputBatch<Total>[] = [];
  /** Fails the next n calls, after receiving their messages (as a lost acknowledgement would). */
  failNext = 0;

  deliver = async (batch: CustomOutputBatch<Total>): Promise<void> => {
    await Promise.resolve();
    this.batches.push(batch);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('503 Service Unavailable (injected)');
    }
  };

  get messages(): CustomOutputMessage<Total>[] {
    return this.batches.flatMap((b) => b.messages);
  }

  /** What a receiver that deduplicates on the output id keeps, in arrival order. */
  deduplicated(): CustomOutputMessage<Total>[] {
    const seen = new Set<string>();
    return this.messages.filter((m) => !seen.has(m.id) && seen.add(m.id));
  }
}

function processor(receiver: Receiver, tag?: string) {
  return defineProcessor({
    state: { balance: valueState<number>() },
    outputs: { totals: customOutput<Total>({ deliver: receiver.deliver, batchSize: 3 }) },
    poisonPolicy: 'quarantine',
    process(record, { state, outputs, key }) {
      const balance = (state.balance.get() ?? 0) + depositAmount(record.value!);
      outputs.totals.emit(tag ? { account: key!, balance, by: tag } : { account: key!, balance });
      if (balance > 1_000) outputs.totals.emit({ account: key!, balance: 10n } as unknown as Total); // not JSON
      state.balance.set(balance);
    },
  });
}

function fold(records: readonly TestRecord[]): Total[] {
  const balances = new Map<string, number>();
  const out: Total[] = [];
  for (const r of records) {
    const account = r.key as string;
    const amount = (r.value as { amount: number }).amount;
    const b = (balances.get(account) ?? 0) + amount;
    if (b > 1_000) continue; // the poison record: rolled back
    balances.set(account, b);
    out.push({ account, balance: b });
  }
  return out;
}

const stream = (n: number, start = 0): TestRecord[] =>
  Array.from({ length: n }, (_, i) =>
    deposit('orders', 0, start + i, `acct-${(start + i) % 3}`, (start + i) % 5),
  );

function setup() {
  const snapshots = new MemorySnapshotStore();
  const commits = new MemoryCommitStore();
  const config = loadConfig(
    {},
    { bucket: 'b', table: 't', pipeline: 'p', epochMaxRecords: 4, poisonPolicy: 'quarantine' },
  );
  const container = (receiver: Receiver, options: { tag?: string; commits?: CommitStore } = {}) => {
    const engine = new EpochEngine({
      processor: processor(receiver, options.tag),
      config,
      snapshots,
      commits: options.commits ?? commits,
    });
    return (records: TestRecord[]) => engine.processEvent(mskEvent(records));
  };
  return { container, commits };
}

describe('customOutput', () => {
  it('delivers each committed output with its stable id, in emit order, in batches of batchSize', async () => {
    const s = setup();
    const receiver = new Receiver();
    await s.container(receiver)(stream(10));
    expect(receiver.messages.map((m) => m.value)).toEqual(fold(stream(10)));
    expect(receiver.messages.map((m) => m.id)).toEqual([
      'p/orders/0/1/0',
      'p/orders/0/1/1',
      'p/orders/0/1/2',
      'p/orders/0/1/3',
      'p/orders/0/2/0',
      'p/orders/0/2/1',
      'p/orders/0/2/2',
      'p/orders/0/2/3',
      'p/orders/0/3/0',
      'p/orders/0/3/1',
    ]);
    expect(receiver.batches.map((b) => [b.epoch, b.messages.length])).toEqual([
      [1, 3],
      [1, 1],
      [2, 3],
      [2, 1],
      [3, 2],
    ]);
    const first = receiver.batches[0]!;
    expect(first).toMatchObject({ output: 'totals', pipeline: 'p', topic: 'orders', partition: 0, epoch: 1 });
    expect(first.messages[0]).toEqual({
      id: 'p/orders/0/1/0',
      outputId: { pipeline: 'p', topic: 'orders', partition: 0, epoch: 1, seq: 0 },
      value: { account: 'acct-0', balance: 0 },
      json: '{"account":"acct-0","balance":0}',
    });
  });

  it('is at least once: a failed deliver redelivers the whole epoch; deduplicating on the id gives the fold', async () => {
    const s = setup();
    const receiver = new Receiver();
    const run = s.container(receiver);
    receiver.failNext = 1;
    const err = await run(stream(10)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchFailedError);
    const cause = (err as BatchFailedError).failures[0]!.error;
    expect(cause).toBeInstanceOf(OutputDeliveryError);
    expect(cause).toMatchObject({ retriable: true });
    expect((cause as Error).message).toMatch(/custom output 'totals'.*503/);
    await run(stream(10));
    // The first batch of epoch 1 arrived twice: once before the failure, once in the redelivery.
    expect(receiver.messages.map((m) => m.id).filter((id) => id === 'p/orders/0/1/0')).toHaveLength(2);
    expect(receiver.messages.length).toBeGreaterThan(10);
    expect(receiver.deduplicated().map((m) => m.value)).toEqual(fold(stream(10)));
  });

  it('a restored container redelivers the last committed epoch; the ids are the same', async () => {
    const s = setup();
    const receiver = new Receiver();
    await s.container(receiver)(stream(6));
    const before = receiver.messages.length;
    await s.container(receiver)([...stream(6), ...stream(3, 6)]); // cold start, then new records
    const again = receiver.messages.slice(before, before + 2);
    expect(again.map((m) => m.id)).toEqual(['p/orders/0/2/0', 'p/orders/0/2/1']);
    expect(again.map((m) => m.json)).toEqual(receiver.messages.slice(4, 6).map((m) => m.json));
    expect(receiver.deduplicated().map((m) => m.value)).toEqual(fold(stream(9)));
  });

  it('a value with no JSON form fails its record (rolled back, quarantined), not the delivery', async () => {
    const s = setup();
    const receiver = new Receiver();
    const records = [...stream(3), deposit('orders', 0, 3, 'acct-0', 5_000), ...stream(2, 4)];
    const summary = await s.container(receiver)(records);
    expect(summary.quarantined).toBe(1);
    expect(receiver.messages.map((m) => m.value)).toEqual(fold(records));
  });

  it('an attempt that loses its commit race never delivers', async () => {
    const s = setup();
    const receiver = new Receiver();
    const hold = gate();
    const reached = gate();
    const slow = new HookedCommitStore(s.commits);
    slow.beforeCommit = async () => {
      reached.open();
      await hold.wait;
    };
    const loser = s
      .container(receiver, { tag: 'A', commits: slow })(stream(4))
      .catch((e: unknown) => e);
    await reached.wait;
    await s.container(receiver, { tag: 'B' })(stream(4));
    hold.open();
    await loser;
    expect(new Set(receiver.messages.map((m) => m.value.by))).toEqual(new Set(['B']));
    expect(receiver.deduplicated().map(({ value: { by: _, ...v } }) => v)).toEqual(fold(stream(4)));
  });

  it('validates its options', () => {
    expect(() => customOutput({} as never)).toThrow(/deliver must be a function/);
    expect(() => customOutput({ deliver: async () => {}, batchSize: 0 })).toThrow(/batchSize/);
  });
});
