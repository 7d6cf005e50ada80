/**
 * A real handler run (balances processor, memory stores) with Powertools Logger and Metrics on:
 * stdout is parsed, the EMF documents are checked against the metric names and dimensions the
 * CDK construct's alarms use, and the log lines for the keys operators search by.
 */
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import {
  METRIC,
  METRIC_UNIT,
  METRICS_NAMESPACE,
  PIPELINE_DIMENSION,
  SERVICE_DIMENSION,
  SERVICE_NAME,
} from '../../lib/observability/metricNames.ts';
import { customOutput } from '../../lib/output/custom.ts';
import { valueState } from '../../lib/state/descriptors.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';
import { pipelineStack, removeOutdirs } from '../cdk/synth.ts';

const PIPELINE = 'emf-check';

/** Emits one output per record; a record `t:<ts>` sets an event-time timer, whose callback throws. */
const timed = defineProcessor({
  state: { seen: valueState<number>() },
  outputs: { echo: customOutput<string>({ deliver: async () => {} }) },
  poisonPolicy: 'quarantine',
  time: { maxOutOfOrdernessMs: 0 },
  process(record, ctx) {
    ctx.state.seen.set((ctx.state.seen.get() ?? 0) + 1);
    const v = record.value?.toString('utf8') ?? '';
    ctx.outputs.echo.emit(v);
    if (v.startsWith('t:')) ctx.timers.registerEventTime(Number(v.slice(2)));
  },
  onTimer() {
    throw new Error('timer callback failed');
  },
});

interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: Array<{
      Namespace: string;
      Dimensions: string[][];
      Metrics: Array<{ Name: string; Unit: string }>;
    }>;
  };
  [key: string]: unknown;
}
type LogLine = Record<string, unknown> & { level: string; message: string };

const written: string[] = [];
const emf: EmfDocument[] = [];
const logs: LogLine[] = [];
let invocations: Array<{ requestId: string; outcome: string }> = [];

/** Values of metric `name` over every EMF document (Powertools writes one value or an array). */
function values(name: string): number[] {
  return emf.flatMap((d) => {
    const v = d[name];
    return v === undefined ? [] : Array.isArray(v) ? (v as number[]) : [v as number];
  });
}
const sum = (name: string) => values(name).reduce((a, b) => a + b, 0);

beforeAll(async () => {
  const saved = {
    disabled: process.env.POWERTOOLS_METRICS_DISABLED,
    level: process.env.POWERTOOLS_LOG_LEVEL,
  };
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  process.env.POWERTOOLS_LOG_LEVEL = 'DEBUG';
  const capture = (chunk: unknown) => {
    written.push(String(chunk));
    return true;
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  try {
    // Two containers sharing the stores: B ends up racing A for the same task.
    const stores = { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() };
    const env = { ...process.env, TIDEMARK_PIPELINE: PIPELINE };
    const a = createKafkaHandler(balances, { stores, env });
    const b = createKafkaHandler(balances, { stores, env });
    const recent = Date.now() - 1000;
    const rec = (offset: number, key: string | null, amount: number): TestRecord => ({
      topic: 'deposits',
      partition: 3,
      offset,
      key,
      value: { amount },
      timestamp: recent,
    });
    const invoke = async (
      h: (event: unknown, context?: Partial<Context>) => Promise<unknown>,
      records: TestRecord[],
      requestId: string,
    ) => {
      try {
        await h(mskEvent(records), { ...lambdaContext(60_000, requestId), functionName: 'balances-fn' });
        invocations.push({ requestId, outcome: 'ok' });
      } catch {
        invocations.push({ requestId, outcome: 'failed' });
      }
    };
    await invoke(a, [rec(0, 'alice', 5), rec(1, null, 1)], 'req-a1'); // epoch 1: one applied, one quarantined
    await invoke(b, [rec(0, 'alice', 5), rec(1, null, 1)], 'req-b1'); // cold restore of epoch 1, two duplicates
    await invoke(a, [rec(2, 'bob', 3), rec(3, 'alice', 1)], 'req-a2'); // warm, epoch 2
    await invoke(b, [rec(2, 'bob', 3), rec(3, 'alice', 1)], 'req-b2'); // warm but stale: loses to epoch 2
    await invoke(a, [rec(5, 'carol', 2), rec(4, 'bob', 1), rec(4, 'bob', 1)], 'req-a3'); // one duplicate inside the event
    // Another task of the pipeline, run by a processor with outputs and a timer whose callback fails.
    const t = createKafkaHandler(timed, {
      stores: { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() },
      env,
    });
    const at = (offset: number, timestamp: number, value: string): TestRecord => ({
      topic: 'clicks',
      partition: 0,
      offset,
      key: 'k',
      value,
      timestamp,
    });
    await invoke(t, [at(0, 100, 't:150'), at(1, 200, '')], 'req-t1'); // the timer at 150 fails: set aside
    try {
      await a(
        { eventSource: 'aws:kafka', records: 'not records' },
        { ...lambdaContext(60_000, 'req-bad'), functionName: 'balances-fn' },
      );
    } catch {
      invocations.push({ requestId: 'req-bad', outcome: 'failed' });
    }
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.env.POWERTOOLS_METRICS_DISABLED = saved.disabled;
    process.env.POWERTOOLS_LOG_LEVEL = saved.level;
  }
  for (const line of written.join('').split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const doc = JSON.parse(line) as Record<string, unknown>;
    if ('_aws' in doc) emf.push(doc as EmfDocument);
    else if ('level' in doc) logs.push(doc as LogLine);
  }
});

afterAll(() => {
  invocations = [];
  removeOutdirs();
});

describe('EMF output of a handler run', () => {
  it('ran the scenario as intended', () => {
    expect(invocations).toEqual([
      { requestId: 'req-a1', outcome: 'ok' },
      { requestId: 'req-b1', outcome: 'ok' },
      { requestId: 'req-a2', outcome: 'ok' },
      { requestId: 'req-b2', outcome: 'ok' },
      { requestId: 'req-a3', outcome: 'ok' },
      { requestId: 'req-t1', outcome: 'ok' },
      { requestId: 'req-bad', outcome: 'failed' },
    ]);
    expect(emf.length).toBeGreaterThan(0);
  });

  it('puts every metric in the Tidemark namespace with exactly the service and Pipeline dimensions', () => {
    for (const doc of emf) {
      const [directive, ...more] = doc._aws.CloudWatchMetrics;
      expect(more).toEqual([]);
      expect(directive!.Namespace).toBe(METRICS_NAMESPACE);
      expect(directive!.Dimensions.map((set) => [...set].sort())).toEqual([
        [PIPELINE_DIMENSION, SERVICE_DIMENSION].sort(),
      ]);
      expect(doc[SERVICE_DIMENSION]).toBe(SERVICE_NAME);
      expect(doc[PIPELINE_DIMENSION]).toBe(PIPELINE);
      for (const m of directive!.Metrics) {
        expect(m.Unit, m.Name).toBe(METRIC_UNIT[m.Name as keyof typeof METRIC_UNIT]);
      }
    }
  });

  it('emits every metric of metricNames.ts', () => {
    const emitted = new Set(emf.flatMap((d) => d._aws.CloudWatchMetrics[0]!.Metrics.map((m) => m.Name)));
    expect([...emitted].sort()).toEqual(Object.values(METRIC).sort());
  });

  it('counts what happened', () => {
    expect(sum(METRIC.epochsCommitted)).toBe(3 + 1); // a1, a2, a3 (b2's attempt lost), t1
    expect(sum(METRIC.recordsApplied)).toBe(1 + 2 + 2 + 2);
    expect(sum(METRIC.outputsCommitted)).toBe(2); // t1: one per record (the failed timer's is undone)
    expect(sum(METRIC.outputsDelivered)).toBe(2);
    expect(values(METRIC.outputDeliveryDuration)).toHaveLength(1);
    expect(sum(METRIC.timersQuarantined)).toBe(1);
    expect(sum(METRIC.recordsQuarantined)).toBe(1);
    expect(sum(METRIC.commitConflicts)).toBe(1);
    expect(sum(METRIC.duplicatesSkipped)).toBe(2 + 2 + 1); // b1, b2 after the lost race, a3 in-event
    expect(sum(METRIC.failedBatches)).toBe(1);
    expect(sum(METRIC.warmCacheHits)).toBe(3); // a2, b2, a3
    expect(values(METRIC.restoreDuration)).toHaveLength(2); // b1 cold, b2 after the conflict
    expect(values(METRIC.recordAge).every((v) => v >= 1000 && Number.isFinite(v))).toBe(true);
    expect(values(METRIC.snapshotBytes).every((v) => v > 0)).toBe(true);
    // t1: the key's count and the timers' own table (the quarantined timer is gone, its table's key stays).
    expect(values(METRIC.stateKeys)).toEqual([1, 2, 3, 2]);
  });

  // A CDK synth with bundling: slow on a busy machine.
  it("carries every metric the construct's alarms watch, with the dimensions they name", {
    timeout: 240_000,
  }, () => {
    const { template } = pipelineStack({ pipelineId: PIPELINE });
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'))
      .map(
        (a) =>
          a.Properties as {
            Namespace: string;
            MetricName: string;
            Dimensions: Array<{ Name: string; Value: string }>;
          },
      )
      .filter((p) => p.Namespace === METRICS_NAMESPACE);
    expect(alarms.map((a) => a.MetricName).sort()).toEqual(
      [METRIC.commitConflicts, METRIC.recordsQuarantined, METRIC.checkpointDuration, METRIC.recordAge].sort(),
    );
    for (const alarm of alarms) {
      const matching = emf.filter((doc) => {
        const d = doc._aws.CloudWatchMetrics[0]!;
        if (!d.Metrics.some((m) => m.Name === alarm.MetricName)) return false;
        const names = alarm.Dimensions.map((x) => x.Name).sort();
        return (
          d.Dimensions.some((set) => JSON.stringify([...set].sort()) === JSON.stringify(names)) &&
          alarm.Dimensions.every((x) => doc[x.Name] === x.Value)
        );
      });
      expect(matching.length, alarm.MetricName).toBeGreaterThan(0);
    }
  });
});

describe('structured logs of a handler run', () => {
  const taskLines = () => logs.filter((l) => 'topic' in l);

  it('name the pipeline and the request on every line', () => {
    expect(logs.length).toBeGreaterThan(0);
    for (const l of logs) {
      expect(l.pipeline, l.message).toBe(PIPELINE);
      expect(l.service).toBe(SERVICE_NAME);
      expect(String(l.function_request_id), l.message).toMatch(/^req-/);
    }
  });

  it('name topic, partition and epoch on every line about a task', () => {
    expect(taskLines().length).toBeGreaterThan(5);
    for (const l of taskLines()) {
      const fromTimed = l.function_request_id === 'req-t1';
      expect(l).toMatchObject(
        fromTimed ? { topic: 'clicks', partition: 0 } : { topic: 'deposits', partition: 3 },
      );
      expect(Number.isInteger(l.epoch), l.message).toBe(true);
    }
    const find = (message: string, requestId: string) =>
      logs.find((l) => l.message.startsWith(message) && l.function_request_id === requestId);
    expect(find('record quarantined', 'req-a1')).toMatchObject({ epoch: 1, offset: '1', level: 'WARN' });
    expect(find('epoch committed', 'req-a1')).toMatchObject({ epoch: 1, committedOffset: '2' });
    expect(find('task state restored', 'req-b1')).toMatchObject({ epoch: 1, reason: 'cold' });
    expect(find('duplicates skipped', 'req-b1')).toMatchObject({ epoch: 1, count: 2 });
    expect(find('commit conflict', 'req-b2')).toMatchObject({ epoch: 2, expectedEpoch: 1, winnerEpoch: 2 });
    expect(find('task state restored', 'req-b2')).toMatchObject({ epoch: 2, reason: 'conflict' });
    expect(find('batch failed', 'req-bad')).toMatchObject({ level: 'ERROR', retriable: false });
    expect(find('timer quarantined', 'req-t1')).toMatchObject({
      level: 'WARN',
      epoch: 1,
      timer: { domain: 'event', timestamp: 150, key: 'k', tag: '' },
      error: { message: 'timer callback failed' },
    });
    expect(find('outputs delivered', 'req-t1')).toMatchObject({ epoch: 1, outputs: 2 });
  });
});

describe("the user's own Powertools Logger and Metrics", () => {
  it('carry Tidemark’s keys, logs and metrics, next to the user’s own', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const docs: EmfDocument[] = [];
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        const j = JSON.parse(line) as Record<string, unknown>;
        if (j._aws) docs.push(j as EmfDocument);
        else lines.push(j);
      }
      return true;
    });
    const saved = process.env.POWERTOOLS_METRICS_DISABLED;
    process.env.POWERTOOLS_METRICS_DISABLED = 'false';
    try {
      const { Logger } = await import('@aws-lambda-powertools/logger');
      const { Metrics } = await import('@aws-lambda-powertools/metrics');
      const logger = new Logger({
        serviceName: 'orders-service',
        logLevel: 'INFO',
        persistentKeys: { team: 'payments' },
      });
      const metrics = new Metrics({ namespace: 'Payments', serviceName: 'orders-service' });
      const handler = createKafkaHandler(balances, {
        stores: { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() },
        env: { ...process.env, TIDEMARK_PIPELINE: 'own-telemetry' },
        logger,
        metrics,
      });
      logger.info('user line before');
      await handler(
        mskEvent([{ topic: 'deposits', partition: 0, offset: 0, key: 'a', value: { amount: 1 } }]),
        {
          ...lambdaContext(),
          awsRequestId: 'req-own',
        },
      );
    } finally {
      out.mockRestore();
      process.env.POWERTOOLS_METRICS_DISABLED = saved;
    }
    const committed = lines.find((l) => l.message === 'batch committed');
    expect(committed).toMatchObject({
      service: 'orders-service',
      team: 'payments',
      pipeline: 'own-telemetry',
    });
    expect(lines.find((l) => l.message === 'user line before')).toMatchObject({ team: 'payments' });
    const doc = docs.find((d) => d[METRIC.epochsCommitted] !== undefined)!;
    expect(doc._aws.CloudWatchMetrics[0]!.Namespace).toBe('Payments');
    expect(doc[PIPELINE_DIMENSION]).toBe('own-telemetry');
  });
});
