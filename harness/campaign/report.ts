/** Text rendering of a campaign report (the CLI prints it; docs/reliability.md quotes it). */
import type { CampaignReport } from './campaign.ts';
import { FAULT_KINDS } from './faults.ts';

function table(rows: Array<Array<string | number>>): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows
    .map((r) =>
      r
        .map((c, i) =>
          typeof c === 'number' ? String(c).padStart(widths[i]!) : String(c).padEnd(widths[i]!),
        )
        .join('  '),
    )
    .join('\n');
}

/** Which lanes wrote their DynamoDB outputs in the commit's transaction, which after it. */
function dynamoPaths(r: CampaignReport): string {
  if (!r.options.outputs.includes('dynamodb')) return '';
  const inCommit = r.lanes.filter((l) => l.dynamoInCommit).map((l) => l.index);
  if (inCommit.length === 0) return ' (DynamoDB outputs after the commit on every lane)';
  if (inCommit.length === r.lanes.length) return ' (DynamoDB outputs in the commit on every lane)';
  return ` (DynamoDB outputs in the commit on lanes ${inCommit.join(', ')}, after it on the others)`;
}

export function formatReport(r: CampaignReport): string {
  const s = r.stats;
  const lines: string[] = [];
  lines.push(
    `campaign seed ${r.seed}: ${r.passed ? 'PASSED' : 'FAILED'} in ${(r.durationMs / 1000).toFixed(1)} s`,
  );
  lines.push(
    `input: ${r.records.total} records (${r.records.poison} poison, ${r.records.applied} to apply) over ${r.tasks.length} tasks, ${r.options.lanes} lanes (${r.options.processor})`,
  );
  lines.push(
    `commits in ${r.options.commitStore}; outputs: ${r.options.outputs.length > 0 ? r.options.outputs.join(', ') : 'none'}${dynamoPaths(r)}`,
  );
  lines.push(
    `invocations: ${s.invocations} (${s.succeeded} succeeded, ${s.failed} failed) on ${s.containers} containers (${s.crashed} crashed)`,
  );
  lines.push('');
  const faultRows: Array<Array<string | number>> = [
    ['fault', 'planned', 'fired', 'absorbed by SDK', 'seen by engine'],
  ];
  for (const k of FAULT_KINDS) {
    const f = s.faults[k];
    faultRows.push([k, f.planned, f.fired, f.absorbed, f.surfaced]);
  }
  faultRows.push([
    'total',
    ...(['planned', 'fired', 'absorbed', 'surfaced'] as const).map((x) =>
      FAULT_KINDS.reduce((n, k) => n + s.faults[k][x], 0),
    ),
  ]);
  lines.push(table(faultRows));
  lines.push('');
  lines.push(
    `deliveries: ${Object.entries(s.deliveries)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  lines.push(
    `network faults carried out by the proxy: ${Object.entries(r.proxy)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  lines.push(
    `zombies: ${s.zombies.held} held, ${s.zombies.commitLost} commits lost (as they must), ${s.zombies.commitWon} won over a committed retry, ${s.zombies.noCommit} never committed, ${s.zombies.retryFailed} retries failed`,
  );
  if (r.options.outputs.length > 0) {
    lines.push(
      `delivery zombies: ${s.deliveryZombies.held} held mid-delivery while a retry delivered (${s.deliveryZombies.resumedOk} then succeeded, ${s.deliveryZombies.resumedFailed} failed)`,
    );
    const broker = Object.entries(r.brokerFaults);
    lines.push(
      `Kafka broker faults: ${broker.length > 0 ? broker.map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}`,
    );
  }
  lines.push(
    `failed tasks by error: ${
      Object.entries(s.failures)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    }`,
  );
  lines.push('');
  const t = r.totals;
  lines.push(
    `verdict: lost ${t.lost}, double-applied ${t.doubled}, unexpected ${t.unexpected}, wrong offsets ${t.offsetMismatches}, wrong quarantine ${t.quarantineMismatches}, unreadable ${t.unreadableTasks}, orphan snapshots read ${r.orphanReads.length} (zombie ${r.zombieOrphanReads.length}), untyped errors ${s.untyped.length}, stuck tasks ${s.stuck.length}`,
  );
  if (s.unexplained.length > 0) {
    lines.push(
      `failures with no fault injected: ${s.unexplained.length}, e.g. ${s.unexplained.slice(0, 3).join(' | ')}`,
    );
  }
  for (const u of s.untyped.slice(0, 5)) lines.push(`untyped: ${u}`);
  const bad = r.tasks.filter(
    (v) => v.lost || v.doubled || v.unexpected || v.error || v.committedOffset !== v.expectedOffset,
  );
  for (const v of bad.slice(0, 10)) {
    lines.push(
      `task ${v.pipeline}/${v.task}: committed ${v.committedOffset} (expected ${v.expectedOffset}), lost ${v.lost}, doubled ${v.doubled}, unexpected ${v.unexpected}${v.error ? `, ${v.error}` : ''}`,
    );
  }
  const sinks = Object.values(r.outputs);
  if (sinks.length > 0) {
    lines.push('');
    const rows: Array<Array<string | number>> = [
      ['sink', 'expected', 'read back', 'lost', 'duplicated', 'uncommitted', 'unexpected', 'out of order'],
    ];
    for (const v of sinks) {
      rows.push([
        v.sink,
        v.expected,
        v.seen,
        v.lost,
        v.duplicated,
        v.uncommitted,
        v.unexpected,
        v.outOfOrder,
      ]);
    }
    lines.push(table(rows));
    for (const v of sinks) {
      if (v.parts) {
        lines.push(
          `  ${v.sink}: ${v.parts.map((p) => `${p.name} ${p.seen} read back of ${p.expected} expected`).join(', ')}`,
        );
      }
    }
    for (const v of sinks) for (const e of v.examples.slice(0, 3)) lines.push(`  ${e}`);
  }
  for (const p of r.problems) lines.push(`problem: ${p}`);
  if (!r.passed) lines.push(`replay: ${r.replay}`);
  return lines.join('\n');
}
