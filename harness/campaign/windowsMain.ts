/**
 * `node harness/campaign/windowsMain.ts --seed <n> --records <n> --partitions <n>`: the windowed
 * example's fault campaign (windows.ts) against DynamoDB Local and the S3 server started for the run
 * (or the servers named by the standard AWS variables with --use-env); prints the report, exits 1 when
 * it failed.
 */
import { Command, InvalidArgumentError } from 'commander';
import { startLocalStack } from '../localStack.ts';
import { formatWindowReport, runWindowCampaign } from './windows.ts';

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

const program = new Command('window-campaign')
  .description('Seeded fault campaign of the windowed example: every window result exactly once')
  .option('--seed <n>', 'seed (default: random, printed)', int('seed'))
  .option('--records <n>', 'records per partition', int('records'), 2_000)
  .option('--partitions <n>', 'tasks (topic-partitions)', int('partitions'), 8)
  .option('--fault-rate <p>', 'share of invocations carrying a fault', Number, 0.35)
  .option('--use-env', 'use the servers of the AWS variables and TIDEMARK_BUCKET/TIDEMARK_TABLE')
  .parse();

const o = program.opts<{
  seed?: number;
  records: number;
  partitions: number;
  faultRate: number;
  useEnv?: boolean;
}>();
const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
const stack = o.useEnv ? undefined : await startLocalStack();
try {
  const report = await runWindowCampaign({
    seed,
    records: o.records,
    partitions: o.partitions,
    faultRate: o.faultRate,
    env: stack?.env ?? process.env,
    log: (line) => process.stderr.write(`[window campaign] ${line}\n`),
  });
  console.log(formatWindowReport(report));
  process.exitCode = report.passed ? 0 : 1;
} finally {
  await stack?.stop();
}
