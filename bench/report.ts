/** The markdown summary of a run: machine, date, every figure (median, min–max) and the goals. */
import type { AwsLatencyResult } from './awsLatency.ts';
import type { ColdStartResult } from './coldStart.ts';
import type { CostResult } from './costModel.ts';
import { fmt, fmtSpread } from './goals.ts';
import { icebergSection } from './iceberg.ts';
import type { MemoryResult } from './memory.ts';
import { outputsSection } from './outputs.ts';
import type { OverheadResult } from './overhead.ts';
import type { RequestsResult } from './requests.ts';
import type { BenchResult } from './run.ts';
import type { StateSizeResult } from './stateSize.ts';
import type { Spread } from './stats.ts';

const pct = (s: Spread, digits = 1) =>
  fmtSpread({ ...s, min: s.min * 100, median: s.median * 100, max: s.max * 100 }, digits, ' %');

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function overheadSection(o: OverheadResult): string {
  return `## 1. Overhead: Tidemark against the raw loop (in-memory stores)

The same ${fmt(o.records)} records (one partition, ${fmt(o.accounts)} accounts, ESM batches of
${fmt(o.batchRecords)}) and the same user function (\`balances\`), run (a) as a raw loop — decode
each record, call the function with its state in a plain \`Map\`, no durability — and (b) through
\`createKafkaHandler\` with the in-memory stores (snapshot mode \`${o.snapshotMode}\`, compression
\`${o.compression}\`). Each repeat runs both back to back; the ratio is taken per repeat, from the CPU
time each side used (neither does I/O; on a shared machine, time spent waiting for a core would land
on whichever side was unlucky). Records/s and their ratio are wall-clock.

${table(
  [
    'Epoch size (records)',
    'Epochs per run',
    '(a) raw loop, records/s',
    '(b) Tidemark, records/s',
    '(b) ÷ (a), CPU time',
    '(b) ÷ (a), wall',
  ],
  o.points.map((p) => [
    fmt(p.epochRecords),
    fmt(p.epochsPerMeasurement),
    fmtSpread(p.rawRecordsPerSecond),
    fmtSpread(p.tidemarkRecordsPerSecond),
    fmtSpread(p.ratio, 3),
    p.wallRatio ? fmtSpread(p.wallRatio, 3) : '—',
  ]),
)}
`;
}

function requestsSection(r: RequestsResult): string {
  const o = r.options;
  const rows = r.approaches.map((a) => [
    a.label,
    `${fmt(a.recordsMeasured)}${a.extrapolated ? ' (sample, extrapolated)' : ''}`,
    fmt(a.per1M.s3Put),
    fmt(a.per1M.s3Get),
    fmt(a.per1M.s3Delete + a.per1M.s3List + a.per1M.s3Other),
    fmt(a.per1M.dynamoWrite),
    fmt(a.per1M.dynamoRead + a.per1M.dynamoOther),
    `${fmt(a.writeUnitsPer1M)} / ${fmt(a.readUnitsPer1M)}`,
    fmtSpread(a.requestsPer1M),
    fmtSpread(a.recordsPerSecond),
  ]);
  const tidemark = r.approaches.filter((a) => a.perTaskEpoch);
  const commands = r.approaches.map(
    (a) =>
      `- ${a.label}: ${
        [...Object.entries(a.requestsByCommand.s3), ...Object.entries(a.requestsByCommand.dynamodb)]
          .map(([k, v]) => `${k.replace(/Command$/, '')} ${fmt(v)}`)
          .join(', ') || 'none'
      } (for ${fmt(a.recordsMeasured)} records)`,
  );
  return `## 2. Durable requests and throughput (DynamoDB Local + the S3 server)

Every request to S3 and DynamoDB is counted by an SDK middleware (\`countRequests\`). Input: the
balances stream over ${o.partitions} partitions in ${fmt(o.batchRecords)}-record batches,
${fmt(o.accounts)} accounts. Tidemark warm processed ${fmt(o.tidemarkRecords)} records per repeat,
cold ${fmt(o.coldRecords)} (a new container — clients, handler, empty cache — per invocation).
The per-record approaches ran on a sample of ${fmt(o.baselineRecords)} records per repeat and their
requests are **extrapolated linearly to 1 M records** (their cost is strictly per record). Both
process the partitions of a batch in parallel, each in offset order. ${o.repeats} repeat(s).

${table(
  [
    'Approach',
    'Records measured',
    'S3 PUT / 1 M',
    'S3 GET / 1 M',
    'S3 other / 1 M',
    'DynamoDB writes / 1 M',
    'DynamoDB reads / 1 M',
    'WRU / RRU per 1 M',
    'Requests / 1 M',
    'Records/s',
  ],
  rows,
)}

Ratios (per repeat, side by side):
- requests, (c) ÷ (a): ${fmtSpread(r.ratios.requestsUpdateOverWarm)}×
- requests, (d) ÷ (a): ${fmtSpread(r.ratios.requestsIdempotentOverWarm)}×
- throughput, (a) ÷ (c): ${fmtSpread(r.ratios.throughputWarmOverUpdate, 1)}×
- throughput, (a) ÷ (d): ${fmtSpread(r.ratios.throughputWarmOverIdempotent, 1)}×

Ceiling of these ratios for this input: a batch of ${fmt(o.batchRecords)} records over ${o.partitions}
partitions gives task-epochs of ${fmt(o.batchRecords / o.partitions)} records (an epoch never spans
invocations), so even at exactly one durable request per task-epoch (the commit write, the snapshot
inline in it), (c) ÷ (a) ≤ ${fmt(o.batchRecords / o.partitions)}× and (d) ÷ (a) ≤
${fmt((3 * o.batchRecords) / o.partitions)}×.

Per task-epoch (Tidemark):
${tidemark
  .map(
    (a) =>
      `- ${a.label}: ${fmt(a.taskEpochs ?? 0)} task-epochs; per task-epoch ${fmt(a.perTaskEpoch!.s3Put, 2)} S3 PUT, ${fmt(a.perTaskEpoch!.dynamoWrite, 2)} DynamoDB write, ${fmt(a.perTaskEpoch!.otherRequests, 2)} other (reads on cold starts, DeleteObjects of snapshots leaving the retention window, orphan sweeps); snapshot ${fmtSpread(a.snapshotBytes!, 0, ' B')} (${Object.entries(
        a.snapshotKinds ?? {},
      )
        .map(([k, v]) => `${fmt(v)} ${k}`)
        .join(
          ', ',
        )})${a.putItemBytes ? `; commit item ≈ ${fmtSpread(a.putItemBytes, 0, ' B')}` : ''}${a.check ? `; result check: ${a.check.ok ? 'OK' : 'FAILED'} (${a.check.detail})` : ''}`,
  )
  .join('\n')}

Requests by command (last repeat):
${commands.join('\n')}
`;
}

function stateSection(s: StateSizeResult): string {
  const rows = s.points.map((p) => {
    const inc = p.incremental;
    const measured = 'delta' in inc;
    return [
      fmt(p.keys),
      fmt(p.changedKeysPerEpoch),
      fmtSpread(p.full.bytes, 0, ' B'),
      fmtSpread(p.full.checkpointMs, 1, ' ms'),
      `${fmtSpread(p.full.restoreMs, 1, ' ms')}${p.full.restoreCpuMs ? `; CPU ${fmtSpread(p.full.restoreCpuMs, 1, ' ms')}` : ''}`,
      measured ? fmtSpread(inc.delta.bytes, 0, ' B') : inc.status,
      measured ? fmtSpread(inc.delta.checkpointMs, 1, ' ms') : '—',
      measured ? fmtSpread(inc.restoreOneDeltaMs, 1, ' ms') : '—',
      measured ? `${fmtSpread(inc.restoreChainMs, 1, ' ms')} (${inc.chainDeltas} deltas)` : '—',
      measured ? pct(inc.bytesRatio, 2) : '—',
      measured ? pct(inc.checkpointTimeRatio, 1) : '—',
    ];
  });
  return `## 3. State size: checkpoint and restore (the S3 server)

Balances states of ${s.points.map((p) => fmt(p.keys)).join(', ')} keys, ${fmt(s.changedFraction * 100)} % of the keys
changed per epoch through the state API. Full snapshot = \`encodeSnapshot(fullSections)\`;
incremental = \`encodeSnapshot(deltaSections)\` of the epoch's changed keys (compression
\`${s.compression}\`). Checkpoint time = encode + PUT (the commit write after it is the same one
DynamoDB PutItem for both). Restore = \`loadCheckpoint\`: GET every link, verify, decode, apply
deltas; for the full snapshot, the process's CPU time over it too (the S3 server's work is not in it;
waiting for a core on a busy machine is not either).

${table(
  [
    'Keys',
    'Changed / epoch',
    'Full: bytes',
    'Full: checkpoint',
    'Full: restore',
    'Delta: bytes',
    'Delta: checkpoint',
    'Restore full + 1 delta',
    'Restore full + chain',
    'Delta ÷ full bytes',
    'Delta ÷ full time',
  ],
  rows,
)}
`;
}

function costSection(c: CostResult): string {
  const usd = (n: number) => (n === 0 ? '$0' : n < 0.0001 ? `$${n.toExponential(2)}` : `$${n.toFixed(4)}`);
  const warm = c.approaches.find((a) => a.id === 'tidemark-warm')?.usd.total ?? Number.NaN;
  const p = c.prices.prices;
  const priceRows = (
    Object.entries(p) as Array<[string, { usd: number; unit: string; verified: boolean }]>
  ).map(([k, v]) => [k, `$${v.usd}`, v.unit, v.verified ? 'yes' : 'no']);
  return `## 4. Cost per 1 M records on AWS (model)

${table(
  ['Approach', 'Lambda s', 'GB-s', 'Lambda duration', 'Lambda requests', 'S3', 'DynamoDB', 'Total', '× (a)'],
  c.approaches.map((a) => [
    a.label,
    fmt(a.lambdaSeconds, 1),
    fmt(a.gbSeconds, 1),
    usd(a.usd.lambdaDuration),
    usd(a.usd.lambdaRequests),
    usd(a.usd.s3),
    usd(a.usd.dynamodb),
    `**${usd(a.usd.total)}**`,
    fmt(a.usd.total / warm, 1),
  ]),
)}

Assumptions:
${c.assumptions.map((a) => `- ${a}`).join('\n')}

Price table (\`bench/prices.json\`, retrieved ${c.prices.retrieved}, ${c.prices.region}):

${table(['Price', 'USD', 'Unit', 'Verified on the AWS page'], priceRows)}
`;
}

function awsLatencyTable(approaches: AwsLatencyResult['approaches']): string {
  return table(
    [
      'Approach',
      'Records measured',
      'Records/s per partition',
      'Epoch (write) latency p50 / p99',
      'Record age at commit p50 / p99',
    ],
    approaches.map((x) => [
      x.label,
      fmt(x.recordsMeasured),
      fmtSpread(x.recordsPerSecondPerPartition),
      `${fmt(x.epochMsP50, 1)} / ${fmt(x.epochMsP99, 1)} ms`,
      `${fmt(x.recordAgeMsP50, 0)} / ${fmt(x.recordAgeMsP99, 0)} ms`,
    ]),
  );
}

function awsLatencySection(a: AwsLatencyResult): string {
  const o = a.options;
  const p = a.profile;
  const d = a.dedicated;
  const shared = `### ${o.partitions} partitions per batch, processed side by side in one invocation

${awsLatencyTable(a.approaches)}

Throughput (a) ÷ (c), per repeat: ${fmtSpread(a.throughputRatio, 0)}×.`;
  const dedicated = d
    ? `### One partition per batch (a partition's invocations have the function to themselves)

${fmt(o.dedicated?.tidemarkRecords ?? 0)} records per repeat for (a), ${fmt(o.dedicated?.baselineRecords ?? 0)} for (c), in ${fmt(o.batchRecords)}-record batches of one partition.

${awsLatencyTable(d.approaches)}

Throughput per partition (a) ÷ (c), per repeat: ${fmtSpread(d.throughputRatio, 0)}× (the goal's figure).

Why two layouts: an UpdateItem per record is bound by latency, so its partitions wait on their
writes side by side and its rate per partition is the same in both. Tidemark is bound by CPU, so
when ${o.partitions} partitions share one invocation's thread its rate *per partition* is the thread's
rate divided by a partition count the benchmark chose (16 would halve it). With one partition per
batch — the event source mapping scaled out to a poller per partition, which it does under a
backlog — the figure is the partition's own rate, and the goal is judged there.`
    : '';
  return `## 7. AWS-latency profile (DynamoDB Local and the S3 server behind a latency proxy)

The balances stream (${fmt(o.batchRecords)}-record batches) through (a) Tidemark warm
(${fmt(o.tidemarkRecords)} records per repeat with ${o.partitions} partitions) and (c) one UpdateItem per record (a sample of
${fmt(o.baselineRecords)}), with every response held back by a latency proxy
(\`harness/latencyProxy.ts\`) as AWS documents or users report (sources in docs/performance.md): the
first byte of a response reaches the client a drawn time after its request (the local server's own
time counts towards it), DynamoDB p50 ${p.dynamodb.p50Ms} ms, p99 ${p.dynamodb.p99Ms} ms; S3 p50 ${p.s3.p50Ms} ms, p99 ${p.s3.p99Ms} ms, plus
the transfer of the request's and the response's bytes at ${fmt(p.s3.bytesPerSecond / 1e6)} MB/s per connection (log-normal, seeded).
${o.repeats} repeat(s). An epoch's latency is its records' application plus its checkpoint (for (c):
one record's UpdateItem); a record's age is the time from the start of its invocation until its
effect is durable (its epoch's commit; for (c) its UpdateItem).

${
  dedicated
    ? `${dedicated}

`
    : ''
}${shared}
`;
}

function coldStartSection(c: ColdStartResult): string {
  return `## 8. Cold start (the bundle the CDK construct builds)

The balances handler bundled by \`TidemarkPipeline\` (esbuild, ${fmt(c.bundleBytes / 1000)} KB), imported in a fresh
Node process per repeat with the function's environment (NODE_OPTIONS ${c.nodeOptions ? `\`${c.nodeOptions}\`` : "unset, the construct's default"}), then invoked
once with a two-record MSK event against the local servers.

${table(
  ['Function', 'Bundle', 'Module load (wall)', 'Module load (CPU)', 'First invocation'],
  [
    [
      'Tidemark, the balances handler',
      `${fmt(c.bundleBytes / 1000)} KB`,
      fmtSpread(c.moduleLoadMs, 1, ' ms'),
      fmtSpread(c.moduleLoadCpuMs, 1, ' ms'),
      fmtSpread(c.firstInvocationMs, 1, ' ms'),
    ],
    ...(c.sdkClients
      ? [
          [
            "The same, bundled with awsClient 'sdk' (AWS SDK v3 clients)",
            `${fmt(c.sdkClients.bundleBytes / 1000)} KB`,
            fmtSpread(c.sdkClients.moduleLoadMs, 1, ' ms'),
            fmtSpread(c.sdkClients.moduleLoadCpuMs, 1, ' ms'),
            fmtSpread(c.sdkClients.firstInvocationMs, 1, ' ms'),
          ],
        ]
      : []),
    ...(c.reference
      ? [
          [
            `Reference: ${c.reference.label}`,
            `${fmt(c.reference.bundleBytes / 1000)} KB`,
            fmtSpread(c.reference.moduleLoadMs, 1, ' ms'),
            fmtSpread(c.reference.moduleLoadCpuMs, 1, ' ms'),
            fmtSpread(c.reference.firstInvocationMs, 1, ' ms'),
          ],
        ]
      : []),
  ],
)}
${
  c.reference
    ? `
The reference (\`bench/fixtures/dynamodbOnly.ts\`) is bundled by the same construct and run back to back with
the handler in each repeat: the least a function committing to DynamoDB with the AWS SDK v3 loads.
Module load CPU, Tidemark ÷ reference, per repeat: ${fmtSpread(c.reference.loadCpuRatio, 2)}.
`
    : ''
}`;
}

function memorySection(m: MemoryResult): string {
  return `## 9. Memory per million keys of state

Balances state of ${fmt(m.keys)} keys (snapshot ${fmt(m.snapshotBytes)} B), heap and array buffers after a
garbage collection, scaled to a million keys.

${table(
  [
    'Restored (columnar, untouched)',
    'Every key then read and written',
    'Built key by key',
    'Restore: peak RSS growth',
  ],
  [
    [
      `${fmt(m.restoredMbPerMillion)} MB`,
      `${fmt(m.touchedMbPerMillion)} MB`,
      `${fmt(m.builtMbPerMillion)} MB`,
      `${fmt(m.restorePeakRssMbPerMillion)} MB`,
    ],
  ],
)}
`;
}

export function renderSummary(r: BenchResult, chartFile: string | undefined): string {
  const m = r.machine;
  const goals = table(
    ['Figure', 'Goal', 'Measured: median (min–max)', 'Met'],
    r.goals.map((g) => [g.figure, g.goal, g.measured, g.met === null ? '—' : g.met ? 'yes' : '**no**']),
  );
  return `# Tidemark benchmarks: ${r.profile} run of ${r.startedAt.slice(0, 10)}

- Machine: ${m.cpuModel}, ${m.cpus} CPUs, ${m.memoryGiB} GiB, ${m.os}; load average at start ${m.loadAverageAtStart.join(' / ')}${m.loadAverageAtEnd ? `, at the end ${m.loadAverageAtEnd.join(' / ')}` : ''} (shared with other work)
- Node ${m.node}; commit ${r.commit}; started ${r.startedAt}, took ${fmt(r.durationSeconds)} s
- Engine defaults: snapshot mode \`${r.engineDefaults.snapshotMode}\`, compression \`${r.engineDefaults.compression}\`, compaction after ${r.engineDefaults.compactAfterDeltas} deltas or ${r.engineDefaults.compactDeltaRatio} × the full snapshot
${(r.notes ?? []).map((n) => `- Note: ${n}\n`).join('')}- Figures: median over repeats, with (min–max, n=repeats). The machine is shared and noisy: the
  ratios, measured side by side in the same run, are what to compare; absolute rates are this
  machine's, against local servers, not AWS.

## Goals

${goals}

${r.overhead ? overheadSection(r.overhead) : ''}
${r.requests ? requestsSection(r.requests) : ''}
${r.stateSize ? stateSection(r.stateSize) : ''}
${r.cost ? costSection(r.cost) : ''}
${r.iceberg ? icebergSection(r.iceberg) : ''}
${r.outputs ? outputsSection(r.outputs) : ''}
${r.awsLatency ? awsLatencySection(r.awsLatency) : ''}
${r.coldStart ? coldStartSection(r.coldStart) : ''}
${r.memory ? memorySection(r.memory) : ''}
${chartFile ? `## Chart\n\n![Throughput, requests and overhead per approach](${chartFile})\n` : ''}`;
}
