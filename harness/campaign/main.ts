/**
 * `npm run campaign -- --seed <n> --faults <n> --records <n> --partitions <n>`: runs the fault
 * campaign against DynamoDB Local and the S3 server (started for the run, or the servers named by
 * the standard AWS variables with --use-env), prints the report, exits 1 when it failed.
 */
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { runCampaign } from './campaign.ts';
import { formatReport } from './report.ts';

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

const program = new Command('campaign')
  .description('Randomized, seeded fault campaign: proves exactly-once against the real local servers')
  .option('--seed <n>', 'seed (default: random, printed)', int('seed'))
  .option('--faults <n>', 'faults to fire, at least', int('faults'), 1_000)
  .option('--records <n>', 'records in the input stream', int('records'), 20_000)
  .option('--partitions <n>', 'tasks (topic-partitions)', int('partitions'), 8)
  .option('--lanes <n>', 'ESM pollers side by side', int('lanes'), 4)
  .addOption(
    new Option('--processor <name>', 'processor(s) under test')
      .choices(['both', 'ledger', 'balances'])
      .default('both'),
  )
  .option('--keys <n>', 'accounts per task', int('keys'), 24)
  .option(
    '--skip <list>',
    'faults never planned, comma-separated <kind> or <kind>@<op>',
    (v) => v.split(',').filter(Boolean),
    [],
  )
  .option(
    '--deterministic',
    'run the tasks of a batch one after the other, so the seed replays the run exactly',
  )
  .option(
    '--use-env',
    'use the servers named by AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_DYNAMODB and TIDEMARK_BUCKET / TIDEMARK_TABLE',
  )
  .option('--json <file>', 'also write the full report as JSON')
  .option('--quiet', 'no progress lines');

program.parse();
const o = program.opts<{
  seed?: number;
  faults: number;
  records: number;
  partitions: number;
  lanes: number;
  processor: 'both' | 'ledger' | 'balances';
  keys: number;
  skip: string[];
  useEnv?: boolean;
  deterministic?: boolean;
  json?: string;
  quiet?: boolean;
}>();
const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
const log = o.quiet ? undefined : (line: string) => console.error(`[campaign] ${line}`);
const report = await runCampaign({
  seed,
  faults: o.faults,
  records: o.records,
  partitions: o.partitions,
  lanes: o.lanes,
  processor: o.processor,
  keysPerTask: o.keys,
  skip: o.skip,
  deterministic: o.deterministic,
  env: o.useEnv ? process.env : undefined,
  log,
});
console.log(formatReport(report));
if (o.json) {
  writeFileSync(
    o.json,
    `${JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`,
  );
}
process.exitCode = report.passed ? 0 : 1;
