/** The S3 client of the snapshot store (its own module: the SDK's S3 client loads only with it). */
import { S3Client } from '@aws-sdk/client-s3';
import { CLIENT_TIMEOUTS, explicit, s3EndpointOverride } from '../clientOptions.ts';

type Env = Readonly<Record<string, string | undefined>>;

export function createS3Client(env: Env = process.env): S3Client {
  const endpoint = s3EndpointOverride(env);
  return new S3Client({
    requestHandler: CLIENT_TIMEOUTS,
    ...explicit(env),
    ...(endpoint
      ? {
          endpoint,
          forcePathStyle: true,
          requestChecksumCalculation: 'WHEN_REQUIRED',
          responseChecksumValidation: 'WHEN_REQUIRED',
        }
      : {}),
  });
}
