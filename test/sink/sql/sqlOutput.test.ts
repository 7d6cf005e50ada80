/**
 * The SQL output without a database: its options, what fails a record at emit time, the merge of an
 * epoch's writes into one net effect per row against applying them in order (property), the
 * statements of each dialect, the DDL helper, and the refusal at cold start of a commit store the
 * rows cannot commit with.
 */
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EpochEngine } from '../../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../../lib/checkpoint/processor.ts';
import { loadConfig } from '../../../lib/config/config.ts';
import { ConfigurationError, OutputDeliveryError } from '../../../lib/errors.ts';
import { createRuntime } from '../../../lib/handler/runtime.ts';
import type { EmitContext } from '../../../lib/output/types.ts';
import { mysqlDialect, postgresDialect } from '../../../lib/sink/sql/dialect.ts';
import {
  type SqlEntry,
  SqlOutputModel,
  type SqlRowWrite,
  sqlOutput,
  sqlOutputTableDdl,
} from '../../../lib/sink/sql/index.ts';
import { SqlOutputSink } from '../../../lib/sink/sql/SqlOutputSink.ts';
import { mergeRowWrites, sqlStatements } from '../../../lib/sink/sql/statements.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../../lib/store/memory/memoryStores.ts';
import { part } from './helpers.ts';

const ctx: EmitContext = { pipeline: 'p', topic: 't', partition: 0, offset: 0n, key: null };

const accounts = sqlOutput<SqlRowWrite>({
  table: 'accounts',
  key: ['tenant', 'id'],
  columns: {
    tenant: { type: 'text', maxLength: 32 },
    id: 'bigint',
    balance: { type: 'numeric', precision: 12, scale: 2 },
    name: { type: 'text', nullable: true, maxLength: 5 },
    opened: { type: 'timestamp', nullable: true },
    tags: { type: 'json', nullable: true },
  },
  identity: { epoch: 'written_epoch', seq: 'written_seq' },
  write: (w) => w,
});

describe('sqlOutput options', () => {
  const base = { table: 't', columns: { k: 'text' as const }, row: (r: Record<string, unknown>) => r };
  it.each([
    ['a table name that is not an identifier', { ...base, table: 'a b' }, /table must be a name/],
    ['a schema that is not an identifier', { ...base, schema: 'x;drop' }, /schema must be a name/],
    ['no columns', { ...base, columns: {} }, /at least one column/],
    ['an unknown type', { ...base, columns: { k: 'varchar' } }, /must be one of text, integer/],
    ['a key not among the columns', { ...base, key: 'id' }, /key column 'id' is not among/],
    ['a JSON key', { ...base, key: 'k', columns: { k: 'json' } }, /cannot be of type json/],
    [
      'a nullable key',
      { ...base, key: 'k', columns: { k: { type: 'text', nullable: true } } },
      /cannot be nullable/,
    ],
    ['numeric without precision', { ...base, columns: { k: 'numeric' } }, /needs precision and scale/],
    [
      'a scale above the precision',
      { ...base, columns: { k: { type: 'numeric', precision: 4, scale: 5 } } },
      /scale must be an integer from 0 to 4/,
    ],
    [
      'maxLength on a number',
      { ...base, columns: { k: { type: 'integer', maxLength: 3 } } },
      /maxLength applies to text and bytes/,
    ],
    [
      'an identity column named like a column',
      { ...base, identity: { epoch: 'k' } },
      /identity column 'k' is also a declared column/,
    ],
    ['an unknown identity part', { ...base, identity: { offset: 'o' } }, /identity.offset is not a part/],
    ['columns differing in case only', { ...base, columns: { k: 'text', K: 'text' } }, /differ only in case/],
    ['both row and write', { ...base, write: () => ({ insert: {} }) }, /exactly one of row and write/],
  ])('refuses %s', (_, options, message) => {
    expect(() => sqlOutput(options as never)).toThrow(ConfigurationError);
    expect(() => sqlOutput(options as never)).toThrow(message);
  });

  it('upserts with row when there is a key, inserts without', () => {
    const keyed = sqlOutput<{ k: string }>({ table: 't', key: 'k', columns: { k: 'text' }, row: (r) => r });
    const log = sqlOutput<{ k: string }>({ table: 't', columns: { k: 'text' }, row: (r) => r });
    expect(keyed.encode({ k: 'a' }, ctx)).toEqual({ op: 'upsert', columns: ['k'], values: ['a'] });
    expect(log.encode({ k: 'a' }, ctx)).toEqual({ op: 'insert', columns: ['k'], values: ['a'] });
  });
});

describe('values checked at emit time', () => {
  const ok = { tenant: 't1', id: 1n, balance: '10.5' };
  it.each([
    ['not exactly one operation', { upsert: ok, delete: ok }, /exactly one of upsert, insert, delete/],
    ['an undeclared column', { upsert: { ...ok, extra: 1 } }, /column 'extra' is not declared/],
    ['a missing key column', { upsert: { tenant: 't1', balance: '1' } }, /key column 'id' is missing/],
    ['a delete with a non-key column', { delete: { ...ok } }, /'balance' is not a key column/],
    [
      'null in a column that is not nullable',
      { upsert: { ...ok, balance: null } },
      /'balance' is not nullable/,
    ],
    ['a string in a bigint column', { upsert: { ...ok, id: '1' } }, /integer column takes an integer/],
    ['an integer beyond 2^53 as a number', { upsert: { ...ok, id: 2 ** 60 } }, /beyond 2\^53/],
    ['a bigint beyond int64', { upsert: { ...ok, id: 2n ** 63n } }, /outside/],
    [
      'more decimals than the scale',
      { upsert: { ...ok, balance: '1.005' } },
      /3 digits after the point, the column keeps 2/,
    ],
    ['more digits than the precision', { upsert: { ...ok, balance: '12345678901' } }, /holds 10/],
    ['a number printed with an exponent', { upsert: { ...ok, balance: 1e-7 } }, /as a decimal string/],
    ['not a decimal', { upsert: { ...ok, balance: '1,5' } }, /not a decimal number/],
    [
      'a string longer than maxLength',
      { upsert: { ...ok, name: 'abcdef' } },
      /6 characters, the column holds 5/,
    ],
    ['a NUL character', { upsert: { ...ok, name: 'a\u0000' } }, /NUL/],
    ['a lone surrogate', { upsert: { ...ok, name: 'a\uD800' } }, /lone surrogate/],
    ['an invalid date', { upsert: { ...ok, opened: new Date(Number.NaN) } }, /invalid Date/],
    [
      'a date MySQL cannot hold',
      { upsert: { ...ok, opened: new Date('0999-12-31T00:00:00Z') } },
      /outside 1000-01-01/,
    ],
    [
      'a date as a string',
      { upsert: { ...ok, opened: '2024-01-01' } },
      /takes a Date or integer milliseconds/,
    ],
    ['JSON with a bigint', { upsert: { ...ok, tags: { n: 1n } } }, /no JSON form/],
    ['JSON with a NUL', { upsert: { ...ok, tags: ['\u0000'] } }, /JSON holds a NUL/],
    ['undefined as JSON', { upsert: { ...ok, tags: () => 1 } }, /no JSON form/],
  ])('refuses %s', (_, write, message) => {
    expect(() => accounts.encode(write as SqlRowWrite, ctx)).toThrow(message);
  });

  it('keeps what the column holds exactly; one spelling per decimal; an integer column takes a safe bigint', () => {
    const e = accounts.encode({ upsert: { ...ok, balance: '-0007.50', name: 'ünï☃😀', opened: 0 } }, ctx);
    expect(e).toEqual({
      op: 'upsert',
      columns: ['tenant', 'id', 'balance', 'name', 'opened'],
      values: ['t1', 1n, '-7.5', 'ünï☃😀', '1970-01-01T00:00:00.000Z'],
    });
    expect(accounts.decode!(e)).toEqual({
      upsert: { tenant: 't1', id: 1n, balance: '-7.5', name: 'ünï☃😀', opened: new Date(0) },
    });
    const n = sqlOutput<{ n: unknown }>({
      table: 't',
      columns: { n: 'integer', d: 'double' },
      row: (r) => r,
    });
    expect(n.encode({ n: 5n }, ctx).values).toEqual([5]);
    expect(() => n.encode({ n: 2 ** 31 }, ctx)).toThrow(/outside/);
    expect(() => n.encode({ d: Number.POSITIVE_INFINITY } as never, ctx)).toThrow(/finite number/);
  });
});

describe('an epoch merged into one net effect per row', () => {
  const columns = {
    k: { type: 'text', maxLength: 4 },
    a: { type: 'integer', nullable: true },
    b: { type: 'text', nullable: true },
  } as const;
  const output = sqlOutput<SqlRowWrite>({ table: 't', key: 'k', columns, write: (w) => w });
  const types = new Map(Object.entries(columns).map(([c, d]) => [c, d.type]));

  /** Applies net effects the way the statements do: DELETE first, then INSERT … ON CONFLICT SET. */
  function applyEffects(
    table: Map<string, Record<string, unknown>>,
    effects: ReturnType<typeof mergeRowWrites>,
  ): void {
    for (const e of effects) {
      const k = String(e.key[0]);
      if (e.deleteFirst) table.delete(k);
      if (!e.ins) continue;
      const existing = table.get(k);
      if (existing) table.set(k, { ...existing, ...Object.fromEntries(e.set!) });
      else table.set(k, Object.fromEntries(e.ins));
    }
  }

  it('leaves what applying the writes in order leaves, from any starting table (property)', () => {
    const row = fc.record(
      {
        k: fc.constantFrom('x', 'y', 'z'),
        a: fc.option(fc.integer({ min: -9, max: 9 }), { nil: null }),
        b: fc.constantFrom('p', 'q', null),
      },
      { requiredKeys: ['k'] },
    );
    const write: fc.Arbitrary<SqlRowWrite> = fc.oneof(
      row.map((r) => ({ upsert: r })),
      row.map((r) => ({ insert: r })),
      fc.constantFrom('x', 'y', 'z').map((k) => ({ delete: { k } })),
    );
    fc.assert(
      fc.property(fc.array(write, { maxLength: 6 }), fc.array(write, { maxLength: 12 }), (before, epoch) => {
        // In order, one by one (the model).
        const model = new SqlOutputModel(output);
        for (const w of [...before, ...epoch]) model.apply(w);
        // The earlier writes one by one, then the epoch's net effects.
        const start = new SqlOutputModel(output);
        for (const w of before) start.apply(w);
        const table = new Map(start.rows().map((r) => [String(r.k), r]));
        const entries = epoch.map((w) => ({ entry: output.encode(w, ctx), identity: [] }));
        applyEffects(table, mergeRowWrites(['k'], types, entries));
        const merged = [...table.values()]
          .map((r) => ({ k: r.k, a: r.a ?? null, b: r.b ?? null }))
          .sort((p, q) => String(p.k).localeCompare(String(q.k)));
        expect(merged).toEqual(model.rows());
      }),
      { numRuns: 500 },
    );
  });
});

describe('statements per dialect', () => {
  const delivery = {
    task: { pipeline: 'pipe', topic: 'orders', partition: 3 },
    epoch: 12,
    committedOffset: 100n,
    parts: [
      part('accounts', accounts, [
        {
          upsert: {
            tenant: 't',
            id: 1n,
            balance: '1.50',
            opened: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)),
          },
        },
        { delete: { tenant: 't', id: 2n } },
        { insert: { tenant: 't', id: 3n, balance: '0' } },
        { upsert: { tenant: 't', id: 3n, balance: '2' } },
      ]),
    ],
  };

  it('PostgreSQL: quoted identifiers, $n placeholders, ON CONFLICT … DO UPDATE / DO NOTHING', () => {
    expect(sqlStatements(postgresDialect, delivery)).toEqual([
      { sql: 'DELETE FROM "accounts" WHERE ("tenant" = $1 AND "id" = $2)', values: ['t', 2n] },
      {
        sql: 'INSERT INTO "accounts" ("tenant", "id", "balance", "opened", "written_epoch", "written_seq") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT ("tenant", "id") DO UPDATE SET "balance" = EXCLUDED."balance", "opened" = EXCLUDED."opened", "written_epoch" = EXCLUDED."written_epoch", "written_seq" = EXCLUDED."written_seq"',
        values: ['t', 1n, '1.5', '2024-01-02T03:04:05.006Z', 12n, 0],
      },
      {
        sql: 'INSERT INTO "accounts" ("tenant", "id", "balance", "written_epoch", "written_seq") VALUES ($1, $2, $3, $4, $5) ON CONFLICT ("tenant", "id") DO UPDATE SET "balance" = EXCLUDED."balance", "written_epoch" = EXCLUDED."written_epoch", "written_seq" = EXCLUDED."written_seq"',
        values: ['t', 3n, '2', 12n, 3],
      },
    ]);
  });

  it('MySQL: backquotes, ? placeholders, numeric literals, UTC DATETIME strings, ON DUPLICATE KEY UPDATE', () => {
    const insertOnly = {
      ...delivery,
      parts: [part('accounts', accounts, [{ insert: { tenant: 'a`b', id: 1n, balance: '-3' } }])],
    };
    expect(sqlStatements(mysqlDialect, delivery)).toEqual([
      { sql: 'DELETE FROM `accounts` WHERE (`tenant` = ? AND `id` = ?)', values: ['t', 2n] },
      {
        sql: 'INSERT INTO `accounts` (`tenant`, `id`, `balance`, `opened`, `written_epoch`, `written_seq`) VALUES (?, ?, 1.5, ?, ?, ?) ON DUPLICATE KEY UPDATE `balance` = VALUES(`balance`), `opened` = VALUES(`opened`), `written_epoch` = VALUES(`written_epoch`), `written_seq` = VALUES(`written_seq`)',
        values: ['t', 1n, '2024-01-02 03:04:05.006', 12n, 0],
      },
      {
        sql: 'INSERT INTO `accounts` (`tenant`, `id`, `balance`, `written_epoch`, `written_seq`) VALUES (?, ?, 2, ?, ?) ON DUPLICATE KEY UPDATE `balance` = VALUES(`balance`), `written_epoch` = VALUES(`written_epoch`), `written_seq` = VALUES(`written_seq`)',
        values: ['t', 3n, 12n, 3],
      },
    ]);
    // An insert unless the row exists: a no-op update on MySQL, DO NOTHING on PostgreSQL.
    expect(sqlStatements(mysqlDialect, insertOnly)[0]!.sql).toMatch(
      /ON DUPLICATE KEY UPDATE `tenant` = `tenant`$/,
    );
    expect(sqlStatements(postgresDialect, insertOnly)[0]!.sql).toMatch(
      /ON CONFLICT \("tenant", "id"\) DO NOTHING$/,
    );
  });

  it('refuses outputs that write one table with different keys or column types', () => {
    const other = sqlOutput<SqlRowWrite>({
      table: 'accounts',
      key: 'id',
      columns: { id: 'bigint' },
      write: (w) => w,
    });
    const d = { ...delivery, parts: [...delivery.parts, part('other', other, [{ upsert: { id: 1n } }], 4)] };
    expect(() => sqlStatements(postgresDialect, d)).toThrow(/must declare the same key/);
    const typed = sqlOutput<SqlRowWrite>({
      table: 'accounts',
      key: ['tenant', 'id'],
      columns: { tenant: 'text', id: 'bigint', balance: 'double' },
      write: (w) => w,
    });
    const t = {
      ...delivery,
      parts: [...delivery.parts, part('typed', typed, [{ upsert: { tenant: 'x', id: 1n } }], 4)],
    };
    expect(() => sqlStatements(postgresDialect, t)).toThrow(
      /'balance' of table "accounts" is declared double here and numeric/,
    );
  });
});

describe('the DDL helper', () => {
  it('creates the table with its key, the identity columns asked for, in each dialect', () => {
    expect(sqlOutputTableDdl(accounts, 'postgres')).toBe(
      [
        'CREATE TABLE IF NOT EXISTS "accounts" (',
        '  "tenant" varchar(32) NOT NULL,',
        '  "id" bigint NOT NULL,',
        '  "balance" numeric(12, 2) NOT NULL,',
        '  "name" varchar(5),',
        '  "opened" timestamptz(3),',
        '  "tags" jsonb,',
        '  "written_epoch" bigint,',
        '  "written_seq" integer,',
        '  PRIMARY KEY ("tenant", "id")',
        ')',
      ].join('\n'),
    );
    expect(sqlOutputTableDdl(accounts, 'mysql')).toBe(
      [
        'CREATE TABLE IF NOT EXISTS `accounts` (',
        '  `tenant` VARCHAR(32) NOT NULL,',
        '  `id` BIGINT NOT NULL,',
        '  `balance` DECIMAL(12, 2) NOT NULL,',
        '  `name` LONGTEXT,',
        '  `opened` DATETIME(3),',
        '  `tags` JSON,',
        '  `written_epoch` BIGINT,',
        '  `written_seq` INT,',
        '  PRIMARY KEY (`tenant`, `id`)',
        ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
      ].join('\n'),
    );
  });

  it('refuses what MySQL cannot key or hold', () => {
    const key = (c: object) =>
      sqlOutput<SqlRowWrite>({ table: 't', key: 'k', columns: { k: c as never }, write: (w) => w });
    expect(() => sqlOutputTableDdl(key({ type: 'text' }), 'mysql')).toThrow(
      /text key column needs maxLength of at most 768/,
    );
    expect(() => sqlOutputTableDdl(key({ type: 'text', maxLength: 1000 }), 'mysql')).toThrow(
      ConfigurationError,
    );
    expect(() => sqlOutputTableDdl(key({ type: 'bytes' }), 'mysql')).toThrow(/bytes key column/);
    expect(sqlOutputTableDdl(key({ type: 'text' }), 'postgres')).toContain('"k" text NOT NULL');
    const wide = sqlOutput<SqlRowWrite>({
      table: 't',
      columns: { n: { type: 'numeric', precision: 70, scale: 2 } },
      write: (w) => w,
    });
    expect(() => sqlOutputTableDdl(wide, 'mysql')).toThrow(/precision up to 65/);
    expect(() => sqlOutputTableDdl({ kind: 'kafka', options: {} }, 'postgres')).toThrow(/not a sqlOutput/);
  });
});

describe('commit stores a SQL output cannot commit with', () => {
  const processor = defineProcessor({
    state: {},
    outputs: { accounts },
    process() {},
  });
  const config = loadConfig({}, { bucket: 'b', table: 't', pipeline: 'p' });

  it('are refused when the engine is built (cold start), naming the output and the setting', () => {
    const build = () =>
      new EpochEngine({
        processor,
        config,
        snapshots: new MemorySnapshotStore(),
        commits: new MemoryCommitStore(),
      });
    expect(build).toThrow(ConfigurationError);
    expect(build).toThrow(
      /output 'accounts': sqlOutput writes its rows in the epoch's commit transaction.*TIDEMARK_COMMIT_STORE=postgres or mysql.*it is memory/,
    );
    // The handler's cold start: commits in DynamoDB (the default).
    expect(() =>
      createRuntime(processor, {
        env: { TIDEMARK_BUCKET: 'b', TIDEMARK_TABLE: 't', TIDEMARK_PIPELINE: 'p' },
        telemetry: false,
      }),
    ).toThrow(/it is dynamodb/);
    // With the PostgreSQL or MySQL commit store it starts (nothing connects yet).
    for (const store of ['postgres', 'mysql']) {
      const commits = Object.assign(new MemoryCommitStore(), { kind: store });
      expect(
        () => new EpochEngine({ processor, config, snapshots: new MemorySnapshotStore(), commits }),
      ).not.toThrow();
    }
  });

  it('never deliver after the commit: the sink has no such path', async () => {
    const sink = new SqlOutputSink({ pipeline: 'p', env: {}, commitStore: 'postgres' });
    const err = await sink
      .deliver({
        task: { pipeline: 'p', topic: 't', partition: 0 },
        epoch: 1,
        committedOffset: 1n,
        parts: [],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputDeliveryError);
    expect((err as OutputDeliveryError).retriable).toBe(false);
    const refused = new SqlOutputSink({ pipeline: 'p', env: {}, commitStore: 'redis' });
    expect(() =>
      refused.attach({
        task: { pipeline: 'p', topic: 't', partition: 0 },
        epoch: 1,
        committedOffset: 1n,
        parts: [],
      }),
    ).toThrow(ConfigurationError);
  });

  it('has encoded entries that survive as plain data', () => {
    const e: SqlEntry = accounts.encode(
      { upsert: { tenant: 't', id: 1n, balance: '1', tags: { a: [1] } } },
      ctx,
    );
    expect(structuredClone(e)).toEqual(e);
  });
});

describe('what the output loads', () => {
  it('loads no package to declare, encode and attach; the reader loads the commit store driver', () => {
    // A fresh Node process records every module it resolves.
    const script = (extra: string) => `
      import { registerHooks } from 'node:module';
      const seen = new Set();
      registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.add(r.url); return r; } });
      const { sqlOutput } = await import('./lib/sink/sql/index.ts');
      const { SqlOutputSink } = await import('./lib/sink/sql/SqlOutputSink.ts');
      const out = sqlOutput({ table: 't', key: 'k', columns: { k: 'text', n: 'bigint' }, row: (r) => r });
      const entry = out.encode({ k: 'a', n: 1n }, {});
      new SqlOutputSink({ commitStore: 'postgres' }).attach({ task: { pipeline: 'p', topic: 't', partition: 0 }, epoch: 1, committedOffset: 1n, parts: [{ name: 'o', descriptor: out, entries: [{ seq: 0, entry }] }] });
      ${extra}
      console.log(JSON.stringify([...seen].filter((u) => u.includes('/node_modules/')).map((u) => u.split('/node_modules/').pop().split('/')[0])));`;
    const loaded = (extra = '') =>
      new Set(
        JSON.parse(
          execFileSync(process.execPath, ['--input-type=module', '-e', script(extra)], {
            cwd: new URL('../../..', import.meta.url),
            encoding: 'utf8',
          }),
        ) as string[],
      );
    expect([...loaded()]).toEqual([]);
    // The control: the reader's PostgreSQL path loads pg.
    const read = loaded(
      "const { readSqlOutputRows } = await import('./lib/sink/sql/index.ts'); await readSqlOutputRows(out, { store: 'postgres', url: 'postgres://u@127.0.0.1:9/x', tls: 'off', connectTimeoutMs: 200 }).catch(() => {});",
    );
    expect(read.has('pg')).toBe(true);
    expect(read.has('mysql2')).toBe(false);
  });
});
