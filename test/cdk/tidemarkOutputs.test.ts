/**
 * The outputs part of `TidemarkPipeline` (`outputs` prop): each declared sink gets its settings and
 * exactly the statements its deliveries need, on the resources the sinks really use (checked against
 * the sinks' own naming functions), and the template stays clean under cdk-nag.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type App, type Stack, Validations } from 'aws-cdk-lib';
import { type ITable, Table } from 'aws-cdk-lib/aws-dynamodb';
import { SecurityGroup, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { OUTPUT_DEFAULTS, type TidemarkOutputs } from '../../cdk/tidemarkOutputs.ts';
import { ENV } from '../../lib/config/env.ts';
import { KAFKA_OUTPUT_DEFAULTS } from '../../lib/sink/kafka/kafkaOutput.ts';
import { markerSlotOf, transactionalIdOf } from '../../lib/sink/kafka/marker.ts';
import { S3_OUTPUT_DEFAULTS } from '../../lib/sink/s3/s3Output.ts';
import {
  actionsOf,
  addPipelineStack,
  onlyResource,
  type PipelineOverrides,
  pipelineStack,
  removeOutdirs,
  roleStatements,
  type Statement,
  testApp,
} from './synth.ts';

afterAll(removeOutdirs);
afterEach(() => vi.restoreAllMocks());

/** The output cluster: another MSK cluster than the input's. */
const OUT_CLUSTER =
  'arn:aws:kafka:eu-west-1:111122223333:cluster/out-cluster/9e8d7c6b-aaaa-bbbb-cccc-ddddeeeeffff-2';
const OUT_PREFIX = 'arn:aws:kafka:eu-west-1:111122223333';
const OUT_ID = 'out-cluster/9e8d7c6b-aaaa-bbbb-cccc-ddddeeeeffff-2';
const BROKERS = ['b-1.out.kafka.eu-west-1.amazonaws.com:9098', 'b-2.out.kafka.eu-west-1.amazonaws.com:9098'];
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:AmazonMSK_out-AbCdEf';
const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/out';

const MSK_IAM: TidemarkOutputs['kafka'] = {
  brokers: BROKERS,
  topics: ['balance-events', 'overdraft-alerts'],
  authentication: { kind: 'msk-iam', clusterArn: OUT_CLUSTER },
};

const bySid = (statements: Statement[], sid: string) => {
  const found = statements.filter((s) => s.Sid === sid);
  if (found.length !== 1) throw new Error(`${found.length} statements ${sid}`);
  return found[0]!;
};
const sids = (statements: Statement[]) => statements.map((s) => s.Sid).filter((s) => s !== undefined);
const variables = (template: ReturnType<typeof pipelineStack>['template']) =>
  (
    onlyResource(template, 'AWS::Lambda::Function').props.Environment as {
      Variables: Record<string, unknown>;
    }
  ).Variables;

/** The ARN CDK makes for a table imported by name into a stack without an environment. */
const tableArn = (name: string) => ({
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':dynamodb:',
      { Ref: 'AWS::Region' },
      ':',
      { Ref: 'AWS::AccountId' },
      `:table/${name}`,
    ],
  ],
});

/** An IAM resource pattern (`*` any characters) as a regular expression. */
const globRegExp = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);

/** Actions of the statements the outputs add (the base pipeline's are tested in tidemarkPipeline.test.ts). */
const OUTPUT_SIDS = /^(Kafka|Dynamo|S3)Output/;

function outputTables(stack: Stack): ITable[] {
  return [
    Table.fromTableName(stack, 'Totals', 'orders-totals'),
    Table.fromTableAttributes(stack, 'Accounts', {
      tableName: 'orders-accounts',
      encryptionKey: Key.fromKeyArn(stack, 'AccountsKey', KEY_ARN),
    }),
  ];
}

describe('TidemarkPipeline outputs', () => {
  it('adds nothing without outputs: no output settings, no output statements', () => {
    const { template } = pipelineStack();
    const vars = variables(template);
    for (const name of [
      ENV.kafkaOutputBrokers,
      ENV.kafkaOutputSaslMechanism,
      ENV.dynamodbOutputTable,
      ENV.s3OutputBucket,
    ]) {
      expect(vars).not.toHaveProperty(name);
    }
    expect(sids(roleStatements(template)).filter((s) => OUTPUT_SIDS.test(s))).toEqual([]);
  });

  it('uses the sinks’ own defaults (transactional id prefix, S3 prefix)', () => {
    expect(OUTPUT_DEFAULTS.kafkaTransactionalIdPrefix).toBe(KAFKA_OUTPUT_DEFAULTS.transactionalIdPrefix);
    expect(OUTPUT_DEFAULTS.s3Prefix).toBe(S3_OUTPUT_DEFAULTS.prefix);
  });

  describe('Kafka on Amazon MSK with IAM', () => {
    const { template } = pipelineStack({ outputs: { kafka: MSK_IAM } });
    const statements = roleStatements(template);

    it('sets the sink’s connection: brokers, TLS, SASL aws-iam', () => {
      expect(variables(template)).toMatchObject({
        [ENV.kafkaOutputBrokers]: BROKERS.join(','),
        [ENV.kafkaOutputTls]: 'true',
        [ENV.kafkaOutputSaslMechanism]: 'aws-iam',
      });
      expect(variables(template)).not.toHaveProperty(ENV.kafkaOutputSecret);
    });

    it('grants exactly: connect, write the output topics, the task transactional ids, the marker group and topic', () => {
      expect(statements.filter((s) => OUTPUT_SIDS.test(s.Sid ?? ''))).toEqual([
        {
          Sid: 'KafkaOutputCluster',
          Effect: 'Allow',
          Action: 'kafka-cluster:Connect',
          Resource: OUT_CLUSTER,
        },
        {
          Sid: 'KafkaOutputTopics',
          Effect: 'Allow',
          Action: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
          Resource: [
            `${OUT_PREFIX}:topic/${OUT_ID}/balance-events`,
            `${OUT_PREFIX}:topic/${OUT_ID}/overdraft-alerts`,
          ],
        },
        {
          Sid: 'KafkaOutputTransactionalIds',
          Effect: 'Allow',
          Action: ['kafka-cluster:DescribeTransactionalId', 'kafka-cluster:AlterTransactionalId'],
          Resource: `${OUT_PREFIX}:transactional-id/${OUT_ID}/tidemark.orders.orders-topic.*`,
        },
        {
          Sid: 'KafkaOutputMarkerGroup',
          Effect: 'Allow',
          Action: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
          Resource: `${OUT_PREFIX}:group/${OUT_ID}/tidemark.orders.outputs`,
        },
        {
          Sid: 'KafkaOutputMarkerTopic',
          Effect: 'Allow',
          Action: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
          Resource: `${OUT_PREFIX}:topic/${OUT_ID}/orders-topic`,
        },
      ]);
      // Nothing idempotent-only (a transactional producer needs no WriteDataIdempotently), no wildcard action.
      expect(statements.flatMap(actionsOf).filter((a) => a.includes('*') || /Idempotent/.test(a))).toEqual(
        [],
      );
    });

    it('names the resources the sink really uses: every task’s transactional id, its marker slot', () => {
      const ids = bySid(statements, 'KafkaOutputTransactionalIds').Resource as string;
      const group = bySid(statements, 'KafkaOutputMarkerGroup').Resource as string;
      const markerTopic = bySid(statements, 'KafkaOutputMarkerTopic').Resource as string;
      const cluster = { transactionalIdPrefix: KAFKA_OUTPUT_DEFAULTS.transactionalIdPrefix };
      for (const partition of [0, 7, 1023]) {
        const task = { pipeline: 'orders', topic: 'orders-topic', partition };
        const id = transactionalIdOf(cluster.transactionalIdPrefix, task);
        expect(`${OUT_PREFIX}:transactional-id/${OUT_ID}/${id}`).toMatch(globRegExp(ids));
        const slot = markerSlotOf(cluster, task);
        expect(group).toBe(`${OUT_PREFIX}:group/${OUT_ID}/${slot.groupId}`);
        expect(markerTopic).toBe(`${OUT_PREFIX}:topic/${OUT_ID}/${slot.topic}`);
      }
      // Another pipeline's ids, or another input topic's, are not covered.
      for (const other of [
        { pipeline: 'orders2', topic: 'orders-topic', partition: 0 },
        { pipeline: 'orders', topic: 'refunds', partition: 0 },
      ]) {
        const id = transactionalIdOf('tidemark.', other);
        expect(`${OUT_PREFIX}:transactional-id/${OUT_ID}/${id}`).not.toMatch(globRegExp(ids));
      }
    });
  });

  it('follows transactionalIdPrefix and markerTopic (the slot moves to the marker topic and its own group)', () => {
    const { template } = pipelineStack({
      outputs: { kafka: { ...MSK_IAM, transactionalIdPrefix: 'ledger-', markerTopic: 'tidemark-markers' } },
    });
    const statements = roleStatements(template);
    const cluster = { transactionalIdPrefix: 'ledger-', markerTopic: 'tidemark-markers' };
    const task = { pipeline: 'orders', topic: 'orders-topic', partition: 2 };
    const slot = markerSlotOf(cluster, task);
    expect(bySid(statements, 'KafkaOutputMarkerGroup').Resource).toBe(
      `${OUT_PREFIX}:group/${OUT_ID}/${slot.groupId}`,
    );
    expect(slot.groupId).toBe('ledger-orders.outputs.orders-topic');
    expect(bySid(statements, 'KafkaOutputMarkerTopic').Resource).toBe(
      `${OUT_PREFIX}:topic/${OUT_ID}/tidemark-markers`,
    );
    expect(bySid(statements, 'KafkaOutputTransactionalIds').Resource).toBe(
      `${OUT_PREFIX}:transactional-id/${OUT_ID}/ledger-orders.orders-topic.*`,
    );
    expect(`${OUT_PREFIX}:transactional-id/${OUT_ID}/${transactionalIdOf('ledger-', task)}`).toMatch(
      globRegExp(bySid(statements, 'KafkaOutputTransactionalIds').Resource as string),
    );
  });

  it('Kafka with SASL/SCRAM: reads the secret (decrypting through Secrets Manager only), no kafka-cluster action', () => {
    const { template } = pipelineStack((stack) => ({
      outputs: {
        kafka: {
          brokers: ['b-1.out.kafka.eu-west-1.amazonaws.com:9096'],
          topics: ['balance-events'],
          authentication: {
            kind: 'scram',
            secret: Secret.fromSecretAttributes(stack, 'OutScram', {
              secretCompleteArn: SECRET_ARN,
              encryptionKey: Key.fromKeyArn(stack, 'OutScramKey', KEY_ARN),
            }),
          },
        },
      },
    }));
    expect(variables(template)).toMatchObject({
      [ENV.kafkaOutputBrokers]: 'b-1.out.kafka.eu-west-1.amazonaws.com:9096',
      [ENV.kafkaOutputTls]: 'true',
      [ENV.kafkaOutputSaslMechanism]: 'scram-sha-512',
      [ENV.kafkaOutputSecret]: SECRET_ARN,
    });
    const statements = roleStatements(template);
    expect(statements.filter((s) => OUTPUT_SIDS.test(s.Sid ?? ''))).toEqual([
      {
        Sid: 'KafkaOutputSecret',
        Effect: 'Allow',
        Action: 'secretsmanager:GetSecretValue',
        Resource: SECRET_ARN,
      },
      {
        Sid: 'KafkaOutputSecretKey',
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: KEY_ARN,
        Condition: {
          StringEquals: {
            'kms:ViaService': {
              'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']],
            },
          },
        },
      },
    ]);
  });

  it('DynamoDB: put, update and delete on the output tables only, the first as the default table, their keys', () => {
    const { template } = pipelineStack((stack) => ({
      outputs: { dynamodb: { tables: outputTables(stack) } },
    }));
    const statements = roleStatements(template);
    expect(bySid(statements, 'DynamoOutputItems')).toEqual({
      Sid: 'DynamoOutputItems',
      Effect: 'Allow',
      Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      Resource: [tableArn('orders-totals'), tableArn('orders-accounts')],
    });
    expect(variables(template)).toMatchObject({ [ENV.dynamodbOutputTable]: 'orders-totals' });
    // The accounts table's customer-managed key: the standard encrypt/decrypt grant, on that key only.
    const kms = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    expect(kms).toEqual([
      expect.objectContaining({
        Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'],
        Resource: KEY_ARN,
      }),
    ]);
  });

  it('S3: put and get (HEAD) under <prefix>/<pipeline>/ of the pipeline’s bucket, and listing there only', () => {
    const { template } = pipelineStack({ outputs: { s3: {} } });
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    const statements = roleStatements(template);
    expect(bySid(statements, 'S3OutputObjects')).toEqual({
      Sid: 'S3OutputObjects',
      Effect: 'Allow',
      Action: ['s3:PutObject', 's3:GetObject'],
      Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket.id, 'Arn'] }, '/tidemark-outputs/orders/*']] },
    });
    expect(bySid(statements, 'S3OutputListing')).toEqual({
      Sid: 'S3OutputListing',
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: { 'Fn::GetAtt': [bucket.id, 'Arn'] },
      Condition: { StringLike: { 's3:prefix': ['tidemark-outputs/orders/*'] } },
    });
    expect(variables(template)).toMatchObject({ [ENV.s3OutputBucket]: { Ref: bucket.id } });
  });

  it('S3: a given SSE-KMS bucket and prefix, with its key', () => {
    const { template } = pipelineStack((stack) => ({
      outputs: {
        s3: {
          bucket: Bucket.fromBucketAttributes(stack, 'Lake', {
            bucketName: 'orders-lake',
            encryptionKey: Key.fromKeyArn(stack, 'LakeKey', KEY_ARN),
          }),
          prefix: 'exports/v1',
        },
      },
    }));
    const statements = roleStatements(template);
    expect(bySid(statements, 'S3OutputObjects').Resource).toEqual({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::orders-lake/exports/v1/orders/*']],
    });
    expect(bySid(statements, 'S3OutputListing').Condition).toEqual({
      StringLike: { 's3:prefix': ['exports/v1/orders/*'] },
    });
    expect(variables(template)).toMatchObject({ [ENV.s3OutputBucket]: 'orders-lake' });
    expect(statements.filter((s) => s.Resource === KEY_ARN).flatMap(actionsOf)).toEqual([
      'kms:Decrypt',
      'kms:Encrypt',
      'kms:ReEncrypt*',
      'kms:GenerateDataKey*',
    ]);
  });

  it('all three sinks at once: exactly the output actions above, each on its own resources', () => {
    const { template } = pipelineStack((stack) => ({
      outputs: { kafka: MSK_IAM, dynamodb: { tables: outputTables(stack) }, s3: {} },
    }));
    const statements = roleStatements(template).filter((s) => OUTPUT_SIDS.test(s.Sid ?? ''));
    expect(statements.map((s) => s.Sid)).toEqual([
      'KafkaOutputCluster',
      'KafkaOutputTopics',
      'KafkaOutputTransactionalIds',
      'KafkaOutputMarkerGroup',
      'KafkaOutputMarkerTopic',
      'DynamoOutputItems',
      'S3OutputObjects',
      'S3OutputListing',
    ]);
    expect(statements.flatMap(actionsOf).sort()).toEqual(
      [
        'kafka-cluster:Connect',
        'kafka-cluster:DescribeTopic',
        'kafka-cluster:WriteData',
        'kafka-cluster:DescribeTransactionalId',
        'kafka-cluster:AlterTransactionalId',
        'kafka-cluster:DescribeGroup',
        'kafka-cluster:AlterGroup',
        'kafka-cluster:DescribeTopic',
        'kafka-cluster:ReadData',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        's3:PutObject',
        's3:GetObject',
        's3:ListBucket',
      ].sort(),
    );
  });

  it('runs the function in the brokers’ VPC when asked (with its network-interface policy), or in the database’s', () => {
    const { template } = pipelineStack((stack) => {
      const vpc = Vpc.fromVpcAttributes(stack, 'KafkaVpc', {
        vpcId: 'vpc-0kafka',
        availabilityZones: ['eu-west-1a'],
        privateSubnetIds: ['subnet-0k'],
      });
      return {
        outputs: {
          kafka: {
            ...MSK_IAM,
            vpc: {
              vpc,
              vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
              securityGroups: [
                SecurityGroup.fromSecurityGroupId(stack, 'KafkaClients', 'sg-0123456789abcdef1'),
              ],
            },
          },
        },
      };
    });
    expect(onlyResource(template, 'AWS::Lambda::Function').props.VpcConfig).toEqual({
      SecurityGroupIds: ['sg-0123456789abcdef1'],
      SubnetIds: ['subnet-0k'],
    });
    expect(JSON.stringify(onlyResource(template, 'AWS::IAM::Role').props.ManagedPolicyArns)).toContain(
      'service-role/AWSLambdaVPCAccessExecutionRole',
    );
    // With a commit database in another VPC: refused (one function, one VPC).
    expect(() =>
      pipelineStack((stack) => {
        const vpc = (id: string) =>
          Vpc.fromVpcAttributes(stack, id, {
            vpcId: `vpc-${id}`,
            availabilityZones: ['eu-west-1a'],
            privateSubnetIds: ['subnet-0a'],
          });
        const sg = SecurityGroup.fromSecurityGroupId(stack, 'Sg', 'sg-0123456789abcdef3');
        return {
          commitDatabase: {
            engine: 'postgres',
            url: 'postgres://t@h:5432/d',
            vpc: vpc('A'),
            securityGroups: [sg],
          },
          outputs: { kafka: { ...MSK_IAM, vpc: { vpc: vpc('B'), securityGroups: [sg] } } },
        };
      }),
    ).toThrow(/one VPC/);
  });

  it('with a commit database in the same VPC: one placement, both security groups, one VPC policy', () => {
    const { template } = pipelineStack((stack) => {
      const vpc = Vpc.fromVpcAttributes(stack, 'Shared', {
        vpcId: 'vpc-0shared',
        availabilityZones: ['eu-west-1a'],
        privateSubnetIds: ['subnet-0s'],
      });
      return {
        commitDatabase: {
          engine: 'postgres',
          url: 'postgres://t@h:5432/d',
          vpc,
          securityGroups: [SecurityGroup.fromSecurityGroupId(stack, 'Db', 'sg-0123456789abcdef2')],
        },
        outputs: {
          kafka: {
            ...MSK_IAM,
            vpc: {
              vpc,
              securityGroups: [SecurityGroup.fromSecurityGroupId(stack, 'Kafka', 'sg-0123456789abcdef1')],
            },
          },
        },
      };
    });
    const fn = onlyResource(template, 'AWS::Lambda::Function').props;
    expect(fn.VpcConfig).toEqual({
      SecurityGroupIds: ['sg-0123456789abcdef2', 'sg-0123456789abcdef1'],
      SubnetIds: ['subnet-0s'],
    });
    const managed = onlyResource(template, 'AWS::IAM::Role').props.ManagedPolicyArns as unknown[];
    expect(managed).toHaveLength(1);
  });

  it('refuses what cannot work, naming the prop', () => {
    const refused: Array<[PipelineOverrides, RegExp]> = [
      [{ outputs: { kafka: { ...MSK_IAM, brokers: [] } } }, /outputs\.kafka\.brokers/],
      [{ outputs: { kafka: { ...MSK_IAM, topics: [] } } }, /outputs\.kafka\.topics/],
      [{ outputs: { kafka: { ...MSK_IAM, topics: ['bad topic'] } } }, /not a Kafka topic name/],
      [{ outputs: { kafka: { ...MSK_IAM, transactionalIdPrefix: 'a*' } } }, /transactionalIdPrefix/],
      [{ outputs: { kafka: { ...MSK_IAM, tls: false } } }, /needs TLS/],
      [{ outputs: { dynamodb: { tables: [] } } }, /outputs\.dynamodb\.tables/],
      [{ outputs: { s3: { prefix: '/exports/' } } }, /outputs\.s3\.prefix/],
      [
        { outputs: { kafka: MSK_IAM }, environment: { [ENV.kafkaOutputBrokers]: 'x:9092' } },
        /TIDEMARK_KAFKA_OUTPUT_BROKERS is set by TidemarkPipeline/,
      ],
      [
        { outputs: { s3: {} }, environment: { [ENV.s3OutputBucket]: 'other' } },
        /TIDEMARK_S3_OUTPUT_BUCKET is set by TidemarkPipeline/,
      ],
    ];
    for (const [overrides, message] of refused) expect(() => pipelineStack(overrides)).toThrow(message);
    // Without outputs, the sinks' variables may still be set by hand.
    expect(() => pipelineStack({ environment: { [ENV.s3OutputBucket]: 'other' } })).not.toThrow();
  });
});

interface Violation {
  ruleName: string;
  severity: string;
}

function nag(overrides: Parameters<typeof pipelineStack>[0]): { threw: unknown; violations: Violation[] } {
  const app: App = testApp();
  addPipelineStack(app, overrides);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  let threw: unknown;
  try {
    app.synth();
  } catch (err) {
    threw = err;
  }
  const report = JSON.parse(readFileSync(join(app.outdir, 'validation-report.json'), 'utf8')) as {
    pluginReports: Array<{ violations: Violation[] }>;
  };
  return { threw, violations: report.pluginReports.flatMap((r) => r.violations) };
}

const everything = (stack: Stack): PipelineOverrides => ({
  outputs: {
    kafka: MSK_IAM,
    dynamodb: { tables: outputTables(stack) },
    s3: {
      bucket: Bucket.fromBucketAttributes(stack, 'Lake', {
        bucketName: 'orders-lake',
        encryptionKey: Key.fromKeyArn(stack, 'LakeKey', KEY_ARN),
      }),
    },
  },
});

describe("cdk-nag's AWS Solutions rules with outputs", () => {
  it.each<[string, Parameters<typeof pipelineStack>[0]]>([
    ['MSK IAM Kafka, DynamoDB (one table with a customer key) and S3 (SSE-KMS) outputs', everything],
    [
      'SCRAM Kafka in a VPC, S3 outputs in the pipeline bucket',
      (stack) => ({
        outputs: {
          kafka: {
            brokers: ['b-1.out.kafka.eu-west-1.amazonaws.com:9096'],
            topics: ['balance-events'],
            authentication: {
              kind: 'scram',
              secret: Secret.fromSecretAttributes(stack, 'OutScram', {
                secretCompleteArn: SECRET_ARN,
                encryptionKey: Key.fromKeyArn(stack, 'OutScramKey', KEY_ARN),
              }),
            },
            vpc: {
              vpc: Vpc.fromVpcAttributes(stack, 'KafkaVpc', {
                vpcId: 'vpc-0kafka',
                availabilityZones: ['eu-west-1a'],
                privateSubnetIds: ['subnet-0k'],
              }),
              securityGroups: [
                SecurityGroup.fromSecurityGroupId(stack, 'KafkaClients', 'sg-0123456789abcdef1'),
              ],
            },
          },
          s3: {},
        },
      }),
    ],
  ])('report no unacknowledged finding: %s', (_name, overrides) => {
    const { threw, violations } = nag(overrides);
    expect(violations).toEqual([]);
    expect(threw).toBeUndefined();
  });

  it('would fail without the acknowledgements: the outputs add exactly their two wildcards and the KMS grant', () => {
    const acknowledged: Array<{ id: string; reason: string }> = [];
    vi.spyOn(Validations.prototype, 'acknowledge').mockImplementation((...rules) => {
      acknowledged.push(...rules);
    });
    const { threw, violations } = nag(everything);
    expect(threw).toBeInstanceOf(Error);
    const found = violations.filter((v) => v.severity === 'error').map((v) => v.ruleName);
    expect(new Set(found)).toEqual(new Set(acknowledged.map((a) => a.id)));
    expect(found).toEqual(
      expect.arrayContaining([
        // The pipeline's own three (tidemarkPipeline's nag test), and the outputs':
        'AwsSolutions-S1',
        'AwsSolutions-IAM5[Resource::*]',
        `AwsSolutions-IAM5[Resource::${OUT_PREFIX}:transactional-id/${OUT_ID}/tidemark.orders.orders-topic.*]`,
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::orders-lake/tidemark-outputs/orders/*]',
        'AwsSolutions-IAM5[Action::kms:ReEncrypt*]',
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
      ]),
    );
    expect(new Set(found).size).toBe(7);
    for (const a of acknowledged) expect(a.reason.length, a.id).toBeGreaterThan(40);
  });
});
