/**
 * The DynamoDB output end to end: the real epoch engine, commits in DynamoDB Local (or in memory),
 * snapshots in memory, outputs in a DynamoDB Local table, compared with an independent fold of the
 * input. Crashes before the commit and between delivery chunks, lost commit races, zombies, racing
 * containers and redeliveries: the table always ends as the fold says, every output once.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { depositAmount } from '../../../examples/balances.ts';
import { mskEvent, type TestRecord } from '../../../harness/esm/mskEvent.ts';
import { gate, HookedCommitStore, SimulatedCrash } from '../../../harness/faultyStores.ts';
import { SeededRandom } from '../../../harness/seededRandom.ts';
import { EpochEngine } from '../../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../../lib/checkpoint/processor.ts';
import type { CommitStore, TaskId } from '../../../lib/checkpoint/stores.ts';
import { loadConfig } from '../../../lib/config/config.ts';
import { BatchFailedError, PoisonRecordError } from '../../../lib/errors.ts';
import { DynamoOutputSink } from '../../../lib/sink/dynamodb/DynamoOutputSink.ts';
import { dynamoOutput } from '../../../lib/sink/dynamodb/index.ts';
import { valueState } from '../../../lib/state/descriptors.ts';
import { createDynamoDBClient } from '../../../lib/store/clients.ts';
import { DynamoCommitStore } from '../../../lib/store/dynamodb/DynamoCommitStore.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../../lib/store/memory/memoryStores.ts';
import { FC_SEED } from '../../helpers/fastCheck.ts';
import {
  crash,
  createOutputTable,
  type HookedClient,
  hookedClient,
  type Item,
  readTable,
  type TransactHooks,
  userAttributes,
} from './helpers.ts';

const TABLE_ENV = 'TEST_DYNAMODB_OUTPUT_TABLE';
const ddb = createDynamoDBClient();
const clients: HookedClient[] = [];
afterAll(() => {
  ddb.destroy();
  for (const c of clients) c.client.destroy();
});

// -------------------------------------------------------------------------------------------------
// The processor: account balances, each change written to the table as a put (or a delete when the
// account is closed by a tombstone), and an update of the account's activity item.

interface Change {
  account: string;
  /** null: the account was closed. */
  balance: number | null;
  offset: number;
  amount: number;
}

const accounts = defineProcessor({
  state: { balance: valueState<number>() },
  poisonPolicy: 'quarantine',
  outputs: {
    totals: dynamoOutput<Change>({
      table: { env: TABLE_ENV },
      partitionKey: 'pk',
      write: (c) =>
        c.balance === null ? { delete: { pk: c.account } } : { put: { pk: c.account, balance: c.balance } },
    }),
    activity: dynamoOutput<Change>({
      table: { env: TABLE_ENV },
      partitionKey: 'pk',
      write: (c) =>
        c.balance === null
          ? { update: { pk: `activity#${c.account}` }, set: { lastOffset: c.offset }, remove: ['lastAmount'] }
          : { update: { pk: `activity#${c.account}` }, set: { lastOffset: c.offset, lastAmount: c.amount } },
    }),
  },
  process(record, { state, outputs, key }) {
    if (key === null) throw new PoisonRecordError('no account');
    const offset = Number(record.offset);
    if (record.value === null) {
      state.balance.clear();
      const closed = { account: key, balance: null, offset, amount: 0 };
      outputs.totals.emit(closed);
      outputs.activity.emit(closed);
      return;
    }
    const amount = depositAmount(record.value);
    const balance = (state.balance.get() ?? 0) + amount;
    state.balance.set(balance);
    outputs.activity.emit({ account: key, balance, offset, amount });
    // A balance beyond 2^53 cannot be written exactly: the emit fails, and the record with it (its
    // state change and its activity output are rolled back, the record quarantined).
    outputs.totals.emit({ account: key, balance, offset, amount });
  },
});

/** The table the input should leave, computed without Tidemark: each record once, in offset order. */
function fold(records: readonly TestRecord[]): Map<string, Item> {
  const balances = new Map<string, number>();
  const table = new Map<string, Item>();
  const seen = new Set<string>();
  const ordered = [...records].sort(
    (a, b) => (a.partition ?? 0) - (b.partition ?? 0) || Number(a.offset) - Number(b.offset),
  );
  for (const r of ordered) {
    const id = `${r.partition ?? 0}/${r.offset}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const account = r.key as string;
    const activity = `activity#${account}`;
    const offset = Number(r.offset);
    if (r.value === null) {
      balances.delete(account);
      table.delete(account);
      const { lastAmount: _, ...rest } = table.get(activity) ?? { pk: activity };
      table.set(activity, { ...rest, lastOffset: offset });
      continue;
    }
    const amount = (r.value as { amount: number }).amount;
    const balance = (balances.get(account) ?? 0) + amount;
    if (!Number.isSafeInteger(balance)) continue; // quarantined
    balances.set(account, balance);
    table.set(account, { pk: account, balance });
    table.set(activity, {
      ...(table.get(activity) ?? { pk: activity }),
      lastOffset: offset,
      lastAmount: amount,
    });
  }
  return table;
}

async function tableContents(table: string): Promise<{ items: Map<string, Item>; fences: Item[] }> {
  const { items, fences } = await readTable(ddb, table);
  return { items: new Map([...items].map(([k, v]) => [k, userAttributes(v)])), fences };
}

// -------------------------------------------------------------------------------------------------
// A pipeline: shared stores, and containers (engines with their own sink client and hooks).

interface Container {
  engine: EpochEngine<typeof accounts.state, NonNullable<typeof accounts.outputs>>;
  client: HookedClient;
  commits: HookedCommitStore;
}

interface World {
  pipeline: string;
  table: string;
  commits: CommitStore;
  container(options?: { hooks?: TransactHooks; epochMaxRecords?: number }): Container;
}

async function world(commitStore: 'dynamodb' | 'memory'): Promise<World> {
  const pipeline = `dyn-${randomUUID().slice(0, 8)}`;
  const table = await createOutputTable(ddb);
  const snapshots = new MemorySnapshotStore();
  const commits: CommitStore =
    commitStore === 'dynamodb'
      ? new DynamoCommitStore({ client: ddb, table: process.env.TIDEMARK_TABLE! })
      : new MemoryCommitStore();
  return {
    pipeline,
    table,
    commits,
    container({ hooks = {}, epochMaxRecords = 1000 } = {}) {
      const client = hookedClient(hooks);
      clients.push(client);
      const hooked = new HookedCommitStore(commits);
      const engine = new EpochEngine({
        processor: accounts,
        config: loadConfig(
          {},
          { bucket: 'b', table: 't', pipeline, poisonPolicy: 'quarantine', epochMaxRecords },
        ),
        snapshots,
        commits: hooked,
        env: { ...process.env, [TABLE_ENV]: table },
        sinks: (_descriptor, env) => new DynamoOutputSink(env, { client: client.client }),
      });
      return { engine, client, commits: hooked };
    },
  };
}

const deposit = (partition: number, offset: number, account: string, amount: number | null): TestRecord => ({
  topic: 'orders',
  partition,
  offset,
  key: account,
  value: amount === null ? null : { amount },
});

/** `n` deposits from `start`, over `accounts` accounts (amount = offset % 7 + 1). */
const deposits = (n: number, accountCount: number, start = 0, partition = 0): TestRecord[] =>
  Array.from({ length: n }, (_, i) =>
    deposit(partition, start + i, `a${(start + i) % accountCount}`, ((start + i) % 7) + 1),
  );

const taskOf = (w: World, partition = 0): TaskId => ({ pipeline: w.pipeline, topic: 'orders', partition });

describe('in the commit: small epochs', () => {
  it('commits outputs atomically with the epoch: a crash before the commit and a lost race leave none', async () => {
    const w = await world('dynamodb');
    const input = deposits(12, 4);
    // A crashes just before its commit: nothing written.
    const a = w.container({ epochMaxRecords: 5 });
    a.commits.beforeCommit = () => {
      throw new SimulatedCrash('before commit');
    };
    await expect(a.engine.processEvent(mskEvent(input))).rejects.toThrow(BatchFailedError);
    expect((await tableContents(w.table)).items.size).toBe(0);
    expect(await w.commits.read(taskOf(w))).toBeUndefined();
    // B pauses just before committing its first epoch (it cuts epochs of 3 records); C commits the
    // batch meanwhile (epochs of 5); then B's commit, with its attached outputs, loses.
    const b = w.container({ epochMaxRecords: 3 });
    const paused = gate();
    const reached = gate();
    b.commits.beforeCommit = async () => {
      b.commits.beforeCommit = undefined;
      reached.open();
      await paused.wait;
    };
    const bRun = b.engine.processEvent(mskEvent(input));
    await reached.wait;
    const c = w.container({ epochMaxRecords: 5 });
    expect(await c.engine.processEvent(mskEvent(input))).toMatchObject({ epochsCommitted: 3, outputs: 24 });
    const afterC = await readTable(ddb, w.table);
    paused.open();
    expect(await bRun).toMatchObject({ commitConflicts: 1, epochsCommitted: 0 });
    expect(await readTable(ddb, w.table)).toEqual(afterC);
    const t = await tableContents(w.table);
    expect(t.items).toEqual(fold(input));
    // In the commit: no delivery transaction, no fence.
    expect(t.fences).toEqual([]);
    expect([a.client.transactions, b.client.transactions, c.client.transactions]).toEqual([0, 0, 0]);
    expect(afterC.items.get('a3')).toMatchObject({ tidemarkEpoch: 3, tidemarkSeq: 3, balance: 4 + 1 + 5 });
  });
});

describe('after the commit: large epochs', () => {
  it('finishes a delivery that crashed between chunks on the retry, each chunk once', async () => {
    const w = await world('dynamodb');
    // 300 records over 260 accounts: 520 writes, six delivery transactions.
    const first = deposits(300, 260);
    const a = w.container({ hooks: { after: (n) => (n === 2 ? crash('after chunk 1') : undefined) } });
    await expect(a.engine.processEvent(mskEvent(first))).rejects.toThrow(/simulated crash after chunk 1/);
    expect((await w.commits.read(taskOf(w)))?.epoch).toBe(1);
    expect((await tableContents(w.table)).items.size).toBe(198);
    // The ESM retries on another container, after DynamoDB forgot the tokens: the fence skips the
    // two chunks that are in, the four others are delivered.
    const b = w.container({ hooks: { forgetTokens: true } });
    expect(await b.engine.processEvent(mskEvent(first))).toMatchObject({
      applied: 0,
      duplicatesSkipped: 300,
    });
    expect([b.client.transactions, b.client.refused]).toEqual([5, 1]);
    let t = await tableContents(w.table);
    expect(t.items).toEqual(fold(first));
    expect(t.fences).toEqual([
      expect.objectContaining({ tidemarkEpoch: 1, tidemarkChunk: 5, tidemarkChunks: 6 }),
    ]);
    // The next, small epoch commits with its outputs.
    const second = deposits(50, 20, 300);
    await b.engine.processEvent(mskEvent(second));
    t = await tableContents(w.table);
    expect(t.items).toEqual(fold([...first, ...second]));
    expect(b.client.transactions).toBe(5);
  });

  it.each(['in the commit', 'after the commit'])(
    'lets a zombie deliver an older epoch after a newer one %s deleted a key: it stays deleted',
    async (how) => {
      const w = await world('dynamodb');
      const first = [...deposits(299, 260), deposit(0, 299, 'x', 5)];
      // A commits epoch 1 and pauses before its first delivery transaction.
      const paused = gate();
      const reached = gate();
      const a = w.container({
        hooks: {
          forgetTokens: true,
          before: async (n) => {
            if (n !== 1) return;
            reached.open();
            await paused.wait;
          },
        },
      });
      const aRun = a.engine.processEvent(mskEvent(first));
      await reached.wait;
      // The ESM retries on B, which delivers epoch 1, then epoch 2 closes account x.
      const b = w.container();
      await b.engine.processEvent(mskEvent(first));
      const second = [
        deposit(0, 300, 'x', null),
        ...(how === 'in the commit'
          ? deposits(5, 3, 301)
          : deposits(150, 150, 301).map((r) => ({ ...r, key: `n${r.offset}` }))),
      ];
      await b.engine.processEvent(mskEvent(second));
      const before = await readTable(ddb, w.table);
      expect(before.items.has('x')).toBe(false);
      // A wakes up and delivers epoch 1: refused by the fence, nothing written.
      paused.open();
      await aRun;
      expect(a.client.refused).toBe(1);
      expect(await readTable(ddb, w.table)).toEqual(before);
      expect((await tableContents(w.table)).items).toEqual(fold([...first, ...second]));
    },
  );
});

describe('containers racing, redeliveries, many epochs', () => {
  it('lets two containers racing on the same batches write every output once', async () => {
    const w = await world('dynamodb');
    const x = w.container({ epochMaxRecords: 60 });
    const y = w.container({ epochMaxRecords: 60 });
    const all: TestRecord[] = [];
    for (let e = 0; e < 4; e++) {
      // Even batches: 10 accounts (epochs fit the commit); odd: 60 new accounts (delivered after it).
      const batch =
        e % 2 === 0
          ? deposits(120, 10, all.length)
          : deposits(120, 60, all.length).map((r) => ({ ...r, key: `b${e}-${r.key}` }));
      all.push(...batch);
      const event = mskEvent(batch);
      const results = await Promise.allSettled([x.engine.processEvent(event), y.engine.processEvent(event)]);
      // A loser may fail its invocation (a transaction conflict); the ESM retries it.
      for (let retry = 0; results.every((r) => r.status === 'rejected') && retry < 3; retry++) {
        results[0] = (await Promise.allSettled([x.engine.processEvent(event)]))[0]!;
      }
      expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
      expect((await tableContents(w.table)).items).toEqual(fold(all));
    }
  });

  it.each(['dynamodb', 'memory'] as const)(
    'leaves what an independent fold says after many epochs upserting the same keys (commits in %s)',
    async (store) => {
      // The file's seed (TIDEMARK_FC_SEED replays it), reported by every assertion below.
      const rnd = new SeededRandom(FC_SEED).derive(store);
      const seed = `TIDEMARK_FC_SEED=${FC_SEED}`;
      const w = await world(store);
      const input: TestRecord[] = [];
      const next = [0, 0];
      let c = w.container({ epochMaxRecords: rnd.int(2, 20) });
      let previous: TestRecord[] = [];
      for (let e = 0; e < 16; e++) {
        const batch: TestRecord[] = [];
        for (let i = rnd.int(4, 40); i > 0; i--) {
          const partition = rnd.int(0, 1);
          const account = `p${partition}-a${rnd.int(0, 5)}`;
          const kind = rnd.weighted({ deposit: 90, close: 7, tooBig: 3 });
          const amount =
            kind === 'close' ? null : kind === 'tooBig' ? Number.MAX_SAFE_INTEGER - 3 : rnd.int(1, 9);
          batch.push(deposit(partition, next[partition]!++, account, amount));
        }
        input.push(...batch);
        // Sometimes the previous batch comes again with this one (the ESM re-delivers), or another
        // container takes over (cold: it restores from the commit and its outbox).
        const event = rnd.chance(0.3) ? [...previous, ...batch] : batch;
        if (rnd.chance(0.25)) c = w.container({ epochMaxRecords: rnd.int(2, 20) });
        await c.engine.processEvent(mskEvent(event));
        previous = batch;
      }
      const t = await tableContents(w.table);
      expect(t.items, seed).toEqual(fold(input));
      // Commits in DynamoDB: every epoch (at most 40 writes) went with its commit. In memory: after it.
      expect(t.fences.length, seed).toBe(store === 'dynamodb' ? 0 : 2);
    },
  );
});
