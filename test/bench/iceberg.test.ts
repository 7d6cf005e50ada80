/**
 * Smoke of the Iceberg benchmark (not a measurement): it runs on tiny sizes against the test run's
 * servers; the counts that do not depend on the machine's speed are checked, no time is.
 */
import { describe, expect, it } from 'vitest';
import { icebergSection, runIcebergBench } from '../../bench/iceberg.ts';
import { PROFILES } from '../../bench/run.ts';

describe('bench: Iceberg output (smoke)', () => {
  it('commits every delivered row, once per committer step, and reports files and commits per million rows', async () => {
    const o = PROFILES.smoke.iceberg;
    const env = Object.fromEntries(
      Object.entries(process.env).filter(
        (e): e is [string, string] => e[0].startsWith('AWS_') && e[1] !== undefined,
      ),
    );
    const r = await runIcebergBench(
      o,
      { env, bucket: process.env.TIDEMARK_BUCKET!, table: 'unused', runId: `s${Date.now().toString(36)}` },
      () => {},
    );
    const rows = o.tasks * o.epochs * o.rowsPerEpoch;
    expect(r.rows).toBe(rows);
    // One data file per task-epoch (one day partition, fewer rows than a file holds).
    expect(r.per1M.dataFiles).toBe(((o.tasks * o.epochs) / rows) * 1_000_000);
    // One commit per committer step, each carrying one epoch of every task.
    expect(r.per1M.commits).toBe((o.epochs / o.commitEvery / rows) * 1_000_000);
    expect(r.epochsPerCommit).toBe(o.tasks * o.commitEvery);
    expect(r.rowsPerSecond.median).toBeGreaterThan(0);
    expect(icebergSection(r)).toContain('commits per 1 M rows');
  });
});
