/** Writes a run's files: the JSON of the run, the markdown summary and the chart. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderChart } from './chart.ts';
import { renderSummary } from './report.ts';
import type { BenchResult } from './run.ts';

export interface WrittenFiles {
  json: string;
  summary: string;
  chart: string;
}

export function writeOutputs(result: BenchResult, dir: string): WrittenFiles {
  mkdirSync(dir, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, '-');
  const json = path.join(dir, `${stamp}-${result.profile}.json`);
  const chart = path.join(dir, 'latest.svg');
  const summary = path.join(dir, 'latest.md');
  writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(chart, renderChart(result));
  writeFileSync(summary, renderSummary(result, 'latest.svg'));
  return { json, summary, chart };
}

/**
 * docs/performance.md: how to reproduce, then a copy of the run's summary (its chart copied next
 * to it, so later runs do not change what the page shows).
 */
export function writePerformanceDoc(result: BenchResult, docsDir: string, resultFile: string): void {
  mkdirSync(docsDir, { recursive: true });
  writeFileSync(path.join(docsDir, 'performance.svg'), renderChart(result));
  const summary = renderSummary(result, 'performance.svg').replace(/^# .*\n/, '');
  const doc = `# Performance

What Tidemark costs next to a raw loop, and what it saves next to the per-record DynamoDB approach
users write today. Everything here is produced by \`npm run bench\` (code in \`bench/\`); this page
is regenerated from a full run with \`npm run bench -- --docs\`.

## How to reproduce

\`\`\`sh
npm ci
npm run bench              # full run (about 15 minutes on 2 shared cores)
npm run bench -- --quick   # smaller sizes and fewer repeats (under 5 minutes)
npm run bench -- --only overhead,state   # some benchmarks only (overhead, requests, state, cost)
npm run bench -- --memory-mb 2048        # Lambda memory size of the cost model
\`\`\`

It needs Java 17+ (DynamoDB Local) and starts its own DynamoDB Local and S3 server, stopped at the
end. Each run writes \`bench/results/<date>-<profile>.json\` (every figure and sample spread),
\`bench/results/latest.md\` (the summary below) and \`bench/results/latest.svg\` (the chart).
Benchmarks never assert a time: every figure is a median with its min–max over repeats, and
comparisons are ratios measured side by side in the same run, because these machines are shared
and noisy. CI runs only a smoke of this code on tiny sizes (\`test/bench/bench.test.ts\`), which
checks the shape of the output and the request counts, not the times.

What each benchmark does:

1. **Overhead** — the same events and the same user function (\`balances\`) as a raw loop (decode,
   call the function with its state in a \`Map\`, no durability) and through \`createKafkaHandler\`
   with in-memory stores, at epochs of 100, 1,000 and 10,000 records (one partition, so epochs
   really have that size).
2. **Durable requests** — 1 M records over 8 partitions in 10,000-record batches on DynamoDB Local
   and the S3 server, every request counted by an SDK middleware, for (a) Tidemark warm, (b) Tidemark
   cold (a new container per invocation), (c) one DynamoDB \`UpdateItem\` per record and (d) the
   same with \`@aws-lambda-powertools/idempotency\` per record (keyed on topic, partition, offset).
   (c) and (d) run on a 20,000-record sample and are extrapolated linearly to 1 M records.
3. **State size** — checkpoint bytes and time (encode + PUT) and restore time (\`loadCheckpoint\`)
   for 10 k, 100 k and 1 M keys with 1 % of the keys changed per epoch: full snapshots, and
   incremental ones (a delta per epoch, chained up to the compaction limit).
4. **Cost model** — dollars per 1 M records on AWS for each approach, from the counted requests,
   the measured throughput and the dated price table \`bench/prices.json\` (assumptions listed).

## Latest results

From \`${resultFile}\`.

${summary}`;
  writeFileSync(path.join(docsDir, 'performance.md'), doc);
}
