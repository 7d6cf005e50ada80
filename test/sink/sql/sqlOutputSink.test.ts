/**
 * The SQL output sink against the real servers (PostgreSQL 15 and MariaDB, started by the test run):
 * the sink's statements committed by the commit store in the commit's transaction. Every column type
 * round-trips; schemas, reserved words and quoting; in-order semantics of upserts, inserts and
 * deletes over many epochs against the in-memory model (property); large epochs cut into several
 * statements; a losing attempt, a commit whose connection dies before or after the server applied it;
 * a failing row rolling the commit back without being taken for a lost race.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommitConflictError, StoreError } from '../../../lib/errors.ts';
import {
  readSqlOutputRows,
  SqlOutputModel,
  type SqlRowWrite,
  sqlOutput,
} from '../../../lib/sink/sql/index.ts';
import { SqlOutputSink } from '../../../lib/sink/sql/SqlOutputSink.ts';
import { withDefaults } from '../../../lib/store/database/options.ts';
import { MysqlDriver } from '../../../lib/store/mysql/MysqlDriver.ts';
import { PostgresDriver } from '../../../lib/store/postgres/PostgresDriver.ts';
import { SqlCommitStore } from '../../../lib/store/sql/SqlCommitStore.ts';
import type { SqlDriver } from '../../../lib/store/sql/SqlDriver.ts';
import { record } from '../../store/commitStore.contract.ts';
import type { DatabaseBackend } from '../../store/databases.ts';
import { type Admin, adminOf, commitEpoch, createTable, DIALECTS, part, uniqueName } from './helpers.ts';

/** Every column type, reserved words as names, a two-column key. */
function everyType(table: string, schema?: string) {
  return sqlOutput<Record<string, unknown>>({
    table,
    ...(schema ? { schema } : {}),
    key: ['order', 'at'],
    columns: {
      order: { type: 'text', maxLength: 40 },
      at: 'timestamp',
      user: { type: 'text', nullable: true },
      count: { type: 'integer', nullable: true },
      big: { type: 'bigint', nullable: true },
      ratio: { type: 'double', nullable: true },
      Amount: { type: 'numeric', precision: 30, scale: 4, nullable: true },
      flag: { type: 'boolean', nullable: true },
      doc: { type: 'json', nullable: true },
      raw: { type: 'bytes', nullable: true },
    },
    identity: true,
    write: (w) => w as unknown as SqlRowWrite,
  });
}

const full = {
  order: 'o-1 "quoted" `back` \'single\' ünï ☃ 😀',
  at: new Date('2024-02-29T23:59:59.123Z'),
  user: 'line\nbreak\ttab \\ backslash',
  count: -(2 ** 31),
  big: 2n ** 63n - 1n,
  ratio: 0.1 + 0.2,
  Amount: '-12345678901234567890123456.01',
  flag: true,
  doc: { a: [1, 'two', null, { deep: true }], n: 12.5, s: 'ü' },
  raw: new Uint8Array([0, 1, 2, 255, 39, 92]),
};

function expectAttachedWriteFailure(err: unknown): void {
  expect(err).toBeInstanceOf(StoreError);
  expect(err).not.toBeInstanceOf(CommitConflictError);
  expect((err as StoreError).retriable).toBe(false);
  expect(String(err)).toMatch(/output write attached to the commit failed.*(23505|1062)/s);
}

for (const [name, dialect, start] of DIALECTS) {
  describe(`${name}: rows committed with the epoch`, () => {
    let b: DatabaseBackend;
    let admin: Admin;
    const read = (output: Parameters<typeof readSqlOutputRows>[0], identity = false) =>
      readSqlOutputRows(output, { store: dialect, url: b.url, tls: 'off', identity });
    beforeAll(async () => {
      b = await start();
      admin = await adminOf(dialect);
    });
    afterAll(async () => {
      await admin?.end();
      await b?.close();
    });

    it('writes every column type exactly, reads it back as decode gives it; schemas, reserved words and quotes', async () => {
      const schema = uniqueName('s');
      if (dialect === 'postgres') await admin.query(`CREATE SCHEMA ${schema}`);
      else {
        // MySQL's schema is another database of the same server, in the same transaction.
        await admin.query(`CREATE DATABASE ${schema}`);
        await admin.query(`GRANT ALL PRIVILEGES ON ${schema}.* TO '${new URL(b.url).username}'@'%'`);
      }
      for (const output of [everyType(uniqueName('all')), everyType(uniqueName('all'), schema)]) {
        await createTable(admin, output, dialect);
        const pipeline = uniqueName('p');
        const nulls = {
          order: 'o-2',
          at: new Date(0),
          user: null,
          count: null,
          big: null,
          ratio: null,
          Amount: null,
          flag: null,
          doc: null,
          raw: null,
        };
        await commitEpoch(b, dialect, pipeline, 1, [
          part('all', output, [
            { upsert: full },
            { insert: nulls },
            { upsert: { order: 'o-3', at: 5, big: -(2n ** 63n) } },
          ]),
        ]);
        const decoded = [{ upsert: full }, { insert: nulls }].map((w) =>
          output.decode!(output.encode(w, {} as never)),
        );
        expect(decoded[0]).toEqual({ upsert: full });
        const rows = await read(output, true);
        expect(rows).toHaveLength(3);
        expect(rows.find((r) => r.order === full.order)).toEqual({
          ...full,
          raw: new Uint8Array(full.raw),
          tidemark_pipeline: pipeline,
          tidemark_topic: 'orders.v1-eu',
          tidemark_partition: 7,
          tidemark_epoch: 1n,
          tidemark_seq: 0,
        });
        expect(rows.find((r) => r.order === 'o-2')).toMatchObject({ ...nulls, tidemark_seq: 1 });
        expect(rows.find((r) => r.order === 'o-3')).toMatchObject({
          at: new Date(5),
          big: -(2n ** 63n),
          user: null,
        });
        // The model agrees (the same writes, in order).
        const model = new SqlOutputModel(output);
        model.apply({ upsert: full });
        model.apply({ insert: nulls });
        model.apply({ upsert: { order: 'o-3', at: 5, big: -(2n ** 63n) } });
        expect(await read(output)).toEqual(model.rows());
      }
    });

    it('applies upserts, inserts and deletes of many epochs as applying them in order would (property)', async () => {
      const columns = {
        k: { type: 'text', maxLength: 8 },
        n: { type: 'numeric', precision: 10, scale: 2 },
        a: { type: 'bigint', nullable: true },
        s: { type: 'text', nullable: true },
        t: { type: 'timestamp', nullable: true },
      } as const;
      // Keys that differ only in case or in their spelling of one number.
      const key = {
        k: fc.constantFrom('x', 'X', 'y'),
        n: fc.constantFrom('1', '1.50', '1.5', '-0', '0.00', '7'),
      };
      const values = {
        a: fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { nil: null }),
        s: fc.option(
          fc.string({ maxLength: 5 }).filter((s) => !s.includes('\u0000')),
          { nil: null },
        ),
        t: fc.option(
          fc.integer({ min: 0, max: 2 ** 40 }).map((ms) => new Date(ms)),
          { nil: null },
        ),
      };
      const row = fc.record({ ...key, ...values }, { requiredKeys: ['k', 'n'] });
      const write: fc.Arbitrary<SqlRowWrite> = fc.oneof(
        { weight: 5, arbitrary: row.map((r) => ({ upsert: r })) },
        { weight: 2, arbitrary: row.map((r) => ({ insert: r })) },
        { weight: 2, arbitrary: fc.record(key).map((k) => ({ delete: k })) },
      );
      const log = fc.record({ s: fc.string({ maxLength: 3 }).filter((s) => !s.includes('\u0000')) });
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({ writes: fc.array(write, { maxLength: 12 }), logs: fc.array(log, { maxLength: 3 }) }),
            {
              minLength: 1,
              maxLength: 6,
            },
          ),
          async (epochs) => {
            const output = sqlOutput<SqlRowWrite>({
              table: uniqueName('prop'),
              key: ['k', 'n'],
              columns,
              identity: { epoch: 'e' },
              write: (w) => w,
            });
            // An append-only table written in the same epochs: each row once.
            const appended = sqlOutput<{ s: string }>({
              table: uniqueName('log'),
              columns: { s: 'text' },
              identity: true,
              row: (r) => r,
            });
            await createTable(admin, output, dialect);
            await createTable(admin, appended, dialect);
            const pipeline = uniqueName('p');
            const model = new SqlOutputModel(output);
            const logModel = new SqlOutputModel(appended);
            for (const [i, e] of epochs.entries()) {
              const epoch = i + 1;
              // The log's entries interleave with the table's (sequence numbers over both).
              const parts = [part('rows', output, e.writes), part('log', appended, e.logs, e.writes.length)];
              await commitEpoch(b, dialect, pipeline, epoch, parts);
              for (const [seq, w] of e.writes.entries()) {
                model.apply(w, { pipeline, topic: 'orders.v1-eu', partition: 7, epoch, seq });
              }
              for (const [j, w] of e.logs.entries()) {
                const seq = e.writes.length + j;
                logModel.apply({ insert: w }, { pipeline, topic: 'orders.v1-eu', partition: 7, epoch, seq });
              }
            }
            expect(await read(output, true)).toEqual(model.rows({ identity: true }));
            expect(await read(appended, true)).toEqual(logModel.rows({ identity: true }));
          },
        ),
        { numRuns: 12 },
      );
    });

    it('cuts a large epoch into several statements, all in the one transaction', async () => {
      const output = sqlOutput<{ id: number; body: string }>({
        table: uniqueName('big'),
        key: 'id',
        columns: { id: 'bigint', body: 'text' },
        row: (r) => r,
      });
      await createTable(admin, output, dialect);
      const pipeline = uniqueName('p');
      const big = 'x'.repeat(3000);
      // 2,600 rows: more than 1,000 per statement and more than 1 MiB.
      const values = Array.from({ length: 2600 }, (_, i) => ({ id: i, body: i % 2 ? big : `r${i}` }));
      const sink = new SqlOutputSink({ pipeline, env: {}, commitStore: dialect });
      const attached = sink.attach({
        task: { pipeline, topic: 'orders.v1-eu', partition: 7 },
        epoch: 1,
        committedOffset: 1n,
        parts: [part('big', output, values)],
      });
      expect(attached.writes.length).toBeGreaterThanOrEqual(4);
      await b.commits.commit(record(pipeline, 1, 10n), 0, attached);
      const rows = await read(output);
      expect(rows).toHaveLength(2600);
      expect(rows.filter((r) => r.body === big)).toHaveLength(1300);
      // A delete of them all in the next epoch.
      await commitEpoch(b, dialect, pipeline, 2, [
        part(
          'big',
          sqlOutput<number>({
            table: output.options.table as string,
            key: 'id',
            columns: { id: 'bigint', body: 'text' },
            write: (id) => ({ delete: { id } }),
          }),
          values.map((v) => v.id),
        ),
      ]);
      expect(await read(output)).toEqual([]);
    });

    it('writes nothing for a losing attempt; a failing row rolls the commit back and is not taken for a lost race', async () => {
      const output = sqlOutput<{ id: string; email: string }>({
        table: uniqueName('users'),
        key: 'id',
        columns: { id: { type: 'text', maxLength: 20 }, email: { type: 'text', maxLength: 100 } },
        row: (r) => r,
      });
      await createTable(admin, output, dialect);
      const table = output.options.table as string;
      // (MySQL indexes a LONGTEXT by a prefix.)
      await admin.query(
        `CREATE UNIQUE INDEX ${table}_email ON ${table} (email${dialect === 'mysql' ? '(100)' : ''})`,
      );
      const pipeline = uniqueName('p');
      await commitEpoch(b, dialect, pipeline, 1, [part('u', output, [{ id: 'a', email: 'a@x' }])]);
      // Four attempts of epoch 2 race: one wins, only its row is there.
      const results = await Promise.allSettled(
        [0, 1, 2, 3].map((w) =>
          commitEpoch(b, dialect, pipeline, 2, [part('u', output, [{ id: `w${w}`, email: `${w}@x` }])], {
            attempt: `w${w}`,
          }),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CommitConflictError);
      const winner = results.findIndex((r) => r.status === 'fulfilled');
      expect((await read(output)).map((r) => r.id)).toEqual(['a', `w${winner}`]);
      // Epoch 3 gives another user a's email. PostgreSQL's unique index refuses it: the commit is rolled
      // back, and the error says so (not a lost race, which would restore the task and fail again).
      // MySQL's ON DUPLICATE KEY UPDATE acts on whichever unique key conflicts: it updates a's row
      // instead (documented: the output's key must be the table's only unique key on MySQL).
      const third = [
        part('u', output, [
          { id: 'c', email: 'c@x' },
          { id: 'b', email: 'a@x' },
        ]),
      ];
      if (dialect === 'mysql') {
        await commitEpoch(b, dialect, pipeline, 3, third);
        expect((await read(output)).map((r) => [r.id, r.email])).toEqual([
          ['a', 'a@x'],
          ['c', 'c@x'],
          [`w${winner}`, `${winner}@x`],
        ]);
        return;
      }
      const err = await commitEpoch(b, dialect, pipeline, 3, third).catch((e: unknown) => e);
      expectAttachedWriteFailure(err);
      expect((await b.commits.read({ pipeline, topic: 'orders.v1-eu', partition: 7 }))?.epoch).toBe(2);
      expect((await read(output)).map((r) => r.id)).toEqual(['a', `w${winner}`]);
    });

    it('rolls the commit back with a row the table refuses, not taken for a lost race', async () => {
      // An append-only table with a unique column: a duplicate is the table's refusal (23505, 1062).
      const output = sqlOutput<{ ref: string }>({
        table: uniqueName('refs'),
        columns: { ref: { type: 'text', maxLength: 20 } },
        row: (r) => r,
      });
      await createTable(admin, output, dialect);
      const table = output.options.table as string;
      await admin.query(
        `CREATE UNIQUE INDEX ${table}_ref ON ${table} (ref${dialect === 'mysql' ? '(20)' : ''})`,
      );
      const pipeline = uniqueName('p');
      await commitEpoch(b, dialect, pipeline, 1, [part('r', output, [{ ref: 'r1' }])]);
      const err = await commitEpoch(b, dialect, pipeline, 2, [
        part('r', output, [{ ref: 'r2' }, { ref: 'r1' }]),
      ]).catch((e: unknown) => e);
      expectAttachedWriteFailure(err);
      expect((await b.commits.read({ pipeline, topic: 'orders.v1-eu', partition: 7 }))?.epoch).toBe(1);
      expect(await read(output)).toEqual([{ ref: 'r1' }]);
    });

    it('applies the rows once when the connection dies during the commit, before or after the server applied it', async () => {
      const output = sqlOutput<{ id: string; n: number }>({
        table: uniqueName('lost'),
        columns: { id: { type: 'text', maxLength: 20 }, n: 'integer' },
        identity: { epoch: 'epoch', seq: 'seq' },
        row: (r) => r,
      });
      await createTable(admin, output, dialect);
      const pipeline = uniqueName('p');
      await commitEpoch(b, dialect, pipeline, 1, [part('l', output, [{ id: 'one', n: 1 }])]);
      // Before: the commit waits on a row lock, its connection is killed; the store finds the item
      // untouched and commits again, with its rows.
      await b.interruptCommit!(() =>
        commitEpoch(b, dialect, pipeline, 2, [part('l', output, [{ id: 'two', n: 2 }])]),
      );
      // After: the server committed, the answer is lost; the store finds its own item and stops.
      const driver: SqlDriver =
        dialect === 'postgres'
          ? new PostgresDriver(withDefaults({ url: b.url, prefix: b.prefix, tls: 'off' }))
          : new MysqlDriver(withDefaults({ url: b.url, prefix: b.prefix, tls: 'off' }));
      let lose = true;
      const losing = Object.create(driver) as SqlDriver;
      losing.transaction = async (fn) => {
        const out = await driver.transaction(fn);
        if (lose) {
          lose = false;
          throw Object.assign(new Error('Connection terminated unexpectedly (injected after COMMIT)'), {
            code: 'ECONNRESET',
          });
        }
        return out;
      };
      const store = new SqlCommitStore(losing);
      try {
        const attached = new SqlOutputSink({ pipeline, env: {}, commitStore: dialect }).attach({
          task: { pipeline, topic: 'orders.v1-eu', partition: 7 },
          epoch: 3,
          committedOffset: 30n,
          parts: [part('l', output, [{ id: 'three', n: 3 }])],
        });
        await store.commit(record(pipeline, 3, 30n), 2, attached);
        expect(lose).toBe(false);
      } finally {
        await store.close();
      }
      const rows = await read(output, true);
      expect(rows.map((r) => [r.id, r.epoch, r.seq])).toEqual([
        ['one', 1n, 0],
        ['two', 2n, 0],
        ['three', 3n, 0],
      ]);
      expect((await b.commits.read({ pipeline, topic: 'orders.v1-eu', partition: 7 }))?.epoch).toBe(3);
    });
  });
}
