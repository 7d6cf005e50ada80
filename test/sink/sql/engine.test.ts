/**
 * The SQL output end to end: the real epoch engine, commits in PostgreSQL or MariaDB (the servers the
 * test run started), snapshots in memory, outputs in tables of the same database, compared with an
 * independent fold of the input. A crash before the commit, a lost commit race, a commit whose
 * connection dies while it waits, redeliveries, and many epochs upserting the same keys from racing
 * and replaced containers: the tables always end as the fold says, every row once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mskEvent, type TestRecord } from '../../../harness/esm/mskEvent.ts';
import { gate, HookedCommitStore, SimulatedCrash } from '../../../harness/faultyStores.ts';
import { SeededRandom } from '../../../harness/seededRandom.ts';
import { EpochEngine } from '../../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../../lib/checkpoint/processor.ts';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import { loadConfig } from '../../../lib/config/config.ts';
import { BatchFailedError, PoisonRecordError } from '../../../lib/errors.ts';
import {
  readSqlOutputRows,
  type SqlDialectName,
  type SqlReadRow,
  sortSqlRows,
  sqlOutput,
} from '../../../lib/sink/sql/index.ts';
import { valueState } from '../../../lib/state/descriptors.ts';
import { MemorySnapshotStore } from '../../../lib/store/memory/memoryStores.ts';
import { FC_SEED } from '../../helpers/fastCheck.ts';
import type { DatabaseBackend } from '../../store/databases.ts';
import { type Admin, adminOf, createTable, DIALECTS, uniqueName } from './helpers.ts';

/** Balances fit 8 digits: a deposit that would overflow fails its emit, so its record is quarantined. */
const MAX_BALANCE = 99_999_999;

interface Change {
  account: string;
  /** null: the account was closed (a tombstone). */
  balance: number | null;
}

interface Movement {
  account: string;
  amount: number;
  offset: bigint;
}

function ledger(tables: { balances: string; movements: string }) {
  const outputs = {
    balances: sqlOutput<Change>({
      table: tables.balances,
      key: 'account',
      columns: {
        account: { type: 'text', maxLength: 32 },
        balance: { type: 'numeric', precision: 8, scale: 0 },
      },
      identity: true,
      write: (c) =>
        c.balance === null
          ? { delete: { account: c.account } }
          : { upsert: { account: c.account, balance: c.balance } },
    }),
    // Append-only: a row doubled by a redelivery or a zombie would show.
    movements: sqlOutput<Movement>({
      table: tables.movements,
      columns: { account: { type: 'text', maxLength: 32 }, amount: 'bigint', kafka_offset: 'bigint' },
      identity: { partition: 'kafka_partition', epoch: 'epoch', seq: 'seq' },
      row: (m) => ({ account: m.account, amount: m.amount, kafka_offset: m.offset }),
    }),
  };
  return defineProcessor({
    state: { balance: valueState<number>() },
    poisonPolicy: 'quarantine',
    outputs,
    process(record, { state, outputs, key }) {
      if (key === null) throw new PoisonRecordError('no account');
      if (record.value === null) {
        state.balance.clear();
        outputs.balances.emit({ account: key, balance: null });
        return;
      }
      const amount = (JSON.parse(record.value.toString()) as { amount: number }).amount;
      const balance = (state.balance.get() ?? 0) + amount;
      state.balance.set(balance);
      outputs.movements.emit({ account: key, amount, offset: record.offset });
      // Beyond numeric(8, 0): the emit throws, the record is rolled back (its movement too) and quarantined.
      outputs.balances.emit({ account: key, balance });
    },
  });
}

/** The tables the input should leave, computed without Tidemark: each record once, in offset order per partition. */
function fold(records: readonly TestRecord[]): { balances: SqlReadRow[]; movements: SqlReadRow[] } {
  const balances = new Map<string, number>();
  const movements: SqlReadRow[] = [];
  const seen = new Set<string>();
  const ordered = [...records].sort(
    (a, b) => (a.partition ?? 0) - (b.partition ?? 0) || Number(a.offset) - Number(b.offset),
  );
  for (const r of ordered) {
    const id = `${r.partition ?? 0}/${r.offset}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const account = r.key as string;
    if (r.value === null) {
      balances.delete(account);
      continue;
    }
    const amount = (r.value as { amount: number }).amount;
    const balance = (balances.get(account) ?? 0) + amount;
    if (balance > MAX_BALANCE) continue; // quarantined
    balances.set(account, balance);
    movements.push({ account, amount: BigInt(amount), kafka_offset: BigInt(r.offset) });
  }
  return {
    balances: [...balances].map(([account, balance]) => ({ account, balance: String(balance) })),
    movements,
  };
}

const deposit = (partition: number, offset: number, account: string, amount: number | null): TestRecord => ({
  topic: 'orders',
  partition,
  offset,
  key: account,
  value: amount === null ? null : { amount },
});

/** `n` deposits from `start` over `accounts` accounts (amount = offset % 7 + 1). */
const deposits = (n: number, accounts: number, start = 0, partition = 0): TestRecord[] =>
  Array.from({ length: n }, (_, i) =>
    deposit(partition, start + i, `a${(start + i) % accounts}`, ((start + i) % 7) + 1),
  );

interface Container {
  engine: EpochEngine<ReturnType<typeof ledger>['state'], NonNullable<ReturnType<typeof ledger>['outputs']>>;
  commits: HookedCommitStore;
}

for (const [name, dialect, start] of DIALECTS) {
  describe(`${name}: the SQL output through the engine`, () => {
    let b: DatabaseBackend;
    let admin: Admin;
    beforeAll(async () => {
      b = await start();
      admin = await adminOf(dialect);
    });
    afterAll(async () => {
      await admin?.end();
      await b?.close();
    });

    async function world() {
      const pipeline = uniqueName('p');
      const processor = ledger({ balances: uniqueName('balances'), movements: uniqueName('movements') });
      const { balances, movements } = processor.outputs!;
      await createTable(admin, balances, dialect);
      await createTable(admin, movements, dialect);
      const snapshots = new MemorySnapshotStore();
      const read = (o: typeof balances | typeof movements) =>
        readSqlOutputRows(o, { store: dialect as SqlDialectName, url: b.url, tls: 'off' });
      return {
        pipeline,
        task: (partition = 0): TaskId => ({ pipeline, topic: 'orders', partition }),
        container(epochMaxRecords = 1000): Container {
          const commits = new HookedCommitStore(b.commits);
          const engine = new EpochEngine({
            processor,
            config: loadConfig(
              {},
              { bucket: 'b', table: 't', pipeline, poisonPolicy: 'quarantine', epochMaxRecords },
            ),
            snapshots,
            commits,
          });
          return { engine, commits };
        },
        async tables() {
          return { balances: await read(balances), movements: await read(movements) };
        },
        expected(records: readonly TestRecord[]) {
          const f = fold(records);
          return {
            balances: sortSqlRows(balances, f.balances),
            movements: sortSqlRows(movements, f.movements),
          };
        },
        async identities() {
          return readSqlOutputRows(balances, {
            store: dialect as SqlDialectName,
            url: b.url,
            tls: 'off',
            identity: true,
          });
        },
      };
    }

    it('commits rows with the epoch: a crash before the commit and a lost race leave none of theirs', async () => {
      const w = await world();
      const input = deposits(12, 4);
      // A crashes just before its commit: nothing written.
      const a = w.container(5);
      a.commits.beforeCommit = () => {
        throw new SimulatedCrash('before commit');
      };
      await expect(a.engine.processEvent(mskEvent(input))).rejects.toThrow(BatchFailedError);
      expect(await w.tables()).toEqual({ balances: [], movements: [] });
      expect(await b.commits.read(w.task())).toBeUndefined();
      // B pauses just before committing its first epoch (epochs of 3 records); C commits the batch
      // meanwhile (epochs of 5); then B's commit, with its rows, loses and writes nothing.
      const bc = w.container(3);
      const paused = gate();
      const reached = gate();
      bc.commits.beforeCommit = async () => {
        bc.commits.beforeCommit = undefined;
        reached.open();
        await paused.wait;
      };
      const bRun = bc.engine.processEvent(mskEvent(input));
      await reached.wait;
      const c = w.container(5);
      expect(await c.engine.processEvent(mskEvent(input))).toMatchObject({ epochsCommitted: 3, outputs: 24 });
      const afterC = await w.tables();
      paused.open();
      expect(await bRun).toMatchObject({ commitConflicts: 1, epochsCommitted: 0 });
      expect(await w.tables()).toEqual(afterC);
      expect(afterC).toEqual(w.expected(input));
      // Each row carries the identity of the output that last wrote it (a3: records 3, 7, 11; epoch 3).
      expect((await w.identities()).find((r) => r.account === 'a3')).toEqual({
        account: 'a3',
        balance: String(4 + 1 + 5),
        tidemark_pipeline: w.pipeline,
        tidemark_topic: 'orders',
        tidemark_partition: 0,
        tidemark_epoch: 3n,
        tidemark_seq: 3,
      });
    });

    it('commits once when the connection dies while the commit waits; redeliveries change nothing', async () => {
      const w = await world();
      const first = deposits(20, 6);
      const c = w.container();
      await c.engine.processEvent(mskEvent(first));
      // The next epoch's commit waits on a lock; its connection is killed; the store finds the task
      // untouched and commits again, rows included, once the lock is gone.
      const second = deposits(20, 6, 20);
      const summary = await b.interruptCommit!(() => c.engine.processEvent(mskEvent(second)));
      expect(summary).toMatchObject({ epochsCommitted: 1, commitConflicts: 0 });
      expect((await b.commits.read(w.task()))?.epoch).toBe(2);
      expect(await w.tables()).toEqual(w.expected([...first, ...second]));
      // The ESM sends both batches again, to this container and to a cold one.
      const before = await w.tables();
      expect(await c.engine.processEvent(mskEvent([...first, ...second]))).toMatchObject({
        applied: 0,
        duplicatesSkipped: 40,
      });
      expect(await w.container().engine.processEvent(mskEvent(second))).toMatchObject({
        applied: 0,
        epochsCommitted: 0,
      });
      expect(await w.tables()).toEqual(before);
    });

    it('leaves what an independent fold says after many epochs upserting the same keys, with racing and replaced containers', async () => {
      // The file's seed (TIDEMARK_FC_SEED replays it), reported by every assertion below.
      const rnd = new SeededRandom(FC_SEED).derive(dialect);
      const seed = `TIDEMARK_FC_SEED=${FC_SEED}`;
      const w = await world();
      const input: TestRecord[] = [];
      const next = [0, 0];
      let c = w.container(rnd.int(2, 20));
      let previous: TestRecord[] = [];
      for (let e = 0; e < 14; e++) {
        const batch: TestRecord[] = [];
        for (let i = rnd.int(4, 30); i > 0; i--) {
          const partition = rnd.int(0, 1);
          const kind = rnd.weighted({ deposit: 90, close: 7, tooBig: 3 });
          const amount = kind === 'close' ? null : kind === 'tooBig' ? MAX_BALANCE - 3 : rnd.int(1, 9);
          batch.push(deposit(partition, next[partition]!++, `p${partition}-a${rnd.int(0, 5)}`, amount));
        }
        input.push(...batch);
        // Sometimes the previous batch comes again with this one (the ESM re-delivers), another
        // container takes over (cold: it restores from the commit), or two race on the same batch.
        const event = mskEvent(rnd.chance(0.3) ? [...previous, ...batch] : batch);
        if (rnd.chance(0.25)) c = w.container(rnd.int(2, 20));
        if (rnd.chance(0.2)) {
          const racer = w.container(rnd.int(2, 20));
          const results = await Promise.allSettled([
            c.engine.processEvent(event),
            racer.engine.processEvent(event),
          ]);
          // A loser may fail its invocation; the ESM retries it.
          if (results.every((r) => r.status === 'rejected')) await c.engine.processEvent(event);
        } else await c.engine.processEvent(event);
        previous = batch;
      }
      expect(await w.tables(), seed).toEqual(w.expected(input));
    });
  });
}
