/**
 * A CloudWatch dashboard and alarms for one Tidemark pipeline: the function's errors and throttles,
 * the event source mapping's OffsetLag, and Tidemark's own metrics (commit conflicts, quarantined
 * records, checkpoint duration, record age). Metric names come from the module the function's
 * telemetry uses, so a renamed metric cannot leave an alarm watching nothing.
 */
import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IWidget,
  Metric,
  type MetricOptions,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import {
  METRIC,
  METRICS_NAMESPACE,
  type MetricName,
  PIPELINE_DIMENSION,
  SERVICE_DIMENSION,
  SERVICE_NAME,
} from '../lib/observability/metricNames.ts';

/** When each alarm fires. Every alarm is evaluated on 5-minute periods. */
export interface TidemarkAlarmThresholds {
  /**
   * Failed invocations per 5 minutes, in 3 consecutive periods (a batch failing for 15 minutes).
   * @default 1
   */
  readonly functionErrors?: number;
  /**
   * Throttled invocations per 5 minutes, in 2 of 3 periods.
   * @default 1
   */
  readonly functionThrottles?: number;
  /**
   * Lost commit races per 5 minutes, in 2 of 3 periods (sustained, not the odd zombie).
   * @default 1
   */
  readonly commitConflicts?: number;
  /**
   * Records quarantined per 5 minutes, in 1 period (every poison record deserves a look).
   * @default 1
   */
  readonly recordsQuarantined?: number;
  /**
   * Records the consumer group is behind the topic's end (maximum), above this for 15 minutes.
   * @default 10_000
   */
  readonly offsetLag?: number;
  /**
   * p99 of snapshot PUT + commit, above this for 15 minutes. The default is half the engine's
   * default time reserve (5 s): slower checkpoints start cutting epochs short.
   * @default Duration.millis(2500)
   */
  readonly checkpointDuration?: Duration;
  /**
   * Age of the newest record applied (maximum), above this for 15 minutes.
   * @default Duration.minutes(5)
   */
  readonly recordAge?: Duration;
}

export interface TidemarkMonitoringProps {
  /** Pipeline id: the `Pipeline` dimension of Tidemark's metrics. */
  readonly pipelineId: string;
  /** The pipeline's function (its Errors, Throttles, Duration and OffsetLag metrics). */
  readonly function: IFunction;
  /**
   * Topic notified when an alarm fires and when it recovers.
   * @default - no alarm actions (alarms are still created and shown on the dashboard)
   */
  readonly alarmTopic?: ITopic;
  /** @default - see each threshold */
  readonly thresholds?: TidemarkAlarmThresholds;
  /**
   * @default - a name CloudFormation generates
   */
  readonly dashboardName?: string;
}

/** The alarms a `TidemarkMonitoring` creates, by role. */
export interface TidemarkAlarms {
  readonly functionErrors: Alarm;
  readonly functionThrottles: Alarm;
  readonly commitConflicts: Alarm;
  readonly recordsQuarantined: Alarm;
  readonly offsetLag: Alarm;
  readonly checkpointDuration: Alarm;
  readonly recordAge: Alarm;
}

const PERIOD = Duration.minutes(5);

export class TidemarkMonitoring extends Construct {
  readonly dashboard: Dashboard;
  readonly alarms: TidemarkAlarms;
  private readonly pipelineId: string;

  constructor(scope: Construct, id: string, props: TidemarkMonitoringProps) {
    super(scope, id);
    this.pipelineId = props.pipelineId;
    const t = props.thresholds ?? {};
    const fn = props.function;
    const pipeline = props.pipelineId;

    // No label: a labelled metric makes the alarm a metric-math alarm.
    const offsetLag = fn.metric('OffsetLag', { statistic: 'Maximum', period: PERIOD });
    const alarm = (
      id: string,
      metric: Metric,
      threshold: number,
      evaluationPeriods: number,
      datapointsToAlarm: number,
      comparison: ComparisonOperator,
      description: string,
    ) => {
      const a = new Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods,
        datapointsToAlarm,
        comparisonOperator: comparison,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: `Tidemark pipeline ${pipeline}: ${description} See docs/deployment.md#alarms.`,
      });
      if (props.alarmTopic) {
        a.addAlarmAction(new SnsAction(props.alarmTopic));
        a.addOkAction(new SnsAction(props.alarmTopic));
      }
      return a;
    };
    const atLeast = ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;
    const above = ComparisonOperator.GREATER_THAN_THRESHOLD;

    this.alarms = {
      functionErrors: alarm(
        'FunctionErrors',
        fn.metricErrors({ period: PERIOD, statistic: 'Sum' }),
        t.functionErrors ?? 1,
        3,
        3,
        atLeast,
        'invocations have been failing for 15 minutes; the event source mapping keeps retrying the same batch, so its partitions are stuck.',
      ),
      functionThrottles: alarm(
        'FunctionThrottles',
        fn.metricThrottles({ period: PERIOD, statistic: 'Sum' }),
        t.functionThrottles ?? 1,
        3,
        2,
        atLeast,
        'invocations are being throttled (concurrency limit); pollers back off and lag grows.',
      ),
      commitConflicts: alarm(
        'CommitConflicts',
        this.metric(METRIC.commitConflicts, { statistic: 'Sum' }),
        t.commitConflicts ?? 1,
        3,
        2,
        atLeast,
        'commits keep losing to another writer of the same tasks (a second deployment with the same pipeline id, or timeouts leaving zombies).',
      ),
      recordsQuarantined: alarm(
        'RecordsQuarantined',
        this.metric(METRIC.recordsQuarantined, { statistic: 'Sum' }),
        t.recordsQuarantined ?? 1,
        1,
        1,
        atLeast,
        'poison records were set aside in S3 (quarantine/) instead of being applied.',
      ),
      offsetLag: alarm(
        'OffsetLag',
        offsetLag,
        t.offsetLag ?? 10_000,
        3,
        3,
        above,
        'the consumer group has been falling behind the topic for 15 minutes.',
      ),
      checkpointDuration: alarm(
        'CheckpointDuration',
        this.metric(METRIC.checkpointDuration, { statistic: 'p99' }),
        (t.checkpointDuration ?? Duration.millis(2500)).toMilliseconds(),
        3,
        3,
        above,
        'snapshot writes and commits have been slow for 15 minutes (S3 or DynamoDB latency, or large snapshots).',
      ),
      recordAge: alarm(
        'RecordAge',
        this.metric(METRIC.recordAge, { statistic: 'Maximum' }),
        (t.recordAge ?? Duration.minutes(5)).toMilliseconds(),
        3,
        3,
        above,
        'the newest records applied have been old for 15 minutes (the pipeline is behind, or replaying).',
      ),
    };

    const m = (name: MetricName, statistic: string, label?: string) =>
      this.metric(name, { statistic, label: label ?? `${name} (${statistic})` });
    const graph = (title: string, left: Metric[], right?: Metric[], width = 8): GraphWidget =>
      new GraphWidget({ title, left, right, width, height: 6 });
    const rows: IWidget[][] = [
      [
        new TextWidget({
          markdown: `# Tidemark pipeline \`${pipeline}\`\nAlarms and what to do about them: docs/deployment.md#alarms. Metrics: namespace \`${METRICS_NAMESPACE}\`, dimensions \`${SERVICE_DIMENSION}=${SERVICE_NAME}\`, \`${PIPELINE_DIMENSION}=${pipeline}\`.`,
          width: 12,
          height: 4,
        }),
        new AlarmStatusWidget({
          title: 'Alarms',
          alarms: Object.values(this.alarms),
          width: 12,
          height: 4,
        }),
      ],
      [
        graph('Records', [
          m(METRIC.recordsApplied, 'Sum'),
          m(METRIC.duplicatesSkipped, 'Sum'),
          m(METRIC.recordsQuarantined, 'Sum'),
        ]),
        graph('Epochs and conflicts', [m(METRIC.epochsCommitted, 'Sum')], [m(METRIC.commitConflicts, 'Sum')]),
        graph(
          'Outputs and timers',
          [m(METRIC.outputsCommitted, 'Sum'), m(METRIC.outputsDelivered, 'Sum')],
          [
            m(METRIC.outputDeliveryDuration, 'p99', 'OutputDeliveryDuration p99 (ms)'),
            m(METRIC.timersQuarantined, 'Sum'),
          ],
        ),
        graph(
          'Lag',
          [offsetLag],
          [
            m(METRIC.recordAge, 'Maximum', 'RecordAge max (ms)'),
            m(METRIC.recordAge, 'p50', 'RecordAge p50 (ms)'),
          ],
        ),
      ],
      [
        graph('Checkpoint duration (ms)', [
          m(METRIC.checkpointDuration, 'p50'),
          m(METRIC.checkpointDuration, 'p99'),
          m(METRIC.checkpointDuration, 'Maximum'),
        ]),
        graph(
          'Snapshots and state',
          [m(METRIC.snapshotBytes, 'Average'), m(METRIC.snapshotBytes, 'Maximum')],
          [m(METRIC.stateKeys, 'Maximum')],
        ),
        graph(
          'Restores and warm cache',
          [m(METRIC.restoreDuration, 'p99'), m(METRIC.restoreDuration, 'Maximum')],
          [
            m(METRIC.warmCacheHits, 'Sum'),
            this.metric(METRIC.restoreDuration, { statistic: 'SampleCount', label: 'Restores' }),
          ],
        ),
      ],
      [
        graph(
          'Function invocations',
          [fn.metricInvocations({ period: PERIOD }), fn.metricErrors({ period: PERIOD })],
          [fn.metricThrottles({ period: PERIOD }), m(METRIC.failedBatches, 'Sum')],
        ),
        graph('Function duration (ms)', [
          fn.metricDuration({ period: PERIOD, statistic: 'p50' }),
          fn.metricDuration({ period: PERIOD, statistic: 'p99' }),
          fn.metricDuration({ period: PERIOD, statistic: 'Maximum' }),
        ]),
        graph('Concurrency', [fn.metric('ConcurrentExecutions', { statistic: 'Maximum', period: PERIOD })]),
      ],
    ];
    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      widgets: rows,
    });
  }

  /** A Tidemark metric of this pipeline (dimensions `service` and `Pipeline`), 5-minute period. */
  metric(name: MetricName, options: MetricOptions = {}): Metric {
    return tidemarkMetric(this.pipelineId, name, options);
  }
}

/**
 * A metric the Tidemark runtime emits for `pipelineId`: namespace `Tidemark`, dimensions
 * `service=tidemark` (Powertools adds it to every metric) and `Pipeline=<pipelineId>`.
 */
export function tidemarkMetric(pipelineId: string, name: MetricName, options: MetricOptions = {}): Metric {
  return new Metric({
    namespace: METRICS_NAMESPACE,
    metricName: name,
    dimensionsMap: { [SERVICE_DIMENSION]: SERVICE_NAME, [PIPELINE_DIMENSION]: pipelineId },
    period: PERIOD,
    ...options,
  });
}
