/**
 * The S3 requests the snapshot store sends, behind one small interface with two clients: the AWS SDK
 * v3 (`sdkRequests.ts`) and the lightweight transport the Lambda handler uses (`../aws/s3.ts`).
 * Shapes follow the S3 API's (and the SDK's) names; bodies are bytes both ways. Errors are shaped
 * like the SDK's service exceptions (`name` = S3 error code, `$metadata.httpStatusCode`).
 */

export interface S3Operations {
  PutObject: {
    input: { Bucket: string; Key: string; Body: Uint8Array; ContentType?: string; IfNoneMatch?: string };
    output: Record<string, never>;
  };
  CreateMultipartUpload: {
    input: { Bucket: string; Key: string; ContentType?: string };
    output: { UploadId?: string };
  };
  UploadPart: {
    input: { Bucket: string; Key: string; UploadId: string; PartNumber: number; Body: Uint8Array };
    output: { ETag?: string };
  };
  CompleteMultipartUpload: {
    input: {
      Bucket: string;
      Key: string;
      UploadId: string;
      MultipartUpload: { Parts: Array<{ ETag: string; PartNumber: number }> };
      IfNoneMatch?: string;
    };
    output: Record<string, never>;
  };
  AbortMultipartUpload: {
    input: { Bucket: string; Key: string; UploadId: string };
    output: Record<string, never>;
  };
  GetObject: { input: { Bucket: string; Key: string }; output: { Body: Uint8Array } };
  DeleteObjects: {
    input: { Bucket: string; Delete: { Objects: Array<{ Key: string }>; Quiet?: boolean } };
    output: { Errors?: Array<{ Key?: string; Code?: string; Message?: string }> };
  };
  /** `CopySource`: `bucket/key`, URI-encoded. */
  CopyObject: { input: { Bucket: string; Key: string; CopySource: string }; output: Record<string, never> };
  HeadBucket: { input: { Bucket: string }; output: Record<string, never> };
  ListObjectsV2: {
    input: { Bucket: string; Prefix?: string; ContinuationToken?: string; MaxKeys?: number };
    output: {
      Contents?: Array<{ Key?: string; Size?: number; LastModified?: Date }>;
      IsTruncated?: boolean;
      NextContinuationToken?: string;
    };
  };
}

export type S3Operation = keyof S3Operations;

/** Sends one S3 operation; errors are shaped like the SDK's service exceptions. */
export interface S3Requests {
  /** Which client sends them (`sdk` or `lite`), for logs and tests. */
  readonly client: 'sdk' | 'lite';
  send<K extends S3Operation>(
    operation: K,
    input: S3Operations[K]['input'],
  ): Promise<S3Operations[K]['output']>;
}
