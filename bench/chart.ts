/**
 * A small hand-written SVG chart of a run (no charting dependency: a few bar panels are a few
 * dozen lines): throughput and durable requests per 1 M records for each approach, on log scales,
 * the overhead ratio per epoch size, the AWS-latency profile's throughput per partition, and every
 * goal of the run as measured against goal. Bars are medians; whiskers span min–max over repeats.
 */
import { APPROACH_SHORT_LABELS } from './requests.ts';
import type { BenchResult } from './run.ts';
import type { Spread } from './stats.ts';

interface Bar {
  label: string;
  value: Spread;
  note?: string;
  /** This bar's own goal, marked on it. */
  goal?: number;
}

const WIDTH = 900;
const LABEL_W = 250;
const PLOT_W = WIDTH - LABEL_W - 140;
const BAR_H = 22;
const GAP = 10;
const COLORS = ['#1f77b4', '#6baed6', '#d62728', '#ff7f0e'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function short(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${(n / 1e6).toFixed(abs >= 1e7 ? 0 : 1)} M`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(abs >= 1e4 ? 0 : 1)} k`;
  return abs >= 10 ? n.toFixed(0) : n.toFixed(2);
}

function panel(
  title: string,
  bars: Bar[],
  y0: number,
  scale: 'log' | 'linear',
  options: { linearMax?: number; goal?: number } = {},
): { svg: string; height: number } {
  const linearMax = options.linearMax ?? 1;
  const values = bars.flatMap((b) => [b.value.min, b.value.max]).filter((v) => v > 0 && Number.isFinite(v));
  const lo = scale === 'log' ? 10 ** Math.floor(Math.log10(Math.min(...values))) : 0;
  const hi = scale === 'log' ? 10 ** Math.ceil(Math.log10(Math.max(...values, 10))) : linearMax;
  const x = (v: number) => {
    if (scale === 'linear') return LABEL_W + (Math.max(0, Math.min(v, hi)) / hi) * PLOT_W;
    const c = Math.max(v, lo);
    return LABEL_W + ((Math.log10(c) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PLOT_W;
  };
  const parts: string[] = [];
  parts.push(`<text x="10" y="${y0 + 16}" class="title">${esc(title)}</text>`);
  let y = y0 + 30;
  // Grid lines: decades (log) or tenths (linear).
  const ticks: number[] = [];
  if (scale === 'log') for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  else for (let i = 0; i <= 10; i += 2) ticks.push((hi * i) / 10);
  const plotH = bars.length * (BAR_H + GAP);
  for (const t of ticks) {
    parts.push(`<line x1="${x(t)}" y1="${y}" x2="${x(t)}" y2="${y + plotH}" class="grid"/>`);
    parts.push(`<text x="${x(t)}" y="${y + plotH + 14}" class="tick">${esc(short(t))}</text>`);
  }
  if (options.goal !== undefined) {
    const g = x(options.goal);
    parts.push(`<line x1="${g}" y1="${y - 4}" x2="${g}" y2="${y + plotH}" class="goal"/>`);
    parts.push(`<text x="${g + 3}" y="${y + 6}" class="tick" style="text-anchor:start">goal</text>`);
  }
  bars.forEach((b, i) => {
    const top = y + i * (BAR_H + GAP);
    const color = COLORS[i % COLORS.length];
    parts.push(`<text x="${LABEL_W - 8}" y="${top + BAR_H / 2 + 4}" class="label">${esc(b.label)}</text>`);
    if (b.value.n > 0 && Number.isFinite(b.value.median)) {
      parts.push(
        `<rect x="${LABEL_W}" y="${top}" width="${Math.max(1, x(b.value.median) - LABEL_W)}" height="${BAR_H}" fill="${color}"/>`,
      );
      const mid = top + BAR_H / 2;
      parts.push(
        `<line x1="${x(b.value.min)}" y1="${mid}" x2="${x(b.value.max)}" y2="${mid}" class="whisker"/>`,
      );
      for (const v of [b.value.min, b.value.max]) {
        parts.push(
          `<line x1="${x(v)}" y1="${top + 4}" x2="${x(v)}" y2="${top + BAR_H - 4}" class="whisker"/>`,
        );
      }
      parts.push(
        `<text x="${Math.max(x(b.value.median), x(b.value.max)) + 6}" y="${mid + 4}" class="value">${esc(short(b.value.median) + (b.note ?? ''))}</text>`,
      );
    }
    if (b.goal !== undefined) {
      const g = x(b.goal);
      parts.push(`<line x1="${g}" y1="${top - 2}" x2="${g}" y2="${top + BAR_H + 2}" class="goal"/>`);
    }
  });
  y += plotH + 24;
  return { svg: parts.join('\n'), height: y - y0 };
}

const ofSpread = (s: Spread, f: (v: number) => number): Spread => {
  const a = f(s.min);
  const b = f(s.max);
  return { min: Math.min(a, b), median: f(s.median), max: Math.max(a, b), n: s.n };
};

function goalBars(r: BenchResult): Bar[] {
  const bars: Bar[] = [];
  const atLeast = (label: string, s: Spread | undefined, goal: number, unit = '') => {
    if (s && s.n > 0)
      bars.push({
        label,
        value: ofSpread(s, (v) => v / goal),
        note: ` of goal (${short(s.median)}${unit}; goal ≥ ${short(goal)}${unit})`,
      });
  };
  const atMost = (label: string, s: Spread | undefined, goal: number, unit: string) => {
    if (s && s.n > 0)
      bars.push({
        label,
        value: ofSpread(s, (v) => goal / v),
        note: ` of goal (${short(s.median)}${unit}; goal ≤ ${short(goal)}${unit})`,
      });
  };
  for (const [size, goal] of [
    [10_000, 0.75],
    [1_000, 0.55],
  ] as const) {
    atLeast(
      `overhead, ${size.toLocaleString('en-US')}-record epochs`,
      r.overhead?.points.find((p) => p.epochRecords === size)?.ratio,
      goal,
    );
  }
  const pte = r.requests?.approaches.find((a) => a.id === 'tidemark-warm')?.perTaskEpoch;
  if (pte) {
    const durable = pte.s3Put + pte.dynamoWrite;
    atMost('durable requests per task-epoch', { min: durable, median: durable, max: durable, n: 1 }, 1.2, '');
  }
  atLeast('requests (c) ÷ (a)', r.requests?.ratios.requestsUpdateOverWarm, 1000, '×');
  atLeast('requests (d) ÷ (a)', r.requests?.ratios.requestsIdempotentOverWarm, 3000, '×');
  atLeast(
    r.awsLatency?.dedicated
      ? 'AWS latency: throughput per partition (a) ÷ (c)'
      : 'AWS latency: throughput (a) ÷ (c)',
    r.awsLatency?.dedicated?.throughputRatio ?? r.awsLatency?.throughputRatio,
    500,
    '×',
  );
  atMost(
    'restore, 1 M keys',
    r.stateSize?.points.find((p) => p.keys === 1_000_000)?.full.restoreMs,
    300,
    ' ms',
  );
  atMost('cold start: module load', r.coldStart?.moduleLoadMs, 40, ' ms');
  const m = r.memory;
  if (m) {
    const worst = Math.max(
      m.restoredMbPerMillion,
      m.touchedMbPerMillion,
      m.builtMbPerMillion,
      m.restorePeakRssMbPerMillion,
    );
    atMost('memory per million keys', { min: worst, median: worst, max: worst, n: 1 }, 256, ' MB');
  }
  return bars;
}

export function renderChart(r: BenchResult): string {
  const blocks: string[] = [];
  let y = 10;
  const approaches = r.requests?.approaches ?? [];
  if (approaches.length > 0) {
    const t = panel(
      'Throughput on the local servers, records/s (log scale; median, whiskers min–max)',
      approaches.map((a) => ({ label: APPROACH_SHORT_LABELS[a.id], value: a.recordsPerSecond })),
      y,
      'log',
    );
    blocks.push(t.svg);
    y += t.height;
    const q = panel(
      'Requests to S3 + DynamoDB per 1 M records (log scale)',
      approaches.map((a) => ({
        label: APPROACH_SHORT_LABELS[a.id],
        value: a.requestsPer1M,
        note: a.extrapolated ? ' (extrapolated)' : '',
      })),
      y,
      'log',
    );
    blocks.push(q.svg);
    y += q.height;
  }
  if (r.overhead) {
    const goals: Record<number, number> = { 1000: 0.55, 10000: 0.75 };
    const o = panel(
      'Overhead: Tidemark ÷ raw loop throughput (CPU time), in-memory stores (green: goal, ≥ 0.55 at 1,000, ≥ 0.75 at 10,000)',
      r.overhead.points.map((p) => ({
        label: `epochs of ${p.epochRecords.toLocaleString('en-US')} records`,
        value: p.ratio,
        ...(goals[p.epochRecords] !== undefined ? { goal: goals[p.epochRecords] } : {}),
      })),
      y,
      'linear',
      { linearMax: 1 },
    );
    blocks.push(o.svg);
    y += o.height;
  }
  if (r.awsLatency) {
    const a = panel(
      'AWS-latency profile: records/s per partition (log scale)',
      [
        ...(r.awsLatency.dedicated?.approaches ?? []).map((x) => ({
          label: `${x.id === 'tidemark-warm' ? '(a) Tidemark, warm' : '(c) UpdateItem per record'}, 1 partition per batch`,
          value: x.recordsPerSecondPerPartition,
        })),
        ...r.awsLatency.approaches.map((x) => ({
          label: `${x.id === 'tidemark-warm' ? '(a) Tidemark, warm' : '(c) UpdateItem per record'}${r.awsLatency?.dedicated ? `, ${r.awsLatency.options.partitions} per batch` : ''}`,
          value: x.recordsPerSecondPerPartition,
        })),
      ],
      y,
      'log',
    );
    blocks.push(a.svg);
    y += a.height;
  }
  // Every goal of the run as measured ÷ goal (at or past 1 means met; for limits, goal ÷ measured).
  const attainment = goalBars(r);
  if (attainment.length > 0) {
    const g = panel(
      'Goals: measured against goal (1 = goal; past the line = met; median, whiskers min–max)',
      attainment,
      y,
      'linear',
      { linearMax: 2, goal: 1 },
    );
    blocks.push(g.svg);
    y += g.height;
  }
  const height = y + 20;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">
<style>
.title{font-size:14px;font-weight:bold;fill:#222}
.label{font-size:12px;text-anchor:end;fill:#222}
.value{font-size:12px;fill:#222}
.tick{font-size:10px;text-anchor:middle;fill:#666}
.grid{stroke:#ddd;stroke-width:1}
.whisker{stroke:#222;stroke-width:1.5}
.goal{stroke:#2ca02c;stroke-width:2;stroke-dasharray:4 3}
</style>
<rect width="100%" height="100%" fill="#fff"/>
${blocks.join('\n')}
<text x="10" y="${height - 6}" class="tick" style="text-anchor:start">Tidemark benchmarks, ${esc(r.profile)} profile, ${esc(r.startedAt.slice(0, 10))}, ${esc(r.machine.cpus.toString())} CPUs, Node ${esc(r.machine.node)}</text>
</svg>
`;
}
