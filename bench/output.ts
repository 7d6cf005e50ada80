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

Written for the full run of 2026-11-23 (figures below); re-read it against newer runs.

- **Overhead at 10,000-record epochs (goal ≥ 0.90): not met, about 0.46.** A CPU profile of the
  Tidemark path (one partition, 10,000 accounts) spreads the extra time over event intake
  (\`parseEvent\`: base64 validated by a regular expression, then decoded and copied; about 10 % of
  the samples), the state store's per-access bookkeeping (\`freeze\` of values read and written, change
  tracking, the undo journal; about 15 %), the epoch's snapshot (MessagePack + zstd of the changed
  keys, \`deltaSections\`; about 10 %) and garbage collection (about 8 %), against about 11 % for
  the user function itself. No single hot spot: reaching 0.90 needs work on all three.
- **Requests (goals ≥ 1,000× and ≥ 2,000× fewer than (c) and (d)): not met, and out of reach for
  this input.** Tidemark does meet its own goal (exactly 1 S3 PUT + 1 DynamoDB write per
  task-epoch, plus about 0.3 cleanup requests: DeleteObjects of snapshots leaving the retention
  window, an orphan sweep LIST every 100 epochs, the first invocation's reads). But 10,000-record
  batches over 8 partitions make task-epochs of 1,250 records, and an epoch never spans
  invocations, so the best possible ratios are 625× and 1,875×; the measured 546× and 1,638× are
  87 % of that ceiling. The goals hold only when each partition gets at least 2,000 records per
  invocation (fewer partitions per batch, or larger batches if the ESM ever allows them).
- **Throughput against (c) (goal ≥ 500×): not met here, about 140× (70–172).** DynamoDB Local answers an
  UpdateItem in about a millisecond; (c) is bound by that latency, Tidemark by CPU. In AWS,
  DynamoDB requests take several milliseconds, which slows (c) and (d) several-fold and Tidemark
  hardly at all, so the ratio there should be higher; it was not measured (no AWS account). Against
  (d) the ratio is about 400×.
- **Restoring a 1 M-key state (goal ≤ 0.5 s): not met, about 0.67 s (0.57–1.0), and decode-bound.** The GET
  from the local S3 server and zstd take little; \`decodeSnapshot\` of the 1 M-key object (4.7 MB
  stored, 22 MB raw) alone takes 0.4–1.0 s on this machine (MessagePack unpacking of a million
  records and building the Map).
- **Incremental checkpoints (goals ≤ 2 % of the bytes, ≤ 10 % of the time): met at 1 M keys (1.8 %,
  4 %), just met at 100 k keys (2.0 %, 9.8 %, the time's max above 10 %), not met at 10 k keys** — there 1 % is
  100 keys, and the envelope's fixed part (JSON header, lengths, checksum) outweighs them (1.3 KB
  against 49 KB), while a full 10 k-key checkpoint takes only a few milliseconds, so the time ratio
  is mostly the PUT's fixed latency and noise.
- **Cost:** Tidemark's commit item is about 1.3 KB (its chain and the retained checkpoints'
  history), so a commit costs 2 write units, not 1: the DynamoDB line would halve if the item
  stayed under 1 KB.

## Latest results

From \`${resultFile}\`.

${summary}`;
  writeFileSync(path.join(docsDir, 'performance.md'), doc);
}
