import {
  GetEventSourceMappingCommand,
  LambdaClient,
  ListEventSourceMappingsCommand,
  UpdateEventSourceMappingCommand,
} from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { OperationError } from '../../lib/errors.ts';
import { setMappingEnabled } from '../../lib/ops/eventSources.ts';
import { LambdaEventSourceControl } from '../../lib/store/lambda/LambdaEventSourceControl.ts';

const lambda = mockClient(LambdaClient);
afterEach(() => lambda.reset());

const msk = {
  UUID: 'u-msk',
  FunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:balances',
  EventSourceArn: 'arn:aws:kafka:eu-west-1:123456789012:cluster/demo/abc',
  State: 'Enabled',
  Topics: ['orders'],
  AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: 'balances' },
};
const selfManaged = {
  UUID: 'u-self',
  FunctionArn: msk.FunctionArn,
  SelfManagedEventSource: { Endpoints: { KAFKA_BOOTSTRAP_SERVERS: ['b:9092'] } },
  State: 'Disabled',
  Topics: ['payments'],
};
const sqs = { UUID: 'u-sqs', EventSourceArn: 'arn:aws:sqs:eu-west-1:123456789012:q', State: 'Enabled' };

describe('LambdaEventSourceControl (commands sent to the Lambda API)', () => {
  it('lists the Kafka mappings of a function across pages; the default consumer group is the UUID', async () => {
    lambda
      .on(ListEventSourceMappingsCommand, { FunctionName: 'balances' })
      .resolvesOnce({ EventSourceMappings: [msk, sqs], NextMarker: 'm2' })
      .resolvesOnce({ EventSourceMappings: [selfManaged] });
    const control = new LambdaEventSourceControl({ client: new LambdaClient({ region: 'eu-west-1' }) });
    const list = await control.list('balances');
    expect(list).toEqual([
      {
        uuid: 'u-msk',
        functionArn: msk.FunctionArn,
        state: 'Enabled',
        topics: ['orders'],
        consumerGroupId: 'balances',
      },
      {
        uuid: 'u-self',
        functionArn: msk.FunctionArn,
        state: 'Disabled',
        topics: ['payments'],
        consumerGroupId: 'u-self',
      },
    ]);
    // Two pages: the second request carries the first page's marker (the paginator reuses the input).
    const calls = lambda.commandCalls(ListEventSourceMappingsCommand);
    expect(calls).toHaveLength(2);
    expect(calls.map((c) => c.args[0].input.FunctionName)).toEqual(['balances', 'balances']);
    expect(calls[1]!.args[0].input.Marker).toBe('m2');
  });

  it('disables a mapping with UpdateEventSourceMapping and polls GetEventSourceMapping until Disabled', async () => {
    lambda
      .on(GetEventSourceMappingCommand, { UUID: 'u-msk' })
      .resolvesOnce({ ...msk, State: 'Enabled' })
      .resolvesOnce({ ...msk, State: 'Disabling' })
      .resolves({ ...msk, State: 'Disabled' });
    lambda.on(UpdateEventSourceMappingCommand).resolves({ ...msk, State: 'Disabling' });
    const control = new LambdaEventSourceControl({ client: new LambdaClient({ region: 'eu-west-1' }) });
    const m = await setMappingEnabled(control, 'u-msk', false, { timeoutMs: 10_000, intervalMs: 1 });
    expect(m.state).toBe('Disabled');
    expect(lambda.commandCalls(UpdateEventSourceMappingCommand).map((c) => c.args[0].input)).toEqual([
      { UUID: 'u-msk', Enabled: false },
    ]);
    expect(lambda.commandCalls(GetEventSourceMappingCommand)).toHaveLength(3);
  });

  it('turns API errors into operation errors, retriable for throttling', async () => {
    lambda.on(UpdateEventSourceMappingCommand).rejects(
      Object.assign(new Error('Rate exceeded'), {
        name: 'TooManyRequestsException',
        $metadata: { httpStatusCode: 429 },
      }),
    );
    lambda.on(GetEventSourceMappingCommand).rejects(
      Object.assign(new Error('not found'), {
        name: 'ResourceNotFoundException',
        $metadata: { httpStatusCode: 404 },
      }),
    );
    const control = new LambdaEventSourceControl({ client: new LambdaClient({ region: 'eu-west-1' }) });
    const update = await control.setEnabled('u', true).catch((e: unknown) => e);
    expect(update).toBeInstanceOf(OperationError);
    expect(update).toMatchObject({
      retriable: true,
      message: expect.stringMatching(/TooManyRequestsException \(HTTP 429\)/),
    });
    await expect(control.get('u')).rejects.toMatchObject({ retriable: false });
  });
});
