/**
 * The fault campaign on each database commit store, at CI size, against the PostgreSQL, MariaDB and
 * Redis servers globalSetup started: the same faults as on DynamoDB, plus the database's own (an
 * error before the statement, a response lost after it committed), with one sink per store so each
 * sink also runs with commits outside DynamoDB (its after-commit path for DynamoDB outputs). Every
 * task checked against the oracle and every sink read back against the fold. The seed is random
 * unless TIDEMARK_CAMPAIGN_SEED pins it; TIDEMARK_STORE_CAMPAIGN_FAULTS scales it up.
 */
import { describe, expect, it } from 'vitest';
import { runCampaign } from '../../harness/campaign/campaign.ts';
import type { CampaignSink } from '../../harness/campaign/outputCheck.ts';
import { formatReport } from '../../harness/campaign/report.ts';
import type { CommitStoreKind } from '../../lib/config/config.ts';
import { expectExactOutputs } from '../helpers/campaign.ts';

const fromEnv = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
};
const seed = fromEnv('TIDEMARK_CAMPAIGN_SEED', Math.floor(Math.random() * 2 ** 31));
const faults = fromEnv('TIDEMARK_STORE_CAMPAIGN_FAULTS', 150);

const STORES: Array<[Exclude<CommitStoreKind, 'dynamodb'>, string, CampaignSink]> = [
  ['postgres', 'TIDEMARK_TEST_POSTGRES_URL', 'kafka'],
  ['mysql', 'TIDEMARK_TEST_MYSQL_URL', 'dynamodb'],
  ['redis', 'TIDEMARK_TEST_REDIS_URL', 's3'],
];

describe.each(STORES)('commits in %s', (store, urlVariable, sink) => {
  it(`keeps exactly-once through ${faults} faults, with ${sink} outputs (seed ${seed})`, {
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
      outputs: [sink],
      deterministic: true,
      env: process.env,
    });
    console.log(formatReport(report));
    if (!report.passed) console.log(`[campaign] FAILED, replay with: ${report.replay}`);
    expect(report.totals.faultsFired).toBeGreaterThanOrEqual(faults);
    const dbFaults = report.stats.faults['db-error'].fired + report.stats.faults['db-lost-response'].fired;
    expect(dbFaults).toBeGreaterThan(0);
    expect({ lost: report.totals.lost, doubled: report.totals.doubled }).toEqual({ lost: 0, doubled: 0 });
    expectExactOutputs(report);
    expect(report.problems).toEqual([]);
    expect(report.passed).toBe(true);
  });
});
