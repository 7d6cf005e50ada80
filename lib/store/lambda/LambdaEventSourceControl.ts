/**
 * `EventSourceControl` on the Lambda API: ListEventSourceMappings (by function),
 * GetEventSourceMapping and UpdateEventSourceMapping (`Enabled`). Endpoint, region and credentials
 * come from the SDK's standard environment (`AWS_ENDPOINT_URL_LAMBDA`, `AWS_REGION`, …).
 */
import {
  type EventSourceMappingConfiguration,
  GetEventSourceMappingCommand,
  LambdaClient,
  paginateListEventSourceMappings,
  UpdateEventSourceMappingCommand,
} from '@aws-sdk/client-lambda';
import { OperationError } from '../../errors.ts';
import type { EventSourceControl, EventSourceMappingInfo } from '../../ops/eventSources.ts';
import { CLIENT_TIMEOUTS } from '../clients.ts';

function isKafka(m: EventSourceMappingConfiguration): boolean {
  return m.SelfManagedEventSource !== undefined || /^arn:[^:]+:kafka:/.test(m.EventSourceArn ?? '');
}

export function mappingInfo(m: EventSourceMappingConfiguration): EventSourceMappingInfo {
  const uuid = m.UUID ?? '';
  return {
    uuid,
    functionArn: m.FunctionArn ?? '',
    state: m.State ?? 'Unknown',
    topics: m.Topics ?? [],
    consumerGroupId:
      m.AmazonManagedKafkaEventSourceConfig?.ConsumerGroupId ??
      m.SelfManagedKafkaEventSourceConfig?.ConsumerGroupId ??
      uuid,
  };
}

/** Lambda API failures: an operator command's error (the stores' error type is for S3 and DynamoDB). */
function lambdaError(operation: string, err: unknown): OperationError {
  const e = (err ?? {}) as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const retriable = status === undefined || status >= 500 || status === 429 || /Throttl/.test(e.name ?? '');
  const message = err instanceof Error ? err.message : String(err);
  return new OperationError(
    `lambda ${operation}: ${e.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${message}`,
    {
      cause: err,
      retriable,
    },
  );
}

export class LambdaEventSourceControl implements EventSourceControl {
  private readonly client: LambdaClient;

  constructor(options: { client?: LambdaClient } = {}) {
    this.client = options.client ?? new LambdaClient({ requestHandler: CLIENT_TIMEOUTS });
  }

  async list(functionName: string): Promise<EventSourceMappingInfo[]> {
    const out: EventSourceMappingInfo[] = [];
    try {
      for await (const page of paginateListEventSourceMappings(
        { client: this.client },
        { FunctionName: functionName },
      )) {
        for (const m of page.EventSourceMappings ?? []) if (isKafka(m)) out.push(mappingInfo(m));
      }
    } catch (err) {
      throw lambdaError('list-event-source-mappings', err);
    }
    return out;
  }

  async get(uuid: string): Promise<EventSourceMappingInfo> {
    try {
      return mappingInfo(await this.client.send(new GetEventSourceMappingCommand({ UUID: uuid })));
    } catch (err) {
      throw lambdaError('get-event-source-mapping', err);
    }
  }

  async setEnabled(uuid: string, enabled: boolean): Promise<void> {
    try {
      await this.client.send(new UpdateEventSourceMappingCommand({ UUID: uuid, Enabled: enabled }));
    } catch (err) {
      throw lambdaError('update-event-source-mapping', err);
    }
  }

  destroy(): void {
    this.client.destroy();
  }
}
