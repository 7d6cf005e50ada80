/**
 * Scheduled ticks for idle partitions (docs/time.md#idle-partitions). The Kafka event source mapping
 * invokes the function only when records arrive, so the timers and windows of a quiet partition would
 * never fire: an EventBridge rule invokes the pipeline's function with the tick event on a schedule.
 * The tick lists the pipeline's commit items, takes the tasks whose due time has come (processing-time
 * timers, TTL deadlines; event time advanced by the wall clock where the processor opts in) and commits
 * what fires through the same conditional write as any epoch.
 */
import { Duration } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { TICK_EVENT } from '../lib/config/definitions.ts';

export interface TidemarkTicksProps {
  /**
   * How often the function is ticked. EventBridge's finest rate is one minute: a due timer of an idle
   * partition fires within one period of its time.
   * @default Schedule.rate(Duration.minutes(1))
   */
  readonly schedule?: Schedule;
  /**
   * Whether the schedule is on.
   * @default true
   */
  readonly enabled?: boolean;
}

interface TicksInternalProps extends TidemarkTicksProps {
  readonly pipelineId: string;
  readonly function: IFunction;
  readonly role: IRole;
  /** The table holding the commit items, when commits are in DynamoDB (the tick lists them). */
  readonly table: ITable | undefined;
}

/** The schedule that ticks a pipeline's function (created by `TidemarkPipeline` with its `ticks` prop). */
export class TidemarkTicks extends Construct {
  readonly rule: Rule;

  constructor(scope: Construct, id: string, props: TicksInternalProps) {
    super(scope, id);
    this.rule = new Rule(this, 'Schedule', {
      description: `Tidemark pipeline ${props.pipelineId}: ticks for idle partitions (due timers, expiring state)`,
      schedule: props.schedule ?? Schedule.rate(Duration.minutes(1)),
      enabled: props.enabled ?? true,
      targets: [
        new LambdaFunction(props.function, {
          event: RuleTargetInput.fromObject(TICK_EVENT),
          // A tick that fails is not worth retrying late: the next one comes within a period.
          retryAttempts: 0,
          maxEventAge: Duration.minutes(5),
        }),
      ],
    });
    if (props.table) {
      // The tick lists the pipeline's commit items. DynamoDB cannot confine a Scan to partition keys
      // (dynamodb:LeadingKeys does not apply to it), so this reads the table: give each pipeline its
      // own table (the construct's default) when that matters.
      props.role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'TickListing',
          actions: ['dynamodb:Scan'],
          resources: [props.table.tableArn],
        }),
      );
    }
  }
}
