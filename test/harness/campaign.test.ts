/**
 * The fault campaign at CI size, against the servers globalSetup started (and a local Kafka cluster
 * the campaign starts for the outputs): faults at every step of the commit protocol and of the
 * outputs' deliveries (Kafka transactions, DynamoDB in and after the commit, S3 objects and
 * manifests), zombies, duplicate and re-batched deliveries, Kafka broker faults; then every task
 * checked against the oracle (0 lost, 0 double-applied) and every sink read back by an independent
 * reader (kcat with read_committed, a Scan, the manifests) against the fold (0 lost, 0 duplicated,
 * 0 from uncommitted attempts). The seed is random unless TIDEMARK_CAMPAIGN_SEED pins it; it is
 * printed with the command that replays the run exactly (deterministic mode: the tasks of a batch
 * run one after the other). TIDEMARK_CAMPAIGN_FAULTS / _RECORDS scale it up. The commit stores other
 * than DynamoDB have their own file (storeCampaign.test.ts).
 */
import { expect, it } from 'vitest';
import { runCampaign } from '../../harness/campaign/campaign.ts';
import { CAMPAIGN_SINKS } from '../../harness/campaign/outputCheck.ts';
import { formatReport } from '../../harness/campaign/report.ts';
import { expectExactOutputs } from '../helpers/campaign.ts';

const fromEnv = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
};

const seed = fromEnv('TIDEMARK_CAMPAIGN_SEED', Math.floor(Math.random() * 2 ** 31));
const faults = fromEnv('TIDEMARK_CAMPAIGN_FAULTS', 500);
const records = fromEnv('TIDEMARK_CAMPAIGN_RECORDS', 6_000);

it(`keeps exactly-once, state and outputs, through ${faults} injected faults (seed ${seed})`, {
  timeout: 900_000,
}, async () => {
  console.log(
    `[campaign] seed ${seed}; replay: TIDEMARK_CAMPAIGN_SEED=${seed} npx vitest run test/harness/campaign.test.ts`,
  );
  const report = await runCampaign({
    seed,
    faults,
    records,
    partitions: 8,
    lanes: 4,
    outputs: CAMPAIGN_SINKS,
    // Tasks of a batch one after the other: the printed seed replays this very run.
    deterministic: true,
    env: process.env,
    // Progress every 30 s (where each lane stands), so a slow or stuck run says where it is.
    log: (line) => process.stderr.write(`[campaign] ${line}\n`),
  });
  console.log(formatReport(report));
  if (!report.passed)
    console.log(`[campaign] FAILED, replay with: ${report.replay} (or TIDEMARK_CAMPAIGN_SEED=${seed})`);
  expect(report.totals.faultsFired).toBeGreaterThanOrEqual(faults);
  expect({ lost: report.totals.lost, doubled: report.totals.doubled }).toEqual({ lost: 0, doubled: 0 });
  expect(Object.keys(report.outputs).sort()).toEqual([...CAMPAIGN_SINKS].sort());
  expectExactOutputs(report);
  expect(report.problems).toEqual([]);
  expect(report.passed).toBe(true);
});

it.each(['lose', 'double'] as const)(
  'reports a %s record of the state when exactly-once is broken on purpose (harness self-check)',
  { timeout: 300_000 },
  async (sabotage) => {
    const report = await runCampaign({
      seed,
      faults: 40,
      records: 1_500,
      partitions: 2,
      lanes: 2,
      outputs: [],
      env: process.env,
      sabotage,
    });
    expect(report.passed).toBe(false);
    expect(sabotage === 'lose' ? report.totals.lost : report.totals.doubled).toBe(1);
    expect(sabotage === 'lose' ? report.totals.doubled : report.totals.lost).toBe(0);
  },
);

it.each(['lose-output', 'duplicate-output'] as const)(
  'reports what every sink lacks or holds twice when an output is %s on purpose (harness self-check)',
  { timeout: 300_000 },
  async (sabotage) => {
    const report = await runCampaign({
      seed,
      faults: 40,
      records: 1_500,
      partitions: 2,
      lanes: 2,
      outputs: CAMPAIGN_SINKS,
      brokerFaultRate: 0,
      env: process.env,
      sabotage,
    });
    expect(report.passed).toBe(false);
    // The state is untouched by an output's sabotage.
    expect({ lost: report.totals.lost, doubled: report.totals.doubled }).toEqual({ lost: 0, doubled: 0 });
    for (const sink of CAMPAIGN_SINKS) {
      const v = report.outputs[sink]!;
      if (sabotage === 'lose-output') expect({ sink, lost: v.lost > 0 }).toEqual({ sink, lost: true });
      else expect({ sink, caught: v.duplicated + v.unexpected > 0 }).toEqual({ sink, caught: true });
    }
  },
);
