/**
 * `npm start [-- flags]`: the main job (see mainJob.ts and docs/local-run.md). Starts DynamoDB
 * Local, the S3 server and the Kafka mock cluster (and the commit store's database server, with
 * `--commit-store`), runs `tidemark init`, produces a keyed stream, runs the balances pipeline with
 * outputs through the ESM emulator with faults on, verifies every task and both outputs (a Kafka
 * topic, a DynamoDB table) against an independent fold of the stream, and prints a summary. Exit
 * code 0 only when verified.
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import Table from 'cli-table3';
import { Command, InvalidArgumentError, Option } from 'commander';
import { COMMIT_STORES, type CommitStoreKind } from '../lib/config/env.ts';
import { quietKafkajsWarnings } from '../lib/ops/kafka.ts';
import { BROKER_FAULT_KINDS } from './brokerFaults.ts';
import {
  FAULT_NAMES,
  type FaultRates,
  type JobServers,
  type JobStage,
  type MainJobResult,
  type OutputSummary,
  parseFaults,
  runMainJob,
} from './mainJob.ts';

interface Flags {
  records: number;
  partitions: number;
  faults: FaultRates;
  seed: number;
  brokers?: string[];
  keep?: boolean;
  batchSize: number;
  json?: boolean;
  log?: string;
  partialBatchResponse: boolean;
  commitStore: CommitStoreKind;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isNaN(n) ? '-' : `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`);

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v.replaceAll('_', ''));
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

function faultsArg(v: string): FaultRates {
  try {
    return parseFaults(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function brokersArg(v: string): string[] {
  const list = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0 || list.some((b) => !/^[^\s:]+:\d{1,5}$/.test(b)))
    throw new InvalidArgumentError('must be a comma-separated list of host:port');
  return list;
}

export function buildCommand(): Command {
  return new Command('npm start --')
    .description(
      'Runs Kafka → ESM emulator → Tidemark (balances pipeline with outputs) → S3 + DynamoDB (or PostgreSQL, MariaDB, Redis) + a Kafka topic and a DynamoDB table locally, with faults, and verifies the result',
    )
    .addOption(
      new Option('--records <n>', 'records to produce').argParser(intArg(1, 100_000_000)).default(200_000),
    )
    .addOption(
      new Option('--partitions <n>', 'partitions of the topic').argParser(intArg(1, 1000)).default(8),
    )
    .addOption(
      new Option(
        '--faults <spec>',
        `on, off, or ${FAULT_NAMES.join('|')}=<rate 0..1>,… on top of the defaults`,
      )
        .argParser(faultsArg)
        .default(parseFaults('on'), 'on'),
    )
    .addOption(
      new Option('--seed <n>', 'seed of the stream and of the fault schedule')
        .argParser(intArg(0, 2 ** 31 - 1))
        .default(42),
    )
    .addOption(
      new Option(
        '--brokers <list>',
        'use an existing Kafka cluster (host:port,…) instead of the embedded one',
      ).argParser(brokersArg),
    )
    .addOption(new Option('--keep', 'leave the servers running afterwards and print their endpoints'))
    .addOption(
      new Option('--batch-size <n>', 'ESM BatchSize (records per invocation)')
        .argParser(intArg(1, 10_000))
        .default(1000),
    )
    .addOption(
      new Option(
        '--partial-batch-response <on|off>',
        'the mapping reads partial batch responses (ReportBatchItemFailures): only failed tasks are delivered again',
      )
        .argParser((v: string) => {
          if (v !== 'on' && v !== 'off') throw new InvalidArgumentError('must be on or off');
          return v === 'on';
        })
        .default(true, 'on'),
    )
    .addOption(
      new Option(
        '--commit-store <store>',
        'where commits go: DynamoDB Local, or a PostgreSQL, MariaDB (mysql) or Redis server started for the run',
      )
        .choices(COMMIT_STORES)
        .default('dynamodb'),
    )
    .addOption(new Option('--json', 'print the result as one JSON object instead of the table'))
    .addOption(
      new Option(
        '--log <file>',
        'append diagnostics (Kafka client warnings, faults, emulator state) to a file',
      ),
    )
    .showHelpAfterError();
}

const STAGE_TITLE: Record<JobStage, string> = {
  servers: 'starting DynamoDB Local, the S3 server and the Kafka cluster',
  init: 'npx tidemark init',
  topic: 'creating the input and output topics and the output table',
  run: 'producing the stream and processing it through the ESM emulator',
  verify:
    'verifying every task (read through `tidemark inspect`) and the outputs (Kafka with kcat, read_committed; the DynamoDB table) against an independent fold of the stream',
  done: 'done',
};

/** `<n> of <expected> …: 0 lost · 0 duplicated · 0 uncommitted` (and any other problem). */
function outputLine(o: OutputSummary, unit: string): string {
  const v = o.verdict;
  const extra = [
    v.unexpected ? `${v.unexpected} unexpected` : '',
    v.outOfOrder ? `${v.outOfOrder} out of order` : '',
    v.unplaced ? `${v.unplaced} unplaced` : '',
  ].filter(Boolean);
  const writes = o.writes === undefined ? '' : ` after ${fmt(o.writes)} writes`;
  return `${o.name}: ${fmt(v.seen)} ${unit}${writes} (${fmt(v.expected)} expected): ${v.lost} lost · ${v.duplicated} duplicated · ${v.uncommitted} uncommitted${extra.length ? ` · ${extra.join(' · ')}` : ''}`;
}

function summaryTable(r: MainJobResult): string {
  const s = r.summary;
  const t = new Table({
    style: { head: [], border: [] },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  // Epochs whose commit landed just before a crash are never reported to observers.
  const unreported = s.epochs - s.checkpointMs.count;
  const faults = FAULT_NAMES.map((k) => `${k} ${s.faults[k]}`).join(' · ');
  const brokers = s.brokerFaults
    ? BROKER_FAULT_KINDS.filter((k) => s.brokerFaults![k] > 0)
        .map((k) => `${k} ${s.brokerFaults![k]}`)
        .join(' · ') || 'none'
    : 'n/a (existing cluster)';
  t.push(
    ['records', `${fmt(s.records)} (${s.partitions} partitions, ${fmt(s.accounts)} accounts)`],
    ['applied exactly once', fmt(s.applied)],
    [
      'epochs committed',
      `${fmt(s.epochs)}${unreported > 0 ? ` (incl. ${unreported} whose writer crashed or lost the response)` : ''}`,
    ],
    ['duplicates skipped', fmt(s.duplicatesSkipped)],
    ['records quarantined', fmt(s.quarantined)],
    [
      'commit store',
      s.commitStore === 'dynamodb'
        ? 'dynamodb (DynamoDB Local)'
        : `${s.commitStore} (${r.servers.dbUrl ?? ''})`,
    ],
    ['Kafka output', outputLine(s.outputs.kafka, 'records, read_committed')],
    ['DynamoDB output', outputLine(s.outputs.dynamodb, 'items')],
    ['faults injected', faults],
    ['  broker faults', brokers],
    [
      'invocations',
      `${fmt(s.esm.invocations)} (${s.esm.failed.error} failed, ${s.esm.failed.crash} crashed, ${s.esm.failed.timeout} timed out; ${s.esm.coldStarts} cold starts)`,
    ],
    ['commit conflicts', `${s.commitConflicts} (stale warm state or a racing duplicate; winner reloaded)`],
    [
      'records re-delivered',
      `${fmt(s.redelivery.records)} for ${fmt(s.redelivery.failures)} failures: ${s.redelivery.perFailure.toFixed(1)} per failure (partial batch responses ${s.redelivery.partialBatchResponse ? `on, ${s.esm.partialResponses} sent` : 'off'})`,
    ],
    [
      'checkpoint latency',
      `p50 ${ms(s.checkpointMs.p50)} · p99 ${ms(s.checkpointMs.p99)} (${fmt(s.checkpointMs.count)} checkpoints)`,
    ],
    [
      'records per second',
      `${fmt(s.recordsPerSecond)} (${(s.processMs / 1000).toFixed(1)} s, BatchSize ${s.batchSize})`,
    ],
  );
  return t.toString();
}

function keepInstructions(servers: JobServers, r: MainJobResult): string {
  const env = Object.entries(servers.awsEnv)
    .map(([k, v]) => `  export ${k}=${v}`)
    .join('\n');
  return [
    '',
    'Servers kept running (Ctrl-C stops them). In another shell:',
    env,
    `  npx tidemark inspect --pipeline ${r.summary.pipeline} --topic ${r.summary.topic} --partition 0`,
    `Kafka: ${servers.kafkaBrokers.join(',')} (topic ${r.summary.topic}, consumer group ${r.summary.pipeline}; outputs in ${r.summary.outputs.kafka.name}: kcat -C -b ${servers.kafkaBrokers[0]} -t ${r.summary.outputs.kafka.name} -X isolation.level=read_committed -e)`,
    `DynamoDB output table: ${r.summary.outputs.dynamodb.name}`,
  ].join('\n');
}

export async function main(argv: string[] = process.argv): Promise<number> {
  quietKafkajsWarnings();
  const command = buildCommand();
  command.parse(argv);
  const flags = command.opts<Flags>();
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const log = flags.json ? () => {} : out;

  const controller = new AbortController();
  let firstSignal = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    const now = Date.now();
    // npm and the Node wrapper forward the same Ctrl-C: a second one counts after a moment only.
    if (firstSignal && now - firstSignal > 1_000) process.exit(130);
    if (firstSignal) return;
    firstSignal = now;
    process.stderr.write(`\n${sig}: stopping the job and the servers…\n`);
    controller.abort(new Error(`interrupted (${sig})`));
    setTimeout(() => process.exit(130), 15_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  log(
    `Tidemark main job · ${fmt(flags.records)} records · ${flags.partitions} partitions · faults ${FAULT_NAMES.map((k) => `${k}=${flags.faults[k]}`).join(' ')} · seed ${flags.seed}`,
  );
  const bar = new cliProgress.SingleBar({
    format:
      '  [{bar}] {percentage}% | {value}/{total} records committed | produced {produced} | {rps} rec/s | {epochs} epochs | {faults} faults',
    barCompleteChar: '█',
    barIncompleteChar: '░',
    hideCursor: true,
    noTTYOutput: !flags.json,
    notTTYSchedule: 5_000,
    fps: 5,
    stream: process.stderr,
  });
  const logFile = flags.log ? createWriteStream(flags.log, { flags: 'a' }) : undefined;
  const diagnostics = logFile
    ? (line: string) => logFile.write(`${new Date().toISOString()} ${line}\n`)
    : undefined;
  let barStarted = false;
  let lastStage: JobStage | undefined;
  let result: MainJobResult;
  try {
    result = await runMainJob({
      records: flags.records,
      partitions: flags.partitions,
      faults: flags.faults,
      seed: flags.seed,
      brokers: flags.brokers,
      batchSize: flags.batchSize,
      partialBatchResponse: flags.partialBatchResponse,
      commitStore: flags.commitStore,
      signal: controller.signal,
      log: diagnostics,
      onStage: (stage, note) => {
        if (stage !== lastStage) {
          if (barStarted) {
            bar.stop();
            barStarted = false;
          }
          if (stage !== 'done') log(`▸ ${STAGE_TITLE[stage]}`);
          lastStage = stage;
        }
        if (note) for (const line of note.split('\n')) log(`  ${line}`);
        if (stage === 'run' && !flags.json) {
          bar.start(flags.records, 0, { produced: 0, rps: 0, epochs: 0, faults: 0 });
          barStarted = true;
        }
      },
      onProgress: (p) => {
        if (barStarted)
          bar.update(p.committed, {
            produced: fmt(p.produced),
            rps: fmt(p.committed / Math.max(0.001, p.elapsedMs / 1000)),
            epochs: fmt(p.epochs),
            faults: p.faults,
          });
      },
    });
  } catch (err) {
    if (barStarted) bar.stop();
    diagnostics?.(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    logFile?.end();
    if (controller.signal.aborted) {
      process.stderr.write('stopped: servers shut down\n');
      return 130;
    }
    process.stderr.write(`main job failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }

  if (flags.json) {
    out(JSON.stringify({ verified: result.verified, summary: result.summary, tasks: result.verdicts }));
  } else {
    for (const v of result.verdicts) {
      const head = `  ${v.ok ? '✓' : '✗'} ${result.summary.topic}-${v.partition}  epoch ${v.epoch}  offset ${v.committedOffset ?? '-'}  ${fmt(v.accounts)} accounts  ${v.quarantined} quarantined`;
      log(head);
      for (const p of v.problems) log(`      ${p}`);
    }
    for (const o of [result.summary.outputs.kafka, result.summary.outputs.dynamodb]) {
      for (const e of o.verdict.examples) log(`  ✗ ${e}`);
    }
    log(summaryTable(result));
    const failedTasks = result.verdicts.filter((v) => !v.ok).length;
    log(
      result.verified
        ? `VERIFIED: all ${result.verdicts.length} tasks and both outputs equal an independent fold of the ${fmt(result.summary.records)} records produced.`
        : `NOT VERIFIED: ${[
            failedTasks ? `${failedTasks} task(s) differ from the independent fold` : '',
            ...result.summary.outputs.problems,
          ]
            .filter(Boolean)
            .join('; ')} (see above).`,
    );
  }

  if (flags.keep && !controller.signal.aborted) {
    log(keepInstructions(result.servers, result));
    await new Promise<void>((resolve) =>
      controller.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
  }
  await result.servers.stop();
  diagnostics?.(`done: ${result.verified ? 'verified' : 'NOT verified'}`);
  logFile?.end();
  return result.verified ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
  // Whatever a client library may still hold open (timers, sockets) must not keep us running.
  setTimeout(() => process.exit(), 2_000).unref();
}
