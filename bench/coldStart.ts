/**
 * Benchmark 8, cold start: the balances handler bundled exactly as the CDK construct bundles it (the
 * `TidemarkPipeline` of a synthesized app, esbuild run locally by the construct), then, in a fresh
 * Node process per repeat, with the function's own environment (`NODE_OPTIONS` from the template)
 * and the local servers' endpoints:
 *   - module load: `import()` of the bundle, wall time and the process's CPU time over it;
 *   - first invocation: the handler's first call with a small MSK event (reads an absent commit item,
 *     applies two records, commits inline), against the local servers (AWS would add its latencies
 *     and the first TLS handshakes).
 * Side by side, in the same repeats: the same handler bundled with `awsClient: 'sdk'` (the AWS SDK v3
 * clients of DynamoDB and S3 instead of the lightweight transport the construct bundles by default),
 * and a reference bundled by the same construct: a function holding
 * only the DynamoDB client of the AWS SDK v3, created at module load, doing one GetItem per invocation
 * (bench/fixtures/dynamodbOnly.ts) — the least any function that commits to DynamoDB loads. Its module
 * load says how much of Tidemark's is the SDK's.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import { TidemarkPipeline } from '../cdk/tidemarkPipeline.ts';
import type { RequestsTarget } from './requests.ts';
import { type Spread, spread } from './stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLUSTER_ARN =
  'arn:aws:kafka:us-east-1:111122223333:cluster/bench/5a7b3c1d-1111-2222-3333-444455556666-3';

export interface ColdStartOptions {
  repeats: number;
}

export interface ColdStartResult {
  bundleBytes: number;
  /** The function's NODE_OPTIONS (empty: none). */
  nodeOptions: string;
  moduleLoadMs: Spread;
  moduleLoadCpuMs: Spread;
  firstInvocationMs: Spread;
  /** The handler bundled with `awsClient: 'sdk'` (absent in runs before the lightweight client). */
  sdkClients?: {
    bundleBytes: number;
    moduleLoadMs: Spread;
    moduleLoadCpuMs: Spread;
    firstInvocationMs: Spread;
  };
  /** The reference function (absent in runs before it was measured). */
  reference?: {
    label: string;
    bundleBytes: number;
    moduleLoadMs: Spread;
    moduleLoadCpuMs: Spread;
    firstInvocationMs: Spread;
    /** Tidemark's module load CPU ÷ the reference's, per repeat (the two run back to back). */
    loadCpuRatio: Spread;
  };
}

const REFERENCE_LABEL = 'the DynamoDB client alone (one GetItem per invocation)';

/** Synthesizes the construct with bundling on; returns the asset directory and the function's environment. */
function bundleAsConstruct(
  outdir: string,
  entry: string,
  awsClient: 'lite' | 'sdk' = 'lite',
): { dir: string; environment: Record<string, string> } {
  const app = new App({ outdir, context: { 'aws:cdk:enable-asset-metadata': true } });
  const stack = new Stack(app, 'ColdStart', { env: { account: '111122223333', region: 'us-east-1' } });
  new TidemarkPipeline(stack, 'Pipeline', {
    pipelineId: 'coldstart',
    entry: join(ROOT, entry),
    source: { kind: 'msk', clusterArn: CLUSTER_ARN },
    topic: 'payments',
    awsClient,
  });
  const template = app.synth().getStackArtifact(stack.artifactId).template as {
    Resources: Record<
      string,
      { Type: string; Properties: Record<string, unknown>; Metadata?: Record<string, unknown> }
    >;
  };
  const fn = Object.values(template.Resources).find(
    (r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Handler === 'index.handler',
  );
  if (!fn?.Metadata?.['aws:asset:path']) throw new Error('no bundled function in the synthesized template');
  const environment =
    (fn.Properties.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {};
  return {
    dir: join(outdir, fn.Metadata['aws:asset:path'] as string),
    environment: Object.fromEntries(
      Object.entries(environment).filter(([, v]) => typeof v === 'string'),
    ) as Record<string, string>,
  };
}

/** Runs in the child process: prints { load, loadCpu, first } as JSON. */
const CHILD = `
const c0 = process.cpuUsage();
const t0 = performance.now();
const m = await import(process.env.BENCH_BUNDLE_URL);
const load = performance.now() - t0;
const c = process.cpuUsage(c0);
const t1 = performance.now();
const summary = await m.handler(JSON.parse(process.env.BENCH_EVENT), { awsRequestId: 'cold', getRemainingTimeInMillis: () => 60000, functionName: 'bench' });
const first = performance.now() - t1;
if (process.env.BENCH_CHECK === 'tidemark' ? summary.applied !== 2 : summary.found !== false) throw new Error('unexpected first invocation: ' + JSON.stringify(summary));
console.log(JSON.stringify({ load, loadCpu: (c.user + c.system) / 1000, first }));
`;

function event(): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const rec = (offset: number) => ({
    topic: 'payments',
    partition: 0,
    offset,
    timestamp: 1_700_000_000_000,
    timestampType: 'CREATE_TIME',
    key: b64('acct-1'),
    value: b64('{"amount":5}'),
    headers: [],
  });
  return JSON.stringify({
    eventSource: 'aws:kafka',
    eventSourceArn: CLUSTER_ARN,
    bootstrapServers: 'b-1.bench:9092',
    records: { 'payments-0': [rec(0), rec(1)] },
  });
}

export function runColdStart(
  o: ColdStartOptions,
  target: RequestsTarget,
  log: (line: string) => void = () => {},
): ColdStartResult {
  const outdir = mkdtempSync(join(tmpdir(), 'tidemark-coldstart-'));
  try {
    log('cold start: bundling the balances handler and the reference through the CDK construct');
    const entries = [
      ['functions/balances.ts', 'lite'],
      ['functions/balances.ts', 'sdk'],
      ['bench/fixtures/dynamodbOnly.ts', 'lite'],
    ] as const;
    const bundles = entries.map(([entry, awsClient], i) => {
      const { dir, environment } = bundleAsConstruct(join(outdir, String(i)), entry, awsClient);
      const file = join(dir, 'index.mjs');
      readFileSync(file); // in the page cache, as a warm Lambda host's disk would be
      return { file, environment, bytes: statSync(file).size };
    });
    const [tidemark, tidemarkSdk, reference] = bundles as [
      (typeof bundles)[0],
      (typeof bundles)[0],
      (typeof bundles)[0],
    ];
    const bundleBytes = tidemark.bytes;
    const environment = tidemark.environment;
    type Sample = { load: number; loadCpu: number; first: number };
    const run = (b: typeof tidemark, check: 'tidemark' | 'reference', i: number): Sample => {
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHILD], {
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH,
          ...target.env,
          ...b.environment,
          TIDEMARK_BUCKET: target.bucket,
          TIDEMARK_TABLE: target.table,
          TIDEMARK_PIPELINE: `cold-${target.runId}-${i}`,
          BENCH_BUNDLE_URL: pathToFileURL(b.file).href,
          BENCH_EVENT: event(),
          BENCH_CHECK: check,
        },
      });
      return JSON.parse(out.trim().split('\n').pop()!);
    };
    const samples: Sample[] = [];
    const sdkSamples: Sample[] = [];
    const refSamples: Sample[] = [];
    const order = [
      () => samples.push(run(tidemark, 'tidemark', 3 * i)),
      () => sdkSamples.push(run(tidemarkSdk, 'tidemark', 3 * i + 1)),
      () => refSamples.push(run(reference, 'reference', 3 * i + 2)),
    ];
    let i = 0;
    for (; i < o.repeats; i++) {
      // Back to back, rotating which goes first, so machine noise hits all three alike.
      for (let k = 0; k < order.length; k++) order[(i + k) % order.length]!();
    }
    const result: ColdStartResult = {
      bundleBytes,
      nodeOptions: environment.NODE_OPTIONS ?? '',
      moduleLoadMs: spread(samples.map((s) => s.load)),
      moduleLoadCpuMs: spread(samples.map((s) => s.loadCpu)),
      firstInvocationMs: spread(samples.map((s) => s.first)),
      sdkClients: {
        bundleBytes: tidemarkSdk.bytes,
        moduleLoadMs: spread(sdkSamples.map((s) => s.load)),
        moduleLoadCpuMs: spread(sdkSamples.map((s) => s.loadCpu)),
        firstInvocationMs: spread(sdkSamples.map((s) => s.first)),
      },
      reference: {
        label: REFERENCE_LABEL,
        bundleBytes: reference.bytes,
        moduleLoadMs: spread(refSamples.map((s) => s.load)),
        moduleLoadCpuMs: spread(refSamples.map((s) => s.loadCpu)),
        firstInvocationMs: spread(refSamples.map((s) => s.first)),
        loadCpuRatio: spread(samples.map((s, i) => s.loadCpu / refSamples[i]!.loadCpu)),
      },
    };
    log(
      `cold start: ${bundleBytes} B bundle, module load ${result.moduleLoadMs.median.toFixed(1)} ms (CPU ${result.moduleLoadCpuMs.median.toFixed(1)} ms), first invocation ${result.firstInvocationMs.median.toFixed(1)} ms; with the SDK clients: ${tidemarkSdk.bytes} B, module load ${result.sdkClients!.moduleLoadMs.median.toFixed(1)} ms, first invocation ${result.sdkClients!.firstInvocationMs.median.toFixed(1)} ms; reference (${REFERENCE_LABEL}): ${reference.bytes} B, module load ${result.reference!.moduleLoadMs.median.toFixed(1)} ms (CPU ${result.reference!.moduleLoadCpuMs.median.toFixed(1)} ms), first invocation ${result.reference!.firstInvocationMs.median.toFixed(1)} ms`,
    );
    return result;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

export const COLD_START_PROFILES: Record<'full' | 'quick' | 'smoke', ColdStartOptions> = {
  full: { repeats: 9 },
  quick: { repeats: 5 },
  smoke: { repeats: 1 },
};
