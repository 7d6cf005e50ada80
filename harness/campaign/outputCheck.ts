/**
 * The outputs' verdict: what each sink holds at the end of a campaign against what the reference
 * fold expects (harness/oracle.ts), output by output, and against the commits the run saw
 * (`CommitLedger`), so that every output read back is classified:
 *
 * - **lost**: an output the fold expects that the sink does not hold from the committed attempt;
 * - **duplicated**: an output held more than once from the committed attempt (a stream sink), or a
 *   write applied again after a later one (a table: an item written back to an older state, or
 *   brought back after the record that deleted it);
 * - **from uncommitted attempts**: an output whose epoch, or whose invocation, is not the one that
 *   committed its record (every output names the invocation that emitted it: an attempt that lost
 *   its commit race, a zombie, a crashed attempt whose commit never landed);
 * - **unexpected**: an output no applied record explains, or whose content differs from the fold's;
 * - **unplaced**: an output whose record's epoch the run never saw committed (a harness gap: it
 *   cannot be classified).
 *
 * The SQL sink is judged twice over, as one verdict: its append-only table of every output (a
 * stream: `judgeStream`) and its table of each account's running total (`judgeSqlTotals`).
 *
 * Pure functions: the sinks are read by outputs.ts.
 */
import type { TaskId } from '../../lib/checkpoint/stores.ts';
import type { AppliedRecord } from '../oracle.ts';
import type { CommitLedger } from './commits.ts';

/** One output of the campaign's emitting processors: what one applied record did to an account. */
export interface CampaignOutput {
  /** `<topic>-<partition>` of the input record. */
  readonly task: string;
  /** The input record's offset (decimal). */
  readonly offset: string;
  readonly account: string;
  /** The balance after the record; null when it closed the account (a tombstone). */
  readonly balance: number | null;
  /** Deposits since the account was last closed (0 after a tombstone). */
  readonly count: number;
  /** Request id of the invocation that processed the record (tells attempts apart). */
  readonly inv: string;
}

/** What the fold says one applied record must emit (`inv` aside). */
export type ExpectedOutput = Omit<CampaignOutput, 'inv' | 'task'>;

export function expectedOutputs(applications: readonly AppliedRecord[]): ExpectedOutput[] {
  return applications.map((a) => ({
    offset: a.offset.toString(),
    account: a.account,
    balance: a.kind === 'tombstone' ? null : a.balance,
    count: a.kind === 'tombstone' ? 0 : a.count,
  }));
}

/** The sinks every commit store can drive (the default set). */
export const CAMPAIGN_SINKS = ['kafka', 'dynamodb', 's3'] as const;
/**
 * Every sink the campaign can drive: `sql` too, whose rows commit in the epoch's own transaction, so
 * it needs commits in PostgreSQL or MySQL/MariaDB (the database holding its tables).
 */
export const ALL_CAMPAIGN_SINKS = [...CAMPAIGN_SINKS, 'sql'] as const;
export type CampaignSink = (typeof ALL_CAMPAIGN_SINKS)[number];

export interface SinkVerdict {
  sink: CampaignSink;
  /** Outputs the fold expects the sink to show (a table: the writes its final items must hold). */
  expected: number;
  /** Outputs read back. */
  seen: number;
  lost: number;
  duplicated: number;
  uncommitted: number;
  unexpected: number;
  /** A task's outputs out of emit order (a stream sink, within one output partition). */
  outOfOrder: number;
  unplaced: number;
  /** A few of the problems, for the report. */
  examples: string[];
  /** A sink judged in parts (the SQL sink's tables): each part's expected and read-back counts. */
  parts?: Array<{ name: string; expected: number; seen: number }>;
}

export function emptyVerdict(sink: CampaignSink): SinkVerdict {
  return {
    sink,
    expected: 0,
    seen: 0,
    lost: 0,
    duplicated: 0,
    uncommitted: 0,
    unexpected: 0,
    outOfOrder: 0,
    unplaced: 0,
    examples: [],
  };
}

/** The campaign's tasks, keyed `<pipeline>|<topic>-<partition>`, with what each must emit. */
export interface ExpectedTask {
  readonly id: TaskId;
  readonly outputs: readonly ExpectedOutput[];
}
export const groupKey = (pipeline: string, label: string): string => `${pipeline}|${label}`;

function note(v: SinkVerdict, text: string): void {
  if (v.examples.length < 8) v.examples.push(text);
}

/** One output as a stream sink (Kafka, S3) gave it back. */
export interface SeenOutput {
  /** The pipeline the output's identity names. */
  readonly pipeline: string;
  /** The epoch the output's identity names. */
  readonly epoch: number;
  readonly value: CampaignOutput;
  /** Where it sits, for the order check (a Kafka partition, an S3 task folder). */
  readonly lane?: string;
}

/** Is a copy of an output the committed attempt's? */
function placement(
  ledger: CommitLedger,
  task: TaskId,
  offset: bigint,
  epoch: number,
  inv: string,
): 'committed' | 'uncommitted' | 'unplaced' {
  const p = ledger.place(task, offset);
  if (!p || p.invocation === undefined) return 'unplaced';
  return p.epoch === epoch && p.invocation === inv ? 'committed' : 'uncommitted';
}

const sameContent = (a: CampaignOutput, e: ExpectedOutput) =>
  a.account === e.account && a.balance === e.balance && a.count === e.count;

/**
 * A stream sink (Kafka read with read_committed, S3 through its manifests): every expected output
 * exactly once from the committed attempt, nothing else. `seen` in the sink's order.
 */
export function judgeStream(
  sink: CampaignSink,
  seen: readonly SeenOutput[],
  expected: ReadonlyMap<string, ExpectedTask>,
  ledger: CommitLedger,
): SinkVerdict {
  const v = emptyVerdict(sink);
  const byTask = new Map<string, SeenOutput[]>();
  for (const s of seen) {
    const key = groupKey(s.pipeline, s.value.task);
    if (!expected.has(key)) {
      v.seen++;
      v.unexpected++;
      note(v, `${sink}: an output of unknown task ${key}`);
      continue;
    }
    const list = byTask.get(key) ?? [];
    list.push(s);
    byTask.set(key, list);
  }
  for (const [key, task] of expected) {
    const copies = byTask.get(key) ?? [];
    v.expected += task.outputs.length;
    v.seen += copies.length;
    const want = new Map(task.outputs.map((o) => [o.offset, o]));
    const committed = new Map<string, number>();
    const lastOffset = new Map<string, bigint>();
    for (const c of copies) {
      const e = want.get(c.value.offset);
      if (!e) {
        v.unexpected++;
        note(v, `${sink}: ${key} offset ${c.value.offset} emitted, but no record was applied there`);
        continue;
      }
      const where = placement(ledger, task.id, BigInt(c.value.offset), c.epoch, c.value.inv);
      if (where === 'unplaced') {
        v.unplaced++;
        note(v, `${sink}: ${key} offset ${c.value.offset}: no commit of its epoch seen`);
        continue;
      }
      if (where === 'uncommitted') {
        v.uncommitted++;
        note(
          v,
          `${sink}: ${key} offset ${c.value.offset} from epoch ${c.epoch}, invocation ${c.value.inv}: not the committed attempt`,
        );
        continue;
      }
      committed.set(c.value.offset, (committed.get(c.value.offset) ?? 0) + 1);
      if (!sameContent(c.value, e)) {
        v.unexpected++;
        note(
          v,
          `${sink}: ${key} offset ${c.value.offset}: ${JSON.stringify(c.value)}, expected ${JSON.stringify(e)}`,
        );
      }
      const lane = c.lane ?? '';
      const offset = BigInt(c.value.offset);
      const before = lastOffset.get(lane);
      if (before !== undefined && offset <= before) {
        v.outOfOrder++;
        note(v, `${sink}: ${key} offset ${offset} after ${before} in ${lane || 'the sink'}`);
      }
      lastOffset.set(lane, offset);
    }
    for (const o of task.outputs) {
      const n = committed.get(o.offset) ?? 0;
      if (n === 0) {
        v.lost++;
        note(v, `${sink}: ${key} offset ${o.offset} lost`);
      } else if (n > 1) {
        v.duplicated += n - 1;
        note(v, `${sink}: ${key} offset ${o.offset} ${n} times`);
      }
    }
  }
  return v;
}

/** One item of the DynamoDB output table, unmarshalled. */
export type TableItem = Readonly<Record<string, unknown>>;

/** The key of an account's item (`pk`). */
export const accountItemKey = (pipeline: string, label: string, account: string): string =>
  `${pipeline}/${label}/${account}`;

/** Attribute naming one applied record's write in an account's item (`o<offset>` = invocation). */
export const OFFSET_ATTRIBUTE = 'o';

interface AccountExpectation {
  /** Deposits since the account was last closed: the `o<offset>` attributes its item must hold. */
  since: Set<string>;
  /** Records applied before the last tombstone: never in the item again. */
  before: Set<string>;
  /** The last deposit, whose balance, count and offset the item must show; none: no item. */
  last: ExpectedOutput | undefined;
}

function accountExpectations(outputs: readonly ExpectedOutput[]): Map<string, AccountExpectation> {
  const out = new Map<string, AccountExpectation>();
  for (const o of outputs) {
    let a = out.get(o.account);
    if (!a) {
      a = { since: new Set(), before: new Set(), last: undefined };
      out.set(o.account, a);
    }
    if (o.balance === null) {
      for (const x of a.since) a.before.add(x);
      a.before.add(o.offset);
      a.since.clear();
      a.last = undefined;
    } else {
      a.since.add(o.offset);
      a.last = o;
    }
  }
  return out;
}

/**
 * The DynamoDB output table: per account, an item updated by every deposit (its balance, count and
 * last offset, and one `o<offset>` attribute per deposit naming the invocation) and deleted by a
 * tombstone. The final items must be exactly what the fold leaves.
 */
export function judgeTable(
  items: ReadonlyMap<string, TableItem>,
  expected: ReadonlyMap<string, ExpectedTask>,
  ledger: CommitLedger,
): SinkVerdict {
  const v = emptyVerdict('dynamodb');
  const claimed = new Set<string>();
  for (const [key, task] of expected) {
    const [pipeline, label] = key.split('|') as [string, string];
    for (const [account, exp] of accountExpectations(task.outputs)) {
      const pk = accountItemKey(pipeline, label, account);
      claimed.add(pk);
      const item = items.get(pk);
      v.expected += exp.since.size;
      const written = new Map<string, string>();
      for (const [name, value] of Object.entries(item ?? {})) {
        if (name.startsWith(OFFSET_ATTRIBUTE) && /^\d+$/.test(name.slice(1)))
          written.set(name.slice(1), String(value));
      }
      v.seen += written.size;
      let lost = 0;
      for (const offset of exp.since) {
        const inv = written.get(offset);
        if (inv === undefined) {
          lost++;
          note(v, `dynamodb: ${pk} lacks the write of offset ${offset}`);
          continue;
        }
        const epoch = ledger.place(task.id, BigInt(offset))?.epoch ?? -1;
        const where = placement(ledger, task.id, BigInt(offset), epoch, inv);
        if (where === 'unplaced') v.unplaced++;
        else if (where === 'uncommitted') {
          v.uncommitted++;
          note(v, `dynamodb: ${pk} offset ${offset} written by invocation ${inv}: not the committed attempt`);
        }
      }
      v.lost += lost;
      for (const offset of written.keys()) {
        if (exp.since.has(offset)) continue;
        if (exp.before.has(offset)) {
          v.duplicated++;
          note(v, `dynamodb: ${pk} holds offset ${offset} again after the record that closed the account`);
        } else {
          v.unexpected++;
          note(v, `dynamodb: ${pk} holds offset ${offset}, which no deposit of the account explains`);
        }
      }
      if (item && exp.last && lost === 0) {
        const same =
          item.balance === exp.last.balance &&
          item.count === exp.last.count &&
          String(item.last) === exp.last.offset;
        if (!same) {
          // Every write is there, yet the item shows an older one: a write applied again after it.
          v.duplicated++;
          note(
            v,
            `dynamodb: ${pk} shows balance ${String(item.balance)} count ${String(item.count)} of offset ${String(item.last)}, expected ${exp.last.balance}/${exp.last.count} of offset ${exp.last.offset}`,
          );
        } else {
          const p = ledger.place(task.id, BigInt(exp.last.offset));
          if (p?.invocation !== undefined && (item.inv !== p.invocation || item.tidemarkEpoch !== p.epoch)) {
            v.uncommitted++;
            note(
              v,
              `dynamodb: ${pk}'s last write from invocation ${String(item.inv)}, epoch ${String(item.tidemarkEpoch)}: not the committed attempt`,
            );
          }
        }
      }
    }
  }
  for (const [pk, item] of items) {
    if (claimed.has(pk)) continue;
    const n = Object.keys(item).filter(
      (k) => k.startsWith(OFFSET_ATTRIBUTE) && /^\d+$/.test(k.slice(1)),
    ).length;
    v.seen += n;
    v.unexpected += Math.max(1, n);
    note(v, `dynamodb: item ${pk} belongs to no account of the run`);
  }
  return v;
}

/** One row of the SQL sink's table of totals, as read back (bigint columns as decimal text). */
export interface SqlTotalsRow {
  readonly pk: string;
  readonly account: string;
  readonly balance: string;
  readonly count: number;
  readonly lastOffset: string;
  readonly inv: string;
  /** The identity column: the epoch whose commit wrote the row last. */
  readonly epoch: number;
}

/** The fold's outputs of one account, split at its last tombstone. */
interface AccountStates {
  /** Every output of the account (deposits and tombstones), in order. */
  all: ExpectedOutput[];
  /** Deposits since the last tombstone (the last one is what the row must show; none: no row). */
  since: ExpectedOutput[];
  /** Deposits before the last tombstone (a row showing one of them was brought back). */
  before: ExpectedOutput[];
}

function accountStates(outputs: readonly ExpectedOutput[]): Map<string, AccountStates> {
  const out = new Map<string, AccountStates>();
  for (const o of outputs) {
    let a = out.get(o.account);
    if (!a) {
      a = { all: [], since: [], before: [] };
      out.set(o.account, a);
    }
    a.all.push(o);
    if (o.balance === null) {
      a.before.push(...a.since);
      a.since = [];
    } else a.since.push(o);
  }
  return out;
}

const showsState = (row: SqlTotalsRow, o: ExpectedOutput): boolean =>
  row.lastOffset === o.offset && row.balance === String(o.balance) && row.count === o.count;

/**
 * The SQL sink's table of totals: one row per account (keyed `<pipeline>/<task>/<account>`) upserted
 * by every deposit with the balance, count and offset after it and the invocation that wrote it,
 * deleted by a tombstone. The table must equal the fold's final state, row for row. A row that
 * differs (missing, showing an older state, there although the fold closed the account) shows that
 * some write went wrong, not which: the events table (`events`, the same epochs' rows of every
 * output, read back) tells, for the account's outputs:
 *
 * - one of them missing from the committed attempts' rows: **lost**;
 * - else one of them there twice, or the row showing an older state while every write is there
 *   once (an older write landed again after the later ones): **duplicated**;
 * - else a row missing: **lost**; any other content: **unexpected**.
 *
 * A row equal to the fold's whose last write is not the committed attempt's (its invocation or its
 * identity's epoch) is **uncommitted**; a row of no account of the run, **unexpected**. `expected`
 * counts the rows the fold leaves, `seen` the rows read.
 */
export function judgeSqlTotals(
  rows: readonly SqlTotalsRow[],
  events: readonly SeenOutput[],
  expected: ReadonlyMap<string, ExpectedTask>,
  ledger: CommitLedger,
): SinkVerdict {
  const v = emptyVerdict('sql');
  // Committed copies of each output in the events table, by `<group>|<offset>`.
  const copies = new Map<string, number>();
  for (const e of events) {
    const key = groupKey(e.pipeline, e.value.task);
    const task = expected.get(key);
    if (!task) continue;
    if (placement(ledger, task.id, BigInt(e.value.offset), e.epoch, e.value.inv) !== 'committed') continue;
    const k = `${key}|${e.value.offset}`;
    copies.set(k, (copies.get(k) ?? 0) + 1);
  }
  const byPk = new Map<string, SqlTotalsRow>();
  for (const r of rows) {
    v.seen++;
    if (byPk.has(r.pk)) {
      // The key is the table's primary key: two rows with one key cannot happen.
      v.duplicated++;
      note(v, `sql totals: two rows with key ${r.pk}`);
    }
    byPk.set(r.pk, r);
  }
  const claimed = new Set<string>();
  for (const [key, task] of expected) {
    const [pipeline, label] = key.split('|') as [string, string];
    for (const [account, states] of accountStates(task.outputs)) {
      const pk = accountItemKey(pipeline, label, account);
      claimed.add(pk);
      const row = byPk.get(pk);
      const last = states.since[states.since.length - 1];
      if (last) v.expected++;
      if (row && last && row.account === account && showsState(row, last)) {
        const p = ledger.place(task.id, BigInt(last.offset));
        if (!p || p.invocation === undefined) {
          v.unplaced++;
          note(v, `sql totals: ${pk} offset ${last.offset}: no commit of its epoch seen`);
        } else if (row.inv !== p.invocation || row.epoch !== p.epoch) {
          v.uncommitted++;
          note(
            v,
            `sql totals: ${pk}'s last write from invocation ${row.inv}, epoch ${row.epoch}: not the committed attempt (epoch ${p.epoch}, ${p.invocation})`,
          );
        }
        continue;
      }
      if (!row && !last) continue;
      // The row differs from the fold's: which write went wrong, the events table tells.
      const shows = row ? `balance ${row.balance} count ${row.count} of offset ${row.lastOffset}` : 'no row';
      const want = last ? `the state after offset ${last.offset}` : 'no row (the account was closed)';
      const count = (o: ExpectedOutput) => copies.get(`${key}|${o.offset}`) ?? 0;
      const missing = states.all.find((o) => count(o) === 0);
      const twice = states.all.find((o) => count(o) > 1);
      const older =
        row !== undefined &&
        row.account === account &&
        [...states.since, ...states.before].some((o) => showsState(row, o));
      if (missing) {
        v.lost++;
        note(
          v,
          `sql totals: ${pk} shows ${shows}, expected ${want}; the write of offset ${missing.offset} is lost`,
        );
      } else if (twice || older) {
        v.duplicated++;
        note(
          v,
          `sql totals: ${pk} shows ${shows}, expected ${want}; ${twice ? `the write of offset ${twice.offset} was applied twice` : 'an older write was applied again after the later ones'}`,
        );
      } else if (!row) {
        v.lost++;
        note(v, `sql totals: ${pk} shows no row, expected ${want}`);
      } else {
        v.unexpected++;
        note(
          v,
          `sql totals: ${pk} shows ${shows} of account ${row.account}, which no record of the account explains`,
        );
      }
    }
  }
  for (const [pk] of byPk) {
    if (claimed.has(pk)) continue;
    v.unexpected++;
    note(v, `sql totals: row ${pk} belongs to no account of the run`);
  }
  return v;
}

/** One verdict of several (the SQL sink's two tables): counts added, examples of each, each part's size kept. */
export function combineVerdicts(parts: ReadonlyArray<[string, SinkVerdict]>): SinkVerdict {
  const out = emptyVerdict(parts[0]![1].sink);
  out.parts = parts.map(([name, v]) => ({ name, expected: v.expected, seen: v.seen }));
  for (const [, v] of parts) {
    out.examples.push(...v.examples);
    for (const k of [
      'expected',
      'seen',
      'lost',
      'duplicated',
      'uncommitted',
      'unexpected',
      'outOfOrder',
      'unplaced',
    ] as const) {
      out[k] += v[k];
    }
  }
  out.examples = out.examples.slice(0, 8);
  return out;
}

/** The problems a verdict adds to the campaign's report (empty when the sink is exactly once). */
export function verdictProblems(v: SinkVerdict): string[] {
  const out: string[] = [];
  if (v.lost) out.push(`${v.sink}: ${v.lost} output(s) lost`);
  if (v.duplicated) out.push(`${v.sink}: ${v.duplicated} output(s) duplicated`);
  if (v.uncommitted) out.push(`${v.sink}: ${v.uncommitted} output(s) from uncommitted attempts`);
  if (v.unexpected) out.push(`${v.sink}: ${v.unexpected} unexpected output(s)`);
  if (v.outOfOrder) out.push(`${v.sink}: ${v.outOfOrder} output(s) out of emit order`);
  if (v.unplaced) out.push(`${v.sink}: ${v.unplaced} output(s) whose epoch the run never saw committed`);
  return out;
}
