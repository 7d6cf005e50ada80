import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import { SecurityGroup, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { FilterCriteria, StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { afterAll, describe, expect, it } from 'vitest';
import { ENV } from '../../lib/config/env.ts';
import { METRIC, METRICS_NAMESPACE } from '../../lib/observability/metricNames.ts';
import {
  actionsOf,
  CLUSTER_ARN,
  onlyResource,
  pipelineStack,
  removeOutdirs,
  roleStatements,
  type Statement,
} from './synth.ts';

afterAll(removeOutdirs);

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:AmazonMSK_orders-AbCdEf';
const stmt = (statements: Statement[], sid: string) => {
  const s = statements.find((x) => x.Sid === sid);
  if (!s) throw new Error(`no statement ${sid} in ${JSON.stringify(statements.map((x) => x.Sid))}`);
  return s;
};
const allActions = (statements: Statement[]) => statements.flatMap(actionsOf).sort();

describe('TidemarkPipeline on Amazon MSK (IAM authentication, all defaults)', () => {
  const { template, stack } = pipelineStack();
  const statements = roleStatements(template);

  it('deploys the function on Node.js 24, ARM64, with its settings wired from the construct', () => {
    const fn = onlyResource(template, 'AWS::Lambda::Function');
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    const table = onlyResource(template, 'AWS::DynamoDB::Table');
    const logs = onlyResource(template, 'AWS::Logs::LogGroup');
    expect(fn.props).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      MemorySize: 1024,
      Timeout: 120,
      Handler: 'index.handler',
      LoggingConfig: { LogGroup: { Ref: logs.id } },
    });
    expect((fn.props.Environment as { Variables: Record<string, unknown> }).Variables).toEqual({
      [ENV.bucket]: { Ref: bucket.id },
      [ENV.table]: { Ref: table.id },
      [ENV.pipeline]: 'orders',
      [ENV.prefix]: 'tidemark',
    });
    expect(logs.props).toMatchObject({ RetentionInDays: 30 });
  });

  it('maps the MSK topic with the pipeline id as consumer group and the documented defaults', () => {
    const esm = onlyResource(template, 'AWS::Lambda::EventSourceMapping');
    const fn = onlyResource(template, 'AWS::Lambda::Function');
    expect(esm.props).toEqual({
      FunctionName: { Ref: fn.id },
      EventSourceArn: CLUSTER_ARN,
      Topics: ['orders-topic'],
      AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: 'orders' },
      BatchSize: 1000,
      StartingPosition: 'TRIM_HORIZON',
      Enabled: true,
    });
  });

  it('creates the mapping only after the role and its policies exist (Lambda checks them)', () => {
    const esm = Object.values(template.findResources('AWS::Lambda::EventSourceMapping'))[0]!;
    const role = onlyResource(template, 'AWS::IAM::Role');
    const policy = onlyResource(template, 'AWS::IAM::Policy');
    expect(esm.DependsOn).toEqual(expect.arrayContaining([role.id, policy.id]));
  });

  it('gives the role no managed policy and exactly these actions', () => {
    const role = onlyResource(template, 'AWS::IAM::Role');
    expect(role.props.ManagedPolicyArns).toBeUndefined();
    expect(allActions(statements)).toEqual(
      [
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        's3:GetObject',
        's3:PutObject',
        's3:DeleteObject',
        's3:AbortMultipartUpload',
        's3:ListBucket',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'kafka:DescribeCluster',
        'kafka:DescribeClusterV2',
        'kafka:GetBootstrapBrokers',
        'ec2:CreateNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeVpcs',
        'ec2:DeleteNetworkInterface',
        'ec2:DescribeSubnets',
        'ec2:DescribeSecurityGroups',
        'kafka-cluster:Connect',
        'kafka-cluster:DescribeClusterDynamicConfiguration',
        'kafka-cluster:DescribeTopic',
        'kafka-cluster:ReadData',
        'kafka-cluster:DescribeGroup',
        'kafka-cluster:AlterGroup',
      ].sort(),
    );
    expect(statements.every((s) => s.Effect === 'Allow')).toBe(true);
  });

  it("confines S3 to the pipeline's prefix and DynamoDB to the pipeline's commit items", () => {
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    const table = onlyResource(template, 'AWS::DynamoDB::Table');
    expect(stmt(statements, 'CheckpointObjects').Resource).toEqual({
      'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket.id, 'Arn'] }, '/tidemark/orders/*']],
    });
    expect(stmt(statements, 'CheckpointListing')).toMatchObject({
      Resource: { 'Fn::GetAtt': [bucket.id, 'Arn'] },
      Condition: { StringLike: { 's3:prefix': ['tidemark/orders/*'] } },
    });
    expect(stmt(statements, 'CommitItems')).toMatchObject({
      Action: ['dynamodb:GetItem', 'dynamodb:PutItem'],
      Resource: { 'Fn::GetAtt': [table.id, 'Arn'] },
      Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['task#orders#*'] } },
    });
    // Only the pollers' network-interface actions are granted on every resource.
    const star = statements.filter((s) => s.Resource === '*');
    expect(star.flatMap(actionsOf).every((a) => a.startsWith('ec2:'))).toBe(true);
  });

  it('scopes MSK IAM authentication to the cluster, the topic and the consumer group', () => {
    expect(stmt(statements, 'MskClusterMetadata').Resource).toBe(CLUSTER_ARN);
    expect(stmt(statements, 'MskIamCluster').Resource).toBe(CLUSTER_ARN);
    expect(stmt(statements, 'MskIamTopic').Resource).toBe(
      'arn:aws:kafka:eu-west-1:111122223333:topic/orders-cluster/5a7b3c1d-1111-2222-3333-444455556666-3/orders-topic',
    );
    expect(stmt(statements, 'MskIamGroup').Resource).toBe(
      'arn:aws:kafka:eu-west-1:111122223333:group/orders-cluster/5a7b3c1d-1111-2222-3333-444455556666-3/orders',
    );
  });

  it('creates an encrypted, private, SSL-only, versioned bucket whose lifecycle never expires current objects', () => {
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    expect(bucket.props).toMatchObject({
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: 'Enabled' },
    });
    const rules = (bucket.props.LifecycleConfiguration as { Rules: Array<Record<string, unknown>> }).Rules;
    expect(rules).toEqual([
      {
        Id: 'abort-incomplete-multipart-uploads',
        Status: 'Enabled',
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
      },
      {
        Id: 'expire-deleted-objects',
        Status: 'Enabled',
        NoncurrentVersionExpiration: { NoncurrentDays: 35 },
        ExpiredObjectDeleteMarker: true,
      },
    ]);
    for (const r of rules) {
      for (const forbidden of ['ExpirationInDays', 'ExpirationDate', 'Transitions', 'Prefix', 'TagFilters']) {
        expect(r, `${r.Id} must not touch current objects`).not.toHaveProperty(forbidden);
      }
    }
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('creates an on-demand table with point-in-time recovery and deletion protection', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
      },
    });
    expect(stack.node.tryFindChild('Pipeline')).toBeDefined();
  });
});

describe('TidemarkPipeline source maps', () => {
  it('maps stack traces at run time only when asked (parsing the map costs cold-start time)', () => {
    const env = (t: ReturnType<typeof pipelineStack>['template']) =>
      (
        onlyResource(t, 'AWS::Lambda::Function').props as {
          Environment: { Variables: Record<string, unknown> };
        }
      ).Environment.Variables;
    expect(env(pipelineStack(() => ({})).template).NODE_OPTIONS).toBeUndefined();
    expect(env(pipelineStack(() => ({ enableSourceMaps: true })).template).NODE_OPTIONS).toBe(
      '--enable-source-maps',
    );
  });
});

describe('TidemarkPipeline partial batch responses', () => {
  it('are off with on-demand pollers (the mapping does not offer them), and refused if asked for there', () => {
    const { template } = pipelineStack(() => ({}));
    const mapping = onlyResource(template, 'AWS::Lambda::EventSourceMapping');
    expect(mapping.props.FunctionResponseTypes).toBeUndefined();
    const fn = onlyResource(template, 'AWS::Lambda::Function').props as {
      Environment: { Variables: Record<string, unknown> };
    };
    expect(fn.Environment.Variables[ENV.reportBatchItemFailures]).toBeUndefined();
    expect(() => pipelineStack(() => ({ reportBatchItemFailures: true }))).toThrow(/provisionedPollers/);
  });

  it('can be turned off with provisioned pollers', () => {
    const { template } = pipelineStack(() => ({
      provisionedPollers: { minimumPollers: 1, maximumPollers: 2 },
      reportBatchItemFailures: false,
    }));
    expect(
      onlyResource(template, 'AWS::Lambda::EventSourceMapping').props.FunctionResponseTypes,
    ).toBeUndefined();
  });
});

describe('TidemarkPipeline settings passed through', () => {
  it('passes batching, starting position, consumer group, retries and on-failure to the mapping', () => {
    const { template } = pipelineStack((stack) => ({
      consumerGroupId: 'orders-v2',
      batchSize: 5000,
      maxBatchingWindow: Duration.seconds(2),
      startingPosition: StartingPosition.AT_TIMESTAMP,
      startingPositionTimestamp: 1_700_000_000,
      enabled: false,
      retryAttempts: 20,
      maxRecordAge: Duration.hours(6),
      bisectBatchOnError: true,
      onFailure: new SqsDlq(new Queue(stack, 'Failed', { enforceSSL: true })),
      provisionedPollers: { minimumPollers: 1, maximumPollers: 4 },
      filters: [FilterCriteria.filter({ value: { amount: [{ numeric: ['>', 0] }] } })],
      esmMetrics: true,
      memorySize: 2048,
      timeout: Duration.minutes(5),
      reservedConcurrentExecutions: 10,
      environment: { TIDEMARK_EPOCH_MAX_RECORDS: '2000' },
    }));
    const queue = onlyResource(template, 'AWS::SQS::Queue');
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: 'orders-v2' },
      BatchSize: 5000,
      MaximumBatchingWindowInSeconds: 2,
      StartingPosition: 'AT_TIMESTAMP',
      StartingPositionTimestamp: 1_700_000_000,
      Enabled: false,
      MaximumRetryAttempts: 20,
      MaximumRecordAgeInSeconds: 6 * 3600,
      BisectBatchOnFunctionError: true,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queue.id, 'Arn'] } } },
      ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 4 },
      // Provisioned pollers: partial batch responses on, and the function told so.
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      FilterCriteria: { Filters: [{ Pattern: '{"value":{"amount":[{"numeric":[">",0]}]}}' }] },
      MetricsConfig: { Metrics: ['EventCount', 'ErrorCount', 'KafkaMetrics'] },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 2048,
      Timeout: 300,
      ReservedConcurrentExecutions: 10,
      Environment: {
        Variables: Match.objectLike({
          TIDEMARK_EPOCH_MAX_RECORDS: '2000',
          [ENV.pipeline]: 'orders',
          [ENV.reportBatchItemFailures]: 'true',
        }),
      },
    });
    // The on-failure destination is the one extra permission.
    const send = roleStatements(template).find((s) => actionsOf(s).includes('sqs:SendMessage'));
    expect(send?.Resource).toEqual({ 'Fn::GetAtt': [queue.id, 'Arn'] });
  });

  it('uses a custom prefix everywhere the function and its permissions name it', () => {
    const { template } = pipelineStack({ prefix: 'state/v1' });
    const statements = roleStatements(template);
    expect(JSON.stringify(stmt(statements, 'CheckpointObjects').Resource)).toContain('"/state/v1/orders/*"');
    expect(stmt(statements, 'CheckpointListing').Condition).toEqual({
      StringLike: { 's3:prefix': ['state/v1/orders/*'] },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ [ENV.prefix]: 'state/v1' }) },
    });
  });

  it('applies storage settings to what it creates', () => {
    const { template } = pipelineStack((stack) => ({
      storage: {
        versioned: false,
        deletionProtection: false,
        removalPolicy: RemovalPolicy.DESTROY,
        abortIncompleteUploadsAfter: Duration.days(3),
        serverAccessLogsBucket: Bucket.fromBucketName(stack, 'AccessLogs', 'my-access-logs'),
      },
    }));
    const bucket = Object.values(template.findResources('AWS::S3::Bucket'))[0]!;
    expect(bucket.DeletionPolicy).toBe('Delete');
    expect(bucket.Properties.VersioningConfiguration).toBeUndefined();
    expect(bucket.Properties.LoggingConfiguration).toEqual({
      DestinationBucketName: 'my-access-logs',
      LogFilePrefix: 'tidemark-checkpoints/',
    });
    expect(bucket.Properties.LifecycleConfiguration.Rules).toEqual([
      {
        Id: 'abort-incomplete-multipart-uploads',
        Status: 'Enabled',
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 3 },
      },
    ]);
    template.hasResourceProperties('AWS::DynamoDB::Table', { DeletionProtectionEnabled: false });
  });

  it('can leave out the dashboard and alarms', () => {
    const { template, pipeline } = pipelineStack({ monitoring: false });
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
    expect(pipeline.monitoring).toBeUndefined();
    // Its metrics can still be used in alarms of one's own.
    const m = pipeline.metric(METRIC.recordAge, { statistic: 'p90' });
    expect(m).toMatchObject({
      namespace: METRICS_NAMESPACE,
      metricName: 'RecordAge',
      dimensions: { service: 'tidemark', Pipeline: 'orders' },
      statistic: 'p90',
    });
  });

  it('rejects what the engine would reject, at synth time', () => {
    expect(() => pipelineStack({ pipelineId: 'orders#1' })).toThrow(/pipelineId/);
    expect(() => pipelineStack({ prefix: '/abs' })).toThrow(/prefix/);
    expect(() => pipelineStack({ environment: { [ENV.bucket]: 'other' } })).toThrow(ENV.bucket);
    expect(() =>
      pipelineStack({ source: { kind: 'self-managed', bootstrapServers: ['b1.example.com:9092'] } }),
    ).toThrow(/secret/);
  });
});

describe('TidemarkPipeline with a secret-authenticated source', () => {
  it('MSK with SASL/SCRAM: the secret (and its key) instead of IAM access to the cluster', () => {
    const { template } = pipelineStack((stack) => ({
      source: {
        kind: 'msk',
        clusterArn: CLUSTER_ARN,
        secret: Secret.fromSecretAttributes(stack, 'Scram', {
          secretCompleteArn: SECRET_ARN,
          encryptionKey: Key.fromKeyArn(
            stack,
            'ScramKey',
            'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
          ),
        }),
      },
    }));
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: CLUSTER_ARN,
      SourceAccessConfigurations: [{ Type: 'SASL_SCRAM_512_AUTH', URI: SECRET_ARN }],
    });
    const statements = roleStatements(template);
    const actions = allActions(statements);
    expect(actions.some((a) => a.startsWith('kafka-cluster:'))).toBe(false);
    const secretRead = statements.find((s) => actionsOf(s).includes('secretsmanager:GetSecretValue'));
    expect(secretRead?.Resource).toBe(SECRET_ARN);
    const decrypt = statements.find((s) => actionsOf(s).includes('kms:Decrypt'));
    expect(decrypt).toMatchObject({
      Resource: 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      Condition: {
        StringEquals: {
          'kms:ViaService': {
            'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']],
          },
        },
      },
    });
  });

  it('self-managed over the internet: bootstrap servers, the chosen authentication, a private CA, no VPC access', () => {
    const { template } = pipelineStack((stack) => ({
      source: {
        kind: 'self-managed',
        bootstrapServers: ['b1.kafka.example.com:9096', 'b2.kafka.example.com:9096'],
        secret: Secret.fromSecretCompleteArn(stack, 'Creds', SECRET_ARN),
        authentication: 'BASIC_AUTH',
        rootCACertificate: Secret.fromSecretCompleteArn(
          stack,
          'Ca',
          'arn:aws:secretsmanager:eu-west-1:111122223333:secret:kafka-ca-XyZ123',
        ),
      },
    }));
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      SelfManagedEventSource: {
        Endpoints: { KafkaBootstrapServers: ['b1.kafka.example.com:9096', 'b2.kafka.example.com:9096'] },
      },
      SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: 'orders' },
      Topics: ['orders-topic'],
      SourceAccessConfigurations: [
        { Type: 'BASIC_AUTH', URI: SECRET_ARN },
        {
          Type: 'SERVER_ROOT_CA_CERTIFICATE',
          URI: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:kafka-ca-XyZ123',
        },
      ],
    });
    const esm = onlyResource(template, 'AWS::Lambda::EventSourceMapping');
    expect(esm.props.EventSourceArn).toBeUndefined();
    const actions = allActions(roleStatements(template));
    expect(actions.some((a) => a.startsWith('kafka') || a.startsWith('ec2:'))).toBe(false);
    expect(actions.filter((a) => a === 'secretsmanager:GetSecretValue')).toHaveLength(2);
  });

  it('self-managed in a VPC: subnets and security group for the pollers, and their network interfaces', () => {
    const { template } = pipelineStack((stack) => {
      const vpc = new Vpc(stack, 'Vpc', {
        maxAzs: 2,
        natGateways: 0,
        subnetConfiguration: [{ name: 'p', subnetType: SubnetType.PRIVATE_ISOLATED }],
      });
      return {
        source: {
          kind: 'self-managed',
          bootstrapServers: ['10.0.0.10:9092'],
          vpc: {
            vpc,
            subnets: { subnetType: SubnetType.PRIVATE_ISOLATED },
            securityGroup: new SecurityGroup(stack, 'KafkaClients', { vpc }),
          },
        },
      };
    });
    const esm = onlyResource(template, 'AWS::Lambda::EventSourceMapping');
    const types = (esm.props.SourceAccessConfigurations as Array<{ Type: string }>).map((c) => c.Type);
    expect(types).toEqual(['VPC_SECURITY_GROUP', 'VPC_SUBNET', 'VPC_SUBNET']);
    const eni = stmt(roleStatements(template), 'KafkaPollerNetwork');
    expect(eni.Resource).toBe('*');
    expect(actionsOf(eni)).toContain('ec2:CreateNetworkInterface');
  });
});

describe('TidemarkPipeline with existing storage', () => {
  it('uses a supplied bucket and table: creates neither, wires their names, grants on their ARNs', () => {
    const { template } = pipelineStack((stack) => ({
      bucket: Bucket.fromBucketName(stack, 'Existing', 'shared-checkpoints'),
      table: Table.fromTableName(stack, 'ExistingTable', 'shared-commits'),
    }));
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.resourceCountIs('AWS::DynamoDB::Table', 0);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ [ENV.bucket]: 'shared-checkpoints', [ENV.table]: 'shared-commits' }),
      },
    });
    const statements = roleStatements(template);
    expect(JSON.stringify(stmt(statements, 'CheckpointObjects').Resource)).toContain(
      ':s3:::shared-checkpoints/tidemark/orders/*',
    );
    expect(JSON.stringify(stmt(statements, 'CommitItems').Resource)).toContain(':table/shared-commits');
  });

  it('creates only what is missing, and decrypts with the key of a supplied SSE-KMS bucket', () => {
    const { template } = pipelineStack((stack) => ({
      bucket: Bucket.fromBucketAttributes(stack, 'Existing', {
        bucketName: 'kms-checkpoints',
        encryptionKey: Key.fromKeyArn(stack, 'BucketKey', 'arn:aws:kms:eu-west-1:111122223333:key/abcd'),
      }),
    }));
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    const kms = roleStatements(template).find((s) => actionsOf(s).includes('kms:Decrypt'));
    expect(kms?.Resource).toBe('arn:aws:kms:eu-west-1:111122223333:key/abcd');
  });
});
