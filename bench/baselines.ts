/**
 * The approaches users write today, for comparison (benchmark 2):
 * (c) one DynamoDB UpdateItem per record (`ADD balance :amount, count :one` on the account's item);
 * (d) the same, each record wrapped in `makeIdempotent` from `@aws-lambda-powertools/idempotency`
 *     with its DynamoDB persistence layer, keyed on topic-partition-offset, as Powertools' docs show
 *     for Kafka.
 * Both decode records by hand, keep per-partition order, and run the partitions of a batch in
 * parallel (a generous baseline: the usual handler loops over all records one by one). Neither is
 * exactly-once for the balances: (c) double-counts re-delivered records; (d) guards each record
 * but its update and its idempotency record are two writes, not one.
 */

import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateItemCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import type { Context } from 'aws-lambda';
import type { KafkaEvent } from '../lib/event/types.ts';

export interface AccountUpdate {
  topic: string;
  partition: number;
  offset: number;
  account: string;
  amount: number;
}

/** The part of the Lambda context the baselines use. */
export interface BaselineContext {
  getRemainingTimeInMillis(): number;
}

export type RecordHandler = (event: KafkaEvent, context: BaselineContext) => Promise<void>;

/** Decodes each record and calls `apply`, partitions in parallel, each in offset order. */
function perRecordHandler(
  apply: (u: AccountUpdate) => Promise<unknown>,
  onInvoke: (context: BaselineContext) => void = () => {},
): RecordHandler {
  return async (event, context) => {
    onInvoke(context);
    await Promise.all(
      Object.values(event.records).map(async (records) => {
        for (const r of records) {
          if (!r.key || !r.value) continue;
          const account = Buffer.from(r.key, 'base64').toString('utf8');
          const { amount } = JSON.parse(Buffer.from(r.value, 'base64').toString('utf8')) as {
            amount: number;
          };
          await apply({ topic: r.topic, partition: r.partition, offset: Number(r.offset), account, amount });
        }
      }),
    );
  };
}

function updateAccount(client: DynamoDBClient, table: string, keyPrefix: string) {
  return (u: AccountUpdate) =>
    client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { pk: { S: `${keyPrefix}#${u.account}` }, sk: { S: 'balance' } },
        UpdateExpression: 'ADD #balance :amount, #count :one',
        ExpressionAttributeNames: { '#balance': 'balance', '#count': 'count' },
        ExpressionAttributeValues: { ':amount': { N: String(u.amount) }, ':one': { N: '1' } },
      }),
    );
}

/** (c) One UpdateItem per record on the account's item. */
export function perRecordUpdateHandler(
  client: DynamoDBClient,
  table: string,
  keyPrefix: string,
): RecordHandler {
  return perRecordHandler(updateAccount(client, table, keyPrefix));
}

/** (d) (c) plus Powertools idempotency per record, keyed on [topic, partition, offset]. */
export function perRecordIdempotentHandler(
  client: DynamoDBClient,
  table: string,
  idempotencyTable: string,
  keyPrefix: string,
): RecordHandler {
  const update = updateAccount(client, table, keyPrefix);
  const config = new IdempotencyConfig({ eventKeyJmesPath: '[topic, partition, offset]' });
  const apply = makeIdempotent(
    async (u: AccountUpdate) => {
      await update(u);
    },
    {
      persistenceStore: new DynamoDBPersistenceLayer({ tableName: idempotencyTable, awsSdkV3Client: client }),
      config,
      keyPrefix,
    },
  );
  // As Powertools' docs ask when the wrapped function is not the handler: in-progress records then
  // expire with the invocation.
  return perRecordHandler(apply, (context) => config.registerLambdaContext(context as Context));
}

/** The table Powertools' DynamoDB persistence layer expects by default: partition key `id` (string). */
export async function ensureIdempotencyTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
    return;
  } catch (err) {
    if ((err as { name?: string }).name !== 'ResourceNotFoundException') throw err;
  }
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }
  await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: table });
}
