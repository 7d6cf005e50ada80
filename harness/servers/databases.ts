/**
 * PostgreSQL, MariaDB and Redis, started together for a test run (test/globalSetup.ts) or a local
 * session; `env` names their URLs. If one fails to start, the others are stopped.
 */
import { startMariaDb } from './mariadb.ts';
import { startPostgres } from './postgres.ts';
import { startRedis } from './redis.ts';

export interface DatabaseServers {
  /** `TIDEMARK_TEST_POSTGRES_URL`, `TIDEMARK_TEST_MYSQL_URL`, `TIDEMARK_TEST_REDIS_URL`. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startDatabaseServers(): Promise<DatabaseServers> {
  const started = await Promise.allSettled([startPostgres(), startMariaDb(), startRedis()]);
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const running = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stop = async () => {
    await Promise.allSettled(running.map((s) => s.stop()));
  };
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const [pg, mariadb, redis] = running as [
    Awaited<ReturnType<typeof startPostgres>>,
    Awaited<ReturnType<typeof startMariaDb>>,
    Awaited<ReturnType<typeof startRedis>>,
  ];
  return {
    env: {
      TIDEMARK_TEST_POSTGRES_URL: pg.url,
      TIDEMARK_TEST_MYSQL_URL: mariadb.url,
      TIDEMARK_TEST_REDIS_URL: redis.url,
    },
    stop,
  };
}
