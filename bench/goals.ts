/**
 * The goals of the benchmark issue, each checked against the median of its figure, with the
 * min–max beside it. A goal that falls short is reported as such: benchmarks never fail on it.
 */
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
}): GoalCheck[] {
  const goals: GoalCheck[] = [];
  const top = r.overhead?.points.reduce((a, b) => (b.epochRecords > a.epochRecords ? b : a));
  goals.push({
    figure: `Overhead: Tidemark ÷ raw loop throughput at ${fmt(top?.epochRecords ?? 10_000)}-record epochs`,
    goal: '≥ 0.90',
    measured: top ? fmtSpread(top.ratio, 2) : 'not measured',
    met: top ? top.ratio.median >= 0.9 : null,
  });
  const warm = r.requests?.approaches.find((a) => a.id === 'tidemark-warm');
  const pte = warm?.perTaskEpoch;
  goals.push({
    figure: 'Tidemark warm: requests per task-epoch',
    goal: '1 S3 PUT + 1 DynamoDB write',
    measured: pte
      ? `${fmt(pte.s3Put, 2)} PUT + ${fmt(pte.dynamoWrite, 2)} write, + ${fmt(pte.otherRequests, 2)} other (cleanup)`
      : 'not measured',
    met: pte ? pte.s3Put === 1 && pte.dynamoWrite === 1 : null,
  });
  const ratios = r.requests?.ratios;
  const ratioGoal = (figure: string, s: Spread | undefined, min: number) =>
    goals.push({
      figure,
      goal: `≥ ${fmt(min)}×`,
      measured: s ? `${fmtSpread(s, 0)}×` : 'not measured',
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
    2000,
  );
  ratioGoal(
    'Throughput: (a) Tidemark warm ÷ (c) UpdateItem per record',
    ratios?.throughputWarmOverUpdate,
    500,
  );
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
    figure: 'Restore of a 1 M-key state (full snapshot: GET + verify + decode)',
    goal: '≤ 0.5 s',
    measured: million
      ? fmtSpread(million.full.restoreMs, 0, ' ms')
      : 'not measured (no 1 M-key state in this profile)',
    met: million ? million.full.restoreMs.median <= 500 : null,
  });
  return goals;
}
