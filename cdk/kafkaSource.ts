/**
 * The Kafka side of a Tidemark pipeline: an Amazon MSK cluster or a self-managed Kafka cluster, the
 * event source mapping (ESM) that feeds the function, and exactly the permissions that ESM needs on
 * the function's role (no AWS managed policy: `AWSLambdaMSKExecutionRole` grants kafka and logs
 * actions on every resource).
 */
import { type Duration, Fn, Stack, Token } from 'aws-cdk-lib';
import type { ISecurityGroup, IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import {
  EventSourceMapping,
  type IEventSourceDlq,
  type IFunction,
  MetricType,
  type ProvisionedPollerConfig,
  type SourceAccessConfiguration,
  SourceAccessConfigurationType,
  type StartingPosition,
} from 'aws-cdk-lib/aws-lambda';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { acknowledgeWildcardResource } from './nagAcknowledgements.ts';

/** An Amazon MSK cluster (provisioned or serverless). */
export interface MskSource {
  readonly kind: 'msk';
  /** ARN of the cluster: `arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>`. */
  readonly clusterArn: string;
  /**
   * Secret holding SASL/SCRAM credentials (or the client certificate for mTLS). Import it with its
   * KMS key (`Secret.fromSecretAttributes({ secretCompleteArn, encryptionKey })`) so the role may
   * decrypt it.
   * @default - none: IAM authentication; the role may connect to the cluster, read the topic and
   *   use the consumer group, nothing else
   */
  readonly secret?: ISecret;
  /**
   * How the secret authenticates.
   * @default 'SASL_SCRAM_512_AUTH' (when a secret is given)
   */
  readonly authentication?: 'SASL_SCRAM_512_AUTH' | 'CLIENT_CERTIFICATE_TLS_AUTH';
}

/** Network the ESM's pollers use to reach brokers that are only reachable inside a VPC. */
export interface KafkaVpcAccess {
  /**
   * The VPC the subnets are selected from.
   * @default - none: `subnets` must then list the subnets themselves (`{ subnets: [...] }`)
   */
  readonly vpc?: IVpc;
  readonly subnets: SubnetSelection;
  readonly securityGroup: ISecurityGroup;
}

/** A self-managed Kafka cluster (any Kafka-compatible brokers Lambda can reach). */
export interface SelfManagedKafkaSource {
  readonly kind: 'self-managed';
  /** Bootstrap brokers, `host:port`. */
  readonly bootstrapServers: string[];
  /**
   * Secret holding the credentials (or the client certificate for mTLS).
   * @default - none; then `vpc` is required (brokers reached over the internet need credentials)
   */
  readonly secret?: ISecret;
  /**
   * How the secret authenticates.
   * @default 'SASL_SCRAM_512_AUTH'
   */
  readonly authentication?:
    | 'SASL_SCRAM_512_AUTH'
    | 'SASL_SCRAM_256_AUTH'
    | 'BASIC_AUTH'
    | 'CLIENT_CERTIFICATE_TLS_AUTH';
  /**
   * Secret with the root CA certificate of brokers whose TLS certificates a private CA signed.
   * @default - none (public CA)
   */
  readonly rootCACertificate?: ISecret;
  /**
   * VPC, subnets and security group through which the pollers reach the brokers.
   * @default - none: brokers reached over the internet
   */
  readonly vpc?: KafkaVpcAccess;
}

export type KafkaSource = MskSource | SelfManagedKafkaSource;

/** ESM settings, passed through unchanged (see docs/deployment.md for the defaults' reasoning). */
export interface KafkaMappingOptions {
  readonly topic: string;
  readonly consumerGroupId: string;
  readonly batchSize: number;
  readonly maxBatchingWindow?: Duration;
  readonly startingPosition: StartingPosition;
  readonly startingPositionTimestamp?: number;
  readonly enabled: boolean;
  readonly retryAttempts?: number;
  readonly maxRecordAge?: Duration;
  readonly bisectBatchOnError?: boolean;
  readonly reportBatchItemFailures?: boolean;
  readonly onFailure?: IEventSourceDlq;
  readonly filters?: Array<Record<string, unknown>>;
  readonly provisionedPollers?: ProvisionedPollerConfig;
  readonly esmMetrics: boolean;
}

/** Actions the pollers need to place their network interfaces in the brokers' VPC (no resource-level scoping exists for the Describe* calls). */
export const ENI_ACTIONS = [
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeVpcs',
  'ec2:DeleteNetworkInterface',
  'ec2:DescribeSubnets',
  'ec2:DescribeSecurityGroups',
] as const;

/** `arn:…:cluster/<name>/<uuid>` → `arn:…:<kind>/<name>/<uuid>/<name>`, for tokens too. */
export function mskResourceArn(
  clusterArn: string,
  kind: 'topic' | 'group' | 'transactional-id',
  name: string,
): string {
  if (!Token.isUnresolved(clusterArn)) {
    const at = clusterArn.indexOf(':cluster/');
    if (at < 0) throw new Error(`not an MSK cluster ARN: ${clusterArn}`);
    return `${clusterArn.slice(0, at)}:${kind}/${clusterArn.slice(at + ':cluster/'.length)}/${name}`;
  }
  const parts = Fn.split(':cluster/', clusterArn, 2);
  return Fn.join('', [Fn.select(0, parts), `:${kind}/`, Fn.select(1, parts), `/${name}`]);
}

function access(type: string, uri: string): SourceAccessConfiguration {
  return { type: SourceAccessConfigurationType.of(type), uri };
}

/**
 * Creates the event source mapping from `source` to `fn` and grants `role` what the pollers need:
 * - MSK: kafka:DescribeCluster(V2)/GetBootstrapBrokers on the cluster, network interfaces in its
 *   VPC, and with IAM authentication kafka-cluster:* on the cluster, the topic and the group only;
 * - self-managed: network interfaces when a VPC is given;
 * - both: read access to the secrets (and their KMS keys).
 */
export function createKafkaMapping(
  scope: Construct,
  id: string,
  fn: IFunction,
  role: IRole,
  source: KafkaSource,
  options: KafkaMappingOptions,
): EventSourceMapping {
  const accessConfigs: SourceAccessConfiguration[] = [];
  const statements: PolicyStatement[] = [];
  let eventSourceArn: string | undefined;
  let kafkaBootstrapServers: string[] | undefined;

  if (source.kind === 'msk') {
    eventSourceArn = source.clusterArn;
    statements.push(
      new PolicyStatement({
        sid: 'MskClusterMetadata',
        actions: ['kafka:DescribeCluster', 'kafka:DescribeClusterV2', 'kafka:GetBootstrapBrokers'],
        resources: [source.clusterArn],
      }),
      new PolicyStatement({ sid: 'MskPollerNetwork', actions: [...ENI_ACTIONS], resources: ['*'] }),
    );
    if (source.secret) {
      accessConfigs.push(access(source.authentication ?? 'SASL_SCRAM_512_AUTH', source.secret.secretArn));
    } else {
      // IAM authentication (Lambda's default when no secret is given).
      statements.push(
        new PolicyStatement({
          sid: 'MskIamCluster',
          actions: ['kafka-cluster:Connect', 'kafka-cluster:DescribeClusterDynamicConfiguration'],
          resources: [source.clusterArn],
        }),
        new PolicyStatement({
          sid: 'MskIamTopic',
          actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
          resources: [mskResourceArn(source.clusterArn, 'topic', options.topic)],
        }),
        new PolicyStatement({
          sid: 'MskIamGroup',
          actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
          resources: [mskResourceArn(source.clusterArn, 'group', options.consumerGroupId)],
        }),
      );
    }
  } else {
    if (source.bootstrapServers.length === 0) throw new Error('bootstrapServers must not be empty');
    if (!source.vpc && !source.secret) {
      throw new Error(
        'a self-managed Kafka source needs a secret unless its brokers are reached through a VPC',
      );
    }
    kafkaBootstrapServers = source.bootstrapServers;
    if (source.secret) {
      accessConfigs.push(access(source.authentication ?? 'SASL_SCRAM_512_AUTH', source.secret.secretArn));
    }
    if (source.rootCACertificate) {
      accessConfigs.push(access('SERVER_ROOT_CA_CERTIFICATE', source.rootCACertificate.secretArn));
    }
    if (source.vpc) {
      const net = source.vpc;
      const subnetIds = net.vpc
        ? net.vpc.selectSubnets(net.subnets).subnetIds
        : (net.subnets.subnets ?? []).map((subnet) => subnet.subnetId);
      if (subnetIds.length === 0) {
        throw new Error(
          'vpc.subnets selects no subnet (without vpc.vpc, list the subnets: { subnets: [...] })',
        );
      }
      accessConfigs.push(access('VPC_SECURITY_GROUP', net.securityGroup.securityGroupId));
      for (const subnet of subnetIds) accessConfigs.push(access('VPC_SUBNET', subnet));
      statements.push(
        new PolicyStatement({ sid: 'KafkaPollerNetwork', actions: [...ENI_ACTIONS], resources: ['*'] }),
      );
    }
  }
  const secrets = [source.secret, source.kind === 'self-managed' ? source.rootCACertificate : undefined];
  for (const secret of secrets) {
    if (!secret) continue;
    secret.grantRead(role);
    // Lambda reads the secret with the role's credentials: it must be able to decrypt it (MSK
    // requires SCRAM secrets to use a customer-managed key). Only through Secrets Manager.
    if (secret.encryptionKey) {
      statements.push(
        new PolicyStatement({
          actions: ['kms:Decrypt'],
          resources: [secret.encryptionKey.keyArn],
          conditions: {
            StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(scope).region}.amazonaws.com` },
          },
        }),
      );
    }
  }
  for (const s of statements) role.addToPrincipalPolicy(s);
  if (statements.some((s) => s.resources.includes('*'))) {
    acknowledgeWildcardResource(
      role,
      '*',
      'EC2 network-interface actions for the event source mapping pollers (DescribeNetworkInterfaces, DescribeVpcs, DescribeSubnets, DescribeSecurityGroups have no resource-level permissions); they grant nothing on data.',
    );
  }

  const mapping = new EventSourceMapping(scope, id, {
    target: fn,
    eventSourceArn,
    kafkaBootstrapServers,
    kafkaTopic: options.topic,
    kafkaConsumerGroupId: options.consumerGroupId,
    sourceAccessConfigurations: accessConfigs.length > 0 ? accessConfigs : undefined,
    startingPosition: options.startingPosition,
    startingPositionTimestamp: options.startingPositionTimestamp,
    batchSize: options.batchSize,
    maxBatchingWindow: options.maxBatchingWindow,
    enabled: options.enabled,
    retryAttempts: options.retryAttempts,
    maxRecordAge: options.maxRecordAge,
    bisectBatchOnError: options.bisectBatchOnError,
    reportBatchItemFailures: options.reportBatchItemFailures,
    onFailure: options.onFailure,
    supportS3OnFailureDestination: true,
    filters: options.filters,
    provisionedPollerConfig: options.provisionedPollers,
    metricsConfig: options.esmMetrics
      ? { metrics: [MetricType.EVENT_COUNT, MetricType.ERROR_COUNT, MetricType.KAFKA_METRICS] }
      : undefined,
  });
  // Lambda checks the role's permissions when it creates the mapping: create the policies first.
  mapping.node.addDependency(role);
  return mapping;
}
