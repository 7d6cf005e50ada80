/**
 * The local stand-ins for AWS: DynamoDB Local and the S3 server, started together, with the bucket
 * and table created. `env` holds the standard AWS variables (endpoints, region, credentials) and
 * Tidemark's, so a handler or a CLI run with it talks to these servers unchanged.
 */
import { createDynamoDBClient, createS3Client } from '../lib/store/clients.ts';
import { ensureBucket, ensureTable } from '../lib/store/provision.ts';
import { type DynamoLocal, startDynamoLocal } from './dynamoLocal.ts';
import { type S3Local, S3RVER_CREDENTIALS, startS3Local } from './s3Local.ts';

export interface LocalStack {
  dynamo: DynamoLocal;
  s3: S3Local;
  bucket: string;
  table: string;
  /** Environment for anything that should use these servers. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export function localEnv(s3Endpoint: string, dynamoEndpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_S3: s3Endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
  };
}

export async function startLocalStack(
  options: {
    bucket?: string;
    table?: string;
    s3Port?: number;
    dynamoPort?: number;
    s3Directory?: string;
  } = {},
): Promise<LocalStack> {
  const bucket = options.bucket ?? 'tidemark-local';
  const table = options.table ?? 'tidemark-local';
  const [d, s] = await Promise.allSettled([
    startDynamoLocal({ port: options.dynamoPort }),
    startS3Local({ port: options.s3Port, directory: options.s3Directory }),
  ]);
  if (d.status === 'rejected' || s.status === 'rejected') {
    // Never leave one server running because the other failed.
    if (d.status === 'fulfilled') await d.value.stop();
    if (s.status === 'fulfilled') await s.value.stop();
    throw d.status === 'rejected' ? d.reason : (s as PromiseRejectedResult).reason;
  }
  const dynamo = d.value;
  const s3 = s.value;
  const env = { ...localEnv(s3.endpoint, dynamo.endpoint), TIDEMARK_BUCKET: bucket, TIDEMARK_TABLE: table };
  const s3Client = createS3Client(env);
  const ddbClient = createDynamoDBClient(env);
  try {
    await Promise.all([ensureBucket(s3Client, bucket), ensureTable(ddbClient, table)]);
  } finally {
    s3Client.destroy();
    ddbClient.destroy();
  }
  return {
    dynamo,
    s3,
    bucket,
    table,
    env,
    stop: async () => {
      await Promise.allSettled([dynamo.stop(), s3.stop()]);
    },
  };
}
