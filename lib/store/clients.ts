/**
 * SDK clients built from the standard AWS environment: region, credentials and endpoints come from
 * the SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`, …), so
 * the same code runs in Lambda and against local servers. Only when an endpoint override is present
 * do we switch on what local S3 servers need: path-style addressing, and checksums only when an
 * operation requires them (streamed bodies are otherwise stored with their aws-chunked framing).
 */
export { CLIENT_TIMEOUTS, dynamoEndpointOverride, s3EndpointOverride } from './clientOptions.ts';
export { createDynamoDBClient } from './dynamodb/client.ts';
export { createS3Client } from './s3/client.ts';
