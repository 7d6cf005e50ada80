/**
 * `npm run campaign -- --seed <n> --faults <n> --records <n> --partitions <n>`: runs the fault
 * campaign against DynamoDB Local and the S3 server (started for the run, or the servers named by
 * the standard AWS variables with --use-env), a commit store (`--commit-store`: DynamoDB, or a
 * PostgreSQL, MariaDB or Redis server started for the run) and the outputs' sinks (`--outputs`: a
 * local Kafka cluster started for the run, DynamoDB, S3, and SQL tables in the commit store's
 * database), prints the report, exits 1 when it failed (2 on options it cannot run with).
 */
import { createWriteStream, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { CommitStoreKind } from '../../lib/config/config.ts';
import type { AwsClientKind } from '../../lib/config/env.ts';
import { ConfigurationError } from '../../lib/errors.ts';
import { CAMPAIGN_COMMIT_STORES, type CampaignReport, runCampaign } from './campaign.ts';
import { ALL_CAMPAIGN_SINKS, CAMPAIGN_SINKS, type CampaignSink } from './outputCheck.ts';
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
  .addOption(
    new Option(
      '--aws-client <client>',
      "the containers' client of snapshots and DynamoDB commits (the Lambda bundle's is lite)",
    )
      .choices(['lite', 'sdk'])
      .default('lite'),
  )
  .addOption(
    new Option('--commit-store <store>', 'where commits go')
      .choices([...CAMPAIGN_COMMIT_STORES])
      .default('dynamodb'),
  )
  .option(
    '--outputs <list>',
    `sinks the processors emit to, comma-separated (${ALL_CAMPAIGN_SINKS.join(', ')}; sql with --commit-store postgres or mysql), or none`,
    (v) => {
      if (v === 'none') return [];
      const list = v.split(',').filter(Boolean);
      for (const x of list) {
        if (!(ALL_CAMPAIGN_SINKS as readonly string[]).includes(x))
          throw new InvalidArgumentError(
            `unknown sink ${x}; sinks: ${ALL_CAMPAIGN_SINKS.join(', ')}, or none`,
          );
      }
      return list;
    },
    [...CAMPAIGN_SINKS],
  )
  .option('--brokers <list>', 'an existing Kafka cluster (host:port,…) for the Kafka outputs', (v) =>
    v.split(',').filter(Boolean),
  )
  .option(
    '--broker-faults <rate>',
    'chance per invocation of a Kafka broker fault (local cluster)',
    (v) => {
      const n = Number(v);
      if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('--broker-faults must be from 0 to 1');
      return n;
    },
    0.02,
  )
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
    'use the servers named by AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_DYNAMODB, TIDEMARK_BUCKET / TIDEMARK_TABLE and TIDEMARK_DB_URL',
  )
  .option('--json <file>', 'also write the full report as JSON')
  .option('--trace <file>', 'append diagnostics (invocations, commits, deliveries, Kafka steps) to a file')
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
  commitStore: CommitStoreKind;
  awsClient: AwsClientKind;
  outputs: CampaignSink[];
  brokers?: string[];
  brokerFaults: number;
  skip: string[];
  useEnv?: boolean;
  deterministic?: boolean;
  json?: string;
  trace?: string;
  quiet?: boolean;
}>();
const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
const log = o.quiet ? undefined : (line: string) => console.error(`[campaign] ${line}`);
const traceFile = o.trace ? createWriteStream(o.trace, { flags: 'a' }) : undefined;
const trace = traceFile
  ? (line: string) => traceFile.write(`${new Date().toISOString()} ${line}\n`)
  : undefined;
let report: CampaignReport;
try {
  report = await runCampaign({
    seed,
    faults: o.faults,
    records: o.records,
    partitions: o.partitions,
    lanes: o.lanes,
    processor: o.processor,
    keysPerTask: o.keys,
    commitStore: o.commitStore,
    awsClient: o.awsClient,
    outputs: o.outputs,
    kafkaBrokers: o.brokers,
    brokerFaultRate: o.brokerFaults,
    databaseUrl: o.useEnv ? process.env.TIDEMARK_DB_URL || undefined : undefined,
    skip: o.skip,
    deterministic: o.deterministic,
    trace,
    env: o.useEnv ? process.env : undefined,
    log,
  });
} catch (err) {
  if (!(err instanceof ConfigurationError || err instanceof RangeError)) throw err;
  console.error(`campaign: ${err.message}`);
  process.exit(2);
}
console.log(formatReport(report));
if (o.json) {
  writeFileSync(
    o.json,
    `${JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`,
  );
}
// The run's servers are stopped; a client's socket or timer left behind (a container's kafkajs
// producer, a database pool) must not keep the command running once its report is out.
await new Promise<void>((resolve) => (traceFile ? traceFile.end(resolve) : resolve()));
process.exit(report.passed ? 0 : 1);
