/**
 * `tidemark/dynamodb`: outputs written to DynamoDB tables exactly once per committed epoch (see
 * docs/outputs.md#dynamodb). The DynamoDB client is loaded only when a processor's sink is built.
 */
export {
  DEFAULT_TABLE_ENV as DYNAMODB_OUTPUT_TABLE_ENV,
  FENCE_ATTRIBUTES as DYNAMODB_OUTPUT_FENCE_ATTRIBUTES,
  ITEM_ATTRIBUTES as DYNAMODB_OUTPUT_ATTRIBUTES,
} from './constants.ts';
export {
  type DynamoEntry,
  type DynamoItem,
  type DynamoKeyAttribute,
  type DynamoKeyType,
  type DynamoMarshallOptions,
  type DynamoOutputOptions,
  type DynamoWrite,
  decodeDynamoEntry,
  dynamoOutput,
  type ResolvedDynamoOutputOptions,
} from './dynamoOutput.ts';
