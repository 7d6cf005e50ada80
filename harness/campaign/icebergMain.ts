/**
 * `node harness/campaign/icebergMain.ts --seed <n> --faults <n> --partitions <n> --catalog <kind>`:
 * the Iceberg sink's fault campaign (iceberg.ts) against DynamoDB Local and the S3 server started
 * for the run (or the servers named by the standard AWS variables with --use-env); prints the
 * report, exits 1 when it failed.
 */
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { startLocalStack } from '../localStack.ts';
import { formatIcebergReport, ICEBERG_CAMPAIGN_CATALOGS, runIcebergCampaign } from './iceberg.ts';

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function share(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError(`${name} must be between 0 and 1`);
    return n;
  };
}

const program = new Command('iceberg-campaign')
  .description(
    'Seeded fault campaign of the Iceberg sink and its committer: every applied record exactly once in the table',
  )
  .option('--seed <n>', 'seed (default: random, printed)', int('seed'))
  .option('--faults <n>', 'faults to fire (pipeline and committers)', int('faults'), 300)
  .option('--partitions <n>', 'tasks (topic-partitions)', int('partitions'), 6)
  .option('--min-records <n>', 'records per partition at least', int('min-records'), 60)
  .option('--fault-rate <p>', 'share of pipeline invocations carrying a fault', share('fault-rate'), 0.4)
  .option(
    '--committer-share <p>',
    "share of the faults that are the committers'",
    share('committer-share'),
    0.4,
  )
  .addOption(
    new Option('--catalog <kind>', 'the table catalog')
      .choices([...ICEBERG_CAMPAIGN_CATALOGS])
      .default('dynamodb'),
  )
  .option('--json <file>', 'also write the report as JSON')
  .option('--use-env', 'use the servers of the AWS variables and TIDEMARK_BUCKET/TIDEMARK_TABLE')
  .parse();

const o = program.opts<{
  seed?: number;
  faults: number;
  partitions: number;
  minRecords: number;
  faultRate: number;
  committerShare: number;
  catalog: (typeof ICEBERG_CAMPAIGN_CATALOGS)[number];
  json?: string;
  useEnv?: boolean;
}>();
const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
process.stderr.write(`[iceberg campaign] seed ${seed}\n`);
const stack = o.useEnv ? undefined : await startLocalStack();
try {
  const report = await runIcebergCampaign({
    seed,
    faults: o.faults,
    partitions: o.partitions,
    minRecords: o.minRecords,
    faultRate: o.faultRate,
    committerShare: o.committerShare,
    catalog: o.catalog,
    env: stack?.env ?? process.env,
    log: (line) => process.stderr.write(`[iceberg campaign] ${line}\n`),
  });
  console.log(formatIcebergReport(report));
  if (o.json) writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
  process.exitCode = report.passed ? 0 : 1;
} finally {
  await stack?.stop();
}
