/**
 * CI smoke of the benchmark code (not a measurement): every benchmark runs on tiny sizes against
 * the test run's local servers, and the output's shape and the request counts — facts that do not
 * depend on the machine's speed — are checked. No time is asserted.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AWS_LATENCY_PROFILES } from '../../bench/awsLatency.ts';
import { writeOutputs } from '../../bench/output.ts';
import { type BenchResult, PROFILES, runBenchmarks } from '../../bench/run.ts';

const AWS_VARS = [
  'AWS_ENDPOINT_URL_S3',
  'AWS_ENDPOINT_URL_DYNAMODB',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_REQUEST_CHECKSUM_CALCULATION',
  'AWS_RESPONSE_CHECKSUM_VALIDATION',
];

describe('bench (smoke profile)', () => {
  let result: BenchResult;
  let out: string;

  beforeAll(async () => {
    const env = Object.fromEntries(AWS_VARS.flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
    result = await runBenchmarks({
      profile: 'smoke',
      target: {
        env,
        bucket: process.env.TIDEMARK_BUCKET!,
        table: process.env.TIDEMARK_TABLE!,
        runId: `smoke${Date.now().toString(36)}`,
      },
    });
    out = mkdtempSync(path.join(tmpdir(), 'tidemark-bench-test-'));
  });

  afterAll(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('measures the overhead at each epoch size, with epochs of exactly that size', () => {
    const o = PROFILES.smoke.overhead;
    expect(result.overhead?.points.map((p) => p.epochRecords)).toEqual(o.epochSizes);
    for (const p of result.overhead!.points) {
      expect(p.epochsPerMeasurement).toBe(Math.ceil(o.records / p.epochRecords));
      expect(p.ratio.n).toBe(o.repeats); // from CPU time
      expect(p.wallRatio?.n).toBe(o.repeats);
      expect(p.ratio.median).toBeGreaterThan(0);
    }
  });

  it('counts one durable request per task-epoch for Tidemark (small snapshots inline in the commit), and a correct state', () => {
    const warm = result.requests!.approaches.find((a) => a.id === 'tidemark-warm')!;
    const o = PROFILES.smoke.requests;
    // Each batch holds batchRecords / partitions records per task: one epoch per task and batch.
    expect(warm.taskEpochs).toBe((o.tidemarkRecords / o.batchRecords) * o.partitions);
    // This state is small: every snapshot travels in its commit item, no S3 PUT.
    expect(warm.perTaskEpoch).toMatchObject({ s3Put: 0, dynamoWrite: 1 });
    expect(warm.check?.ok).toBe(true);
    expect(warm.extrapolated).toBe(false);
    // One PutItem (the commit) per task-epoch, each at least 1 write unit.
    expect(warm.putItemBytes?.n).toBe(warm.taskEpochs);
    expect(warm.writeUnitsPer1M).toBeGreaterThanOrEqual(warm.per1M.dynamoWrite);
    const cold = result.requests!.approaches.find((a) => a.id === 'tidemark-cold')!;
    // Every invocation of a new container reads each task's commit item.
    expect(cold.requestsByCommand.dynamodb.GetItemCommand).toBe(
      (o.coldRecords / o.batchRecords) * o.partitions,
    );
  });

  it('counts the per-record baselines: 1 write per record, 3 with Powertools idempotency', () => {
    const byId = new Map(result.requests!.approaches.map((a) => [a.id, a]));
    const update = byId.get('per-record-update')!;
    const idempotent = byId.get('per-record-idempotent')!;
    expect(update.recordsMeasured).toBe(PROFILES.smoke.requests.baselineRecords);
    expect(update.extrapolated).toBe(true);
    expect(update.per1M.dynamoWrite).toBe(1_000_000);
    expect(update.writeUnitsPer1M).toBe(1_000_000);
    expect(update.requestsByCommand.dynamodb).toEqual({ UpdateItemCommand: update.recordsMeasured });
    expect(idempotent.per1M.dynamoWrite).toBe(3_000_000);
    expect(idempotent.requestsByCommand.dynamodb).toEqual({
      PutItemCommand: idempotent.recordsMeasured,
      UpdateItemCommand: 2 * idempotent.recordsMeasured,
    });
    expect(result.requests!.ratios.requestsIdempotentOverWarm.median).toBeCloseTo(
      3 * result.requests!.ratios.requestsUpdateOverWarm.median,
    );
  });

  it('measures full and incremental checkpoints and restores', () => {
    const [p] = result.stateSize!.points;
    expect(p!.keys).toBe(PROFILES.smoke.state.keyCounts[0]);
    expect(p!.incremental).toHaveProperty('status', 'measured');
    expect(p!.full.restoreCpuMs?.n).toBe(PROFILES.smoke.state.repeats);
    const inc = p!.incremental as { delta: { bytes: { median: number } }; chainDeltas: number };
    expect(inc.delta.bytes.median).toBeLessThan(p!.full.bytes.median);
    expect(inc.chainDeltas).toBe(PROFILES.smoke.state.deltasInChain);
  });

  it('runs the AWS-latency profile, the cold start of the construct’s bundle and the memory figures', () => {
    const a = result.awsLatency!;
    expect(a.approaches.map((x) => x.id)).toEqual(['tidemark-warm', 'per-record-update']);
    expect(a.approaches[0]!.recordsMeasured).toBe(AWS_LATENCY_PROFILES.smoke.tidemarkRecords);
    expect(a.throughputRatio.n).toBe(1);
    for (const x of a.approaches) expect(x.recordAgeMsP99).toBeGreaterThanOrEqual(x.recordAgeMsP50);
    // One partition per batch, both approaches, for the per-partition throughput goal.
    const d = a.dedicated!;
    expect(d.approaches.map((x) => x.id)).toEqual(['tidemark-warm', 'per-record-update']);
    expect(d.approaches[0]!.recordsMeasured).toBe(AWS_LATENCY_PROFILES.smoke.dedicated!.tidemarkRecords);
    expect(d.approaches[1]!.recordsMeasured).toBe(AWS_LATENCY_PROFILES.smoke.dedicated!.baselineRecords);
    expect(d.throughputRatio.n).toBe(1);
    const c = result.coldStart!;
    expect(c.bundleBytes).toBeGreaterThan(100_000);
    expect(c.firstInvocationMs.n).toBe(1);
    // The reference (the DynamoDB client alone) and the handler bundled with the SDK clients were
    // bundled by the construct and invoked alike; the lightweight client's bundle is the smallest.
    expect(c.reference!.bundleBytes).toBeGreaterThan(100_000);
    expect(c.bundleBytes).toBeLessThan(c.reference!.bundleBytes);
    expect(c.sdkClients!.bundleBytes).toBeGreaterThan(c.reference!.bundleBytes);
    expect(c.sdkClients!.firstInvocationMs.n).toBe(1);
    expect(c.reference!.loadCpuRatio.n).toBe(1);
    expect(c.nodeOptions).toBe(''); // the construct's default: no run-time source maps
    const m = result.memory!;
    expect(m.keys).toBe(1_000);
    expect(m.snapshotBytes).toBeGreaterThan(0);
    // Heap readings of 1,000 keys are within the garbage collector's noise (one can come out
    // negative): the smoke checks that each figure was measured, not its size.
    for (const figure of [
      m.restoredMbPerMillion,
      m.touchedMbPerMillion,
      m.builtMbPerMillion,
      m.restorePeakRssMbPerMillion,
    ]) {
      expect(Number.isFinite(figure)).toBe(true);
    }
  });

  it('prices every approach and states its assumptions', () => {
    const c = result.cost!;
    expect(c.approaches.map((a) => a.id)).toEqual([
      'tidemark-warm',
      'tidemark-cold',
      'per-record-update',
      'per-record-idempotent',
    ]);
    for (const a of c.approaches) expect(a.usd.total).toBeGreaterThan(0);
    expect(c.prices.retrieved).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(c.assumptions.length).toBeGreaterThan(3);
  });

  it('lists every goal, and writes the JSON, the summary and the chart', () => {
    expect(result.goals.map((g) => g.goal)).toEqual(
      expect.arrayContaining([
        '≥ 0.75',
        '≥ 0.55',
        '1 in the steady state (≤ 1.2 with the PUTs of spills and compactions)',
        '≥ 1,000×',
        '≥ 3,000×',
        '≥ 500×',
        '≤ 2 %',
        '≤ 10 %',
        '≤ 0.30 s',
        '≤ 40 ms',
        '≤ 256 MB (half of a 512 MB function)',
      ]),
    );
    const files = writeOutputs(result, out);
    for (const f of Object.values(files)) expect(existsSync(f)).toBe(true);
    const json = JSON.parse(readFileSync(files.json, 'utf8')) as BenchResult;
    expect(json.profile).toBe('smoke');
    expect(json.machine.node).toBe(process.version);
    const md = readFileSync(files.summary, 'utf8');
    for (const heading of [
      '## Goals',
      '## 1. Overhead',
      '## 2. Durable requests',
      '## 3. State size',
      '## 4. Cost',
      '## 7. AWS-latency profile',
      '## 8. Cold start',
      '## 9. Memory',
    ]) {
      expect(md).toContain(heading);
    }
    expect(readFileSync(files.chart, 'utf8')).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });
});
