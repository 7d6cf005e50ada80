import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SavepointStore } from '../checkpoint/savepoints.ts';
import type { CommitStore, SnapshotStore } from '../checkpoint/stores.ts';
import { createDynamoDBClient, createS3Client } from './clients.ts';
import { DynamoCommitStore } from './dynamodb/DynamoCommitStore.ts';
import { DynamoSavepointStore } from './dynamodb/DynamoSavepointStore.ts';
import { S3SnapshotStore } from './s3/S3SnapshotStore.ts';

export interface Stores {
  snapshots: SnapshotStore;
  commits: CommitStore;
}

export interface AwsStoreOptions {
  bucket: string;
  table: string;
  /** Injected clients (tests count requests through them); default: built from the environment. */
  s3?: S3Client;
  dynamodb?: DynamoDBClient;
}

/** The production stores: snapshots on S3, commits on DynamoDB. */
export function createAwsStores(options: AwsStoreOptions): Stores {
  return {
    snapshots: new S3SnapshotStore({ client: options.s3 ?? createS3Client(), bucket: options.bucket }),
    commits: new DynamoCommitStore({
      client: options.dynamodb ?? createDynamoDBClient(),
      table: options.table,
    }),
  };
}

/** The savepoint store of the operator commands: DynamoDB, in the commit items' table. */
export function createSavepointStore(options: { table: string; dynamodb?: DynamoDBClient }): SavepointStore {
  return new DynamoSavepointStore({
    client: options.dynamodb ?? createDynamoDBClient(),
    table: options.table,
  });
}
