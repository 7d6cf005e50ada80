/**
 * Garbage collection against the S3 server and DynamoDB Local, including GC racing commits.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { deposit, mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { HookedCommitStore, HookedSnapshotStore, SimulatedCrash } from '../../harness/faultyStores.ts';
import { foldBalances } from '../../harness/oracle.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { loadCheckpoint } from '../../lib/checkpoint/restore.ts';
import { retainedKeys } from '../../lib/checkpoint/retention.ts';
import type { CommitRecord } from '../../lib/checkpoint/stores.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { collectGarbage } from '../../lib/ops/gc.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { createAwsStores } from '../../lib/store/stores.ts';

const s3 = createS3Client();
const ddb = createDynamoDBClient();
afterAll(() => {
  s3.destroy();
  ddb.destroy();
});

function setup(overrides: Record<string, unknown> = {}) {
  const pipeline = `gc-${randomUUID().slice(0, 8)}`;
  const real = createAwsStores({
    bucket: process.env.TIDEMARK_BUCKET!,
    table: process.env.TIDEMARK_TABLE!,
    s3,
    dynamodb: ddb,
  });
  const snapshots = new HookedSnapshotStore(real.snapshots);
  const commits = new HookedCommitStore(real.commits);
  const config = loadConfig(
    {},
    {
      bucket: process.env.TIDEMARK_BUCKET!,
      table: process.env.TIDEMARK_TABLE!,
      pipeline,
      retainedCheckpoints: 2,
      compactAfterDeltas: 3,
      compactDeltaRatio: 100,
      // GC is about objects: every snapshot is one (inline links have none to collect).
      snapshotInlineMaxBytes: 0,
      ...overrides,
    },
  );
  return {
    pipeline,
    real,
    snapshots,
    commits,
    engine: () => new EpochEngine({ processor: balances, config, snapshots, commits }),
  };
}

async function keysUnder(
  store: ReturnType<typeof setup>['real']['snapshots'],
  prefix: string,
): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys;
}

describe('collectGarbage (S3 server + DynamoDB Local)', () => {
  it('deletes unreferenced objects older than the safety age, keeps young ones and every retained one', async () => {
    const s = setup();
    const e = s.engine();
    let offset = 0;
    const records: TestRecord[] = [];
    const next = (n: number, p: number) =>
      Array.from({ length: n }, () => deposit('orders', p, offset++, `a${offset % 4}`, 1));
    for (let i = 0; i < 3; i++) {
      const b = [...next(2, 0)];
      records.push(...b);
      await e.processEvent(mskEvent(b));
    }
    // Orphans: crashes between the snapshot PUT and the commit.
    s.commits.beforeCommit = () => {
      throw new SimulatedCrash('orphan');
    };
    await s
      .engine()
      .processEvent(mskEvent(next(1, 0)))
      .catch(() => {});
    await s
      .engine()
      .processEvent(mskEvent(next(1, 1)))
      .catch(() => {});
    s.commits.beforeCommit = undefined;
    const prefix = `tidemark/${s.pipeline}/tasks/`;
    const all = await keysUnder(s.real.snapshots, prefix);
    const c0 = (await s.real.commits.read({ pipeline: s.pipeline, topic: 'orders', partition: 0 }))!;
    const referenced = retainedKeys(c0);
    const orphans = all.filter((k) => !referenced.has(k));
    expect(orphans).toHaveLength(2);

    const young = await collectGarbage(s.real, {
      prefix: 'tidemark',
      pipeline: s.pipeline,
      minAgeMs: 60_000,
    });
    expect(young).toMatchObject({ deleted: [], keptYoung: 2 });
    const dry = await collectGarbage(s.real, {
      prefix: 'tidemark',
      pipeline: s.pipeline,
      minAgeMs: 0,
      dryRun: true,
    });
    expect(dry.deleted.sort()).toEqual(orphans.sort());
    expect(await keysUnder(s.real.snapshots, prefix)).toHaveLength(all.length);
    const done = await collectGarbage(s.real, { prefix: 'tidemark', pipeline: s.pipeline, minAgeMs: 0 });
    expect(done.deleted.sort()).toEqual(orphans.sort());
    expect((await keysUnder(s.real.snapshots, prefix)).sort()).toEqual([...referenced].sort());
    const r = await inspectTask(s.real, { pipeline: s.pipeline, topic: 'orders', partition: 0 });
    expect(r.state.account).toEqual(Object.fromEntries(foldBalances(records)));
  });

  it.each([
    ['snapshots in S3', {}],
    // Chains of S3 and inline links, spills merging inline links into S3 deltas.
    ['mixed chains', { snapshotInlineMaxBytes: 470, commitInlineMaxBytes: 2_000 }],
  ])(
    'never deletes an object a retained checkpoint references while GC races commits (%s)',
    async (name, extra) => {
      // Commits (with deltas, compactions, retention deletions, crashes leaving orphans and the
      // engine's own sweeps) run for a while; pipeline GC runs over and over at the same time with a
      // safety age shorter than the run. Every retained checkpoint must stay loadable throughout.
      const minAgeMs = 1500;
      const s = setup({ sweepEveryEpochs: 2, orphanMinAgeSeconds: 2, ...extra });
      const records = new Map<number, TestRecord[]>([
        [0, []],
        [1, []],
      ]);
      let stop = false;
      let gcRuns = 0;
      let deleted = 0;
      const gcLoop = (async () => {
        while (!stop) {
          const r = await collectGarbage(s.real, { prefix: 'tidemark', pipeline: s.pipeline, minAgeMs });
          gcRuns++;
          deleted += r.deleted.length;
          await new Promise((res) => setTimeout(res, 50));
        }
      })();
      let crashes = 0;
      let mixed = 0;
      const started = Date.now();
      const engines = [s.engine(), s.engine()];
      let offset = 0;
      for (let round = 0; Date.now() - started < 6000 || round < 40; round++) {
        const part = round % 2;
        const batch = Array.from({ length: 3 }, (_, i) =>
          deposit('orders', part, offset + i, `a${(offset + i) % 5}`, i + 1),
        );
        offset += 3;
        const crash = round % 7 === 3;
        s.commits.beforeCommit = crash
          ? () => {
              throw new SimulatedCrash('orphan');
            }
          : undefined;
        try {
          await engines[round % 2]!.processEvent(mskEvent(batch));
        } catch {
          crashes++;
          s.commits.beforeCommit = undefined;
          await engines[(round + 1) % 2]!.processEvent(mskEvent(batch)); // the retry, on the other container
        }
        records.get(part)!.push(...batch);
        for (const p of [0, 1]) {
          const c = await s.real.commits.read({ pipeline: s.pipeline, topic: 'orders', partition: p });
          if (!c) continue;
          if (c.chain.some((r) => r.inline) && c.chain.some((r) => !r.inline)) mixed++;
          for (const checkpoint of [c, ...c.history]) {
            await loadCheckpoint(
              s.real.snapshots,
              { pipeline: s.pipeline, topic: 'orders', partition: p },
              checkpoint as CommitRecord,
              {},
            );
          }
        }
      }
      stop = true;
      await gcLoop;
      expect(gcRuns).toBeGreaterThan(3);
      expect(crashes).toBeGreaterThan(3);
      if (name === 'mixed chains') expect(mixed).toBeGreaterThan(0);
      // Orphans (crashes after a PUT) for GC to delete: with inline links, only spills leave any.
      else expect(deleted).toBeGreaterThan(0);
      for (const p of [0, 1]) {
        const r = await inspectTask(s.real, { pipeline: s.pipeline, topic: 'orders', partition: p });
        expect(r.state.account).toEqual(Object.fromEntries(foldBalances(records.get(p)!)));
      }
    },
  );
});
