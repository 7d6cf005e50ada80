/**
 * `npm run bench [-- --quick | --smoke] [--only a,b] [--out dir] [--memory-mb n] [--docs]`
 * `npm run bench -- --stores [--quick | --smoke]`: commit latency and throughput of every commit store
 * `npm run bench -- --time [--quick | --smoke]`: event time's costs (bench/time.ts)
 *
 * Starts DynamoDB Local and the S3 server (stopped at the end, also on Ctrl-C), runs the
 * benchmarks, and writes the run's JSON, `latest.md` and `latest.svg` under bench/results/.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type LocalStack, startLocalStack } from '../harness/localStack.ts';
import { writeOutputs, writePerformanceDoc } from './output.ts';
import { type BenchResult, type ProfileName, runBenchmarks, SECTIONS, type Section } from './run.ts';
import { runStoreBench } from './stores.ts';
import { runTimeBench } from './time.ts';

const USAGE = `usage: npm run bench -- [--quick | --smoke] [--only ${SECTIONS.join(',')}] [--out dir] [--memory-mb n] [--docs]
       npm run bench -- --render <run.json> [--out dir] [--docs]
       npm run bench -- --stores [--quick | --smoke] [--out dir]
       npm run bench -- --time [--quick | --smoke] [--out dir]
  --quick       smaller sizes, fewer repeats (under 5 minutes)
  --smoke       tiny sizes, seconds; figures are meaningless (checks that the code runs)
  --only        run some benchmarks only (cost needs requests, which then runs too)
  --out         where to write results (default bench/results; a temp dir for --smoke)
  --memory-mb   Lambda memory size for the cost model (default 1024)
  --docs        also regenerate docs/performance.md from this run
  --render      no measurement: render the summary and chart (and --docs) of a saved run's JSON
  --stores      commit latency and throughput of each commit store (memory, DynamoDB Local, PostgreSQL, MariaDB, Redis)
  --time        windowed vs plain processing, and 100 k / 1 M timers per task (memory, checkpoint bytes)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string' },
      'memory-mb': { type: 'string' },
      docs: { type: 'boolean', default: false },
      render: { type: 'string' },
      stores: { type: 'boolean', default: false },
      time: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.quick && values.smoke) {
    console.error(`--quick and --smoke are exclusive\n${USAGE}`);
    return 2;
  }
  const root = path.resolve(import.meta.dirname, '..');
  if (values.render) {
    const result = JSON.parse(readFileSync(values.render, 'utf8')) as BenchResult;
    const dir = values.out ?? path.dirname(values.render);
    const files = writeOutputs(result, dir, { json: false });
    if (values.docs) writePerformanceDoc(result, path.join(root, 'docs'), path.relative(root, values.render));
    console.log(`rendered ${files.summary} and ${files.chart} from ${values.render}`);
    return 0;
  }
  const profile: ProfileName = values.smoke ? 'smoke' : values.quick ? 'quick' : 'full';
  if (values.time) {
    const dir =
      values.out ??
      (profile === 'smoke'
        ? mkdtempSync(path.join(tmpdir(), 'tidemark-bench-'))
        : path.join(root, 'bench', 'results'));
    await runTimeBench(profile, dir, (line) => console.log(line));
    return 0;
  }
  if (values.stores) {
    const dir =
      values.out ??
      (profile === 'smoke'
        ? mkdtempSync(path.join(tmpdir(), 'tidemark-bench-'))
        : path.join(root, 'bench', 'results'));
    await runStoreBench(profile, dir, (line) => console.log(line));
    return 0;
  }
  const sections = values.only?.split(',').map((s) => s.trim()) ?? [...SECTIONS];
  const unknown = sections.filter((s) => !(SECTIONS as readonly string[]).includes(s));
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  const memoryMb = values['memory-mb'] === undefined ? undefined : Number(values['memory-mb']);
  if (memoryMb !== undefined && !(Number.isInteger(memoryMb) && memoryMb >= 128 && memoryMb <= 10_240)) {
    console.error('--memory-mb must be an integer from 128 to 10240');
    return 2;
  }
  const out =
    values.out ??
    (profile === 'smoke'
      ? mkdtempSync(path.join(tmpdir(), 'tidemark-bench-'))
      : path.join(root, 'bench', 'results'));

  console.log(
    `tidemark bench: ${profile} profile, ${sections.join(', ')}; starting DynamoDB Local and the S3 server${sections.includes('outputs') ? ' (the outputs benchmark starts the local Kafka cluster)' : ''}`,
  );
  let stack: LocalStack | undefined;
  const stop = async () => {
    const s = stack;
    stack = undefined;
    await s?.stop();
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the local servers`);
      void stop().finally(() => process.exit(130));
    });
  }
  try {
    stack = await startLocalStack({ bucket: 'tidemark-bench', table: 'tidemark-bench' });
    const result = await runBenchmarks({
      profile,
      sections: sections as Section[],
      target: {
        env: stack.env,
        bucket: stack.bucket,
        table: stack.table,
        runId: Date.now().toString(36),
      },
      ...(memoryMb ? { cost: { memoryMb } } : {}),
      log: (line) => console.log(line),
    });
    const files = writeOutputs(result, out);
    if (values.docs) {
      writePerformanceDoc(result, path.join(root, 'docs'), path.relative(root, files.json));
    }
    console.log('\nGoals:');
    for (const g of result.goals) {
      console.log(
        `  ${g.met === null ? '·' : g.met ? '✓' : '✗'} ${g.figure}: ${g.measured} (goal ${g.goal})`,
      );
    }
    console.log(
      `\nwrote ${path.relative(process.cwd(), files.json)}, ${path.relative(process.cwd(), files.summary)}, ${path.relative(process.cwd(), files.chart)} in ${result.durationSeconds} s`,
    );
    return 0;
  } finally {
    await stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
