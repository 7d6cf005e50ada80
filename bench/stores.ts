/**
 * Commit latency and throughput of every commit store, side by side in one run
 * (`npm run bench -- --stores`): the memory store (the floor: no I/O), DynamoDB Local, and
 * PostgreSQL, MariaDB and Redis started from their Debian packages (harness/servers/, test settings:
 * no fsync, so the database figures are the protocol's and the driver's cost, not a disk's).
 *
 * - latency: one task commits epoch after epoch (each commit waits for the previous one), the way
 *   one partition commits; the median and 99th percentile of one commit;
 * - throughput: `tasks` tasks commit at once (as a batch's tasks do, `TIDEMARK_TASK_CONCURRENCY`),
 *   commits per second over the whole run;
 * - a lost race: the time a commit takes to learn it lost and get the winner.
 *
 * Commit items have a typical shape: a chain of a full snapshot and 5 deltas, 2 retained checkpoints.
 */
import type { CommitRecord, CommitStore, SnapshotRef } from '../lib/checkpoint/stores.ts';
import { CommitConflictError } from '../lib/errors.ts';

export interface StoreTarget {
  readonly name: string;
  readonly commits: CommitStore;
}

export interface StoreBenchOptions {
  /** Sequential commits of one task (latency). */
  readonly sequential: number;
  /** Tasks committing at the same time (throughput). */
  readonly tasks: number;
  /** Commits of each of those tasks. */
  readonly epochsPerTask: number;
  /** Commits that lose a race (conflict latency). */
  readonly conflicts: number;
}

export const STORE_BENCH_PROFILES = {
  smoke: { sequential: 5, tasks: 2, epochsPerTask: 3, conflicts: 2 },
  quick: { sequential: 200, tasks: 8, epochsPerTask: 50, conflicts: 50 },
  full: { sequential: 1000, tasks: 8, epochsPerTask: 250, conflicts: 200 },
} as const satisfies Record<string, StoreBenchOptions>;

export interface StoreFigures {
  readonly store: string;
  readonly commitMs: { readonly p50: number; readonly p99: number; readonly n: number };
  readonly conflictMs: { readonly p50: number; readonly n: number };
  readonly commitsPerSecond: number;
  readonly concurrentTasks: number;
}

function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

function commitOf(pipeline: string, partition: number, epoch: number): CommitRecord {
  const dir = `tidemark/${pipeline}/tasks/orders/${partition}/`;
  const ref = (e: number, kind: 'full' | 'delta'): SnapshotRef => ({
    key: `${dir}${String(e).padStart(12, '0')}-ab12cd34ef56.${kind === 'full' ? 'snap' : 'delta'}`,
    bytes: 1000 + e,
    checksum: 'deadbeef',
    kind,
    epoch: e,
    entries: 100 + e,
  });
  const base = Math.max(1, epoch - 5);
  const chain = [
    ref(base, 'full'),
    ...Array.from({ length: epoch - base }, (_, i) => ref(base + i + 1, 'delta')),
  ];
  const offset = 2n ** 40n + BigInt(epoch) * 1000n;
  return {
    pipeline,
    topic: 'orders',
    partition,
    epoch,
    committedOffset: offset,
    chain,
    updatedAt: new Date(1_700_000_000_000 + epoch).toISOString(),
    quarantined: 0,
    applied: epoch * 1000,
    attempt: `a${epoch}`,
    history: [1, 2]
      .filter((d) => epoch - d >= 1)
      .map((d) => ({
        epoch: epoch - d,
        committedOffset: offset - BigInt(d) * 1000n,
        chain: chain.slice(0, Math.max(1, chain.length - d)),
        updatedAt: 'x',
      })),
  };
}

/** Runs the three measurements on each store, one store after the other. */
export async function benchStores(
  targets: readonly StoreTarget[],
  options: StoreBenchOptions,
  log: (line: string) => void = () => {},
): Promise<StoreFigures[]> {
  const out: StoreFigures[] = [];
  const run = Date.now().toString(36);
  for (const { name, commits } of targets) {
    const pipeline = `bench-${run}-${name.toLowerCase().replace(/[^a-z0-9]/g, '')}`;
    // Latency: one task, each commit after the previous one (the first one warms the connection).
    await commits.commit(commitOf(`${pipeline}-warm`, 0, 1), 0);
    const latencies: number[] = [];
    for (let e = 1; e <= options.sequential; e++) {
      const started = performance.now();
      await commits.commit(commitOf(pipeline, 0, e), e - 1);
      latencies.push(performance.now() - started);
    }
    // A lost race: commit an epoch the task already has.
    const conflicts: number[] = [];
    for (let i = 0; i < options.conflicts; i++) {
      const started = performance.now();
      const err = await commits.commit(commitOf(pipeline, 0, 2), 1).catch((e: unknown) => e);
      conflicts.push(performance.now() - started);
      if (!(err instanceof CommitConflictError)) throw new Error(`${name}: a stale commit did not conflict`);
    }
    // Throughput: `tasks` tasks at once.
    const started = performance.now();
    await Promise.all(
      Array.from({ length: options.tasks }, async (_, t) => {
        for (let e = 1; e <= options.epochsPerTask; e++)
          await commits.commit(commitOf(pipeline, t + 1, e), e - 1);
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const figures: StoreFigures = {
      store: name,
      commitMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), n: latencies.length },
      conflictMs: { p50: percentile(conflicts, 50), n: conflicts.length },
      commitsPerSecond: (options.tasks * options.epochsPerTask) / seconds,
      concurrentTasks: options.tasks,
    };
    log(
      `  ${name.padEnd(14)} commit p50 ${figures.commitMs.p50.toFixed(2)} ms, p99 ${figures.commitMs.p99.toFixed(2)} ms; lost race p50 ${figures.conflictMs.p50.toFixed(2)} ms; ${figures.commitsPerSecond.toFixed(0)} commits/s with ${options.tasks} tasks`,
    );
    out.push(figures);
  }
  return out;
}

/** A Markdown table of the figures. */
export function storesTable(figures: readonly StoreFigures[]): string {
  const rows = figures.map(
    (f) =>
      `| ${f.store} | ${f.commitMs.p50.toFixed(2)} | ${f.commitMs.p99.toFixed(2)} | ${f.conflictMs.p50.toFixed(2)} | ${Math.round(f.commitsPerSecond)} |`,
  );
  return [
    `| store | commit p50 (ms) | commit p99 (ms) | lost race p50 (ms) | commits/s (${figures[0]?.concurrentTasks ?? 0} tasks at once) |`,
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/**
 * `npm run bench -- --stores`: starts DynamoDB Local and the three database servers, measures every
 * store, writes `stores-<time>.json` and `stores.md` under `out`, and stops the servers.
 */
export async function runStoreBench(
  profile: keyof typeof STORE_BENCH_PROFILES,
  out: string,
  log: (line: string) => void,
): Promise<StoreFigures[]> {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const path = await import('node:path');
  const { startLocalStack } = await import('../harness/localStack.ts');
  const { startDatabaseServers } = await import('../harness/servers/databases.ts');
  const { createDynamoDBClient } = await import('../lib/store/clients.ts');
  const { DynamoCommitStore } = await import('../lib/store/dynamodb/DynamoCommitStore.ts');
  const { MemoryCommitStore } = await import('../lib/store/memory/memoryStores.ts');
  const { createPostgresStores } = await import('../lib/store/postgres/PostgresStores.ts');
  const { createMysqlStores } = await import('../lib/store/mysql/MysqlStores.ts');
  const { createRedisStores } = await import('../lib/store/redis/RedisStores.ts');
  log(`tidemark bench --stores: ${profile} profile; starting DynamoDB Local, PostgreSQL, MariaDB and Redis`);
  const [stack, dbs] = await Promise.all([
    startLocalStack({ bucket: 'tidemark-bench', table: 'tidemark-bench' }),
    startDatabaseServers(),
  ]);
  const ddb = createDynamoDBClient(stack.env);
  const local = { tls: 'off' as const };
  const databases = [
    ['PostgreSQL', createPostgresStores({ url: dbs.env.TIDEMARK_TEST_POSTGRES_URL, ...local })],
    ['MariaDB', createMysqlStores({ url: dbs.env.TIDEMARK_TEST_MYSQL_URL, ...local })],
    [
      'Redis',
      createRedisStores({ url: dbs.env.TIDEMARK_TEST_REDIS_URL, durability: 'accept-loss', ...local }),
    ],
  ] as const;
  try {
    for (const [, s] of databases) await s.ensureSchema();
    const figures = await benchStores(
      [
        { name: 'memory', commits: new MemoryCommitStore() },
        { name: 'DynamoDB Local', commits: new DynamoCommitStore({ client: ddb, table: stack.table }) },
        ...databases.map(([name, s]) => ({ name, commits: s.commits })),
      ],
      STORE_BENCH_PROFILES[profile],
      log,
    );
    mkdirSync(out, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const json = path.join(out, `stores-${stamp}-${profile}.json`);
    writeFileSync(
      json,
      `${JSON.stringify({ profile, options: STORE_BENCH_PROFILES[profile], figures }, null, 2)}\n`,
    );
    writeFileSync(path.join(out, 'stores.md'), `${storesTable(figures)}\n`);
    log(`\n${storesTable(figures)}\n\nwrote ${json}`);
    return figures;
  } finally {
    await Promise.allSettled(databases.map(([, s]) => s.close()));
    ddb.destroy();
    await Promise.allSettled([stack.stop(), dbs.stop()]);
  }
}
