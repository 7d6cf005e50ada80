/**
 * The DynamoDB requests the commit store sends, behind one small interface with two clients: the
 * AWS SDK v3 (`sdkRequests.ts`) and the lightweight transport the Lambda handler uses
 * (`../aws/dynamodb.ts`). Inputs and outputs are the DynamoDB API's own shapes (binary attributes as
 * bytes), typed by the SDK's declarations (types only: nothing of the SDK is loaded from here).
 */
import type {
  DescribeTableCommandInput,
  DescribeTableCommandOutput,
  GetItemCommandInput,
  GetItemCommandOutput,
  PutItemCommandInput,
  PutItemCommandOutput,
  ScanCommandInput,
  ScanCommandOutput,
  TransactWriteItemsCommandInput,
  TransactWriteItemsCommandOutput,
} from '@aws-sdk/client-dynamodb';

type Out<T> = Omit<T, '$metadata'>;

export interface DynamoOperations {
  GetItem: { input: GetItemCommandInput; output: Out<GetItemCommandOutput> };
  PutItem: { input: PutItemCommandInput; output: Out<PutItemCommandOutput> };
  TransactWriteItems: {
    input: TransactWriteItemsCommandInput;
    output: Out<TransactWriteItemsCommandOutput>;
  };
  DescribeTable: { input: DescribeTableCommandInput; output: Out<DescribeTableCommandOutput> };
  Scan: { input: ScanCommandInput; output: Out<ScanCommandOutput> };
}

export type DynamoOperation = keyof DynamoOperations;

/** Sends one DynamoDB operation; errors are shaped like the SDK's service exceptions. */
export interface DynamoRequests {
  /** Which client sends them (`sdk` or `lite`), for logs and tests. */
  readonly client: 'sdk' | 'lite';
  send<K extends DynamoOperation>(
    operation: K,
    input: DynamoOperations[K]['input'],
  ): Promise<DynamoOperations[K]['output']>;
}
