/** `S3Requests` sent by an AWS SDK v3 S3 client. */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { S3Operation, S3Requests } from './requests.ts';

const COMMANDS = {
  PutObject: PutObjectCommand,
  CreateMultipartUpload: CreateMultipartUploadCommand,
  UploadPart: UploadPartCommand,
  CompleteMultipartUpload: CompleteMultipartUploadCommand,
  AbortMultipartUpload: AbortMultipartUploadCommand,
  GetObject: GetObjectCommand,
  DeleteObjects: DeleteObjectsCommand,
  CopyObject: CopyObjectCommand,
  HeadBucket: HeadBucketCommand,
  ListObjectsV2: ListObjectsV2Command,
} as const satisfies Record<S3Operation, unknown>;

export function sdkS3Requests(client: S3Client): S3Requests {
  return {
    client: 'sdk',
    send: async (operation, input) => {
      const Command = COMMANDS[operation] as new (input: unknown) => PutObjectCommand;
      const out = (await client.send(new Command(input))) as unknown as Record<string, unknown>;
      if (operation !== 'GetObject') return out as never;
      const body = out.Body as { transformToByteArray(): Promise<Uint8Array> } | undefined;
      return { Body: body ? await body.transformToByteArray() : new Uint8Array(0) } as never;
    },
  };
}
