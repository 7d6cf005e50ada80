/**
 * What a pipeline's Kafka, DynamoDB and S3 outputs need (docs/outputs.md, docs/deployment.md): the
 * settings the sinks read (`TIDEMARK_KAFKA_OUTPUT_*`, `TIDEMARK_DYNAMODB_OUTPUT_TABLE`,
 * `TIDEMARK_S3_OUTPUT_BUCKET`) and exactly the grants their deliveries use, on the function's role:
 *
 * - Kafka on Amazon MSK with IAM: connect to the output cluster; write and describe the output
 *   topics; describe and write the pipeline's transactional ids (`<prefix><pipeline>.<topic>.*`,
 *   one per input partition); describe and use the marker group (one exact group) and read the
 *   marker topic (the input topic, or `markerTopic`): `TxnOffsetCommit` needs the group and READ on
 *   the topic, `OffsetFetch` DESCRIBE on both. With SASL/SCRAM: reading the secret (Kafka ACLs, not
 *   IAM, authorize the rest; docs/deployment.md lists them).
 * - DynamoDB: PutItem, UpdateItem and DeleteItem on the output tables only (the sink's
 *   `TransactWriteItems` holds Put, Update and Delete actions, each authorized as its single-item
 *   action; it uses no ConditionCheck).
 * - S3: PutObject and GetObject (HEAD) under `<prefix>/<pipeline>/` of the output bucket, and
 *   ListBucket on that prefix only, so that a HEAD of a manifest not yet written answers 404, not 403.
 * - The customer-managed KMS keys of those tables and that bucket, when they have one.
 *
 * `cdk/` imports no runtime code: the sinks' defaults are repeated here, and a test checks they agree.
 */
import { Stack, Token } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { ISecurityGroup, IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import { ManagedPolicy, PolicyStatement, type Role } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { ENV } from '../lib/config/env.ts';
import { acknowledgeVpcAccessPolicy } from './commitDatabase.ts';
import { mskResourceArn } from './kafkaSource.ts';
import { acknowledgeWildcardAction, acknowledgeWildcardResource } from './nagAcknowledgements.ts';

/** The sinks' own defaults (lib/sink/kafka/kafkaOutput.ts, lib/sink/s3/s3Output.ts). */
export const OUTPUT_DEFAULTS = {
  kafkaTransactionalIdPrefix: 'tidemark.',
  s3Prefix: 'tidemark-outputs',
} as const;

/** How the function authenticates to the Kafka output cluster. */
export type KafkaOutputAuthentication =
  /** Amazon MSK with IAM access control: the role gets the `kafka-cluster:*` actions it needs. */
  | { readonly kind: 'msk-iam'; readonly clusterArn: string }
  /**
   * SASL/SCRAM with credentials in a Secrets Manager secret (`{"username", "password"}`, MSK's form):
   * the role may read it (and decrypt it through Secrets Manager, when imported with its key).
   * Kafka ACLs authorize the rest (docs/deployment.md).
   */
  | {
      readonly kind: 'scram';
      readonly secret: ISecret;
      /** @default 'scram-sha-512' (the only one MSK offers) */
      readonly mechanism?: 'scram-sha-512' | 'scram-sha-256';
    }
  /** No SASL (self-managed brokers authorizing by network): no grant. */
  | { readonly kind: 'none' };

/** Where the function runs when the output brokers are only reachable inside a VPC (Amazon MSK). */
export interface TidemarkFunctionVpc {
  readonly vpc: IVpc;
  /**
   * Subnets of the function's network interfaces (they also need a route to S3, DynamoDB and, with a
   * secret, Secrets Manager: VPC endpoints or a NAT).
   * @default - the VPC's private subnets with egress
   */
  readonly vpcSubnets?: SubnetSelection;
  /** Security groups of the function; the brokers' must let them in. */
  readonly securityGroups: ISecurityGroup[];
}

/** The cluster of the pipeline's `kafkaOutput`s (one cluster, one transactional id prefix). */
export interface TidemarkKafkaOutputs {
  /**
   * Bootstrap brokers, `host:port` (`TIDEMARK_KAFKA_OUTPUT_BROKERS`): for MSK, the cluster's
   * bootstrap brokers for the chosen authentication (IAM: port 9098, SCRAM: 9096).
   */
  readonly brokers: readonly string[];
  /** Every topic the outputs write. */
  readonly topics: readonly string[];
  readonly authentication: KafkaOutputAuthentication;
  /**
   * The outputs' `cluster.transactionalIdPrefix` (the construct cannot read the processor: keep them equal).
   * @default 'tidemark.'
   */
  readonly transactionalIdPrefix?: string;
  /**
   * The outputs' `cluster.markerTopic`, when the input topic is not in the output cluster.
   * @default - none: markers are kept on the input topic
   */
  readonly markerTopic?: string;
  /**
   * TLS to the brokers (`TIDEMARK_KAFKA_OUTPUT_TLS`); always on with MSK IAM.
   * @default true
   */
  readonly tls?: boolean;
  /**
   * The VPC the function must run in to reach the brokers. With `commitDatabase`, the same VPC.
   * @default - none (brokers reachable from Lambda's network)
   */
  readonly vpc?: TidemarkFunctionVpc;
}

/** The tables of the pipeline's `dynamoOutput`s. */
export interface TidemarkDynamoOutputs {
  /**
   * Every table the outputs write. The first is `TIDEMARK_DYNAMODB_OUTPUT_TABLE` (the table of
   * outputs that name none); pass the names of others in `environment` for `table: { env }`.
   */
  readonly tables: readonly ITable[];
}

/** Where the pipeline's `s3Output`s write. */
export interface TidemarkS3Outputs {
  /**
   * The output bucket (`TIDEMARK_S3_OUTPUT_BUCKET`; with its KMS key attached if it uses SSE-KMS).
   * @default - the pipeline's bucket
   */
  readonly bucket?: IBucket;
  /**
   * The outputs' `prefix` (no leading or trailing `/`; keep them equal): the function may write
   * `<prefix>/<pipelineId>/*` only.
   * @default 'tidemark-outputs'
   */
  readonly prefix?: string;
}

/** The outputs of a pipeline, by sink. Each one declared gets its settings and grants; none, nothing. */
export interface TidemarkOutputs {
  readonly kafka?: TidemarkKafkaOutputs;
  readonly dynamodb?: TidemarkDynamoOutputs;
  readonly s3?: TidemarkS3Outputs;
}

/** What a pipeline adds to its function for its outputs. */
export interface OutputWiring {
  /** The sinks' settings. */
  readonly environment: Record<string, string>;
  /** Where the function runs, when the Kafka outputs need a VPC. */
  readonly vpc: TidemarkFunctionVpc | undefined;
}

/** Settings the construct sets for declared outputs (refused in `environment`). */
export function outputEnvironmentNames(outputs: TidemarkOutputs | undefined): string[] {
  return [
    ...(outputs?.kafka
      ? [ENV.kafkaOutputBrokers, ENV.kafkaOutputTls, ENV.kafkaOutputSaslMechanism, ENV.kafkaOutputSecret]
      : []),
    ...(outputs?.dynamodb ? [ENV.dynamodbOutputTable] : []),
    ...(outputs?.s3 ? [ENV.s3OutputBucket] : []),
  ];
}

const KAFKA_NAME = /^[A-Za-z0-9._-]{1,249}$/;
const TRANSACTIONAL_ID_PREFIX = /^[A-Za-z0-9._:-]{0,128}$/;
const KEY_PREFIX = /^[A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*$/;

/** Checks the outputs props (throws on misuse, naming the prop). */
export function checkOutputs(outputs: TidemarkOutputs, commitDatabaseVpc: IVpc | undefined): void {
  const k = outputs.kafka;
  if (k) {
    if (k.brokers.length === 0) throw new Error('outputs.kafka.brokers must name at least one broker');
    if (k.topics.length === 0) throw new Error('outputs.kafka.topics must name the output topics');
    for (const t of [...k.topics, ...(k.markerTopic === undefined ? [] : [k.markerTopic])]) {
      if (!Token.isUnresolved(t) && (!KAFKA_NAME.test(t) || t === '.' || t === '..')) {
        throw new Error(`outputs.kafka: ${JSON.stringify(t)} is not a Kafka topic name`);
      }
    }
    const prefix = k.transactionalIdPrefix ?? OUTPUT_DEFAULTS.kafkaTransactionalIdPrefix;
    if (!TRANSACTIONAL_ID_PREFIX.test(prefix)) {
      throw new Error(
        `outputs.kafka.transactionalIdPrefix must match ${TRANSACTIONAL_ID_PREFIX}, got ${JSON.stringify(prefix)}`,
      );
    }
    if (k.authentication.kind === 'msk-iam' && k.tls === false) {
      throw new Error('outputs.kafka: MSK IAM authentication needs TLS');
    }
    if (k.vpc && k.vpc.securityGroups.length === 0) {
      throw new Error('outputs.kafka.vpc needs at least one security group');
    }
    if (k.vpc && commitDatabaseVpc && k.vpc.vpc !== commitDatabaseVpc) {
      throw new Error(
        'outputs.kafka.vpc and commitDatabase.vpc differ: a function runs in one VPC (give both the same IVpc)',
      );
    }
  }
  if (outputs.dynamodb && outputs.dynamodb.tables.length === 0) {
    throw new Error('outputs.dynamodb.tables must name at least one table');
  }
  const s3Prefix = outputs.s3?.prefix;
  if (s3Prefix !== undefined && !KEY_PREFIX.test(s3Prefix)) {
    throw new Error(
      `outputs.s3.prefix must be a relative key prefix without leading or trailing '/', got ${JSON.stringify(s3Prefix)}`,
    );
  }
}

export interface OutputGrantTarget {
  readonly pipelineId: string;
  /** The input topic (it names the transactional ids and, without `markerTopic`, holds the markers). */
  readonly topic: string;
  /** The pipeline's bucket (the S3 outputs' default). */
  readonly bucket: IBucket;
  /** True when the function is already in a VPC (`commitDatabase`), with its VPC access policy. */
  readonly inVpc: boolean;
}

/** Grants `role` what the declared outputs need; returns their settings and network placement. */
export function grantOutputs(role: Role, outputs: TidemarkOutputs, target: OutputGrantTarget): OutputWiring {
  const environment: Record<string, string> = {};
  const keys: IKey[] = [];
  let vpc: TidemarkFunctionVpc | undefined;
  if (outputs.kafka) {
    Object.assign(environment, grantKafka(role, outputs.kafka, target));
    vpc = outputs.kafka.vpc;
    if (vpc && !target.inVpc) {
      // The function's network interfaces (CDK adds this policy only to roles it creates).
      role.addManagedPolicy(
        ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'),
      );
      acknowledgeVpcAccessPolicy(role);
    }
  }
  if (outputs.dynamodb) {
    const tables = outputs.dynamodb.tables;
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'DynamoOutputItems',
        actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        resources: tables.map((t) => t.tableArn),
      }),
    );
    environment[ENV.dynamodbOutputTable] = tables[0]!.tableName;
    for (const t of tables) if (t.encryptionKey) keys.push(t.encryptionKey);
  }
  if (outputs.s3) {
    const bucket = outputs.s3.bucket ?? target.bucket;
    const prefix = `${outputs.s3.prefix ?? OUTPUT_DEFAULTS.s3Prefix}/${target.pipelineId}/`;
    const objects = bucket.arnForObjects(`${prefix}*`);
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'S3OutputObjects',
        actions: ['s3:PutObject', 's3:GetObject'],
        resources: [objects],
      }),
    );
    // A HEAD of a missing key answers 403 without ListBucket, 404 with it (S3 evaluates the
    // permission with the key as `s3:prefix`): the sink HEADs a large epoch's manifest before writing it.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'S3OutputListing',
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
      }),
    );
    acknowledgeWildcardResource(
      role,
      objects,
      `S3 output object keys are made at run time (output name, task, epoch, part); the wildcard is confined to this pipeline's output prefix ${prefix}.`,
    );
    environment[ENV.s3OutputBucket] = bucket.bucketName;
    if (bucket.encryptionKey) keys.push(bucket.encryptionKey);
  }
  for (const key of new Set(keys)) key.grantEncryptDecrypt(role);
  if (keys.length > 0) {
    for (const action of ['kms:ReEncrypt*', 'kms:GenerateDataKey*']) {
      acknowledgeWildcardAction(
        role,
        action,
        'Customer-managed KMS key of a DynamoDB output table or of the S3 output bucket: the standard encrypt/decrypt grant, on that key only.',
      );
    }
  }
  return { environment, vpc };
}

/** Kafka: the settings, and the IAM actions (MSK IAM) or the secret (SCRAM). */
function grantKafka(role: Role, k: TidemarkKafkaOutputs, target: OutputGrantTarget): Record<string, string> {
  const auth = k.authentication;
  const env: Record<string, string> = {
    [ENV.kafkaOutputBrokers]: k.brokers.join(','),
    [ENV.kafkaOutputTls]: String(auth.kind === 'msk-iam' ? true : (k.tls ?? true)),
  };
  if (auth.kind === 'msk-iam') {
    env[ENV.kafkaOutputSaslMechanism] = 'aws-iam';
    const cluster = auth.clusterArn;
    const prefix = k.transactionalIdPrefix ?? OUTPUT_DEFAULTS.kafkaTransactionalIdPrefix;
    // lib/sink/kafka/marker.ts: `<prefix><pipeline>.<topic>.<partition>`, and the marker slot.
    const transactionalIds = mskResourceArn(
      cluster,
      'transactional-id',
      `${prefix}${target.pipelineId}.${target.topic}.*`,
    );
    const group = `${prefix}${target.pipelineId}.outputs${k.markerTopic ? `.${target.topic}` : ''}`;
    const markerTopic = k.markerTopic ?? target.topic;
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'KafkaOutputCluster',
        actions: ['kafka-cluster:Connect'],
        resources: [cluster],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'KafkaOutputTopics',
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
        resources: k.topics.map((t) => mskResourceArn(cluster, 'topic', t)),
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'KafkaOutputTransactionalIds',
        actions: ['kafka-cluster:DescribeTransactionalId', 'kafka-cluster:AlterTransactionalId'],
        resources: [transactionalIds],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'KafkaOutputMarkerGroup',
        actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
        resources: [mskResourceArn(cluster, 'group', group)],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'KafkaOutputMarkerTopic',
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
        resources: [mskResourceArn(cluster, 'topic', markerTopic)],
      }),
    );
    acknowledgeWildcardResource(
      role,
      transactionalIds,
      `One Kafka transactional id per input partition of this pipeline (partitions are not known at synthesis); the wildcard is confined to ${prefix}${target.pipelineId}.${target.topic}.`,
    );
  } else if (auth.kind === 'scram') {
    env[ENV.kafkaOutputSaslMechanism] = auth.mechanism ?? 'scram-sha-512';
    env[ENV.kafkaOutputSecret] = auth.secret.secretArn;
    grantSecretValue(role, auth.secret);
  }
  return env;
}

/** GetSecretValue on the secret (the sink reads it once per container), decrypting only through Secrets Manager. */
function grantSecretValue(role: Role, secret: ISecret): void {
  role.addToPrincipalPolicy(
    new PolicyStatement({
      sid: 'KafkaOutputSecret',
      actions: ['secretsmanager:GetSecretValue'],
      resources: [secret.secretFullArn ?? `${secret.secretArn}-??????`],
    }),
  );
  if (secret.encryptionKey) {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'KafkaOutputSecretKey',
        actions: ['kms:Decrypt'],
        resources: [secret.encryptionKey.keyArn],
        conditions: {
          StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(role).region}.amazonaws.com` },
        },
      }),
    );
  }
}

/** Refuses settings the construct sets for the declared outputs. */
export function checkOutputEnvironment(
  outputs: TidemarkOutputs | undefined,
  environment: Readonly<Record<string, string>> | undefined,
): void {
  const wired = new Set(outputEnvironmentNames(outputs));
  for (const name of Object.keys(environment ?? {})) {
    if (wired.has(name))
      throw new Error(`${name} is set by TidemarkPipeline from outputs; do not pass it in environment`);
  }
}
