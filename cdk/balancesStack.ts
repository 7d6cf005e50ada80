/**
 * The example stack: the balances processor (`functions/balances.ts`) deployed as a Tidemark
 * pipeline on the Kafka cluster the settings name, with its storage, dashboard and alarms.
 */
import { fileURLToPath } from 'node:url';
import { Annotations, CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import { SecurityGroup, Subnet } from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Topic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import type { BalancesSettings, ClusterSettings } from './balancesSettings.ts';
import type { KafkaSource } from './kafkaSource.ts';
import { TidemarkPipeline } from './tidemarkPipeline.ts';

export interface BalancesStackProps extends StackProps {
  readonly settings: BalancesSettings;
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** The event source of the example app's pipelines, from its cluster settings. */
export function kafkaSource(scope: Construct, c: ClusterSettings): KafkaSource {
  const secret = c.secretArn
    ? Secret.fromSecretAttributes(scope, 'KafkaSecret', {
        secretCompleteArn: c.secretArn,
        encryptionKey: c.secretKeyArn ? Key.fromKeyArn(scope, 'KafkaSecretKey', c.secretKeyArn) : undefined,
      })
    : undefined;
  if (c.kind === 'msk') {
    const authentication = c.authentication as MskAuthentication | undefined;
    return { kind: 'msk', clusterArn: c.clusterArn!, secret, authentication };
  }
  const vpc = c.vpc
    ? {
        subnets: {
          subnets: c.vpc.subnetIds.map((id, i) => Subnet.fromSubnetId(scope, `KafkaSubnet${i}`, id)),
        },
        securityGroup: SecurityGroup.fromSecurityGroupId(scope, 'KafkaSecurityGroup', c.vpc.securityGroupId),
      }
    : undefined;
  return {
    kind: 'self-managed',
    bootstrapServers: c.bootstrapServers!,
    secret,
    authentication: c.authentication,
    vpc,
  };
}

type MskAuthentication = 'SASL_SCRAM_512_AUTH' | 'CLIENT_CERTIFICATE_TLS_AUTH';

export class BalancesStack extends Stack {
  readonly pipeline: TidemarkPipeline;

  constructor(scope: Construct, id: string, props: BalancesStackProps) {
    super(scope, id, props);
    const s = props.settings;
    this.pipeline = new TidemarkPipeline(this, 'Balances', {
      pipelineId: s.pipelineId,
      entry: `${repoRoot}functions/balances.ts`,
      depsLockFilePath: `${repoRoot}package-lock.json`,
      source: kafkaSource(this, s.cluster),
      topic: s.topic,
      alarmTopic: s.alarmTopicArn ? Topic.fromTopicArn(this, 'AlarmTopic', s.alarmTopicArn) : undefined,
    });
    if (s.cluster.placeholder) {
      Annotations.of(this).addWarningV2(
        'tidemark:placeholderCluster',
        'No Kafka cluster given: synthesized against a placeholder MSK cluster ARN. Pass -c mskClusterArn=… (or -c bootstrapServers=… -c secretArn=…) to deploy.',
      );
    }
    const p = this.pipeline;
    new CfnOutput(this, 'FunctionName', { value: p.function.functionName });
    new CfnOutput(this, 'BucketName', { value: p.bucket.bucketName });
    new CfnOutput(this, 'TableName', { value: p.table.tableName });
    new CfnOutput(this, 'EventSourceMappingId', { value: p.eventSourceMapping.eventSourceMappingId });
    if (p.monitoring) new CfnOutput(this, 'DashboardName', { value: p.monitoring.dashboard.dashboardName });
  }
}
