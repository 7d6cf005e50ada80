import { Duration } from 'aws-cdk-lib';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { afterAll, describe, expect, it } from 'vitest';
import { METRIC, METRICS_NAMESPACE } from '../../lib/observability/metricNames.ts';
import { onlyResource, pipelineStack, removeOutdirs } from './synth.ts';

afterAll(removeOutdirs);

interface AlarmProps {
  Namespace: string;
  MetricName: string;
  Dimensions: Array<{ Name: string; Value: unknown }>;
  Statistic?: string;
  ExtendedStatistic?: string;
  Period: number;
  Threshold: number;
  EvaluationPeriods: number;
  DatapointsToAlarm: number;
  ComparisonOperator: string;
  TreatMissingData: string;
  AlarmActions?: unknown[];
  OKActions?: unknown[];
  AlarmDescription: string;
}

function alarmsByMetric(template: ReturnType<typeof pipelineStack>['template']): Map<string, AlarmProps> {
  const out = new Map<string, AlarmProps>();
  for (const a of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
    const p = a.Properties as AlarmProps;
    const dims = [...(p.Dimensions ?? [])].sort((x, y) => x.Name.localeCompare(y.Name));
    out.set(p.MetricName, { ...p, Dimensions: dims });
  }
  return out;
}

describe('TidemarkMonitoring', () => {
  const { template } = pipelineStack();
  const fn = onlyResource(template, 'AWS::Lambda::Function');
  const alarms = alarmsByMetric(template);
  // Sorted by name (see alarmsByMetric).
  const pipelineDims = [
    { Name: 'Pipeline', Value: 'orders' },
    { Name: 'service', Value: 'tidemark' },
  ];

  it('creates the seven alarms, one per signal', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 7);
    expect([...alarms.keys()].sort()).toEqual(
      [
        'Errors',
        'Throttles',
        'OffsetLag',
        'CommitConflicts',
        'RecordsQuarantined',
        'CheckpointDuration',
        'RecordAge',
      ].sort(),
    );
  });

  it("watches the function's errors, throttles and the mapping's OffsetLag in AWS/Lambda", () => {
    const byFunction = [{ Name: 'FunctionName', Value: { Ref: fn.id } }];
    expect(alarms.get('Errors')).toMatchObject({
      Namespace: 'AWS/Lambda',
      Dimensions: byFunction,
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    expect(alarms.get('Throttles')).toMatchObject({
      Namespace: 'AWS/Lambda',
      Dimensions: byFunction,
      Statistic: 'Sum',
      Threshold: 1,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
    });
    expect(alarms.get('OffsetLag')).toMatchObject({
      Namespace: 'AWS/Lambda',
      Dimensions: byFunction,
      Statistic: 'Maximum',
      Threshold: 10_000,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
    });
  });

  it("watches Tidemark's metrics with both dimensions Powertools writes (service and Pipeline)", () => {
    expect(alarms.get(METRIC.commitConflicts)).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      Dimensions: pipelineDims,
      Statistic: 'Sum',
      Threshold: 1,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
    });
    expect(alarms.get(METRIC.recordsQuarantined)).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      Dimensions: pipelineDims,
      Statistic: 'Sum',
      Threshold: 1,
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
    });
    expect(alarms.get(METRIC.checkpointDuration)).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      Dimensions: pipelineDims,
      ExtendedStatistic: 'p99',
      Threshold: 2500,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(alarms.get(METRIC.recordAge)).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      Dimensions: pipelineDims,
      Statistic: 'Maximum',
      Threshold: 300_000,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('treats missing data as fine, has no actions without a topic, and points to the runbook', () => {
    for (const a of alarms.values()) {
      expect(a.TreatMissingData).toBe('notBreaching');
      expect(a.Period).toBe(300);
      expect(a.AlarmActions).toBeUndefined();
      expect(a.AlarmDescription).toMatch(/^Tidemark pipeline orders: .*docs\/deployment\.md#alarms/);
    }
  });

  it('notifies an SNS topic on alarm and on recovery, with thresholds as given', () => {
    const { template: t } = pipelineStack((stack) => ({
      alarmTopic: new Topic(stack, 'Oncall', { enforceSSL: true }),
      alarmThresholds: {
        offsetLag: 50_000,
        recordAge: Duration.minutes(30),
        checkpointDuration: Duration.seconds(1),
        commitConflicts: 5,
        recordsQuarantined: 10,
        functionErrors: 2,
        functionThrottles: 3,
      },
    }));
    const topic = onlyResource(t, 'AWS::SNS::Topic');
    const byMetric = alarmsByMetric(t);
    for (const a of byMetric.values()) {
      expect(a.AlarmActions).toEqual([{ Ref: topic.id }]);
      expect(a.OKActions).toEqual([{ Ref: topic.id }]);
    }
    const thresholds = Object.fromEntries([...byMetric].map(([name, a]) => [name, a.Threshold]));
    expect(thresholds).toEqual({
      Errors: 2,
      Throttles: 3,
      OffsetLag: 50_000,
      CommitConflicts: 5,
      RecordsQuarantined: 10,
      CheckpointDuration: 1000,
      RecordAge: 1_800_000,
    });
  });

  it("draws every Tidemark metric, the function's metrics and the alarms on one dashboard", () => {
    const dashboard = onlyResource(template, 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.props.DashboardBody);
    for (const name of Object.values(METRIC)) {
      expect(body, name).toContain(
        `\\"${METRICS_NAMESPACE}\\",\\"${name}\\",\\"Pipeline\\",\\"orders\\",\\"service\\",\\"tidemark\\"`,
      );
    }
    for (const name of [
      'Invocations',
      'Errors',
      'Throttles',
      'Duration',
      'OffsetLag',
      'ConcurrentExecutions',
    ]) {
      expect(body, name).toContain(`\\"AWS/Lambda\\",\\"${name}\\",\\"FunctionName\\"`);
    }
    for (const id of Object.keys(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(body, id).toContain(`"${id}","Arn"`);
    }
  });
});
