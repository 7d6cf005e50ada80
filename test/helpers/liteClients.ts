/** The lightweight AWS clients of the handler, pointed at the local servers the tests start. */
import { liteDynamoRequests } from '../../lib/store/aws/dynamodb.ts';
import { liteAwsSettings } from '../../lib/store/aws/environment.ts';
import { liteS3Requests } from '../../lib/store/aws/s3.ts';
import type { AwsTransportOptions } from '../../lib/store/aws/transport.ts';
import type { DynamoRequests } from '../../lib/store/dynamodb/requests.ts';
import type { S3Requests } from '../../lib/store/s3/requests.ts';

type Env = Readonly<Record<string, string | undefined>>;

export function liteSettingsOf(service: 'dynamodb' | 's3', env: Env = process.env) {
  const settings = liteAwsSettings(service, env);
  if ('unsupported' in settings) throw new Error(`test environment: ${settings.unsupported}`);
  return settings;
}

export function dynamoLite(
  env: Env = process.env,
  options: Pick<AwsTransportOptions, 'onRequest' | 'maxAttempts' | 'timeouts'> = {},
): DynamoRequests {
  return liteDynamoRequests(liteSettingsOf('dynamodb', env), options);
}

export function s3Lite(
  env: Env = process.env,
  options: Pick<AwsTransportOptions, 'onRequest' | 'maxAttempts' | 'timeouts'> = {},
): S3Requests {
  return liteS3Requests(liteSettingsOf('s3', env), options);
}
