/**
 * The Iceberg sink's fault campaign at CI size (harness/campaign/iceberg.ts), against the servers
 * globalSetup started: crashes, zombies, S3 and catalog faults, racing and crashing committers; then
 * icebird and DuckDB read the table: every applied record's row exactly once, none from an attempt
 * that did not commit. The seed is random unless TIDEMARK_ICEBERG_CAMPAIGN_SEED pins it (printed
 * with the replay command); TIDEMARK_ICEBERG_CAMPAIGN_FAULTS scales it, TIDEMARK_ICEBERG_CAMPAIGN_CATALOG
 * picks the catalog (default: drawn from the seed).
 */
import { expect, it } from 'vitest';
import {
  formatIcebergReport,
  ICEBERG_CAMPAIGN_CATALOGS,
  type IcebergCampaignCatalog,
  runIcebergCampaign,
} from '../../harness/campaign/iceberg.ts';

const fromEnv = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
};
const seed = fromEnv('TIDEMARK_ICEBERG_CAMPAIGN_SEED', Math.floor(Math.random() * 2 ** 31));
const faults = fromEnv('TIDEMARK_ICEBERG_CAMPAIGN_FAULTS', 36);
const catalog = (process.env.TIDEMARK_ICEBERG_CAMPAIGN_CATALOG ||
  ICEBERG_CAMPAIGN_CATALOGS[seed % ICEBERG_CAMPAIGN_CATALOGS.length]) as IcebergCampaignCatalog;

it(`writes every applied record to the Iceberg table exactly once through faults and racing committers (seed ${seed}, ${catalog} catalog)`, {
  timeout: 600_000,
}, async () => {
  console.log(
    `[iceberg campaign] seed ${seed}, ${catalog} catalog; replay: TIDEMARK_ICEBERG_CAMPAIGN_SEED=${seed} TIDEMARK_ICEBERG_CAMPAIGN_CATALOG=${catalog} npx vitest run test/harness/icebergCampaign.test.ts`,
  );
  const report = await runIcebergCampaign({
    seed,
    partitions: 4,
    faults,
    minRecords: 30,
    catalog,
    env: process.env,
  });
  console.log(formatIcebergReport(report));
  expect(report.rowsExpected).toBeGreaterThan(0);
  expect(report.faultsFired).toBeGreaterThan(faults * 0.8);
  expect(report.committer.races).toBeGreaterThan(0);
  expect({
    lost: report.lost,
    duplicated: report.duplicated,
    wrong: report.wrong,
    uncommitted: report.uncommitted,
    duckdbAgrees: report.duckdbAgrees,
    stagedLeft: report.stagedLeft,
    unfinished: report.unfinishedTasks,
  }).toEqual({
    lost: 0,
    duplicated: 0,
    wrong: 0,
    uncommitted: 0,
    duckdbAgrees: true,
    stagedLeft: 0,
    unfinished: 0,
  });
});

it.each(['lose-row', 'duplicate-row', 'uncommitted-row'] as const)(
  'reports a %s (harness self-check)',
  async (sabotage) => {
    const report = await runIcebergCampaign({
      seed,
      partitions: 1,
      faults: 0,
      minRecords: 30,
      env: process.env,
      sabotage,
    });
    expect(report.passed).toBe(false);
    expect([report.lost, report.duplicated, report.uncommitted]).toEqual(
      sabotage === 'lose-row' ? [1, 0, 0] : sabotage === 'duplicate-row' ? [0, 1, 0] : [0, 0, 1],
    );
  },
);
