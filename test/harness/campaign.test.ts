/**
 * The fault campaign at CI size, against the servers globalSetup started: at least 1,000 injected
 * faults over a multi-partition stream, then every task checked against the oracle (0 lost,
 * 0 double-applied). The seed is random unless TIDEMARK_CAMPAIGN_SEED pins it; it is printed with
 * the command that replays the run exactly (deterministic mode: the tasks of a batch run one after
 * the other, so no fault's firing depends on timing). TIDEMARK_CAMPAIGN_FAULTS / _RECORDS scale it up.
 */
import { expect, it } from 'vitest';
import { runCampaign } from '../../harness/campaign/campaign.ts';
import { formatReport } from '../../harness/campaign/report.ts';

const fromEnv = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
};

const seed = fromEnv('TIDEMARK_CAMPAIGN_SEED', Math.floor(Math.random() * 2 ** 31));
const faults = fromEnv('TIDEMARK_CAMPAIGN_FAULTS', 1_000);
const records = fromEnv('TIDEMARK_CAMPAIGN_RECORDS', 15_000);

it(`keeps exactly-once through ${faults} injected faults (seed ${seed})`, { timeout: 900_000 }, async () => {
  console.log(
    `[campaign] seed ${seed}; replay: TIDEMARK_CAMPAIGN_SEED=${seed} npx vitest run test/harness/campaign.test.ts`,
  );
  const report = await runCampaign({
    seed,
    faults,
    records,
    partitions: 8,
    lanes: 4,
    // Tasks of a batch one after the other: the printed seed replays this very run.
    deterministic: true,
    env: process.env,
    // Progress every 30 s (where each lane stands), so a slow or stuck run says where it is.
    log: (line) => process.stderr.write(`[campaign] ${line}\n`),
  });
  const text = formatReport(report);
  console.log(text);
  if (!report.passed)
    console.log(`[campaign] FAILED, replay with: ${report.replay} (or TIDEMARK_CAMPAIGN_SEED=${seed})`);
  expect(report.totals.faultsFired).toBeGreaterThanOrEqual(faults);
  expect({ lost: report.totals.lost, doubled: report.totals.doubled }).toEqual({ lost: 0, doubled: 0 });
  expect(report.problems).toEqual([]);
});

it.each(['lose', 'double'] as const)(
  'reports a %s record when exactly-once is broken on purpose (harness self-check)',
  async (sabotage) => {
    const report = await runCampaign({
      seed,
      faults: 40,
      records: 1_500,
      partitions: 2,
      lanes: 2,
      env: process.env,
      sabotage,
    });
    expect(report.passed).toBe(false);
    expect(sabotage === 'lose' ? report.totals.lost : report.totals.doubled).toBe(1);
    expect(sabotage === 'lose' ? report.totals.doubled : report.totals.lost).toBe(0);
  },
);
