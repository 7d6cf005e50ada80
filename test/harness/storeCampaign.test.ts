/**
 * The fault campaign on each database commit store, at CI size, against the PostgreSQL, MariaDB and
 * Redis servers globalSetup started: the same faults as on DynamoDB, plus the database's own (an
 * error before the statement, a response lost after it committed), with one sink per store so each
 * sink also runs with commits outside DynamoDB (its after-commit path for DynamoDB outputs), and on
 * PostgreSQL and MariaDB the SQL sink too (its rows in the commit's transaction). Every task checked
 * against the oracle and every sink read back against the fold; then the SQL sink's self-check (a
 * lost and a doubled write must be caught). The seed is random unless TIDEMARK_CAMPAIGN_SEED pins
 * it; TIDEMARK_STORE_CAMPAIGN_FAULTS scales it up.
 */
import { describe, expect, it } from 'vitest';
import { runCampaign } from '../../harness/campaign/campaign.ts';
import type { CampaignSink } from '../../harness/campaign/outputCheck.ts';
import { formatReport } from '../../harness/campaign/report.ts';
import type { CommitStoreKind } from '../../lib/config/config.ts';
import { ConfigurationError } from '../../lib/errors.ts';
import { expectExactOutputs } from '../helpers/campaign.ts';

const fromEnv = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
};
const seed = fromEnv('TIDEMARK_CAMPAIGN_SEED', Math.floor(Math.random() * 2 ** 31));
const faults = fromEnv('TIDEMARK_STORE_CAMPAIGN_FAULTS', 150);

const STORES: Array<[Exclude<CommitStoreKind, 'dynamodb'>, string, CampaignSink[]]> = [
  ['postgres', 'TIDEMARK_TEST_POSTGRES_URL', ['kafka', 'sql']],
  ['mysql', 'TIDEMARK_TEST_MYSQL_URL', ['dynamodb', 'sql']],
  ['redis', 'TIDEMARK_TEST_REDIS_URL', ['s3']],
];

describe.each(STORES)('commits in %s', (store, urlVariable, sinks) => {
  it(`keeps exactly-once through ${faults} faults, with ${sinks.join(' and ')} outputs (seed ${seed})`, {
    timeout: 600_000,
  }, async () => {
    const databaseUrl = process.env[urlVariable];
    expect(databaseUrl, `${urlVariable} (set by test/globalSetup.ts)`).toBeTruthy();
    const report = await runCampaign({
      seed,
      faults,
      records: 2_400,
      partitions: 4,
      lanes: 2,
      commitStore: store,
      databaseUrl,
      outputs: sinks,
      // The SDK's S3 client for snapshots here; the main campaign runs the lightweight one.
      awsClient: 'sdk',
      deterministic: true,
      env: process.env,
    });
    console.log(formatReport(report));
    if (!report.passed) console.log(`[campaign] FAILED, replay with: ${report.replay}`);
    expect(report.totals.faultsFired).toBeGreaterThanOrEqual(faults);
    const dbFaults = report.stats.faults['db-error'].fired + report.stats.faults['db-lost-response'].fired;
    expect(dbFaults).toBeGreaterThan(0);
    expect({ lost: report.totals.lost, doubled: report.totals.doubled }).toEqual({ lost: 0, doubled: 0 });
    expect(Object.keys(report.outputs).sort()).toEqual([...sinks].sort());
    expectExactOutputs(report);
    if (sinks.includes('sql')) {
      // Both tables read back: every output once in the events table, every open account's row.
      const parts = report.outputs.sql!.parts!;
      expect(parts.map((p) => p.seen)).toEqual(parts.map((p) => p.expected));
      expect(parts.every((p) => p.expected > 0)).toBe(true);
    }
    expect(report.problems).toEqual([]);
    expect(report.passed).toBe(true);
  });
});

describe.each([
  ['postgres', 'TIDEMARK_TEST_POSTGRES_URL'],
  ['mysql', 'TIDEMARK_TEST_MYSQL_URL'],
] as const)('the SQL sink on %s (harness self-check)', (store, urlVariable) => {
  it.each(['lose-output', 'duplicate-output'] as const)(
    'reports the write the SQL tables lack or hold twice when an output is %s on purpose',
    { timeout: 300_000 },
    async (sabotage) => {
      const report = await runCampaign({
        seed,
        faults: 20,
        records: 800,
        partitions: 2,
        lanes: 2,
        commitStore: store,
        databaseUrl: process.env[urlVariable],
        outputs: ['sql'],
        deterministic: true,
        env: process.env,
        sabotage,
      });
      expect(report.passed).toBe(false);
      // The state is untouched by an output's sabotage.
      expect({ lost: report.totals.lost, doubled: report.totals.doubled }).toEqual({ lost: 0, doubled: 0 });
      const v = report.outputs.sql!;
      if (sabotage === 'lose-output') {
        expect({ lost: v.lost > 0, duplicated: v.duplicated }).toEqual({ lost: true, duplicated: 0 });
      } else {
        expect({ lost: v.lost, duplicated: v.duplicated > 0 }).toEqual({ lost: 0, duplicated: true });
      }
    },
  );
});

it('refuses the SQL sink with a commit store outside PostgreSQL and MySQL, with a typed error', async () => {
  for (const commitStore of ['dynamodb', 'redis'] as const) {
    const run = runCampaign({ seed, faults: 1, records: 10, partitions: 1, commitStore, outputs: ['sql'] });
    await expect(run).rejects.toThrow(ConfigurationError);
    await expect(run).rejects.toThrow(/sql sink .* needs commits in postgres or mysql/);
  }
});
