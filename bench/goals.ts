/**
 * The goals of the benchmark issue, each checked against the median of its figure, with the
 * min–max beside it. A goal that falls short is reported as such: benchmarks never fail on it.
 */
import type { AwsLatencyResult } from './awsLatency.ts';
import type { ColdStartResult } from './coldStart.ts';
import type { CostResult } from './costModel.ts';
import type { MemoryResult } from './memory.ts';
import type { OverheadResult } from './overhead.ts';
import type { RequestsResult } from './requests.ts';
import type { StateSizeResult } from './stateSize.ts';
import type { Spread } from './stats.ts';

export interface GoalCheck {
  figure: string;
  goal: string;
  measured: string;
  /** null when the figure was not measured in this run. */
  met: boolean | null;
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** "median (min–max, n=…)" */
/** A spread of ratios (0–1) as percentages. */
function fmtPercent(s: Spread, digits: number): string {
  return fmtSpread({ ...s, min: s.min * 100, median: s.median * 100, max: s.max * 100 }, digits, ' %');
}

export function fmtSpread(s: Spread, digits = 0, unit = ''): string {
  if (s.n === 0) return 'n/a';
  if (s.n === 1) return `${fmt(s.median, digits)}${unit}`;
  return `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)}, n=${s.n})`;
}

export function evaluateGoals(r: {
  overhead?: OverheadResult;
  requests?: RequestsResult;
  stateSize?: StateSizeResult;
  cost?: CostResult;
  awsLatency?: AwsLatencyResult;
  coldStart?: ColdStartResult;
  memory?: MemoryResult;
}): GoalCheck[] {
  const goals: GoalCheck[] = [];
  const reported = (figure: string, measured: string | undefined, goal = 'reported') =>
    goals.push({ figure, goal, measured: measured ?? 'not measured', met: null });
  for (const [size, min] of [
    [10_000, 0.75],
    [1_000, 0.55],
  ] as const) {
    const p = r.overhead?.points.find((x) => x.epochRecords === size);
    goals.push({
      figure: `Overhead: Tidemark ÷ raw loop throughput at ${fmt(size)}-record epochs (CPU time)`,
      goal: `≥ ${min.toFixed(2)}`,
      measured: p ? fmtSpread(p.ratio, 2) : 'not measured',
      met: p ? p.ratio.median >= min : null,
    });
  }
  const warm = r.requests?.approaches.find((a) => a.id === 'tidemark-warm');
  const pte = warm?.perTaskEpoch;
  goals.push({
    figure: 'Tidemark warm: durable requests per task-epoch (S3 PUT + DynamoDB write)',
    goal: '1 in the steady state (≤ 1.2 with the PUTs of spills and compactions)',
    measured: pte
      ? `${fmt(pte.s3Put + pte.dynamoWrite, 2)} (${fmt(pte.s3Put, 2)} PUT + ${fmt(pte.dynamoWrite, 2)} write), + ${fmt(pte.otherRequests, 2)} other (reads, cleanup)`
      : 'not measured',
    met: pte ? pte.dynamoWrite === 1 && pte.s3Put + pte.dynamoWrite <= 1.2 : null,
  });
  const ratios = r.requests?.ratios;
  const ratioGoal = (figure: string, s: Spread | undefined, min: number, digits = 0) =>
    goals.push({
      figure,
      goal: `≥ ${fmt(min)}×`,
      measured: s ? `${fmtSpread(s, digits)}×` : 'not measured',
      met: s ? s.median >= min : null,
    });
  ratioGoal(
    'Requests per 1 M records: (c) UpdateItem per record ÷ (a) Tidemark warm',
    ratios?.requestsUpdateOverWarm,
    1000,
  );
  ratioGoal(
    'Requests per 1 M records: (d) UpdateItem + idempotency ÷ (a) Tidemark warm',
    ratios?.requestsIdempotentOverWarm,
    3000,
  );
  const warmCost = r.cost?.approaches.find((x) => x.id === 'tidemark-warm');
  const updateCost = r.cost?.approaches.find((x) => x.id === 'per-record-update');
  reported(
    'Write units per 1 M records: (a) Tidemark warm (and (c) UpdateItem per record)',
    warm
      ? `${fmt(warm.writeUnitsPer1M)} WRU (${fmt(r.requests?.approaches.find((a) => a.id === 'per-record-update')?.writeUnitsPer1M ?? Number.NaN)})`
      : undefined,
  );
  reported(
    'Cost per 1 M records on AWS (model): (a) Tidemark warm (and (c) UpdateItem per record)',
    warmCost && updateCost
      ? `$${warmCost.usd.total.toFixed(4)} ($${updateCost.usd.total.toFixed(4)})`
      : undefined,
  );
  reported(
    'Throughput against the local servers: (a) Tidemark warm ÷ (c) UpdateItem per record',
    ratios
      ? `${fmtSpread(ratios.throughputWarmOverUpdate, 0)}× (no latency: see the AWS-latency profile)`
      : undefined,
  );
  const aws = r.awsLatency;
  const latencyFigures = (a: NonNullable<typeof aws>['approaches'][number], layout: string) =>
    reported(
      `AWS-latency profile, ${a.label}, ${layout}: records/s per partition; ${a.id === 'tidemark-warm' ? 'epoch' : 'write'} latency p50/p99; record age at commit p50/p99`,
      `${fmtSpread(a.recordsPerSecondPerPartition, 0)}; ${fmt(a.epochMsP50, 1)} / ${fmt(a.epochMsP99, 1)} ms; ${fmt(a.recordAgeMsP50, 0)} / ${fmt(a.recordAgeMsP99, 0)} ms`,
    );
  const shared = `${aws?.options.partitions ?? 8} partitions per batch`;
  if (aws?.dedicated) {
    // The goal is judged where a partition has its invocations to itself (bench/awsLatency.ts says why).
    ratioGoal(
      'AWS-latency profile: throughput per partition, (a) Tidemark warm ÷ (c) UpdateItem per record, one partition per batch',
      aws.dedicated.throughputRatio,
      500,
    );
    reported(
      `AWS-latency profile: throughput (a) ÷ (c), ${shared} sharing one thread (Tidemark's side divided among them)`,
      `${fmtSpread(aws.throughputRatio, 0)}×`,
    );
    for (const a of aws.dedicated.approaches) latencyFigures(a, 'one partition per batch');
  } else {
    ratioGoal(
      'AWS-latency profile: throughput (a) Tidemark warm ÷ (c) UpdateItem per record',
      aws?.throughputRatio,
      500,
    );
  }
  for (const a of aws?.approaches ?? []) latencyFigures(a, shared);
  for (const p of r.stateSize?.points ?? []) {
    const inc = p.incremental;
    if ('bytesRatio' in inc) {
      goals.push({
        figure: `Incremental checkpoint bytes ÷ full, ${fmt(p.keys)} keys, 1 % changed`,
        goal: '≤ 2 %',
        measured: fmtPercent(inc.bytesRatio, 2),
        met: inc.bytesRatio.median <= 0.02,
      });
      goals.push({
        figure: `Incremental checkpoint time ÷ full, ${fmt(p.keys)} keys, 1 % changed`,
        goal: '≤ 10 %',
        measured: fmtPercent(inc.checkpointTimeRatio, 1),
        met: inc.checkpointTimeRatio.median <= 0.1,
      });
    } else {
      goals.push({
        figure: `Incremental checkpoints, ${fmt(p.keys)} keys`,
        goal: '≤ 2 % of the bytes, ≤ 10 % of the time of a full snapshot',
        measured: inc.status,
        met: null,
      });
    }
  }
  const million = r.stateSize?.points.find((p) => p.keys === 1_000_000);
  goals.push({
    figure: 'Restore of a 1 M-key state from the S3 server (full snapshot: GET + verify + decode)',
    goal: '≤ 0.30 s',
    measured: million
      ? `${fmtSpread(million.full.restoreMs, 0, ' ms')}${million.full.restoreCpuMs ? `; CPU ${fmtSpread(million.full.restoreCpuMs, 0, ' ms')}` : ''}`
      : 'not measured (no 1 M-key state in this profile)',
    met: million ? million.full.restoreMs.median <= 300 : null,
  });
  const cold = r.coldStart;
  goals.push({
    figure: 'Cold start: module load of the bundled balances handler (wall; CPU)',
    goal: '≤ 40 ms',
    measured: cold
      ? `${fmtSpread(cold.moduleLoadMs, 1, ' ms')}; CPU ${fmtSpread(cold.moduleLoadCpuMs, 1, ' ms')} (${fmt(cold.bundleBytes / 1000)} KB)`
      : 'not measured',
    met: cold ? cold.moduleLoadMs.median <= 40 : null,
  });
  reported(
    'Cold start: first invocation (local servers)',
    cold ? fmtSpread(cold.firstInvocationMs, 1, ' ms') : undefined,
  );
  if (cold?.sdkClients) {
    reported(
      "Cold start, the same handler bundled with awsClient 'sdk' (AWS SDK v3 clients): module load (wall; CPU); first invocation",
      `${fmtSpread(cold.sdkClients.moduleLoadMs, 1, ' ms')}; CPU ${fmtSpread(cold.sdkClients.moduleLoadCpuMs, 1, ' ms')} (${fmt(cold.sdkClients.bundleBytes / 1000)} KB); ${fmtSpread(cold.sdkClients.firstInvocationMs, 1, ' ms')}`,
    );
  }
  if (cold?.reference) {
    reported(
      `Cold start, reference: ${cold.reference.label}, bundled alike: module load (wall; CPU); first invocation`,
      `${fmtSpread(cold.reference.moduleLoadMs, 1, ' ms')}; CPU ${fmtSpread(cold.reference.moduleLoadCpuMs, 1, ' ms')} (${fmt(cold.reference.bundleBytes / 1000)} KB); ${fmtSpread(cold.reference.firstInvocationMs, 1, ' ms')}`,
    );
    reported(
      'Cold start: module load CPU, Tidemark ÷ the reference (side by side)',
      fmtSpread(cold.reference.loadCpuRatio, 2),
    );
  }
  const mem = r.memory;
  goals.push({
    figure:
      'Memory per million keys of balances state: restored / every key touched / built key by key; restore peak RSS',
    goal: '≤ 256 MB (half of a 512 MB function)',
    measured: mem
      ? `${fmt(mem.restoredMbPerMillion)} / ${fmt(mem.touchedMbPerMillion)} / ${fmt(mem.builtMbPerMillion)} MB; peak +${fmt(mem.restorePeakRssMbPerMillion)} MB`
      : 'not measured',
    met: mem
      ? Math.max(
          mem.restoredMbPerMillion,
          mem.touchedMbPerMillion,
          mem.builtMbPerMillion,
          mem.restorePeakRssMbPerMillion,
        ) <= 256
      : null,
  });
  return goals;
}
