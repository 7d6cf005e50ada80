/** Smoke of the commit store benchmark (bench/stores.ts): it runs on every store and reports each figure. No time is asserted. */
import { expect, it } from 'vitest';
import { benchStores, STORE_BENCH_PROFILES, storesTable } from '../../bench/stores.ts';
import { MemoryCommitStore } from '../../lib/store/memory/memoryStores.ts';
import { createPostgresStores } from '../../lib/store/postgres/PostgresStores.ts';
import { createRedisStores } from '../../lib/store/redis/RedisStores.ts';

it('measures commit latency, lost races and throughput on each store it is given', async () => {
  const prefix = `b_${Date.now().toString(36)}`;
  const pg = createPostgresStores({ url: process.env.TIDEMARK_TEST_POSTGRES_URL!, tls: 'off', prefix });
  const redis = createRedisStores({
    url: process.env.TIDEMARK_TEST_REDIS_URL!,
    tls: 'off',
    durability: 'accept-loss',
    prefix,
  });
  try {
    await pg.ensureSchema();
    const figures = await benchStores(
      [
        { name: 'memory', commits: new MemoryCommitStore() },
        { name: 'PostgreSQL', commits: pg.commits },
        { name: 'Redis', commits: redis.commits },
      ],
      STORE_BENCH_PROFILES.smoke,
    );
    expect(figures.map((f) => f.store)).toEqual(['memory', 'PostgreSQL', 'Redis']);
    for (const f of figures) {
      expect(f.commitMs.n).toBe(STORE_BENCH_PROFILES.smoke.sequential);
      expect(f.conflictMs.n).toBe(STORE_BENCH_PROFILES.smoke.conflicts);
      expect(f.commitMs.p99).toBeGreaterThanOrEqual(f.commitMs.p50);
      expect(f.commitsPerSecond).toBeGreaterThan(0);
    }
    expect(storesTable(figures).split('\n')).toHaveLength(2 + figures.length);
  } finally {
    await Promise.all([pg.close(), redis.close()]);
  }
});
