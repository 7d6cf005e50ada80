/**
 * Benchmark 7, the AWS-latency profile: the same balances stream through (a) Tidemark warm and (c)
 * one UpdateItem per record, against DynamoDB Local and the S3 server reached through a latency
 * proxy (harness/latencyProxy.ts), which holds every response back by a latency drawn from what AWS
 * documents and users report for each service (harness/latency.ts; the figures and their sources are
 * in docs/performance.md). Local servers answer in about half a millisecond, which
 * hides what users meet on AWS: a request-bound approach slows down with the service's latency, an
 * epoch-bound one hardly.
 *
 * Reported per approach: records/s per partition, epoch latency (apply + checkpoint, p50/p99), and
 * record age at its durable commit, from the invocation's start (p50/p99); (a) ÷ (c) throughput per
 * repeat.
 *
 * Two layouts of the partitions over invocations, each approach measured in both:
 *   - shared: the batches hold every partition (8), which one invocation processes side by side in
 *     one Node thread — the ESM's scaled-down state (fewer pollers than partitions);
 *   - dedicated: each batch holds one partition, so a partition's invocations have the function's CPU
 *     to themselves — the ESM scaled out to a poller per partition, its most a partition ever gets.
 * An UpdateItem per record is bound by latency either way (its partitions wait on their writes side by
 * side); Tidemark is bound by CPU, so in the shared layout its records/s *per partition* is the
 * thread's rate divided by the partition count the benchmark chose. The dedicated layout measures a
 * partition's own rate, which no such choice scales: the throughput goal is judged there.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { balances } from '../examples/balances.ts';
import { type LatencyProfile, latencyModel } from '../harness/latency.ts';
import { startLatencyProxy } from '../harness/latencyProxy.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';
import { createDynamoDBClient, createS3Client } from '../lib/store/clients.ts';
import { perRecordUpdateHandler } from './baselines.ts';
import type { RequestsTarget } from './requests.ts';
import { type Spread, spread } from './stats.ts';
import { BalancesWorkload } from './workload.ts';

/** Latencies AWS documents or users report (sources in docs/performance.md). */
export const AWS_LATENCY = {
  dynamodb: { p50Ms: 6, p99Ms: 20 },
  s3: { p50Ms: 30, p99Ms: 120, bytesPerSecond: 90e6 },
} as const satisfies Record<string, LatencyProfile>;

export interface AwsLatencyOptions {
  tidemarkRecords: number;
  baselineRecords: number;
  partitions: number;
  /** The dedicated layout (one partition per batch): records per repeat for (a) and (c). */
  dedicated?: { tidemarkRecords: number; baselineRecords: number };
  batchRecords: number;
  accounts: number;
  repeats: number;
  seed: number;
}

export interface LatencyApproach {
  id: 'tidemark-warm' | 'per-record-update';
  label: string;
  recordsMeasured: number;
  recordsPerSecondPerPartition: Spread;
  /** Epoch: apply + checkpoint (Tidemark); one record's write (per-record approach). */
  epochMsP50: number;
  epochMsP99: number;
  /** Age of a record when its effect is durable, from the start of its invocation. */
  recordAgeMsP50: number;
  recordAgeMsP99: number;
}

export interface AwsLatencyResult {
  options: AwsLatencyOptions;
  profile: typeof AWS_LATENCY;
  /** The shared layout: every partition in each batch (`options.partitions`). */
  approaches: LatencyApproach[];
  /** (a) ÷ (c) records/s, per repeat, in the shared layout. */
  throughputRatio: Spread;
  /** The dedicated layout: one partition per batch (absent in runs before it was measured). */
  dedicated?: {
    approaches: LatencyApproach[];
    /** (a) ÷ (c) records/s per partition, per repeat. */
    throughputRatio: Spread;
  };
}

/** The value below which a fraction `q` of the (weighted) samples lie. */
function quantile(samples: Array<[value: number, weight: number]>, q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((n, [, w]) => n + w, 0);
  let seen = 0;
  for (const [v, w] of sorted) {
    seen += w;
    if (seen >= q * total) return v;
  }
  return sorted[sorted.length - 1]![0];
}

function hostPort(endpoint: string): { host: string; port: number } {
  const u = new URL(endpoint);
  return { host: u.hostname, port: Number(u.port) };
}

interface Run {
  records: number;
  ms: number;
  epochMs: Array<[number, number]>;
  ages: Array<[number, number]>;
}

async function runTidemark(
  o: AwsLatencyOptions,
  env: Record<string, string>,
  target: RequestsTarget,
  rep: string,
  repeat: number,
) {
  const pipeline = `aws-${target.runId}-${rep}`;
  const workload = new BalancesWorkload({
    topic: 'payments',
    partitions: o.partitions,
    accounts: o.accounts,
    seed: o.seed + repeat,
  });
  const s3 = createS3Client(env);
  const dynamodb = createDynamoDBClient(env);
  const run: Run = { records: 0, ms: 0, epochMs: [], ages: [] };
  let invocationStart = 0;
  const handler = createKafkaHandler(balances, {
    env: {},
    telemetry: false,
    clients: { s3, dynamodb },
    config: { bucket: target.bucket, table: target.table, pipeline, epochMaxRecords: o.batchRecords },
    observer: {
      epochCommitted: (info) => {
        run.epochMs.push([info.epochMs, 1]);
        run.ages.push([performance.now() - invocationStart, info.applied]);
      },
    },
  });
  const context = { getRemainingTimeInMillis: () => 900_000 };
  try {
    // A first batch opens the connections and creates the commit items (not measured).
    await handler(workload.batch(o.batchRecords), context);
    run.epochMs.length = 0;
    run.ages.length = 0;
    for (let done = 0; done < o.tidemarkRecords; done += o.batchRecords) {
      const event = workload.batch(Math.min(o.batchRecords, o.tidemarkRecords - done));
      invocationStart = performance.now();
      const summary = await handler(event, context);
      run.ms += performance.now() - invocationStart;
      run.records += summary.applied;
    }
  } finally {
    s3.destroy();
    dynamodb.destroy();
  }
  return run;
}

/** Records when each write completes (one per record), relative to the invocation's start. */
function meterCompletions(client: DynamoDBClient, since: () => number, ages: Array<[number, number]>) {
  client.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      ages.push([performance.now() - since(), 1]);
      return out;
    },
    { step: 'initialize', name: 'benchCompletionMeter', override: true },
  );
}

async function runBaseline(
  o: AwsLatencyOptions,
  env: Record<string, string>,
  target: RequestsTarget,
  rep: string,
  repeat: number,
) {
  const dynamodb = createDynamoDBClient(env);
  const run: Run = { records: 0, ms: 0, epochMs: [], ages: [] };
  let invocationStart = 0;
  const latencies: Array<[number, number]> = [];
  meterCompletions(dynamodb, () => invocationStart, run.ages);
  dynamodb.middlewareStack.add(
    (next) => async (args) => {
      const started = performance.now();
      const out = await next(args);
      latencies.push([performance.now() - started, 1]);
      return out;
    },
    { step: 'initialize', name: 'benchRequestLatency', override: true },
  );
  try {
    const handler = perRecordUpdateHandler(dynamodb, target.table, `bench-aws-${target.runId}-${rep}`);
    const workload = new BalancesWorkload({
      topic: 'payments',
      partitions: o.partitions,
      accounts: o.accounts,
      seed: o.seed + repeat,
    });
    const context = { getRemainingTimeInMillis: () => 900_000 };
    await handler(workload.batch(o.partitions * 4), context); // connections (not measured)
    run.ages.length = 0;
    latencies.length = 0;
    for (let done = 0; done < o.baselineRecords; done += o.batchRecords) {
      const n = Math.min(o.batchRecords, o.baselineRecords - done);
      invocationStart = performance.now();
      await handler(workload.batch(n), context);
      run.ms += performance.now() - invocationStart;
      run.records += n;
    }
    run.epochMs = latencies;
  } finally {
    dynamodb.destroy();
  }
  return run;
}

export async function runAwsLatency(
  o: AwsLatencyOptions,
  target: RequestsTarget,
  log: (line: string) => void = () => {},
): Promise<AwsLatencyResult> {
  const ddbEndpoint = target.env.AWS_ENDPOINT_URL_DYNAMODB ?? target.env.AWS_ENDPOINT_URL;
  const s3Endpoint = target.env.AWS_ENDPOINT_URL_S3 ?? target.env.AWS_ENDPOINT_URL;
  if (!ddbEndpoint || !s3Endpoint) throw new Error('the AWS-latency profile needs local endpoints');
  const ddbProxy = await startLatencyProxy(hostPort(ddbEndpoint), latencyModel(AWS_LATENCY.dynamodb, o.seed));
  const s3Proxy = await startLatencyProxy(hostPort(s3Endpoint), latencyModel(AWS_LATENCY.s3, o.seed + 1));
  const env = {
    ...target.env,
    AWS_ENDPOINT_URL_DYNAMODB: ddbProxy.endpoint,
    AWS_ENDPOINT_URL_S3: s3Proxy.endpoint,
  };
  const layouts = [
    { name: 'shared', o },
    ...(o.dedicated
      ? [
          {
            name: 'dedicated',
            o: {
              ...o,
              partitions: 1,
              tidemarkRecords: o.dedicated.tidemarkRecords,
              baselineRecords: o.dedicated.baselineRecords,
            },
          },
        ]
      : []),
  ] as const;
  const runs = layouts.map(() => ({ tidemark: [] as Run[], baseline: [] as Run[] }));
  try {
    for (let rep = 0; rep < o.repeats; rep++) {
      for (const [i, layout] of layouts.entries()) {
        const lo = layout.o;
        const where = `${lo.partitions} partition(s) per batch`;
        const a = await runTidemark(lo, env, target, `${layout.name}-${rep}`, rep);
        runs[i]!.tidemark.push(a);
        log(
          `aws-latency: Tidemark warm, ${where}, ${a.records} records in ${(a.ms / 1000).toFixed(1)} s (${Math.round(a.records / (a.ms / 1000))} rec/s)`,
        );
        const c = await runBaseline(lo, env, target, `${layout.name}-${rep}`, rep);
        runs[i]!.baseline.push(c);
        log(
          `aws-latency: UpdateItem per record, ${where}, ${c.records} records in ${(c.ms / 1000).toFixed(1)} s (${Math.round(c.records / (c.ms / 1000))} rec/s)`,
        );
      }
    }
  } finally {
    await Promise.all([ddbProxy.close(), s3Proxy.close()]);
  }
  const rate = (r: Run, lo: AwsLatencyOptions) => r.records / (r.ms / 1000) / lo.partitions;
  const approach = (
    id: LatencyApproach['id'],
    label: string,
    rs: Run[],
    lo: AwsLatencyOptions,
  ): LatencyApproach => {
    const epochMs = rs.flatMap((r) => r.epochMs);
    const ages = rs.flatMap((r) => r.ages);
    return {
      id,
      label,
      recordsMeasured: rs[rs.length - 1]?.records ?? 0,
      recordsPerSecondPerPartition: spread(rs.map((r) => rate(r, lo))),
      epochMsP50: quantile(epochMs, 0.5),
      epochMsP99: quantile(epochMs, 0.99),
      recordAgeMsP50: quantile(ages, 0.5),
      recordAgeMsP99: quantile(ages, 0.99),
    };
  };
  const measured = layouts.map((layout, i) => {
    const r = runs[i]!;
    return {
      approaches: [
        approach('tidemark-warm', '(a) Tidemark, warm', r.tidemark, layout.o),
        approach('per-record-update', '(c) UpdateItem per record', r.baseline, layout.o),
      ],
      throughputRatio: spread(r.tidemark.map((t, k) => rate(t, layout.o) / rate(r.baseline[k]!, layout.o))),
    };
  });
  return {
    options: o,
    profile: AWS_LATENCY,
    ...measured[0]!,
    ...(measured[1] ? { dedicated: measured[1] } : {}),
  };
}

export const AWS_LATENCY_PROFILES: Record<'full' | 'quick' | 'smoke', AwsLatencyOptions> = {
  full: {
    tidemarkRecords: 200_000,
    baselineRecords: 4_000,
    partitions: 8,
    batchRecords: 10_000,
    accounts: 10_000,
    repeats: 3,
    seed: 20_261_123,
    dedicated: { tidemarkRecords: 100_000, baselineRecords: 1_000 },
  },
  quick: {
    tidemarkRecords: 100_000,
    baselineRecords: 2_000,
    partitions: 8,
    batchRecords: 10_000,
    accounts: 10_000,
    repeats: 2,
    seed: 20_261_123,
    dedicated: { tidemarkRecords: 50_000, baselineRecords: 500 },
  },
  smoke: {
    tidemarkRecords: 400,
    baselineRecords: 40,
    partitions: 2,
    batchRecords: 200,
    accounts: 50,
    repeats: 1,
    seed: 20_261_123,
    dedicated: { tidemarkRecords: 400, baselineRecords: 20 },
  },
};
