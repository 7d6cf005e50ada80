/** The tick schedule of TidemarkPipeline (docs/time.md#idle-partitions). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duration, Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { Schedule } from 'aws-cdk-lib/aws-events';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { TICK_EVENT } from '../../lib/config/definitions.ts';
import {
  actionsOf,
  addPipelineStack,
  pipelineStack,
  removeOutdirs,
  roleStatements,
  testApp,
} from './synth.ts';

afterAll(removeOutdirs);

describe('TidemarkPipeline ticks', () => {
  it('are off by default: no rule, no Scan', () => {
    const { template, pipeline } = pipelineStack();
    template.resourceCountIs('AWS::Events::Rule', 0);
    expect(pipeline.ticks).toBeUndefined();
    expect(roleStatements(template).flatMap(actionsOf)).not.toContain('dynamodb:Scan');
  });

  it('invoke the function every minute with the tick event, and may list the commit items', () => {
    const { template, pipeline } = pipelineStack({ ticks: true });
    expect(pipeline.ticks).toBeDefined();
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^PipelineFunction'), 'Arn'] },
          Input: JSON.stringify(TICK_EVENT),
          RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 300 },
        }),
      ],
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
    });
    const scan = roleStatements(template).filter((s) => actionsOf(s).includes('dynamodb:Scan'));
    expect(scan).toEqual([
      expect.objectContaining({
        Sid: 'TickListing',
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/^PipelineStorageTable/), 'Arn'] },
      }),
    ]);
  });

  it('take a schedule and can be disabled', () => {
    const { template } = pipelineStack({
      ticks: { schedule: Schedule.rate(Duration.minutes(5)), enabled: false },
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      State: 'DISABLED',
    });
  });

  it("pass cdk-nag's AWS Solutions rules with no new acknowledgement", () => {
    const app = testApp();
    addPipelineStack(app, { ticks: true });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    app.synth();
    const report = JSON.parse(readFileSync(join(app.outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: Array<{ violations: unknown[] }>;
    };
    expect(report.pluginReports.flatMap((r) => r.violations)).toEqual([]);
  });
});
