/** The windowed example's stack (cdk/spendStack.ts): the spend pipeline with ticks and its Kafka output. */
import { Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { readBalancesSettings } from '../../cdk/balancesSettings.ts';
import { SPEND_OUTPUT_TOPIC, SpendStack } from '../../cdk/spendStack.ts';
import { SPEND_OUTPUT_TOPIC as EXAMPLE_TOPIC } from '../../examples/spend.ts';
import { TICK_EVENT } from '../../lib/config/definitions.ts';
import { removeOutdirs, testApp } from './synth.ts';

afterAll(removeOutdirs);

describe('SpendStack', () => {
  it('deploys functions/spend.ts with ticks and its Kafka output, passing the AWS Solutions rules', () => {
    expect(SPEND_OUTPUT_TOPIC).toBe(EXAMPLE_TOPIC);
    const app = testApp();
    const settings = readBalancesSettings(() => undefined, {});
    const stack = new SpendStack(app, 'Spend', { settings });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    app.synth(); // throws on an unacknowledged cdk-nag error
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: 'spend' },
      Topics: ['balances'],
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [Match.objectLike({ Input: JSON.stringify(TICK_EVENT) })],
    });
    const fn = Object.values(template.findResources('AWS::Lambda::Function')).find(
      (f) => f.Properties.Environment?.Variables?.TIDEMARK_PIPELINE === 'spend',
    );
    expect(fn?.Properties.Environment.Variables).toMatchObject({
      TIDEMARK_KAFKA_OUTPUT_BROKERS: expect.stringContaining(':9098'),
    });
  });
});
