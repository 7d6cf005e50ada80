/**
 * Kafka → Iceberg end to end on the local servers: a processor emitting rows → the epoch engine →
 * the Iceberg sink (data files + staged records in the S3 server) → the scheduled committer
 * (`createIcebergCommitter`, DynamoDB catalog on DynamoDB Local) → the table, read by icebird and its
 * data files by DuckDB, both equal to a reference fold. With crashes between staging and commit,
 * after the catalog commit before cleanup, a lost swap response, redeliveries, a zombie container
 * and two committers racing: 0 rows lost, 0 duplicated.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { mskEvent, type TestRecord } from '../../../harness/esm/mskEvent.ts';
import { gate, SimulatedCrash } from '../../../harness/faultyStores.ts';
import { commitIcebergOutputs, queryParquetWithDuckDB, readIcebergOutput } from '../../../harness/iceberg.ts';
import { SeededRandom } from '../../../harness/seededRandom.ts';
import { EpochEngine } from '../../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../../lib/checkpoint/processor.ts';
import { loadConfig } from '../../../lib/config/config.ts';
import type { Delivery, OutputDescriptor, Sink } from '../../../lib/output/types.ts';
import type { IcebergCatalog } from '../../../lib/sink/iceberg/catalog.ts';
import { createIcebergCommitter } from '../../../lib/sink/iceberg/committerHandler.ts';
import { DynamoDbIcebergCatalog } from '../../../lib/sink/iceberg/DynamoDbIcebergCatalog.ts';
import type { IcebergFileIO } from '../../../lib/sink/iceberg/fileIO.ts';
import { type IcebergOutputOptions, icebergOutput } from '../../../lib/sink/iceberg/icebergOutput.ts';
import { defineIcebergTable } from '../../../lib/sink/iceberg/schema.ts';
import { valueState } from '../../../lib/state/descriptors.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../../lib/store/memory/memoryStores.ts';
import { FC_SEED, replayCommand } from '../../helpers/fastCheck.ts';
import { bucket, dynamo, io, racingCatalog, s3 } from './helpers.ts';

afterAll(() => {
  s3.destroy();
  dynamo.destroy();
});

const schema = defineIcebergTable({
  columns: [
    { name: 'account', type: 'string', required: true },
    { name: 'part', type: 'int', required: true },
    { name: 'offset', type: 'long', required: true },
    { name: 'amount', type: 'long', required: true },
    { name: 'balance', type: 'long', required: true },
    { name: 'ts', type: 'timestamptz', required: true },
  ],
  partitionBy: [{ column: 'account', transform: 'bucket[2]' }],
});

interface Row {
  account: string;
  part: number;
  offset: bigint;
  amount: number;
  balance: number;
  ts: Date;
}

function ledger(output: OutputDescriptor<Row>) {
  return defineProcessor({
    state: { balance: valueState<number>() },
    outputs: { rows: output },
    process(record, { state, outputs, key }) {
      const amount = Number(record.value!.toString('utf8'));
      const balance = (state.balance.get() ?? 0) + amount;
      state.balance.set(balance);
      outputs.rows.emit({
        account: key!,
        part: record.partition,
        offset: record.offset,
        amount,
        balance,
        ts: new Date(record.timestamp),
      });
    },
  });
}

const TOPIC = 'deposits';
const ACCOUNTS = ['alice', 'bob', 'carol', 'dave', 'erin'];

/** Batch `b` of a partition: `n` records from offset b*n, deterministic accounts and amounts. */
function batch(partition: number, b: number, n = 12): TestRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const offset = b * n + i;
    return {
      topic: TOPIC,
      partition,
      offset,
      key: ACCOUNTS[(offset * 7 + partition) % ACCOUNTS.length]!,
      value: String(((offset * 13 + partition * 5) % 21) - 7),
      timestamp: 1_780_000_000_000 + offset * 1000,
    };
  });
}

/** The reference fold: every record of each partition in offset order, balances per (partition, account). */
function fold(records: readonly TestRecord[]): string[] {
  const seen = new Set<string>();
  const balances = new Map<string, number>();
  const rows: string[] = [];
  const sorted = [...records].sort(
    (a, b) => a.partition! - b.partition! || Number(a.offset) - Number(b.offset),
  );
  for (const r of sorted) {
    const id = `${r.partition}/${r.offset}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const k = `${r.partition}/${r.key}`;
    const balance = (balances.get(k) ?? 0) + Number(r.value);
    balances.set(k, balance);
    rows.push(`${r.partition}|${r.offset}|${r.key}|${r.value}|${balance}|${r.timestamp}`);
  }
  return rows.sort();
}

function fromIcebird(rows: Record<string, unknown>[]): string[] {
  return rows
    .map((r) => `${r.part}|${r.offset}|${r.account}|${r.amount}|${r.balance}|${(r.ts as Date).getTime()}`)
    .sort();
}

/** Lost and duplicated rows of a table against the fold (by partition and offset). */
function diff(actual: readonly string[], expected: readonly string[]) {
  const count = new Map<string, number>();
  for (const r of actual) count.set(r, (count.get(r) ?? 0) + 1);
  const duplicated = [...count.values()].reduce((n, c) => n + Math.max(0, c - 1), 0);
  const lost = expected.filter((r) => !count.has(r)).length;
  return { lost, duplicated, rows: actual.length };
}

type Engine = Pick<EpochEngine, 'processEvent'>;

interface Setup {
  pipeline: string;
  env: Record<string, string | undefined>;
  output: OutputDescriptor<Row>;
  processor: ReturnType<typeof ledger>;
  /** A new container's engine (optionally with its own sink provider). */
  engine: (sinks?: (d: OutputDescriptor, env: unknown) => Sink | Promise<Sink>) => Engine;
}

/** A fresh catalog table, warehouse and pipeline; one engine per call (a container) over shared memory stores. */
async function setup(extra: Partial<IcebergOutputOptions<Row>> = {}): Promise<Setup> {
  const pipeline = `ice-${randomUUID().slice(0, 8)}`;
  const catalogTable = `iceberg-${randomUUID().slice(0, 8)}`;
  await new DynamoDbIcebergCatalog({
    client: dynamo,
    io,
    warehouse: `s3://${bucket}/unused`,
    tableName: catalogTable,
  }).ensureCatalogTable();
  const env = {
    ...process.env,
    TIDEMARK_ICEBERG_WAREHOUSE: `s3://${bucket}/lake/${pipeline}`,
    TIDEMARK_ICEBERG_CATALOG_TABLE: catalogTable,
  };
  const output = icebergOutput<Row>({ table: 'ledger.movements', schema, ...extra });
  const processor = ledger(output);
  const snapshots = new MemorySnapshotStore();
  const commits = new MemoryCommitStore();
  const config = loadConfig({}, { bucket, table: 't', pipeline, epochMaxRecords: 5 });
  return {
    pipeline,
    env,
    output,
    processor,
    engine: (sinks) =>
      new EpochEngine({
        processor,
        config,
        snapshots,
        commits,
        env,
        ...(sinks ? { sinks: sinks as never } : {}),
      }),
  };
}

async function read(s: Setup) {
  return readIcebergOutput(s.output, { env: s.env, pipeline: s.pipeline });
}

describe('Kafka → Iceberg through the engine, the sink and the scheduled committer', () => {
  it('commits many epochs per snapshot; icebird and DuckDB read exactly the reference fold', async () => {
    const s = await setup({ maxRowsPerFile: 4 });
    const engine = s.engine();
    const commit = createIcebergCommitter(s.processor, { env: s.env, pipeline: s.pipeline, log: () => {} });
    const sent: TestRecord[] = [];
    const runs = [];
    for (let b = 0; b < 4; b++) {
      const records = [0, 1, 2].flatMap((p) => batch(p, b));
      sent.push(...records);
      await engine.processEvent(mskEvent(records));
      if (b % 2 === 1) runs.push(await commit());
    }
    // 3 partitions × 4 batches of 12 records in epochs of at most 5 (5, 5, 2): 12 epochs per
    // partition, committed by 2 runs of the committer.
    expect(runs.map((r) => r.tables[0]!.epochs)).toEqual([18, 18]);
    expect(runs.map((r) => r.tables[0]!.tasks)).toEqual([3, 3]);
    expect(runs.every((r) => r.tables[0]!.cleaned === r.tables[0]!.epochs)).toBe(true);
    const table = await read(s);
    expect(table.metadata.snapshots).toHaveLength(2); // one commit per run, not one per epoch
    expect(table.staged).toEqual([]);
    expect([...table.progress].sort()).toEqual([
      ['deposits/0', 12],
      ['deposits/1', 12],
      ['deposits/2', 12],
    ]);
    const expected = fold(sent);
    const icebird = fromIcebird(table.rows);
    expect(diff(icebird, expected)).toEqual({ lost: 0, duplicated: 0, rows: 144 });
    expect(icebird).toEqual(expected);
    const duck = await queryParquetWithDuckDB(
      io,
      table.dataFiles,
      `SELECT part || '|' || "offset" || '|' || account || '|' || amount || '|' || balance || '|' || epoch_ms(ts) AS r FROM t`,
    );
    expect(duck.map((r) => String(r.r)).sort()).toEqual(expected);
    // Files were cut at 4 rows: more files than epochs, none larger.
    expect(table.dataFiles.length).toBeGreaterThan(30);
  });

  it('survives crashes between staging and commit, after the commit before cleanup, and a lost swap response', async () => {
    let failDeletes = 0;
    let loseSwapResponses = 0;
    const faultyIo: IcebergFileIO = {
      put: (u, b, o) => io.put(u, b, o),
      get: (u) => io.get(u),
      list: (p) => io.list(p),
      delete: async (uris) => {
        if (failDeletes > 0 && uris.some((u) => u.includes('/staged/'))) {
          failDeletes--;
          throw Object.assign(new Error('process died before cleanup'), { retriable: true });
        }
        return io.delete(uris);
      },
    };
    const catalogOf = (env: Record<string, string | undefined>, ctxIo: IcebergFileIO): IcebergCatalog => {
      const inner = new DynamoDbIcebergCatalog({
        client: dynamo,
        io: ctxIo,
        warehouse: env.TIDEMARK_ICEBERG_WAREHOUSE!,
        tableName: env.TIDEMARK_ICEBERG_CATALOG_TABLE!,
      });
      return {
        loadTable: (id) => inner.loadTable(id),
        defaultLocation: (id) => inner.defaultLocation(id),
        createTable: async (id, m) => {
          await inner.createNamespace(id.namespace);
          return inner.createTable(id, m);
        },
        commitTable: async (base, m) => {
          const outcome = await inner.commitTable(base, m);
          if (loseSwapResponses > 0 && outcome.status === 'committed') {
            loseSwapResponses--;
            throw Object.assign(new Error('socket hang up after the swap'), { retriable: true });
          }
          return outcome;
        },
      };
    };
    const s = await setup({ io: faultyIo, catalog: (ctx) => catalogOf(ctx.env, ctx.io) });
    const commit = createIcebergCommitter(s.processor, { env: s.env, pipeline: s.pipeline, log: () => {} });
    const sent: TestRecord[] = [];
    const send = async (engine: Engine, b: number) => {
      const records = [0, 1].flatMap((p) => batch(p, b));
      sent.push(...records);
      await engine.processEvent(mskEvent(records));
    };
    const engine = s.engine();
    await send(engine, 0);
    await commit();

    // 1. Staged, then no committer run (it crashed, or has not run yet): the table shows nothing new.
    await send(engine, 1);
    let table = await read(s);
    expect(table.staged.length).toBe(6);
    expect(diff(fromIcebird(table.rows), fold(sent)).lost).toBe(24);

    // 2. The committer commits, then dies before deleting the staged records: the run fails…
    failDeletes = 1;
    await expect(commit()).rejects.toThrow(/process died before cleanup/);
    table = await read(s);
    expect(table.staged.length).toBe(6);
    expect(diff(fromIcebird(table.rows), fold(sent))).toEqual({ lost: 0, duplicated: 0, rows: 48 });
    // …and the next run adds nothing, only cleans up.
    const cleanup = (await commit()).tables[0]!;
    expect(cleanup).toMatchObject({ epochs: 0, cleaned: 6, ok: true });
    expect(cleanup.snapshotId).toBeUndefined();

    // 3. The swap lands but its response is lost: the committer finds its snapshot on reload.
    await send(engine, 2);
    loseSwapResponses = 1;
    const lost = (await commit()).tables[0]!;
    expect(lost).toMatchObject({ epochs: 6, attempts: 2, cleaned: 6 });

    // 4. Redelivery: a new container restores each task and delivers its last outbox again (the
    //    table already has it: nothing staged), and the ESM re-sends a batch (skipped).
    await s.engine().processEvent(mskEvent([0, 1].flatMap((p) => batch(p, 2))));
    table = await read(s);
    expect(table.staged).toEqual([]);
    expect(diff(fromIcebird(table.rows), fold(sent))).toEqual({ lost: 0, duplicated: 0, rows: 72 });
    expect(fromIcebird(table.rows)).toEqual(fold(sent));
  });

  it('a zombie container that stages an epoch again after the committer removed its record adds no row', async () => {
    const s = await setup();
    const held = gate();
    const reached = gate();
    let holdEpoch: number | undefined;
    const slow = (inner: Promise<Sink>) => (): Sink => ({
      deliver: async (d: Delivery) => {
        if (d.epoch === holdEpoch) {
          holdEpoch = undefined;
          reached.open();
          await held.wait;
        }
        await (await inner).deliver(d);
      },
    });
    const zombieSink = s.output.createSink({ pipeline: s.pipeline, env: s.env, commitStore: 'memory' });
    const zombie = s.engine(slow(Promise.resolve(zombieSink)));
    const commit = createIcebergCommitter(s.processor, { env: s.env, pipeline: s.pipeline, log: () => {} });
    const sent: TestRecord[] = [...batch(0, 0, 5)];
    await zombie.processEvent(mskEvent(batch(0, 0, 5))); // epoch 1: its sink opened the table (no progress yet)
    holdEpoch = 2;
    const b1 = batch(0, 1, 5);
    sent.push(...b1);
    const z = zombie.processEvent(mskEvent(b1)); // epoch 2 committed; its delivery hangs
    await reached.wait;
    // Another container restores the task, delivers epoch 2, commits and delivers epoch 3.
    const b2 = batch(0, 2, 5);
    sent.push(...b2);
    await s.engine().processEvent(mskEvent([...b1, ...b2]));
    expect((await commit()).tables[0]).toMatchObject({ epochs: 3, cleaned: 3 });
    // The zombie wakes up: its sink knows no progress and stages epoch 2 again.
    held.open();
    await z;
    const table = await read(s);
    expect(table.staged).toEqual(['deposits/0/2']);
    const again = (await commit()).tables[0]!;
    expect(again).toMatchObject({ epochs: 0, cleaned: 1 });
    const after = await read(s);
    expect(after.staged).toEqual([]);
    expect(diff(fromIcebird(after.rows), fold(sent))).toEqual({ lost: 0, duplicated: 0, rows: 15 });
    expect(after.metadata.snapshots).toHaveLength(1);
  });

  it('two committers racing (the schedule and a manual run) add each epoch exactly once', async () => {
    let raced: (IcebergCatalog & { swaps: number }) | undefined;
    const s = await setup({
      catalog: (ctx) => {
        const inner = new DynamoDbIcebergCatalog({
          client: dynamo,
          io: ctx.io,
          warehouse: ctx.env.TIDEMARK_ICEBERG_WAREHOUSE!,
          tableName: ctx.env.TIDEMARK_ICEBERG_CATALOG_TABLE!,
        });
        // Table creation needs the namespace; the race is set up once the table exists.
        return {
          loadTable: (id) => inner.loadTable(id),
          defaultLocation: (id) => inner.defaultLocation(id),
          createTable: async (id, m) => {
            await inner.createNamespace(id.namespace);
            return inner.createTable(id, m);
          },
          commitTable: (base, m) => (raced ?? inner).commitTable(base, m),
        };
      },
    });
    const sent: TestRecord[] = [];
    const engine = s.engine();
    for (let b = 0; b < 2; b++) {
      const records = [0, 1, 2].flatMap((p) => batch(p, b, 10));
      sent.push(...records);
      await engine.processEvent(mskEvent(records));
    }
    // Both committers prepare on the same table version before either swaps: the race is certain.
    raced = racingCatalog(
      new DynamoDbIcebergCatalog({
        client: dynamo,
        io,
        warehouse: s.env.TIDEMARK_ICEBERG_WAREHOUSE!,
        tableName: s.env.TIDEMARK_ICEBERG_CATALOG_TABLE!,
      }),
      2,
    );
    const scheduled = createIcebergCommitter(s.processor, {
      env: s.env,
      pipeline: s.pipeline,
      log: () => {},
    });
    const manual = createIcebergCommitter(s.processor, { env: s.env, pipeline: s.pipeline, log: () => {} });
    const [a, b] = await Promise.all([scheduled(), manual()]);
    const runs = [a.tables[0]!, b.tables[0]!];
    expect(runs.every((r) => r.ok)).toBe(true);
    // 3 tasks × 4 epochs: one committer added them all; the other conflicted, re-checked, added none.
    expect(runs.map((r) => r.epochs).sort()).toEqual([0, 12]);
    expect(runs.find((r) => r.epochs === 0)!.attempts).toBeGreaterThan(1);
    expect(raced.swaps).toBeGreaterThanOrEqual(2);
    await commitIcebergOutputs(s.processor, { env: s.env, pipeline: s.pipeline });
    const table = await read(s);
    expect(table.staged).toEqual([]);
    expect(table.metadata.snapshots).toHaveLength(1);
    expect(diff(fromIcebird(table.rows), fold(sent))).toEqual({ lost: 0, duplicated: 0, rows: 60 });
  });

  it('a seeded schedule of batches, restores, failed deliveries and crashing or racing committers loses and duplicates no row', async () => {
    const rng = new SeededRandom(FC_SEED).derive('iceberg-schedule');
    const faults = { stagePut: 0, beforeSwap: 0, afterSwap: 0, lostResponse: 0, cleanup: 0 };
    const faultyIo: IcebergFileIO = {
      put: async (u, b, o) => {
        if (faults.stagePut > 0 && u.includes('/staged/')) {
          faults.stagePut--;
          throw Object.assign(new Error('S3 503 on the staged record'), { retriable: true });
        }
        return io.put(u, b, o);
      },
      get: (u) => io.get(u),
      list: (p) => io.list(p),
      delete: async (uris) => {
        if (faults.cleanup > 0 && uris.some((u) => u.includes('/staged/'))) {
          faults.cleanup--;
          throw new SimulatedCrash('before the committer deleted the staged records');
        }
        return io.delete(uris);
      },
    };
    const s = await setup({
      io: faultyIo,
      catalog: (ctx) => {
        const inner = new DynamoDbIcebergCatalog({
          client: dynamo,
          io: ctx.io,
          warehouse: ctx.env.TIDEMARK_ICEBERG_WAREHOUSE!,
          tableName: ctx.env.TIDEMARK_ICEBERG_CATALOG_TABLE!,
        });
        return {
          loadTable: (id) => inner.loadTable(id),
          defaultLocation: (id) => inner.defaultLocation(id),
          createTable: async (id, m) => {
            await inner.createNamespace(id.namespace);
            return inner.createTable(id, m);
          },
          commitTable: async (base, m) => {
            if (faults.beforeSwap > 0) {
              faults.beforeSwap--;
              throw new SimulatedCrash('after writing the metadata, before the swap');
            }
            const outcome = await inner.commitTable(base, m);
            if (outcome.status === 'committed' && faults.afterSwap > 0) {
              faults.afterSwap--;
              throw new SimulatedCrash('right after the swap');
            }
            if (outcome.status === 'committed' && faults.lostResponse > 0) {
              faults.lostResponse--;
              throw Object.assign(new Error('lost response'), { retriable: true });
            }
            return outcome;
          },
        };
      },
    });
    const committer = () =>
      createIcebergCommitter(s.processor, { env: s.env, pipeline: s.pipeline, log: () => {}, expire: false });
    const partitions = 3;
    const next = [0, 0, 0];
    const sent: TestRecord[] = [];
    const containers: Engine[] = [s.engine()];
    const history: string[] = [];
    for (let step = 0; step < 24; step++) {
      const action = rng.weighted({ send: 6, restore: 2, commit: 3, race: 1, crash: 2 });
      history.push(action);
      if (action === 'send' || action === 'restore') {
        if (action === 'restore') containers.push(s.engine()); // a cold container restores its tasks
        const engine = action === 'restore' ? containers.at(-1)! : rng.pick(containers);
        const records: TestRecord[] = [];
        for (let p = 0; p < partitions; p++) {
          if (!rng.chance(0.7)) continue;
          // The ESM may re-send records already committed: start a little before the end.
          const from = Math.max(0, next[p]! - rng.int(0, 3));
          const to = next[p]! + rng.int(1, 9);
          records.push(...batch(p, 0, to).slice(from));
          next[p] = to;
        }
        if (records.length === 0) continue;
        sent.push(...records);
        if (rng.chance(0.15)) faults.stagePut = 1; // a delivery fails: the invocation fails, the ESM retries
        const ok = await engine.processEvent(mskEvent(records)).then(
          () => true,
          () => false,
        );
        if (!ok) await engine.processEvent(mskEvent(records)); // the ESM's retry of the same batch
        faults.stagePut = 0;
      } else if (action === 'commit') {
        await committer()().catch(() => undefined);
      } else if (action === 'race') {
        await Promise.all([committer()(), committer()()].map((p) => p.catch(() => undefined)));
      } else {
        const kind = rng.pick(['beforeSwap', 'afterSwap', 'lostResponse', 'cleanup'] as const);
        history.push(kind);
        faults[kind] = 1;
        await committer()().catch(() => undefined);
        faults[kind] = 0;
      }
    }
    // The end: every record delivered once more by a fresh container (as the ESM would until it
    // succeeds), and one clean committer run.
    const all = [0, 1, 2].flatMap((p) => batch(p, 0, Math.max(1, next[p]!)));
    sent.push(...all);
    await s.engine().processEvent(mskEvent(all));
    await committer()();
    const table = await read(s);
    const why = `seed ${FC_SEED} (${replayCommand()}), schedule ${history.join(' ')}`;
    expect(table.staged, why).toEqual([]);
    expect(diff(fromIcebird(table.rows), fold(sent)), why).toEqual({
      lost: 0,
      duplicated: 0,
      rows: fold(sent).length,
    });
    expect(fromIcebird(table.rows), why).toEqual(fold(sent));
  });
});
