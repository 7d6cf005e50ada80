/** `DynamoRequests` sent by an AWS SDK v3 DynamoDB client. */
import {
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import type { DynamoOperation, DynamoRequests } from './requests.ts';

const COMMANDS = {
  GetItem: GetItemCommand,
  PutItem: PutItemCommand,
  TransactWriteItems: TransactWriteItemsCommand,
  DescribeTable: DescribeTableCommand,
  Scan: ScanCommand,
} as const satisfies Record<DynamoOperation, unknown>;

export function sdkDynamoRequests(client: DynamoDBClient): DynamoRequests {
  return {
    client: 'sdk',
    send: (operation, input) => {
      const Command = COMMANDS[operation] as new (input: unknown) => GetItemCommand;
      return client.send(new Command(input)) as never;
    },
  };
}
