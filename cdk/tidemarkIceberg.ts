/**
 * The Iceberg side of a pipeline (docs/iceberg.md): the scheduled committer function on an
 * EventBridge schedule, Iceberg's DynamoDB catalog table (unless one is given), and least-privilege
 * grants: the pipeline function may write its tables' files and read the catalog items of its
 * tables; the committer may also swap them, and delete the staged records and expired files. Both
 * touch only `<warehouse>/<namespace>.db/<table>/` (the DynamoDB catalog's table locations) or
 * `<warehouse>/<namespace>/<table>/` (the S3 Hadoop layout) and the catalog items whose key is the
 * table (`<namespace>.<table>`) or its namespace item.
 *
 * Latency: a row is in the table within (its epoch's delivery + `commitInterval` + the commit),
 * one commit per table and run however many epochs were staged.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { AttributeType, BillingMode, type ITable, ProjectionType, Table } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { type IRole, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { ENV } from '../lib/config/env.ts';
import { acknowledgeWildcardAction, acknowledgeWildcardResource } from './nagAcknowledgements.ts';

/** Iceberg outputs of a pipeline, as `TidemarkPipeline` takes them (`iceberg` prop). */
export interface TidemarkIcebergProps {
  /** The tables the pipeline's `icebergOutput`s write, each `namespace.name`. */
  readonly tables: readonly string[];
  /**
   * Name of the committer handler the pipeline's entry exports
   * (`export const commitIceberg = createIcebergCommitter(processor)`).
   * @default 'commitIceberg'
   */
  readonly committerHandler?: string;
  /**
   * How often the committer runs: rows become visible within (delivery + this + the commit).
   * Whole minutes.
   * @default Duration.minutes(1)
   */
  readonly commitInterval?: Duration;
  /**
   * The catalog: `dynamodb` (Iceberg's DynamoDB catalog: Spark and Flink read and write it), `s3`
   * (Hadoop layout on S3) or `rest` (an Iceberg REST catalog: AWS Glue, S3 Tables; see `rest`).
   * @default 'dynamodb'
   */
  readonly catalog?: 'dynamodb' | 's3' | 'rest';
  /**
   * The REST catalog, with `catalog: 'rest'`. The construct sets the settings on both functions but
   * grants nothing for it: the catalog chooses the tables' locations and authorizes with its own
   * permissions (Glue: `glue:*Table*`, `glue:GetDatabase`, `glue:GetCatalog`, Lake Formation data
   * access; S3 Tables: `s3tables:*`): add them to `role` (the pipeline's) and `committerRole`.
   */
  readonly rest?: {
    /** e.g. `https://glue.<region>.amazonaws.com/iceberg`. */
    readonly uri: string;
    /** Glue: the account id; S3 Tables: the table bucket ARN. */
    readonly warehouse: string;
    /** @default 'none' */
    readonly signing?: 'none' | 'glue' | 's3tables';
  };
  /**
   * The bucket of the warehouse.
   * @default - the pipeline's bucket
   */
  readonly warehouseBucket?: IBucket;
  /**
   * Key prefix of the warehouse in that bucket (no leading or trailing `/`).
   * @default 'iceberg'
   */
  readonly warehousePrefix?: string;
  /**
   * An existing DynamoDB catalog table (hash key `identifier`, range key `namespace`, strings).
   * @default - a new table with Iceberg's key schema and its `namespace-identifier` index
   */
  readonly catalogTable?: ITable;
  /**
   * Memory of the committer, in MiB.
   * @default 1024
   */
  readonly committerMemorySize?: number;
  /**
   * Timeout of the committer (it commits at most 10,000 staged epochs per table and run).
   * @default Duration.minutes(5)
   */
  readonly committerTimeout?: Duration;
}

/** What the committer's function is built from (the pipeline's). */
export interface TidemarkIcebergFunctionProps {
  readonly pipelineId: string;
  readonly entry: string;
  readonly bundling: BundlingOptions;
  readonly depsLockFilePath?: string;
  readonly logRetention?: RetentionDays;
  /** The pipeline function's role: it gets the delivery grants. */
  readonly pipelineRole: IRole;
  /** Environment shared with the pipeline function (settings of the handler module). */
  readonly environment: Record<string, string>;
  readonly bucket: IBucket;
  readonly removalPolicy?: RemovalPolicy;
  /** Create the committer's alarm. Default true. */
  readonly monitoring?: boolean;
  /** Notified when the alarm fires or recovers. */
  readonly alarmTopic?: ITopic;
}

const TABLE = /^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)+$/;

/** Checks the Iceberg props (throws on misuse). */
export function checkIcebergProps(props: TidemarkIcebergProps): void {
  if (props.tables.length === 0) throw new Error('iceberg.tables must name at least one table');
  for (const t of props.tables) {
    if (!TABLE.test(t)) throw new Error(`iceberg.tables: ${JSON.stringify(t)} is not namespace.name`);
  }
  const prefix = props.warehousePrefix ?? 'iceberg';
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(prefix)) {
    throw new Error(`iceberg.warehousePrefix must be a relative key prefix, got ${JSON.stringify(prefix)}`);
  }
  if ((props.catalog === 'rest') !== (props.rest !== undefined)) {
    throw new Error("iceberg.rest is required with catalog: 'rest', and only then");
  }
  if (props.rest && !/^https?:\/\/[^/]+/.test(props.rest.uri)) {
    throw new Error(`iceberg.rest.uri must be an http(s) URI, got ${JSON.stringify(props.rest.uri)}`);
  }
  const minutes = (props.commitInterval ?? Duration.minutes(1)).toMinutes({ integral: false });
  if (!Number.isInteger(minutes) || minutes < 1) {
    throw new Error('iceberg.commitInterval must be a whole number of minutes, at least 1');
  }
}

/** Iceberg's DynamoDB catalog table (its own `DynamoDbCatalog` creates the same on first use). */
function catalogTable(scope: Construct, removalPolicy: RemovalPolicy): Table {
  const table = new Table(scope, 'CatalogTable', {
    partitionKey: { name: 'identifier', type: AttributeType.STRING },
    sortKey: { name: 'namespace', type: AttributeType.STRING },
    billingMode: BillingMode.PAY_PER_REQUEST,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    deletionProtection: true,
    removalPolicy,
  });
  table.addGlobalSecondaryIndex({
    indexName: 'namespace-identifier',
    partitionKey: { name: 'namespace', type: AttributeType.STRING },
    sortKey: { name: 'identifier', type: AttributeType.STRING },
    projectionType: ProjectionType.KEYS_ONLY,
  });
  return table;
}

/** The scheduled Iceberg committer of one pipeline and the grants of both functions. */
export class TidemarkIceberg extends Construct {
  readonly committer: NodejsFunction;
  readonly committerRole: IRole;
  readonly schedule: Rule;
  /**
   * Fires when the committer failed in 3 consecutive 5-minute periods: staged epochs are waiting and
   * rows are not becoming visible (conflicts it retried itself do not count). Undefined without monitoring.
   */
  readonly committerErrorsAlarm: Alarm | undefined;
  /** The DynamoDB catalog table (undefined with the `s3` catalog). */
  readonly catalogTable: ITable | undefined;
  /** `s3://bucket/prefix` (the REST catalog's warehouse with `catalog: 'rest'`). */
  readonly warehouse: string;
  /** The environment both functions get (`TIDEMARK_ICEBERG_*`). */
  readonly environment: Record<string, string>;

  constructor(scope: Construct, id: string, props: TidemarkIcebergProps & TidemarkIcebergFunctionProps) {
    super(scope, id);
    checkIcebergProps(props);
    const kind = props.catalog ?? 'dynamodb';
    const bucket = props.warehouseBucket ?? props.bucket;
    const prefix = props.warehousePrefix ?? 'iceberg';
    this.warehouse = props.rest?.warehouse ?? `s3://${bucket.bucketName}/${prefix}`;
    this.catalogTable =
      kind === 'dynamodb'
        ? (props.catalogTable ?? catalogTable(this, props.removalPolicy ?? RemovalPolicy.RETAIN))
        : undefined;
    this.environment = props.rest
      ? {
          [ENV.icebergCatalog]: 'rest',
          [ENV.icebergRestUri]: props.rest.uri,
          [ENV.icebergWarehouse]: props.rest.warehouse,
          [ENV.icebergRestSigning]: props.rest.signing ?? 'none',
        }
      : {
          [ENV.icebergCatalog]: kind,
          [ENV.icebergWarehouse]: this.warehouse,
          ...(this.catalogTable ? { [ENV.icebergCatalogTable]: this.catalogTable.tableName } : {}),
        };

    const logGroup = new LogGroup(this, 'Logs', { retention: props.logRetention ?? RetentionDays.ONE_MONTH });
    const role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Tidemark pipeline ${props.pipelineId}: Iceberg committer of its tables only`,
    });
    this.committerRole = role;
    logGroup.grantWrite(role);
    const tables = props.tables.map((t) => {
      const dot = t.lastIndexOf('.');
      return { namespace: t.slice(0, dot), name: t.slice(dot + 1), id: t };
    });
    const locations = tables.map((t) =>
      kind === 'dynamodb'
        ? `${prefix}/${t.namespace}.db/${t.name}/`
        : `${prefix}/${t.namespace.split('.').join('/')}/${t.name}/`,
    );
    if (kind !== 'rest') {
      this.grant(props.pipelineRole, bucket, locations, tables, false);
      this.grant(role, bucket, locations, tables, true);
    }

    this.committer = new NodejsFunction(this, 'Committer', {
      entry: props.entry,
      handler: props.committerHandler ?? 'commitIceberg',
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.committerMemorySize ?? 1024,
      timeout: props.committerTimeout ?? Duration.minutes(5),
      role,
      logGroup,
      description: `Tidemark pipeline ${props.pipelineId}: commits staged Iceberg epochs (${props.tables.join(', ')})`,
      depsLockFilePath: props.depsLockFilePath,
      environment: {
        ...props.environment,
        ...this.environment,
        [ENV.pipeline]: props.pipelineId,
        [ENV.bucket]: props.bucket.bucketName,
      },
      bundling: props.bundling,
    });
    this.schedule = new Rule(this, 'Schedule', {
      description: `Tidemark pipeline ${props.pipelineId}: Iceberg commits`,
      schedule: Schedule.rate(props.commitInterval ?? Duration.minutes(1)),
      // A failed run is not retried by EventBridge: the next scheduled run does the same work.
      targets: [new LambdaFunction(this.committer, { retryAttempts: 0 })],
    });
    this.committerErrorsAlarm =
      props.monitoring === false
        ? undefined
        : new Alarm(this, 'CommitterErrors', {
            metric: this.committer.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
            threshold: 1,
            evaluationPeriods: 3,
            datapointsToAlarm: 3,
            comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treatMissingData: TreatMissingData.NOT_BREACHING,
            alarmDescription: `Tidemark pipeline ${props.pipelineId}: the Iceberg committer failed for 15 minutes; staged epochs are not becoming visible. See its log (one JSON line per table and run) and docs/iceberg.md.`,
          });
    if (this.committerErrorsAlarm && props.alarmTopic) {
      this.committerErrorsAlarm.addAlarmAction(new SnsAction(props.alarmTopic));
      this.committerErrorsAlarm.addOkAction(new SnsAction(props.alarmTopic));
    }
  }

  /**
   * S3: objects under each table's location (the pipeline function: get and put — data files,
   * staged records, a new table's first metadata; the committer also deletes: staged records,
   * its failed attempts' files, expired manifests and data files, metadata files out of the log);
   * listing under them (the S3 Hadoop layout finds versions by listing; the committer lists staged
   * records).
   * DynamoDB catalog: the items of these tables and of their namespaces (GetItem, PutItem; the
   * committer also UpdateItem, the swap).
   */
  private grant(
    role: IRole,
    bucket: IBucket,
    locations: readonly string[],
    tables: ReadonlyArray<{ namespace: string; id: string }>,
    committer: boolean,
  ): void {
    const objects = locations.map((l) => bucket.arnForObjects(`${l}*`));
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: committer ? 'IcebergTableFiles' : 'IcebergDelivery',
        actions: ['s3:GetObject', 's3:PutObject', ...(committer ? ['s3:DeleteObject'] : [])],
        resources: objects,
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: committer ? 'IcebergTableListing' : 'IcebergDeliveryListing',
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': locations.map((l) => `${l}*`) } },
      }),
    );
    for (const o of objects) {
      acknowledgeWildcardResource(
        role,
        o,
        'Iceberg data, metadata and staged-epoch file names are made at run time (task, epoch, snapshot id, UUIDs); the wildcard is confined to one table location.',
      );
    }
    const keys: IKey[] = [];
    if (bucket.encryptionKey) keys.push(bucket.encryptionKey);
    if (this.catalogTable) {
      role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: committer ? 'IcebergCatalogCommit' : 'IcebergCatalogRead',
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem', ...(committer ? ['dynamodb:UpdateItem'] : [])],
          resources: [this.catalogTable.tableArn],
          conditions: {
            'ForAllValues:StringEquals': {
              'dynamodb:LeadingKeys': [...new Set([...tables.map((t) => t.id), 'NAMESPACE'])],
            },
          },
        }),
      );
      if (this.catalogTable.encryptionKey) keys.push(this.catalogTable.encryptionKey);
    }
    for (const key of keys) key.grantEncryptDecrypt(role);
    if (keys.length > 0) {
      for (const action of ['kms:ReEncrypt*', 'kms:GenerateDataKey*']) {
        acknowledgeWildcardAction(
          role,
          action,
          'Customer-managed KMS key of the supplied warehouse bucket or catalog table: the standard encrypt/decrypt grant, on that key only.',
        );
      }
    }
  }
}
