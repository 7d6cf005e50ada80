/**
 * Contract backends on the servers test/globalSetup.ts started: each suite gets its own tables (or
 * key prefix) and its own database user, so it can drop exactly its own connections.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { DatabaseStores } from '../../lib/store/database/DatabaseStores.ts';
import type { RedisStoreOptions } from '../../lib/store/database/options.ts';
import { createMysqlStores } from '../../lib/store/mysql/MysqlStores.ts';
import { createPostgresStores } from '../../lib/store/postgres/PostgresStores.ts';
import { createRedisStores } from '../../lib/store/redis/RedisStores.ts';
import type { ContractBackend } from './commitStore.contract.ts';

export interface DatabaseBackend extends ContractBackend {
  readonly stores: DatabaseStores;
  /** URL of the suite's own user. */
  readonly url: string;
  readonly prefix: string;
  close(): Promise<void>;
}

const id = () => randomBytes(4).toString('hex');

function withUser(base: string, user: string, password?: string): string {
  const u = new URL(base);
  u.username = user;
  if (password) u.password = password;
  return u.toString();
}

function deadUrl(base: string): string {
  const u = new URL(base);
  u.port = '9';
  return u.toString();
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

const fast = { connectTimeoutMs: 1000, tls: 'off' as const };

export async function postgresBackend(): Promise<DatabaseBackend> {
  const base = process.env.TIDEMARK_TEST_POSTGRES_URL!;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  const user = `u_${id()}`;
  const prefix = `t_${id()}`;
  await admin.query(`CREATE ROLE ${user} LOGIN SUPERUSER`);
  const url = withUser(base, user);
  const stores = createPostgresStores({ url, prefix, ...fast });
  await stores.ensureSchema();
  const kill = () =>
    admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [user]);
  return {
    stores,
    url,
    prefix,
    commits: stores.commits,
    savepoints: stores.savepoints,
    document: true,
    missing: () => createPostgresStores({ url, prefix: `missing_${id()}`, ...fast }),
    unreachable: () => createPostgresStores({ url: deadUrl(url), prefix, ...fast }),
    async dropConnections() {
      await kill();
    },
    async interruptCommit(start) {
      const locker = new pg.Client({ connectionString: base });
      await locker.connect();
      try {
        // Blocks writers of the table, not its readers.
        await locker.query('BEGIN');
        await locker.query(`LOCK TABLE ${prefix}_commits IN EXCLUSIVE MODE`);
        const commit = start();
        commit.catch(() => {});
        await waitFor(async () => {
          const r = await admin.query(
            `SELECT 1 FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'`,
            [user],
          );
          return (r.rowCount ?? 0) > 0;
        });
        await kill();
        await locker.query('COMMIT');
        return await commit;
      } finally {
        await locker.end();
      }
    },
    async close() {
      await stores.close();
      await kill().catch(() => {});
      await admin.end();
    },
  };
}

export async function mariadbBackend(): Promise<DatabaseBackend> {
  const base = process.env.TIDEMARK_TEST_MYSQL_URL!;
  const admin = await mysql.createConnection(base);
  const user = `u_${id()}`;
  const prefix = `t_${id()}`;
  await admin.query(`CREATE USER '${user}'@'%'`);
  await admin.query(`GRANT ALL PRIVILEGES ON tidemark.* TO '${user}'@'%'`);
  const url = withUser(base, user);
  const stores = createMysqlStores({ url, prefix, ...fast });
  await stores.ensureSchema();
  const kill = async () => {
    const [rows] = await admin.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
    for (const r of rows as Array<{ ID: number }>)
      await admin.query(`KILL CONNECTION ${r.ID}`).catch(() => {});
  };
  return {
    stores,
    url,
    prefix,
    commits: stores.commits,
    savepoints: stores.savepoints,
    document: true,
    missing: () => createMysqlStores({ url, prefix: `missing_${id()}`, ...fast }),
    unreachable: () => createMysqlStores({ url: deadUrl(url), prefix, ...fast }),
    dropConnections: kill,
    async interruptCommit(start) {
      const locker = await mysql.createConnection(base);
      try {
        // Locks every row against writers; consistent reads go on.
        await locker.query('START TRANSACTION');
        await locker.query(`SELECT * FROM ${prefix}_commits FOR UPDATE`);
        const commit = start();
        commit.catch(() => {});
        await waitFor(async () => {
          const [rows] = await admin.query(
            `SELECT 1 FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE 'UPDATE%'`,
            [user],
          );
          return (rows as unknown[]).length > 0;
        });
        await kill();
        await locker.query('COMMIT');
        return await commit;
      } finally {
        await locker.end();
      }
    },
    async close() {
      await stores.close();
      await kill().catch(() => {});
      await admin.end();
    },
  };
}

export async function redisBackend(extra: Partial<RedisStoreOptions> = {}): Promise<DatabaseBackend> {
  const base = process.env.TIDEMARK_TEST_REDIS_URL!;
  const admin = new Redis(base);
  const user = `u_${id()}`;
  const password = id();
  const prefix = `t_${id()}`;
  await admin.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all');
  const url = withUser(base, user, password);
  // A long command timeout: a command whose connection was killed must fail at once, not wait for it
  // (the interrupted-commit test would then run into the test's own timeout).
  const options = {
    prefix,
    durability: 'accept-loss' as const,
    ...fast,
    statementTimeoutMs: 120_000,
    ...extra,
  };
  const stores = createRedisStores({ url, ...options });
  await stores.ensureSchema();
  const kill = async () => {
    await admin.call('CLIENT', 'KILL', 'USER', user);
  };
  return {
    stores,
    url,
    prefix,
    commits: stores.commits,
    savepoints: stores.savepoints,
    document: true,
    // Redis has no schema: what it can miss is access (a refused password).
    missing: () => createRedisStores({ ...options, url: withUser(base, user, 'wrong') }),
    unreachable: () => createRedisStores({ ...options, url: deadUrl(url) }),
    dropConnections: kill,
    async interruptCommit(start) {
      // Writes (scripts included) wait; reads go on.
      await admin.call('CLIENT', 'PAUSE', '20000', 'WRITE');
      try {
        const commit = start();
        commit.catch(() => {});
        await waitFor(async () => {
          const list = String(await admin.call('CLIENT', 'LIST'));
          return list.split('\n').some((l) => l.includes(`user=${user}`) && /cmd=(evalsha|eval)\b/.test(l));
        });
        await kill();
        await admin.call('CLIENT', 'UNPAUSE');
        return await commit;
      } finally {
        await admin.call('CLIENT', 'UNPAUSE');
      }
    },
    async close() {
      await stores.close();
      await admin.call('ACL', 'DELUSER', user).catch(() => {});
      admin.disconnect();
    },
  };
}
