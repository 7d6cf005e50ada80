import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type App, Validations } from 'aws-cdk-lib';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import { SecurityGroup, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  addPipelineStack,
  CLUSTER_ARN,
  type PipelineOverrides,
  type pipelineStack,
  removeOutdirs,
  testApp,
} from './synth.ts';

afterAll(removeOutdirs);
afterEach(() => vi.restoreAllMocks());

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:AmazonMSK_orders-AbCdEf';

interface Violation {
  ruleName: string;
  severity: string;
  violatingConstructs: Array<{ constructPath: string }>;
}

/** Synthesizes with cdk-nag's AWS Solutions pack; returns whether synth threw and every reported violation. */
function nag(overrides: PipelineOverrides | Parameters<typeof pipelineStack>[0]): {
  threw: unknown;
  violations: Violation[];
} {
  const app: App = testApp();
  const { stack } = addPipelineStack(app, overrides);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  let threw: unknown;
  try {
    app.synth();
  } catch (err) {
    threw = err;
  }
  const report = JSON.parse(readFileSync(join(app.outdir, 'validation-report.json'), 'utf8')) as {
    pluginReports: Array<{ pluginName: string; violations: Violation[] }>;
  };
  expect(stack.stackName).toBeDefined();
  return { threw, violations: report.pluginReports.flatMap((r) => r.violations) };
}

const variants: Array<[string, Parameters<typeof pipelineStack>[0]]> = [
  ['Amazon MSK, IAM authentication, created storage', {}],
  [
    'Amazon MSK, SASL/SCRAM secret with its key',
    (stack) => ({
      source: {
        kind: 'msk',
        clusterArn: CLUSTER_ARN,
        secret: Secret.fromSecretAttributes(stack, 'Scram', {
          secretCompleteArn: SECRET_ARN,
          encryptionKey: Key.fromKeyArn(stack, 'K', 'arn:aws:kms:eu-west-1:111122223333:key/k1'),
        }),
      },
    }),
  ],
  [
    'self-managed Kafka over the internet',
    (stack) => ({
      source: {
        kind: 'self-managed',
        bootstrapServers: ['b1.kafka.example.com:9096'],
        secret: Secret.fromSecretCompleteArn(stack, 'Creds', SECRET_ARN),
      },
    }),
  ],
  [
    'self-managed Kafka in a VPC',
    (stack) => {
      const vpc = Vpc.fromVpcAttributes(stack, 'Vpc', {
        vpcId: 'vpc-0abc',
        availabilityZones: ['eu-west-1a'],
        privateSubnetIds: ['subnet-0abc'],
      });
      return {
        source: {
          kind: 'self-managed',
          bootstrapServers: ['10.0.0.10:9092'],
          vpc: {
            vpc,
            subnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
            securityGroup: SecurityGroup.fromSecurityGroupId(stack, 'Sg', 'sg-0abc'),
          },
        },
      };
    },
  ],
  [
    'existing SSE-KMS bucket and existing table',
    (stack) => ({
      bucket: Bucket.fromBucketAttributes(stack, 'B', {
        bucketName: 'shared-checkpoints',
        encryptionKey: Key.fromKeyArn(stack, 'BK', 'arn:aws:kms:eu-west-1:111122223333:key/k2'),
      }),
      table: Table.fromTableName(stack, 'T', 'shared-commits'),
    }),
  ],
];

describe("cdk-nag's AWS Solutions rules", () => {
  it.each(variants)('report no unacknowledged finding: %s', (_name, overrides) => {
    const { threw, violations } = nag(overrides);
    expect(violations).toEqual([]);
    expect(threw).toBeUndefined();
  });

  it('would fail without the acknowledgements, on exactly the findings they name (each with a reason)', () => {
    const acknowledged: Array<{ id: string; reason: string }> = [];
    vi.spyOn(Validations.prototype, 'acknowledge').mockImplementation((...rules) => {
      acknowledged.push(...rules);
    });
    const { threw, violations } = nag({});
    expect(threw).toBeInstanceOf(Error);
    const found = violations.filter((v) => v.severity === 'error').map((v) => v.ruleName);
    expect(found.sort()).toEqual(
      acknowledged.map((a) => a.id.replace(/^AwsSolutions-/, 'AwsSolutions-')).sort(),
    );
    // The three deliberate exceptions: no access log on the checkpoint bucket, object keys made at
    // run time under the pipeline's prefix, and EC2 network-interface actions for the pollers.
    expect(found).toHaveLength(3);
    expect(found).toEqual(
      expect.arrayContaining([
        'AwsSolutions-S1',
        expect.stringMatching(
          /^AwsSolutions-IAM5\[Resource::<PipelineStorageBucket[0-9A-F]+\.Arn>\/tidemark\/orders\/\*\]$/,
        ),
        'AwsSolutions-IAM5[Resource::*]',
      ]),
    );
    for (const a of acknowledged) expect(a.reason.length, a.id).toBeGreaterThan(40);
  });
});
