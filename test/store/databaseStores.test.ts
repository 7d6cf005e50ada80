/**
 * What the database stores do beyond the shared contract: attached writes in the commit's
 * transaction, credentials from a secret or an IAM token, Redis's refusals (durability not
 * acknowledged, an evicting server), the configured store behind the handler and the CLI, and the
 * DynamoDB path loading none of the database drivers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { startRedis } from '../../harness/servers/redis.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { CommitConflictError, ConfigurationError, StoreError, StoreUnsafeError } from '../../lib/errors.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createMysqlStores } from '../../lib/store/mysql/MysqlStores.ts';
import { createPostgresStores } from '../../lib/store/postgres/PostgresStores.ts';
import { createRedisStores } from '../../lib/store/redis/RedisStores.ts';
import { createStores } from '../../lib/store/stores.ts';
import { record } from './commitStore.contract.ts';
import { type DatabaseBackend, mariadbBackend, postgresBackend, redisBackend } from './databases.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('attached writes commit in the same transaction as the commit item (SQL stores)', () => {
  const cases: Array<[string, () => Promise<DatabaseBackend>, 'postgres' | 'mysql', (n: number) => string]> =
    [
      ['PostgreSQL', postgresBackend, 'postgres', (n) => `$${n}`],
      ['MariaDB', mariadbBackend, 'mysql', () => '?'],
    ];
  for (const [name, start, kind, ph] of cases) {
    let b: DatabaseBackend;
    let admin: { rows(sql: string): Promise<unknown[]>; end(): Promise<void> };
    beforeAll(async () => {
      b = await start();
      if (kind === 'postgres') {
        const c = new pg.Client({ connectionString: b.url });
        await c.connect();
        admin = { rows: async (sql) => (await c.query(sql)).rows, end: () => c.end() };
      } else {
        const c = await mysql.createConnection({
          uri: b.url,
          supportBigNumbers: true,
          bigNumberStrings: true,
        });
        admin = { rows: async (sql) => (await c.query(sql))[0] as unknown[], end: () => c.end() };
      }
      await admin.rows(`CREATE TABLE ${b.prefix}_out (k VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL)`);
    });
    afterAll(async () => {
      await admin?.end();
      await b?.close();
    });

    it(`${name}: the winner's writes are applied with it; a losing attempt writes nothing`, async () => {
      const p = `p-${randomUUID()}`;
      const insert = (k: string, v: bigint) => ({
        store: kind,
        writes: [
          {
            sql: `INSERT INTO ${b.prefix}_out (k, v) VALUES (${ph(1)}, ${ph(2)})`,
            values: [k, v.toString()],
          },
        ],
      });
      await b.commits.commit(record(p, 1, 1n), 0, insert(`${p}/1`, 2n ** 63n - 1n));
      // Racing attempts of epoch 2: one wins, and only its write exists.
      const results = await Promise.allSettled(
        [0, 1, 2, 3].map((w) =>
          b.commits.commit(record(p, 2, BigInt(w), { attempt: `w${w}` }), 1, insert(`${p}/2/${w}`, 1n)),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CommitConflictError);
      const rows = (await admin.rows(`SELECT k, v FROM ${b.prefix}_out`)) as Array<{ k: string; v: string }>;
      const mine = rows.filter((r) => r.k.startsWith(p)).map((r) => [r.k, String(r.v)]);
      const winner = results.findIndex((r) => r.status === 'fulfilled');
      expect(mine.sort(), JSON.stringify(results.map((r) => r.status))).toEqual([
        [`${p}/1`, '9223372036854775807'],
        [`${p}/2/${winner}`, '1'],
      ]);
      // A write that fails rolls the commit back with it.
      const failing = {
        store: kind,
        writes: [{ sql: `INSERT INTO ${b.prefix}_nope (k) VALUES (${ph(1)})`, values: ['x'] }],
      };
      await expect(b.commits.commit(record(p, 3, 3n), 2, failing)).rejects.toBeInstanceOf(StoreError);
      expect((await b.commits.read({ pipeline: p, topic: 'orders.v1-eu', partition: 7 }))?.epoch).toBe(2);
      // A commit waiting on a row lock gives up after the lock timeout, retriably, and changes nothing.
      const impatient = (kind === 'postgres' ? createPostgresStores : createMysqlStores)({
        url: b.url,
        prefix: b.prefix,
        tls: 'off',
        lockTimeoutMs: 1000,
      });
      try {
        await admin.rows(kind === 'postgres' ? 'BEGIN' : 'START TRANSACTION');
        await admin.rows(`SELECT * FROM ${b.prefix}_commits FOR UPDATE`);
        const waited = await impatient.commits.commit(record(p, 3, 3n), 2).catch((e: unknown) => e);
        await admin.rows('COMMIT');
        expect(waited).toBeInstanceOf(StoreError);
        expect((waited as StoreError).retriable).toBe(true);
        expect(String(waited)).toMatch(kind === 'postgres' ? /55P03/ : /1205/);
        expect((await b.commits.read({ pipeline: p, topic: 'orders.v1-eu', partition: 7 }))?.epoch).toBe(2);
      } finally {
        await impatient.close();
      }
      // Writes meant for another store are refused before anything happens.
      await expect(
        b.commits.commit(record(p, 3, 3n), 2, { store: 'dynamodb', writes: [] }),
      ).rejects.toBeInstanceOf(ConfigurationError);
    });
  }
});

describe('Redis honesty', () => {
  it('refuses to start without the durability acknowledged, in configuration and in the store', () => {
    const env = {
      TIDEMARK_BUCKET: 'b',
      TIDEMARK_PIPELINE: 'p',
      TIDEMARK_COMMIT_STORE: 'redis',
      TIDEMARK_DB_URL: 'redis://h',
    };
    expect(() => loadConfig(env)).toThrow(/TIDEMARK_REDIS_DURABILITY/);
    expect(() => loadConfig({ ...env, TIDEMARK_REDIS_DURABILITY: 'probably' })).toThrow(ConfigurationError);
    expect(loadConfig({ ...env, TIDEMARK_REDIS_DURABILITY: 'memorydb' }).redisDurability).toBe('memorydb');
    expect(() => createRedisStores({ url: 'redis://h' })).toThrow(ConfigurationError);
  });

  it('refuses a server that may evict keys', async () => {
    const evicting = await startRedis({ evictionPolicy: 'allkeys-lru' });
    const stores = createRedisStores({ url: evicting.url, tls: 'off', durability: 'accept-loss' });
    try {
      const err = await stores.commits
        .read({ pipeline: 'p', topic: 't', partition: 0 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnsafeError);
      expect((err as StoreUnsafeError).retriable).toBe(false);
      expect(String(err)).toMatch(/allkeys-lru/);
      await expect(stores.ensureSchema()).rejects.toBeInstanceOf(StoreUnsafeError);
    } finally {
      await stores.close();
      await evicting.stop();
    }
  });

  it('puts no expiry on any key, and keeps a pipeline’s keys in one hash slot', async () => {
    const b = await redisBackend();
    const admin = new Redis(process.env.TIDEMARK_TEST_REDIS_URL!);
    try {
      const p = `p-${randomUUID()}`;
      await b.commits.commit(record(p, 1, 1n), 0);
      await b.savepoints.create({
        pipeline: p,
        name: 'sp',
        status: 'creating',
        createdAt: 'x',
        completedAt: null,
        topics: {},
        layoutSource: 'commits',
        tasks: 0,
        bytes: 0,
      });
      const keys = await admin.keys(`{${b.prefix}:${p}}*`);
      expect(keys.length).toBeGreaterThanOrEqual(4);
      for (const k of keys) expect(await admin.ttl(k), k).toBe(-1);
      const slots = new Set(
        await Promise.all(keys.map((k) => admin.call('CLUSTER', 'KEYSLOT', k).catch(() => 'n/a'))),
      );
      expect(slots.size).toBe(1);
    } finally {
      admin.disconnect();
      await b.close();
    }
  });

  it('speaks the cluster protocol (a one-node cluster serving every slot)', async () => {
    const cluster = await startRedis({ cluster: true });
    const stores = createRedisStores({ url: cluster.url, tls: 'off', durability: 'memorydb', cluster: true });
    try {
      const p = `p-${randomUUID()}`;
      await stores.commits.commit(record(p, 1, 1n), 0);
      const err = await stores.commits.commit(record(p, 1, 2n), 0).catch((e: unknown) => e);
      expect((err as CommitConflictError).current).toEqual(record(p, 1, 1n));
      const all = [];
      for await (const c of stores.commits.list(p)) all.push(c);
      expect(all).toHaveLength(1);
    } finally {
      await stores.close();
      await cluster.stop();
    }
  });
});

describe('credentials', () => {
  it('takes host, port, database, user and password from a secret (RDS JSON form) when the URL has none', async () => {
    const u = new URL(process.env.TIDEMARK_TEST_POSTGRES_URL!);
    const read: string[] = [];
    const stores = createPostgresStores({
      secret: 'arn:aws:secretsmanager:us-east-1:1:secret:tm',
      readSecret: async (id) => {
        read.push(id);
        return JSON.stringify({
          username: 'postgres',
          password: 'pw',
          host: u.hostname,
          port: Number(u.port),
          dbname: 'postgres',
        });
      },
      prefix: `missing_${randomUUID().slice(0, 8).replace(/-/g, '')}`,
      tls: 'off',
    });
    try {
      // Reaching the server and being told the tables are missing proves the connection worked.
      await expect(stores.commits.probe()).rejects.toThrow(/does not exist/);
      expect(read).toEqual(['arn:aws:secretsmanager:us-east-1:1:secret:tm']);
    } finally {
      await stores.close();
    }
  });

  it('makes an IAM auth token for the URL’s user, and refuses IAM auth without TLS', async () => {
    const u = new URL(process.env.TIDEMARK_TEST_MYSQL_URL!);
    const signed: unknown[] = [];
    const stores = createMysqlStores({
      url: `mysql://root@${u.host}/tidemark`,
      iamAuth: true,
      tls: 'no-verify',
      signToken: async (e) => {
        signed.push(e);
        return 'token';
      },
    });
    try {
      // The local server has no TLS: connecting fails, after the token was made.
      await expect(stores.commits.probe()).rejects.toBeInstanceOf(StoreError);
    } finally {
      await stores.close();
    }
    const noTls = createPostgresStores({ url: 'postgres://iam@db:5432/app', iamAuth: true, tls: 'off' });
    await expect(noTls.commits.probe()).rejects.toBeInstanceOf(ConfigurationError);
    expect(() =>
      loadConfig({
        TIDEMARK_BUCKET: 'b',
        TIDEMARK_PIPELINE: 'p',
        TIDEMARK_COMMIT_STORE: 'redis',
        TIDEMARK_DB_URL: 'redis://h',
        TIDEMARK_REDIS_DURABILITY: 'memorydb',
        TIDEMARK_DB_IAM_AUTH: 'true',
      }),
    ).toThrow(ConfigurationError);
    expect(signed.length === 0 || (signed[0] as { user: string }).user === 'root').toBe(true);
  });
});

describe('the configured commit store', () => {
  it('needs the table with DynamoDB only, and a connection with the others', () => {
    const base = { TIDEMARK_BUCKET: 'b', TIDEMARK_PIPELINE: 'p' };
    expect(() => loadConfig(base)).toThrow(/TIDEMARK_TABLE/);
    expect(() => loadConfig({ ...base, TIDEMARK_COMMIT_STORE: 'postgres' })).toThrow(/TIDEMARK_DB_URL/);
    expect(() => loadConfig({ ...base, TIDEMARK_COMMIT_STORE: 'oracle' })).toThrow(/TIDEMARK_COMMIT_STORE/);
    const c = loadConfig({ ...base, TIDEMARK_COMMIT_STORE: 'mysql', TIDEMARK_DB_URL: 'mysql://h/db' });
    expect(c).toMatchObject({
      commitStore: 'mysql',
      table: '',
      dbTls: 'require',
      dbPrefix: 'tidemark',
      dbPoolMax: 2,
    });
    expect(() =>
      loadConfig({
        ...base,
        TIDEMARK_COMMIT_STORE: 'mysql',
        TIDEMARK_DB_URL: 'x',
        TIDEMARK_DB_PREFIX: 'Drop;',
      }),
    ).toThrow(/TIDEMARK_DB_PREFIX/);
  });

  it('runs the handler on PostgreSQL from the environment alone (TIDEMARK_COMMIT_STORE=postgres)', async () => {
    const pipeline = `env-${randomUUID().slice(0, 8)}`;
    const prefix = `e_${randomUUID().slice(0, 8).replace(/-/g, '')}`;
    const env = {
      ...process.env,
      TIDEMARK_PIPELINE: pipeline,
      TIDEMARK_COMMIT_STORE: 'postgres',
      TIDEMARK_DB_URL: process.env.TIDEMARK_TEST_POSTGRES_URL!,
      TIDEMARK_DB_TLS: 'off',
      TIDEMARK_DB_PREFIX: prefix,
    };
    const config = loadConfig(env);
    const stores = createStores(config);
    try {
      expect(await stores.ensureCommitStore()).toEqual({
        resource: `postgres tables ${prefix}_*`,
        result: 'created',
      });
      const handler = createKafkaHandler(balances, { env, telemetry: false });
      const value = (amount: number) => Buffer.from(JSON.stringify({ amount })).toString('base64');
      const event = {
        eventSource: 'aws:kafka',
        eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/test/abc',
        bootstrapServers: 'b-1:9092',
        records: {
          'orders-0': [0, 1].map((offset) => ({
            topic: 'orders',
            partition: 0,
            offset,
            timestamp: 1,
            timestampType: 'CREATE_TIME',
            key: Buffer.from('alice').toString('base64'),
            value: value(5 + offset),
            headers: [],
          })),
        },
      };
      await handler(event, { awsRequestId: 'r', getRemainingTimeInMillis: () => 60_000 });
      const task = await inspectTask(stores, { pipeline, topic: 'orders', partition: 0 });
      expect(task).toMatchObject({ epoch: 1, state: { account: { alice: { balance: 11, count: 2 } } } });
    } finally {
      await stores.close();
    }
  });

  it('npx tidemark init and checkpoints work on MariaDB', () => {
    const prefix = `c_${randomUUID().slice(0, 8).replace(/-/g, '')}`;
    const env = {
      ...process.env,
      TIDEMARK_COMMIT_STORE: 'mysql',
      TIDEMARK_DB_URL: process.env.TIDEMARK_TEST_MYSQL_URL!,
      TIDEMARK_DB_TLS: 'off',
      TIDEMARK_DB_PREFIX: prefix,
      TIDEMARK_TABLE: '',
    };
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [path.join(ROOT, 'lib/cli/bin.ts'), ...args], {
        env,
        encoding: 'utf8',
        timeout: 60_000,
      });
    const init = cli('init');
    expect(init.stderr).toBe('');
    expect(init.stdout).toContain(`mysql tables ${prefix}_*: created`);
    expect(cli('init').stdout).toContain(`mysql tables ${prefix}_*: exists`);
    const list = cli('checkpoints', '--pipeline', 'p', '--topic', 't', '--partition', '0');
    expect(list.status).toBe(0);
    expect(list.stdout).toContain('never committed');
  });

  it.each([
    ['lite', '[]'],
    ['sdk', '["/client-dynamodb/"]'],
  ])(
    'loads no database driver on the DynamoDB path, and with TIDEMARK_AWS_CLIENT=%s the AWS SDK %s on first use',
    (awsClient, sdkOnFirstUse) => {
      const script = `
      import { createRequire } from 'node:module';
      const { createKafkaHandler } = await import(${JSON.stringify(path.join(ROOT, 'lib/handler/createKafkaHandler.ts'))});
      const { balances } = await import(${JSON.stringify(path.join(ROOT, 'examples/balances.ts'))});
      const handler = createKafkaHandler(balances, { env: { TIDEMARK_BUCKET: 'b', TIDEMARK_TABLE: 't', TIDEMARK_PIPELINE: 'p', TIDEMARK_AWS_CLIENT: ${JSON.stringify(awsClient)} }, telemetry: false });
      const loaded = () => Object.keys(createRequire(import.meta.url).cache);
      const sdk = () => ['/client-dynamodb/', '/client-s3/'].filter((m) => loaded().some((k) => k.includes(m)));
      console.log(JSON.stringify(sdk()));
      // First use: a read of a commit item (against a port nobody listens on).
      await handler.runtime.engine.processEvent({ eventSource: 'aws:kafka', records: { 'orders-0': [{ topic: 'orders', partition: 0, offset: 0, timestamp: 1, timestampType: 'CREATE_TIME', key: null, value: null, headers: [] }] } }).catch(() => {});
      console.log(JSON.stringify(['/node_modules/pg/', '/node_modules/mysql2/', '/node_modules/ioredis/', '/client-secrets-manager/', '/rds-signer/'].filter((m) => loaded().some((k) => k.includes(m)))));
      console.log(JSON.stringify(sdk()));
    `;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: ROOT,
        encoding: 'utf8',
        env: {
          ...process.env,
          AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'x',
          AWS_SECRET_ACCESS_KEY: 'x',
          AWS_MAX_ATTEMPTS: '1',
        },
      });
      expect(out.trim().split('\n')).toEqual(['[]', '[]', sdkOnFirstUse]);
    },
  );
});
