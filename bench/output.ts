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

export function writeOutputs(
  result: BenchResult,
  dir: string,
  options: { json?: boolean } = {},
): WrittenFiles {
  mkdirSync(dir, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, '-');
  const json = path.join(dir, `${stamp}-${result.profile}.json`);
  const chart = path.join(dir, 'latest.svg');
  const summary = path.join(dir, 'latest.md');
  if (options.json ?? true) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
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
npm run bench              # full run (about 6 minutes on 2 shared cores)
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

## Reading the results: what falls short, and why

Written for the full run of 2026-11-23 22:36 (figures below; the machine was quiet); re-read it
against newer runs. Between the first full run (21:25) and this one the engine's hot path was
reworked (a closure-free undo journal, change sets kept per table, values frozen by the snapshot
decoder instead of on every read, base64 checked by decoded length instead of a regular
expression, columnar delta sections), commit items were made compact (one write unit instead of
two), and every task's unreferenced snapshots of an invocation are deleted with one request.

- **Overhead at 10,000-record epochs (goal ≥ 0.90): not met, about 0.56 (was 0.46).** The raw loop
  does only what the user function needs (decode base64, JSON, a Map). Tidemark adds event
  validation (\`parseEvent\`, about a quarter of its extra time), the state store's journal and
  change tracking (about a quarter), and the epoch's durable snapshot (MessagePack + zstd of the
  changed keys, about a fifth at these epoch sizes, where most records touch a distinct key). No
  single hot spot is left; 0.90 would require dropping validation or durability work that the
  guarantees rest on.
- **Requests (goals ≥ 1,000× and ≥ 2,000× fewer than (c) and (d)): not met, and out of reach for
  this input.** Tidemark meets its own goal (exactly 1 S3 PUT + 1 DynamoDB write per task-epoch,
  plus 0.05 cleanup requests: one DeleteObjects per invocation for snapshots leaving the retention
  window, an orphan sweep LIST every 100 epochs, the first invocation's reads). But 10,000-record
  batches over 8 partitions make task-epochs of 1,250 records, and an epoch never spans
  invocations, so the best possible ratios are 625× and 1,875×; the measured 601× and 1,804× are
  96 % of that ceiling. The goals hold when each partition gets at least 2,000 records per
  invocation (fewer partitions per batch, or larger batches).
- **Throughput against (c) (goal ≥ 500×): not met here, about 130×.** DynamoDB Local answers an
  UpdateItem in about half a millisecond; (c) is bound by that latency, Tidemark by CPU. In AWS,
  DynamoDB requests take several milliseconds, which slows (c) and (d) several-fold and Tidemark
  hardly at all, so the ratio there should be higher; it was not measured (no AWS account).
  Against (d) the ratio is about 410×.
- **Restoring a 1 M-key state (goal ≤ 0.5 s): not met, about 0.54 s (0.50–0.60; was 0.67 s).** The
  GET, checksum and zstd take about 0.1 s; MessagePack unpacking about 0.05 s; building the
  JavaScript \`Map\` of a million string keys takes 0.3–0.45 s on its own on this machine, whatever
  the way the keys are produced (measured: slices of one string, per-key decoding, split).
- **Incremental checkpoints (goals ≤ 2 % of the bytes, ≤ 10 % of the time): met at 1 M keys (1.8 %,
  3.5 %); at 100 k keys the bytes are met (2.0 %) and the time is around the goal (12.5 % in this run,
  9.8 % in the previous one: a 100 k-key full checkpoint takes tens of milliseconds, so the PUT's
  fixed latency weighs); not met at 10 k keys** — there 1 % is 100 keys, the envelope's fixed part
  (JSON header, lengths, checksum) outweighs them, and a full 10 k-key checkpoint takes only a few
  milliseconds.
- **Cost:** a commit item now fits one write unit (references stored once, keys relative to the
  task's directory): Tidemark's DynamoDB writes cost 800 WRU per 1 M records here (was 1,552).

## Latest results

From \`${resultFile}\`.

${summary}`;
  writeFileSync(path.join(docsDir, 'performance.md'), doc);
}
