/**
 * One deployed Tidemark pipeline: the Lambda function (bundled locally with esbuild), its event
 * source mapping on Amazon MSK or self-managed Kafka, the S3 bucket and DynamoDB table that hold
 * its checkpoints (created, or existing ones), least-privilege IAM, and a dashboard with alarms.
 */
import { Duration } from 'aws-cdk-lib';
import type { Metric, MetricOptions } from 'aws-cdk-lib/aws-cloudwatch';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { type IRole, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import {
  Architecture,
  type EventSourceMapping,
  type IEventSourceDlq,
  type ProvisionedPollerConfig,
  Runtime,
  StartingPosition,
} from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import {
  DEFAULT_PREFIX,
  ESM,
  PIPELINE_ID_PATTERN,
  pipelinePrefix,
  prefixProblem,
  taskPkPrefix,
} from '../lib/config/definitions.ts';
import { type AwsClientKind, ENV } from '../lib/config/env.ts';
import type { MetricName } from '../lib/observability/metricNames.ts';
import {
  acknowledgeVpcAccessPolicy,
  BUNDLED_COMMIT_STORE_DEFINE,
  checkCommitDatabase,
  commitDatabaseEnvironment,
  DATABASE_ENV,
  grantCommitDatabase,
  LAMBDA_RDS_CA_BUNDLE,
  type TidemarkCommitDatabase,
} from './commitDatabase.ts';
import { createKafkaMapping, type KafkaSource } from './kafkaSource.ts';

/**
 * The esbuild `define` that keeps the SDK's DynamoDB and S3 clients out of the handler's path when
 * the lightweight client is chosen (read by lib/store/runtimeStores.ts and the two stores).
 */
export const BUNDLED_AWS_CLIENT_DEFINE = 'process.env.TIDEMARK_BUNDLED_AWS_CLIENT';

import { acknowledgeWildcardAction, acknowledgeWildcardResource } from './nagAcknowledgements.ts';
import { TidemarkIceberg, type TidemarkIcebergProps } from './tidemarkIceberg.ts';
import { type TidemarkAlarmThresholds, TidemarkMonitoring, tidemarkMetric } from './tidemarkMonitoring.ts';
import {
  checkOutputEnvironment,
  checkOutputs,
  grantOutputs,
  type TidemarkOutputs,
} from './tidemarkOutputs.ts';
import { TidemarkStorage, type TidemarkStorageProps } from './tidemarkStorage.ts';
import { TidemarkTicks, type TidemarkTicksProps } from './tidemarkTicks.ts';

/** Same rule as the engine's (lib/config/config.ts): ids end up in S3 and DynamoDB keys. */

export interface TidemarkPipelineProps {
  /**
   * Pipeline id (`TIDEMARK_PIPELINE`): names the checkpoints in S3 and DynamoDB and, by default,
   * the Kafka consumer group. `[A-Za-z0-9._-]`, at most 128 characters. Changing it starts the
   * pipeline over with empty state.
   */
  readonly pipelineId: string;
  /** Path of the handler module (e.g. `functions/balances.ts`), bundled with esbuild. */
  readonly entry: string;
  /**
   * Name of the exported handler.
   * @default 'handler'
   */
  readonly handler?: string;
  /** The Kafka cluster: Amazon MSK (`kind: 'msk'`) or self-managed (`kind: 'self-managed'`). */
  readonly source: KafkaSource;
  /** The topic to consume. */
  readonly topic: string;

  // Storage
  /**
   * Existing bucket for checkpoints (with its KMS key attached if it uses SSE-KMS).
   * @default - a new bucket (see `storage`)
   */
  readonly bucket?: IBucket;
  /**
   * Existing table for commit items: string partition key `pk`, string sort key `sk`.
   * @default - a new table (see `storage`)
   */
  readonly table?: ITable;
  /**
   * Settings of the bucket and table this construct creates (ignored for supplied ones).
   * @default - see TidemarkStorageProps
   */
  readonly storage?: TidemarkStorageProps;
  /**
   * Key prefix of the pipeline's objects (`TIDEMARK_PREFIX`); the function may only touch
   * `<prefix>/<pipelineId>/*`.
   * @default 'tidemark'
   */
  readonly prefix?: string;
  /**
   * Keep commit items and savepoints in this existing database instead of the DynamoDB table
   * (PostgreSQL, MySQL/MariaDB or Redis; docs/stores.md). The function then runs in the database's
   * VPC, bundles that store's driver, and may read the secret or connect as the IAM user, nothing
   * more; it gets no access to the table. Snapshots stay in the bucket.
   * @default - commits in the DynamoDB table
   */
  readonly commitDatabase?: TidemarkCommitDatabase;

  // Function
  /**
   * Memory of the function, in MiB (CPU scales with it).
   * @default 1024
   */
  readonly memorySize?: number;
  /**
   * Function timeout (at most 14 minutes for Kafka event sources). Tidemark keeps
   * `TIDEMARK_TIME_RESERVE_MS` (5 s) of it to checkpoint: keep it well above that.
   * @default Duration.minutes(2)
   */
  readonly timeout?: Duration;
  /**
   * More environment variables: Tidemark settings (`TIDEMARK_EPOCH_MAX_RECORDS`, …, see
   * docs/configuration.md) or the handler's own. The bucket, table, pipeline and prefix variables
   * are wired by the construct and cannot be set here.
   * @default - none
   */
  readonly environment?: Record<string, string>;
  /**
   * Reserved concurrency of the function.
   * @default - none (the account's unreserved pool)
   */
  readonly reservedConcurrentExecutions?: number;
  /**
   * Retention of the function's log group.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * Overrides of the esbuild bundling (local esbuild, no Docker).
   * @default - ESM output for node24, minified, with source maps, AWS SDK bundled
   */
  readonly bundling?: BundlingOptions;
  /**
   * Map stack traces to the sources at run time (`NODE_OPTIONS=--enable-source-maps`). Node then
   * parses the bundle's source map when the module loads, about a third of a cold start's module
   * load (docs/performance.md). The source map ships either way, for symbolicating traces offline.
   * @default false
   */
  readonly enableSourceMaps?: boolean;
  /**
   * Client of the function's snapshots in S3 and commits in DynamoDB. `lite`: a small SigV4
   * transport that reads the execution role's credentials from the environment, as Lambda provides
   * them; the SDK's DynamoDB and S3 clients stay out of the bundle (module load about 40 ms instead
   * of 100 ms, docs/performance.md). `sdk`: the AWS SDK v3 clients (FIPS or dual-stack endpoints).
   * Sinks and operators' commands use the SDK either way.
   * @default 'lite'
   */
  readonly awsClient?: AwsClientKind;
  /**
   * Lock file whose directory is the bundling root.
   * @default - the nearest package-lock.json (or other lock file) above the working directory
   */
  readonly depsLockFilePath?: string;

  // Event source mapping
  /**
   * Kafka consumer group of the event source mapping. Cannot change after creation.
   * @default - the pipeline id
   */
  readonly consumerGroupId?: string;
  /**
   * Most records per invocation (up to 10,000). Larger batches mean fewer, larger epochs: fewer
   * checkpoints per record.
   * @default 1000
   */
  readonly batchSize?: number;
  /**
   * How long the pollers gather records before invoking (whole seconds, 0 to 5 minutes).
   * @default - unset: the Kafka event source default, 500 ms (which cannot be set explicitly, and
   *   cannot be restored once a value was set)
   */
  readonly maxBatchingWindow?: Duration;
  /**
   * Where a new consumer group starts. Ignored once the group has committed offsets.
   * @default StartingPosition.TRIM_HORIZON (the whole topic: state built from every record)
   */
  readonly startingPosition?: StartingPosition;
  /**
   * Start time (Unix seconds) with `StartingPosition.AT_TIMESTAMP`.
   * @default - none
   */
  readonly startingPositionTimestamp?: number;
  /**
   * Whether the mapping polls.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * Retries of a failed batch before it is discarded (provisioned mode).
   * @default - infinite: a batch is retried until it succeeds, which is what exactly-once state
   *   needs (poison records are quarantined by Tidemark, not discarded by the mapping)
   */
  readonly retryAttempts?: number;
  /**
   * Records older than this are discarded (provisioned mode).
   * @default - infinite
   */
  readonly maxRecordAge?: Duration;
  /**
   * Split a failed batch in two and retry each half (provisioned mode).
   * @default false
   */
  readonly bisectBatchOnError?: boolean;
  /**
   * Partial batch responses (`ReportBatchItemFailures`, provisioned mode): when some partitions of a
   * batch commit and others fail, only the failed partitions' records are delivered again instead of
   * the whole batch. Sets `TIDEMARK_REPORT_BATCH_ITEM_FAILURES` on the function to match.
   * @default - true with provisioned pollers, false without (the mapping does not offer it)
   */
  readonly reportBatchItemFailures?: boolean;
  /**
   * Destination of discarded batches (SQS, SNS, S3 or a Kafka topic).
   * @default - none
   */
  readonly onFailure?: IEventSourceDlq;
  /**
   * Event filter patterns, made with `FilterCriteria.filter({ value: … })` (filtered-out records
   * never reach the function; Tidemark sees their offsets as gaps, which it allows).
   * @default - none
   */
  readonly filters?: Array<Record<string, unknown>>;
  /**
   * Provisioned pollers (needed for retryAttempts, maxRecordAge, bisectBatchOnError and reportBatchItemFailures).
   * @default - on-demand pollers
   */
  readonly provisionedPollers?: ProvisionedPollerConfig;
  /**
   * Enhanced ESM metrics (event counts, error counts, Kafka consumer metrics), billed as custom metrics.
   * @default false
   */
  readonly esmMetrics?: boolean;

  // Observability
  /**
   * Create the dashboard and alarms.
   * @default true
   */
  readonly monitoring?: boolean;
  /**
   * SNS topic notified when an alarm fires or recovers.
   * @default - no alarm actions
   */
  readonly alarmTopic?: ITopic;
  /** @default - see TidemarkAlarmThresholds */
  readonly alarmThresholds?: TidemarkAlarmThresholds;
  /** @default - a generated name */
  readonly dashboardName?: string;

  // Outputs
  /**
   * The pipeline's Iceberg outputs (docs/iceberg.md): their tables, the scheduled committer (a
   * second function from the same entry, run on an EventBridge schedule), the DynamoDB catalog
   * table, and grants on those tables only.
   * @default - no Iceberg outputs
   */
  readonly iceberg?: TidemarkIcebergProps;
  /**
   * The pipeline's Kafka, DynamoDB and S3 outputs (docs/outputs.md): the sinks' settings
   * (`TIDEMARK_KAFKA_OUTPUT_*`, `TIDEMARK_DYNAMODB_OUTPUT_TABLE`, `TIDEMARK_S3_OUTPUT_BUCKET`) and
   * exactly the grants their deliveries need (docs/deployment.md#outputs-what-the-function-may-do).
   * @default - none: no output settings, no grants
   */
  readonly outputs?: TidemarkOutputs;

  // Time
  /**
   * Scheduled ticks (docs/time.md#idle-partitions): an EventBridge rule invokes the function with a
   * tick event, so timers of partitions that receive no records fire (and, when the processor opts in,
   * their event time advances by the wall clock). `true` for the defaults (every minute). With commits
   * in DynamoDB the function may then Scan the table (the tick lists the commit items).
   * @default - no ticks
   */
  readonly ticks?: boolean | TidemarkTicksProps;
}

/** Deploys one Tidemark pipeline. */
export class TidemarkPipeline extends Construct {
  readonly pipelineId: string;
  readonly prefix: string;
  readonly bucket: IBucket;
  readonly table: ITable;
  /** The bucket and table: created by this construct, or the supplied ones. */
  readonly storage: TidemarkStorage;
  readonly function: NodejsFunction;
  readonly role: IRole;
  readonly eventSourceMapping: EventSourceMapping;
  readonly monitoring: TidemarkMonitoring | undefined;
  /** The Iceberg committer and catalog, when the pipeline has Iceberg outputs. */
  readonly iceberg: TidemarkIceberg | undefined;
  /** The tick schedule, when `ticks` is set. */
  readonly ticks: TidemarkTicks | undefined;

  constructor(scope: Construct, id: string, props: TidemarkPipelineProps) {
    super(scope, id);
    if (!PIPELINE_ID_PATTERN.test(props.pipelineId)) {
      throw new Error(
        `pipelineId must match ${PIPELINE_ID_PATTERN}, got ${JSON.stringify(props.pipelineId)}`,
      );
    }
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const prefixIssue = prefixProblem(prefix);
    if (prefixIssue) throw new Error(`prefix ${prefixIssue}, got ${prefix}`);
    this.pipelineId = props.pipelineId;
    this.prefix = prefix;
    const pipeline = props.pipelineId;

    this.storage = new TidemarkStorage(this, 'Storage', {
      ...props.storage,
      bucket: props.bucket,
      table: props.table,
    });
    this.bucket = this.storage.bucket;
    this.table = this.storage.table;

    const db = props.commitDatabase;
    if (db) checkCommitDatabase(db);
    if (props.outputs) checkOutputs(props.outputs, db?.vpc);
    checkOutputEnvironment(props.outputs, props.environment);

    const logGroup = new LogGroup(this, 'Logs', { retention: props.logRetention ?? RetentionDays.ONE_MONTH });
    const role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Tidemark pipeline ${pipeline}: its checkpoints, its log group and its Kafka source only`,
    });
    this.role = role;
    logGroup.grantWrite(role);
    this.grantCheckpointAccess(role, db === undefined);
    if (db) {
      grantCommitDatabase(role, db);
      acknowledgeVpcAccessPolicy(this);
    }
    const outputs = props.outputs
      ? grantOutputs(role, props.outputs, {
          pipelineId: pipeline,
          topic: props.topic,
          bucket: this.bucket,
          inVpc: db !== undefined,
        })
      : undefined;

    const reserved = new Set<string>([
      ENV.bucket,
      ENV.table,
      ENV.pipeline,
      ENV.prefix,
      ENV.commitStore,
      ENV.reportBatchItemFailures,
    ]);
    const reportBatchItemFailures = props.reportBatchItemFailures ?? props.provisionedPollers !== undefined;
    const awsClient = props.awsClient ?? 'lite';
    if (reportBatchItemFailures && props.provisionedPollers === undefined) {
      throw new Error(
        'reportBatchItemFailures needs provisionedPollers (Kafka mappings offer it in provisioned mode)',
      );
    }
    if (db) for (const name of DATABASE_ENV) reserved.add(name);
    if (props.iceberg) {
      for (const name of [
        ENV.icebergCatalog,
        ENV.icebergWarehouse,
        ENV.icebergCatalogTable,
        ENV.icebergRestUri,
        ENV.icebergRestSigning,
      ])
        reserved.add(name);
    }
    for (const name of Object.keys(props.environment ?? {})) {
      if (reserved.has(name))
        throw new Error(`${name} is set by TidemarkPipeline; do not pass it in environment`);
    }
    const environment: Record<string, string> = {
      // Stack traces point into the sources, not the minified bundle (costs cold-start time).
      ...(props.enableSourceMaps ? { NODE_OPTIONS: '--enable-source-maps' } : {}),
      // RDS server certificates chain to the RDS CAs, which Lambda's Node.js keeps in this bundle.
      ...(db && db.engine !== 'redis' && db.tls !== 'off'
        ? { NODE_EXTRA_CA_CERTS: LAMBDA_RDS_CA_BUNDLE }
        : {}),
      ...props.environment,
      ...(db ? commitDatabaseEnvironment(db) : {}),
      [ENV.bucket]: this.bucket.bucketName,
      [ENV.table]: this.table.tableName,
      [ENV.pipeline]: pipeline,
      [ENV.prefix]: prefix,
      ...(awsClient !== 'lite' ? { [ENV.awsClient]: awsClient } : {}),
      ...(reportBatchItemFailures ? { [ENV.reportBatchItemFailures]: 'true' } : {}),
    };
    const bundling: BundlingOptions = {
      forceDockerBundling: false,
      // The sources are ES modules importing `.ts` files: bundle to one ES module for Node 24.
      format: OutputFormat.ESM,
      target: 'node24',
      // CommonJS builds of dependencies first: their Node built-ins are then required when first used,
      // not imported at the top of the bundle, where the ES module facade of each built-in is built at
      // cold start (node:http's alone loads Node's fetch implementation, tens of milliseconds).
      mainFields: ['main', 'module'],
      // CommonJS dependencies bundled into an ES module still call require() for Node built-ins.
      banner:
        "import { createRequire as __tidemarkRequire } from 'node:module'; const require = __tidemarkRequire(import.meta.url);",
      minify: true,
      sourceMap: true,
      // Bundle the SDK versions the engine was tested with, not whatever the runtime ships.
      bundleAwsSDK: true,
      ...props.bundling,
      // Packages that offer both builds list their ES module build first, under the `module`
      // condition esbuild honours by default; naming a condition of our own turns that default off,
      // so the `node` entry (CommonJS) is taken. The SDK's ES module build imports Node built-ins at
      // the top of the bundle (node:stream, node:fs, node:os, …), each built at cold start.
      esbuildArgs: { '--conditions': 'node', ...props.bundling?.esbuildArgs },
      // Only the chosen commit store's driver goes in the bundle (lib/store/stores.ts).
      define: {
        ...props.bundling?.define,
        [BUNDLED_COMMIT_STORE_DEFINE]: JSON.stringify(db?.engine ?? 'dynamodb'),
        [BUNDLED_AWS_CLIENT_DEFINE]: JSON.stringify(awsClient),
      },
    };
    this.iceberg = props.iceberg
      ? new TidemarkIceberg(this, 'Iceberg', {
          ...props.iceberg,
          pipelineId: pipeline,
          entry: props.entry,
          bundling,
          depsLockFilePath: props.depsLockFilePath,
          logRetention: props.logRetention,
          pipelineRole: role,
          environment,
          bucket: this.bucket,
          removalPolicy: props.storage?.removalPolicy,
          monitoring: props.monitoring,
          alarmTopic: props.alarmTopic,
        })
      : undefined;
    this.function = new NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: props.handler ?? 'handler',
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 1024,
      timeout: props.timeout ?? Duration.minutes(2),
      role,
      logGroup,
      description: `Tidemark pipeline ${pipeline} (topic ${props.topic})`,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      depsLockFilePath: props.depsLockFilePath,
      ...(db
        ? {
            vpc: db.vpc,
            vpcSubnets: db.vpcSubnets,
            securityGroups: [...new Set([...db.securityGroups, ...(outputs?.vpc?.securityGroups ?? [])])],
          }
        : (outputs?.vpc ?? {})),
      environment: { ...environment, ...this.iceberg?.environment, ...outputs?.environment },
      bundling,
    });

    const consumerGroupId = props.consumerGroupId ?? pipeline;
    this.eventSourceMapping = createKafkaMapping(
      this,
      'EventSourceMapping',
      this.function,
      role,
      props.source,
      {
        topic: props.topic,
        consumerGroupId,
        batchSize: props.batchSize ?? ESM.defaultBatchSize,
        maxBatchingWindow: props.maxBatchingWindow,
        startingPosition: props.startingPosition ?? StartingPosition.TRIM_HORIZON,
        startingPositionTimestamp: props.startingPositionTimestamp,
        enabled: props.enabled ?? true,
        retryAttempts: props.retryAttempts,
        maxRecordAge: props.maxRecordAge,
        bisectBatchOnError: props.bisectBatchOnError,
        reportBatchItemFailures,
        onFailure: props.onFailure,
        filters: props.filters,
        provisionedPollers: props.provisionedPollers,
        esmMetrics: props.esmMetrics ?? false,
      },
    );
    this.ticks = props.ticks
      ? new TidemarkTicks(this, 'Ticks', {
          ...(props.ticks === true ? {} : props.ticks),
          pipelineId: pipeline,
          function: this.function,
          role,
          table: db ? undefined : this.table,
        })
      : undefined;
    this.monitoring =
      props.monitoring === false
        ? undefined
        : new TidemarkMonitoring(this, 'Monitoring', {
            pipelineId: pipeline,
            function: this.function,
            alarmTopic: props.alarmTopic,
            thresholds: props.alarmThresholds,
            dashboardName: props.dashboardName,
          });
  }

  /** A Tidemark metric of this pipeline (dimensions `service=tidemark`, `Pipeline=<id>`), 5-minute period. */
  metric(name: MetricName, options: MetricOptions = {}): Metric {
    return tidemarkMetric(this.pipelineId, name, options);
  }

  /**
   * S3: objects under `<prefix>/<pipeline>/` only (get, put, delete, abort multipart uploads) and
   * listing under that prefix. DynamoDB (when it holds the commits): GetItem and PutItem on the
   * pipeline's commit items only (`dynamodb:LeadingKeys` = `task#<pipeline>#*`). Nothing else: the
   * engine needs nothing else.
   */
  private grantCheckpointAccess(role: Role, commitsInTable: boolean): void {
    const objectPrefix = pipelinePrefix(this.prefix, this.pipelineId);
    const objects = this.bucket.arnForObjects(`${objectPrefix}*`);
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'CheckpointObjects',
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [objects],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'CheckpointListing',
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${objectPrefix}*`] } },
      }),
    );
    acknowledgeWildcardResource(
      role,
      objects,
      `Snapshot and quarantine object keys are created at run time (epoch, attempt id, offset); the wildcard is confined to this pipeline's prefix ${objectPrefix}.`,
    );
    if (commitsInTable) {
      role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'CommitItems',
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
          resources: [this.table.tableArn],
          conditions: {
            'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${taskPkPrefix(this.pipelineId)}*`] },
          },
        }),
      );
    }
    const keys = [this.bucket.encryptionKey, commitsInTable ? this.table.encryptionKey : undefined].filter(
      (k): k is IKey => k !== undefined,
    );
    for (const key of keys) key.grantEncryptDecrypt(role);
    if (keys.length > 0) {
      for (const action of ['kms:ReEncrypt*', 'kms:GenerateDataKey*']) {
        acknowledgeWildcardAction(
          role,
          action,
          'Customer-managed KMS key of the supplied checkpoint bucket or table: the standard encrypt/decrypt grant, on that key only.',
        );
      }
    }
  }
}
