/** The DynamoDB client of the commit store (its own module: the SDK's DynamoDB client loads only with it). */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CLIENT_TIMEOUTS, dynamoEndpointOverride, explicit } from '../clientOptions.ts';

type Env = Readonly<Record<string, string | undefined>>;

export function createDynamoDBClient(env: Env = process.env): DynamoDBClient {
  const endpoint = dynamoEndpointOverride(env);
  return new DynamoDBClient({
    requestHandler: CLIENT_TIMEOUTS,
    ...explicit(env),
    ...(endpoint ? { endpoint } : {}),
  });
}
