/**
 * Benchmark 2, durable requests: every request sent to S3 and DynamoDB is counted (an SDK
 * middleware, `countRequests`) while the same balances stream (8 partitions, 10,000-record batches)
 * runs through four approaches on DynamoDB Local and the S3 server:
 *   (a) Tidemark, warm (one container for the whole stream),
 *   (b) Tidemark, cold (every invocation a new container: new clients, new handler, empty cache),
 *   (c) one DynamoDB UpdateItem per record,
 *   (d) (c) plus Powertools idempotency per record.
 * (c) and (d) run on a sample (hundreds of requests per second on DynamoDB Local) and are
 * extrapolated linearly to 1 M records; the report says so and shows the sample size.
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { type Account, balances } from '../examples/balances.ts';
import type { BatchSummary } from '../lib/checkpoint/epochEngine.ts';
import { loadCheckpoint } from '../lib/checkpoint/restore.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';
import { createDynamoDBClient, createS3Client } from '../lib/store/clients.ts';
import { countRequests, type RequestCounts } from '../lib/store/requestCounter.ts';
import { createAwsStores } from '../lib/store/stores.ts';
import {
  ensureIdempotencyTable,
  perRecordIdempotentHandler,
  perRecordUpdateHandler,
  type RecordHandler,
} from './baselines.ts';
import { itemSize, strongReadUnits, writeUnits } from './itemSize.ts';
import { type Spread, spread, timed } from './stats.ts';
import { BalancesWorkload } from './workload.ts';

export const PER_MILLION = 1_000_000;

export type ApproachId = 'tidemark-warm' | 'tidemark-cold' | 'per-record-update' | 'per-record-idempotent';

export const APPROACH_LABELS: Record<ApproachId, string> = {
  'tidemark-warm': '(a) Tidemark, warm',
  'tidemark-cold': '(b) Tidemark, cold (new container per invocation)',
  'per-record-update': '(c) UpdateItem per record',
  'per-record-idempotent': '(d) UpdateItem + Powertools idempotency per record',
};

export const APPROACH_SHORT_LABELS: Record<ApproachId, string> = {
  'tidemark-warm': '(a) Tidemark, warm',
  'tidemark-cold': '(b) Tidemark, cold',
  'per-record-update': '(c) UpdateItem per record',
  'per-record-idempotent': '(d) UpdateItem + idempotency',
};

/** Requests by billing class. */
export interface RequestClasses {
  s3Put: number;
  s3Get: number;
  s3Delete: number;
  s3List: number;
  s3Other: number;
  dynamoWrite: number;
  dynamoRead: number;
  dynamoOther: number;
}

export interface ApproachResult {
  id: ApproachId;
  label: string;
  /** Records actually processed per repeat (the sample for the per-record approaches). */
  recordsMeasured: number;
  /** True when the per-1M figures are extrapolated linearly from `recordsMeasured`. */
  extrapolated: boolean;
  /** Requests by command name, per repeat, as counted (last repeat). */
  requestsByCommand: { s3: Record<string, number>; dynamodb: Record<string, number> };
  /** Requests per 1 M records, by billing class (median repeat; counts barely vary). */
  per1M: RequestClasses;
  requestsPer1M: Spread;
  recordsPerSecond: Spread;
  /** Tidemark only: task-epochs committed per repeat, and requests per task-epoch. */
  taskEpochs?: number;
  perTaskEpoch?: { s3Put: number; dynamoWrite: number; otherRequests: number };
  snapshotBytes?: Spread;
  snapshotKinds?: Record<string, number>;
  /**
   * DynamoDB capacity per 1 M records (median repeat): write units from the size of each PutItem's
   * item (UpdateItems on small items count 1), read units from the size of each item read.
   */
  writeUnitsPer1M: number;
  readUnitsPer1M: number;
  /** Approximate sizes of the items written by PutItem (Tidemark: its commit items). */
  putItemBytes?: Spread;
  /** Result check: the state equals a plain fold of the same records. */
  check?: { ok: boolean; detail: string };
}

export interface RequestsOptions {
  /** Records for Tidemark warm (1 M in the full run). */
  tidemarkRecords: number;
  /** Records for Tidemark cold. */
  coldRecords: number;
  /** Sample size for (c) and (d). */
  baselineRecords: number;
  partitions: number;
  batchRecords: number;
  accounts: number;
  repeats: number;
  seed: number;
}

export interface RequestsTarget {
  /** Standard AWS variables pointing at the local servers. */
  env: Record<string, string>;
  bucket: string;
  table: string;
  /** Makes pipeline ids and item keys unique to this run. */
  runId: string;
}

export interface RequestsResult {
  options: RequestsOptions;
  approaches: ApproachResult[];
  /** Per repeat ratios: requests per 1 M of (c) and (d) over (a); throughput of (a) over (c). */
  ratios: {
    requestsUpdateOverWarm: Spread;
    requestsIdempotentOverWarm: Spread;
    throughputWarmOverUpdate: Spread;
    throughputWarmOverIdempotent: Spread;
  };
}

function classify(s3: RequestCounts, dynamo: RequestCounts): RequestClasses {
  const c: RequestClasses = {
    s3Put: 0,
    s3Get: 0,
    s3Delete: 0,
    s3List: 0,
    s3Other: 0,
    dynamoWrite: 0,
    dynamoRead: 0,
    dynamoOther: 0,
  };
  for (const [name, n] of s3) {
    if (/^(PutObject|UploadPart|CreateMultipartUpload|CompleteMultipartUpload|CopyObject)Command$/.test(name))
      c.s3Put += n;
    else if (/^(GetObject|HeadObject)Command$/.test(name)) c.s3Get += n;
    else if (/^DeleteObjects?Command$/.test(name)) c.s3Delete += n;
    else if (/^ListObjects(V2)?Command$/.test(name)) c.s3List += n;
    else c.s3Other += n;
  }
  for (const [name, n] of dynamo) {
    if (/^(PutItem|UpdateItem|DeleteItem|BatchWriteItem|TransactWriteItems)Command$/.test(name))
      c.dynamoWrite += n;
    else if (/^(GetItem|BatchGetItem|Query|Scan|TransactGetItems)Command$/.test(name)) c.dynamoRead += n;
    else c.dynamoOther += n;
  }
  return c;
}

function scaleClasses(c: RequestClasses, factor: number): RequestClasses {
  const out = { ...c };
  for (const k of Object.keys(out) as Array<keyof RequestClasses>) out[k] = c[k] * factor;
  return out;
}

function total(c: RequestClasses): number {
  return Object.values(c).reduce((n, v) => n + v, 0);
}

/** What the SDK middlewares saw of one approach's requests. */
interface Meter {
  s3: RequestCounts;
  dynamo: RequestCounts;
  writeUnits: number;
  readUnits: number;
  putItemBytes: number[];
}

function newMeter(): Meter {
  return { s3: new Map(), dynamo: new Map(), writeUnits: 0, readUnits: 0, putItemBytes: [] };
}

/**
 * Adds up DynamoDB capacity as on-demand billing would: a PutItem by the size of its item (1 WRU
 * per started KB), an UpdateItem or DeleteItem as 1 WRU (the items here are well under 1 KB), a
 * strongly consistent GetItem by the size of the item returned (1 RRU per started 4 KB).
 */
function meterCapacity(client: DynamoDBClient, meter: Meter): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = (context as { commandName?: string }).commandName;
      const input = args.input as { Item?: Record<string, AttributeValue> };
      if (name === 'PutItemCommand' && input.Item) {
        const bytes = itemSize(input.Item);
        meter.putItemBytes.push(bytes);
        meter.writeUnits += writeUnits(bytes);
      } else if (name === 'UpdateItemCommand' || name === 'DeleteItemCommand') {
        meter.writeUnits += 1;
      }
      const out = await next(args);
      if (name === 'GetItemCommand') {
        const item = (out.output as { Item?: Record<string, AttributeValue> }).Item;
        meter.readUnits += item ? strongReadUnits(itemSize(item)) : 1;
      }
      return out;
    },
    { step: 'initialize', name: 'benchCapacityMeter', override: true },
  );
}

interface RepeatOutcome extends Meter {
  records: number;
  ms: number;
  taskEpochs: number;
  snapshotBytes: number[];
  snapshotKinds: Record<string, number>;
  check?: { ok: boolean; detail: string };
}

interface CountedClients {
  s3: S3Client;
  dynamodb: DynamoDBClient;
  destroy(): void;
}

function countedClients(env: Record<string, string>, meter: Meter) {
  const s3 = createS3Client(env);
  const dynamodb = createDynamoDBClient(env);
  countRequests(s3, meter.s3);
  countRequests(dynamodb, meter.dynamo);
  meterCapacity(dynamodb, meter);
  return {
    s3,
    dynamodb,
    destroy: () => {
      s3.destroy();
      dynamodb.destroy();
    },
  } satisfies CountedClients;
}

/** Compares a task's committed state with the expected fold; returns a short verdict. */
async function checkTaskState(
  target: RequestsTarget,
  pipeline: string,
  topic: string,
  partition: number,
  expected: Map<string, { balance: number; count: number }>,
): Promise<{ ok: boolean; detail: string }> {
  const s3 = createS3Client(target.env);
  const dynamodb = createDynamoDBClient(target.env);
  try {
    const stores = createAwsStores({ bucket: target.bucket, table: target.table, s3, dynamodb });
    const task = { pipeline, topic, partition };
    const commit = await stores.commits.read(task);
    if (!commit) return { ok: false, detail: 'no commit item' };
    const { store } = await loadCheckpoint(stores.snapshots, task, commit, balances.state);
    const table = store.table('account')!.data as Map<string, Account>;
    let wrong = 0;
    for (const [k, v] of expected) {
      const got = table.get(k);
      if (!got || got.balance !== v.balance || got.count !== v.count) wrong++;
    }
    if (table.size !== expected.size) wrong += Math.abs(table.size - expected.size);
    return {
      ok: wrong === 0,
      detail: `partition ${partition}: ${expected.size} accounts, ${wrong} differ from a plain fold of the records`,
    };
  } finally {
    s3.destroy();
    dynamodb.destroy();
  }
}

async function runTidemark(
  mode: 'warm' | 'cold',
  o: RequestsOptions,
  target: RequestsTarget,
  rep: number,
): Promise<RepeatOutcome> {
  const records = mode === 'warm' ? o.tidemarkRecords : o.coldRecords;
  const pipeline = `bench-${mode}-${target.runId}-${rep}`;
  const topic = 'payments';
  const workload = new BalancesWorkload({
    topic,
    partitions: o.partitions,
    accounts: o.accounts,
    seed: o.seed + rep,
    track: mode === 'warm',
  });
  const meter = newMeter();
  const snapshotBytes: number[] = [];
  const snapshotKinds: Record<string, number> = {};
  const newContainer = () => {
    const clients = countedClients(target.env, meter);
    const handler = createKafkaHandler(balances, {
      env: {},
      telemetry: false,
      clients: { s3: clients.s3, dynamodb: clients.dynamodb },
      config: { bucket: target.bucket, table: target.table, pipeline, epochMaxRecords: o.batchRecords },
      observer: {
        epochCommitted: (info) => {
          snapshotBytes.push(info.snapshotBytes);
          const kind = `${info.snapshotKind}${info.snapshotInline ? ' inline' : ''}`;
          snapshotKinds[kind] = (snapshotKinds[kind] ?? 0) + 1;
        },
      },
    });
    return { clients, handler };
  };
  const context = { getRemainingTimeInMillis: () => 900_000 };
  let container = mode === 'warm' ? newContainer() : undefined;
  let ms = 0;
  let taskEpochs = 0;
  let applied = 0;
  for (let done = 0; done < records; done += o.batchRecords) {
    const event = workload.batch(Math.min(o.batchRecords, records - done));
    const t = await timed(async (): Promise<BatchSummary> => {
      // A cold start: new clients, a new handler, nothing in memory (its init is timed too).
      if (mode === 'cold') container = newContainer();
      return container!.handler(event, context);
    });
    if (mode === 'cold') container!.clients.destroy();
    ms += t.ms;
    taskEpochs += t.value.epochsCommitted;
    applied += t.value.applied;
  }
  container?.clients.destroy();
  const outcome: RepeatOutcome = {
    ...meter,
    records: applied,
    ms,
    taskEpochs,
    snapshotBytes,
    snapshotKinds,
  };
  if (mode === 'warm') {
    outcome.check = await checkTaskState(target, pipeline, topic, 0, workload.expected[0]!);
  }
  return outcome;
}

async function runBaseline(
  kind: 'per-record-update' | 'per-record-idempotent',
  o: RequestsOptions,
  target: RequestsTarget,
  rep: number,
): Promise<RepeatOutcome> {
  const meter = newMeter();
  const clients = countedClients(target.env, meter);
  const idempotencyTable = `${target.table}-idempotency`;
  const keyPrefix = `bench-${kind}-${target.runId}-${rep}`;
  try {
    let handler: RecordHandler;
    if (kind === 'per-record-update') {
      handler = perRecordUpdateHandler(clients.dynamodb, target.table, keyPrefix);
    } else {
      const setup = createDynamoDBClient(target.env);
      try {
        await ensureIdempotencyTable(setup, idempotencyTable);
      } finally {
        setup.destroy();
      }
      handler = perRecordIdempotentHandler(clients.dynamodb, target.table, idempotencyTable, keyPrefix);
    }
    const workload = new BalancesWorkload({
      topic: 'payments',
      partitions: o.partitions,
      accounts: o.accounts,
      seed: o.seed + rep,
    });
    const context = { getRemainingTimeInMillis: () => 900_000 };
    let ms = 0;
    let records = 0;
    for (let done = 0; done < o.baselineRecords; done += o.batchRecords) {
      const n = Math.min(o.batchRecords, o.baselineRecords - done);
      const event = workload.batch(n);
      ms += (await timed(() => handler(event, context))).ms;
      records += n;
    }
    return { ...meter, records, ms, taskEpochs: 0, snapshotBytes: [], snapshotKinds: {} };
  } finally {
    clients.destroy();
  }
}

function summarize(id: ApproachId, outcomes: RepeatOutcome[], extrapolated: boolean): ApproachResult {
  const classes = outcomes.map((r) => scaleClasses(classify(r.s3, r.dynamo), PER_MILLION / r.records));
  const totals = classes.map(total);
  // The repeat with the median total (the lower middle one for an even count).
  const medianIndex = totals.map((t, i) => [t, i] as const).sort((a, b) => a[0] - b[0])[
    Math.floor((totals.length - 1) / 2)
  ]![1];
  const last = outcomes[outcomes.length - 1]!;
  const result: ApproachResult = {
    id,
    label: APPROACH_LABELS[id],
    recordsMeasured: last.records,
    extrapolated,
    requestsByCommand: { s3: Object.fromEntries(last.s3), dynamodb: Object.fromEntries(last.dynamo) },
    per1M: classes[medianIndex]!,
    requestsPer1M: spread(totals),
    recordsPerSecond: spread(outcomes.map((r) => r.records / (r.ms / 1000))),
    writeUnitsPer1M: (outcomes[medianIndex]!.writeUnits * PER_MILLION) / outcomes[medianIndex]!.records,
    readUnitsPer1M: (outcomes[medianIndex]!.readUnits * PER_MILLION) / outcomes[medianIndex]!.records,
  };
  const putItems = outcomes.flatMap((r) => r.putItemBytes);
  if (putItems.length > 0) result.putItemBytes = spread(putItems);
  if (id.startsWith('tidemark')) {
    const c = classify(last.s3, last.dynamo);
    result.taskEpochs = last.taskEpochs;
    result.perTaskEpoch = {
      s3Put: c.s3Put / last.taskEpochs,
      dynamoWrite: c.dynamoWrite / last.taskEpochs,
      otherRequests: (total(c) - c.s3Put - c.dynamoWrite) / last.taskEpochs,
    };
    result.snapshotBytes = spread(outcomes.flatMap((r) => r.snapshotBytes));
    result.snapshotKinds = last.snapshotKinds;
    const checks = outcomes.map((r) => r.check).filter((c) => c !== undefined);
    if (checks.length > 0) {
      result.check = {
        ok: checks.every((c) => c.ok),
        detail: `${checks.filter((c) => c.ok).length} of ${checks.length} repeat(s) OK; ${checks.find((c) => !c.ok)?.detail ?? checks[0]!.detail}`,
      };
    }
  }
  return result;
}

export async function runRequests(
  o: RequestsOptions,
  target: RequestsTarget,
  log: (line: string) => void = () => {},
): Promise<RequestsResult> {
  const runs: Record<ApproachId, RepeatOutcome[]> = {
    'tidemark-warm': [],
    'tidemark-cold': [],
    'per-record-update': [],
    'per-record-idempotent': [],
  };
  const describe = (id: ApproachId, r: RepeatOutcome) => {
    const n = total(classify(r.s3, r.dynamo));
    log(
      `requests: ${id}, ${r.records} records in ${(r.ms / 1000).toFixed(1)} s (${Math.round(r.records / (r.ms / 1000))} rec/s), ${n} requests`,
    );
  };
  for (let rep = 0; rep < o.repeats; rep++) {
    for (const mode of ['warm', 'cold'] as const) {
      const r = await runTidemark(mode, o, target, rep);
      runs[`tidemark-${mode}`].push(r);
      describe(`tidemark-${mode}`, r);
    }
    for (const kind of ['per-record-update', 'per-record-idempotent'] as const) {
      const r = await runBaseline(kind, o, target, rep);
      runs[kind].push(r);
      describe(kind, r);
    }
  }
  const approaches = [
    summarize('tidemark-warm', runs['tidemark-warm'], false),
    summarize('tidemark-cold', runs['tidemark-cold'], false),
    summarize('per-record-update', runs['per-record-update'], true),
    summarize('per-record-idempotent', runs['per-record-idempotent'], true),
  ];
  const perRepeat = (id: ApproachId, f: (r: RepeatOutcome) => number) => runs[id].map(f);
  const reqPer1M = (r: RepeatOutcome) => (total(classify(r.s3, r.dynamo)) * PER_MILLION) / r.records;
  const rate = (r: RepeatOutcome) => r.records / (r.ms / 1000);
  const ratio = (num: number[], den: number[]) => spread(num.map((v, i) => v / den[i]!));
  const warmReq = perRepeat('tidemark-warm', reqPer1M);
  const warmRate = perRepeat('tidemark-warm', rate);
  return {
    options: o,
    approaches,
    ratios: {
      requestsUpdateOverWarm: ratio(perRepeat('per-record-update', reqPer1M), warmReq),
      requestsIdempotentOverWarm: ratio(perRepeat('per-record-idempotent', reqPer1M), warmReq),
      throughputWarmOverUpdate: ratio(warmRate, perRepeat('per-record-update', rate)),
      throughputWarmOverIdempotent: ratio(warmRate, perRepeat('per-record-idempotent', rate)),
    },
  };
}
