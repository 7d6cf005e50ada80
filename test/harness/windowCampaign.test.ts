/**
 * The windowed example's fault campaign at CI size (harness/campaign/windows.ts), against the servers
 * globalSetup started: every window result exactly once, late records counted, every timer fired once.
 * The seed is random unless TIDEMARK_WINDOW_CAMPAIGN_SEED pins it (printed with the replay command);
 * TIDEMARK_WINDOW_CAMPAIGN_RECORDS scales it up.
 */
import { expect, it } from 'vitest';
import { formatWindowReport, runWindowCampaign } from '../../harness/campaign/windows.ts';

const fromEnv = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
};
const seed = fromEnv('TIDEMARK_WINDOW_CAMPAIGN_SEED', Math.floor(Math.random() * 2 ** 31));
const records = fromEnv('TIDEMARK_WINDOW_CAMPAIGN_RECORDS', 600);

it(`emits every window result of the windowed example exactly once through faults (seed ${seed})`, {
  timeout: 600_000,
}, async () => {
  console.log(
    `[window campaign] seed ${seed}; replay: TIDEMARK_WINDOW_CAMPAIGN_SEED=${seed} npx vitest run test/harness/windowCampaign.test.ts`,
  );
  const report = await runWindowCampaign({ seed, partitions: 4, records, env: process.env });
  console.log(formatWindowReport(report));
  expect(report.windowsExpected).toBeGreaterThan(0);
  expect(report.lateExpected).toBeGreaterThan(0);
  expect(Object.values(report.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(20);
  expect({
    lost: report.lost,
    duplicated: report.duplicated,
    wrong: report.wrong,
    late: report.lateCounted,
    quarantined: report.quarantinedCounted,
    timersLeft: report.timersLeft,
    windowsLeft: report.windowsLeft,
    unfinished: report.unfinishedTasks,
  }).toEqual({
    lost: 0,
    duplicated: 0,
    wrong: 0,
    late: report.lateExpected,
    quarantined: report.quarantinedExpected,
    timersLeft: 0,
    windowsLeft: 0,
    unfinished: 0,
  });
});

it.each(['lose-window', 'duplicate-window'] as const)(
  'reports a %s (harness self-check)',
  async (sabotage) => {
    const report = await runWindowCampaign({
      seed,
      partitions: 1,
      records: 150,
      faultRate: 0,
      env: process.env,
      sabotage,
    });
    expect(report.passed).toBe(false);
    expect([report.lost, report.duplicated]).toEqual(sabotage === 'lose-window' ? [1, 0] : [0, 1]);
  },
);
