/**
 * Where Tidemark keeps checkpoints: one S3 bucket (snapshots, quarantined records, savepoints) and
 * one DynamoDB table (commit items, savepoints). One storage can serve several pipelines: each
 * pipeline's objects live under `<prefix>/<pipeline>/` and its items under `task#<pipeline>#…`.
 */
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AttributeType, BillingMode, type ITable, Table } from 'aws-cdk-lib/aws-dynamodb';
import { BlockPublicAccess, Bucket, BucketEncryption, type IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface TidemarkStorageProps {
  /**
   * What happens to the bucket and the table when they leave the stack. Checkpoints are the
   * pipelines' state: losing them means reprocessing from the topic's retention, if that is even
   * possible.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * DynamoDB deletion protection on the table.
   * @default true
   */
  readonly deletionProtection?: boolean;
  /**
   * Keep deleted snapshot objects as noncurrent versions for `noncurrentVersionRetention`.
   * @default true
   */
  readonly versioned?: boolean;
  /**
   * How long a deleted object stays recoverable (versioned buckets only). The default matches
   * DynamoDB point-in-time recovery's 35-day window, so a table restored to an earlier time still
   * finds the snapshot objects its commit items reference (restore their noncurrent versions).
   * @default Duration.days(35)
   */
  readonly noncurrentVersionRetention?: Duration;
  /**
   * Multipart uploads (snapshots above 64 MiB) that an interrupted invocation never completed are
   * aborted after this, so their invisible parts stop costing storage.
   * @default Duration.days(1)
   */
  readonly abortIncompleteUploadsAfter?: Duration;
  /**
   * Bucket receiving S3 server access logs of the checkpoint bucket.
   * @default - no server access logs (CloudTrail data events are the alternative)
   */
  readonly serverAccessLogsBucket?: IBucket;
  /**
   * Use this existing bucket instead of creating one (the settings above then do not apply to it).
   * @default - a new bucket
   */
  readonly bucket?: IBucket;
  /**
   * Use this existing table (string partition key `pk`, string sort key `sk`) instead of creating one.
   * @default - a new table
   */
  readonly table?: ITable;
}

/** The S3 bucket and DynamoDB table of one or more Tidemark pipelines (created, or existing ones). */
export class TidemarkStorage extends Construct {
  readonly bucket: IBucket;
  readonly table: ITable;

  constructor(scope: Construct, id: string, props: TidemarkStorageProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.bucket = props.bucket ?? this.createBucket(props, removalPolicy);
    this.table =
      props.table ??
      new Table(this, 'Table', {
        partitionKey: { name: 'pk', type: AttributeType.STRING },
        sortKey: { name: 'sk', type: AttributeType.STRING },
        billingMode: BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        deletionProtection: props.deletionProtection ?? true,
        removalPolicy,
      });
  }

  private createBucket(props: TidemarkStorageProps, removalPolicy: RemovalPolicy): Bucket {
    const versioned = props.versioned ?? true;
    const bucket = new Bucket(this, 'Bucket', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned,
      removalPolicy,
      serverAccessLogsBucket: props.serverAccessLogsBucket,
      serverAccessLogsPrefix: props.serverAccessLogsBucket ? 'tidemark-checkpoints/' : undefined,
      // Lifecycle: a rule cannot know which snapshot objects a commit item references, so no rule
      // ever expires a current object by age. A retained checkpoint may be months old (a quiet
      // partition commits rarely; savepoints are kept until deleted). Unreferenced objects are
      // removed by the engine (after each commit, and its periodic sweep) and by `tidemark gc`.
      // What a rule can do safely:
      lifecycleRules: [
        {
          id: 'abort-incomplete-multipart-uploads',
          // Parts of an upload that never completed are no object at all: nothing references them.
          abortIncompleteMultipartUploadAfter: props.abortIncompleteUploadsAfter ?? Duration.days(1),
        },
        ...(versioned
          ? [
              {
                id: 'expire-deleted-objects',
                // Tidemark never overwrites an object (If-None-Match: *), so a noncurrent version
                // only exists because someone deleted the object: the engine or GC after it left
                // every retention window, or an operator. Keep it recoverable for a while, then let go.
                noncurrentVersionExpiration: props.noncurrentVersionRetention ?? Duration.days(35),
                // Delete markers whose versions are all gone mark nothing; remove them.
                expiredObjectDeleteMarker: true,
              },
            ]
          : []),
      ],
    });
    if (!props.serverAccessLogsBucket) {
      Validations.of(bucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason:
          'Only the pipeline function (and operators) touch the checkpoint bucket; the function logs every checkpoint it writes. Pass serverAccessLogsBucket (or enable CloudTrail data events) where an access log is required.',
      });
    }
    return bucket;
  }
}
