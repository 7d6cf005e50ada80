import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { SecurityGroup, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import type { TidemarkCommitDatabase } from '../../cdk/commitDatabase.ts';
import { ENV } from '../../lib/config/env.ts';
import {
  actionsOf,
  addPipelineStack,
  onlyResource,
  pipelineStack,
  removeOutdirs,
  roleStatements,
  testApp,
} from './synth.ts';

afterAll(removeOutdirs);

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:tidemark-db-AbCdEf';

function database(
  stack: Parameters<typeof Vpc.fromVpcAttributes>[0],
  extra: Partial<TidemarkCommitDatabase> = {},
): TidemarkCommitDatabase {
  const vpc = Vpc.fromVpcAttributes(stack, 'DbVpc', {
    vpcId: 'vpc-0db',
    availabilityZones: ['eu-west-1a', 'eu-west-1b'],
    privateSubnetIds: ['subnet-0a', 'subnet-0b'],
  });
  return {
    engine: 'postgres',
    url: 'postgres://tidemark@proxy.example:5432/app',
    vpc,
    vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
    securityGroups: [SecurityGroup.fromSecurityGroupId(stack, 'DbClients', 'sg-0123456789abcdef0')],
    ...extra,
  };
}

describe('TidemarkPipeline with its commits in an existing database', () => {
  it('runs the function in the database VPC with the store settings, and grants the secret only (no table access)', () => {
    const { template } = pipelineStack((stack) => ({
      commitDatabase: database(stack, {
        secret: Secret.fromSecretAttributes(stack, 'DbSecret', {
          secretCompleteArn: SECRET_ARN,
          encryptionKey: Key.fromKeyArn(stack, 'DbKey', 'arn:aws:kms:eu-west-1:111122223333:key/db'),
        }),
        prefix: 'orders_tm',
      }),
    }));
    const fn = onlyResource(template, 'AWS::Lambda::Function');
    expect(fn.props.VpcConfig).toEqual({
      SubnetIds: ['subnet-0a', 'subnet-0b'],
      SecurityGroupIds: ['sg-0123456789abcdef0'],
    });
    const vars = (fn.props.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars).toMatchObject({
      [ENV.commitStore]: 'postgres',
      [ENV.dbUrl]: 'postgres://tidemark@proxy.example:5432/app',
      [ENV.dbSecret]: SECRET_ARN,
      [ENV.dbPrefix]: 'orders_tm',
      NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
    });
    const statements = roleStatements(template);
    const actions = statements.flatMap(actionsOf);
    expect(actions.filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
    const secretRead = statements.find((s) => actionsOf(s).includes('secretsmanager:GetSecretValue'))!;
    expect(secretRead.Resource).toBe(SECRET_ARN);
    const decrypt = statements.find((s) => s.Sid === 'CommitDatabaseSecretKey')!;
    expect(decrypt.Resource).toBe('arn:aws:kms:eu-west-1:111122223333:key/db');
    expect(JSON.stringify(decrypt.Condition)).toContain('secretsmanager.');
    // In a VPC the function needs Lambda's network-interface policy (acknowledged for cdk-nag).
    const role = onlyResource(template, 'AWS::IAM::Role');
    expect(JSON.stringify(role.props.ManagedPolicyArns)).toContain('AWSLambdaVPCAccessExecutionRole');
    expect(actions.some((a) => a.startsWith('rds-db:'))).toBe(false);
  });

  it('grants rds-db:connect as the one IAM user on the one database or proxy', () => {
    const { template } = pipelineStack((stack) => ({
      commitDatabase: database(stack, {
        engine: 'mysql',
        url: 'mysql://tm_iam@db.example:3306/app',
        iamAuth: { resourceId: 'prx-0abc', user: 'tm_iam' },
      }),
    }));
    const connect = roleStatements(template).find((s) => s.Sid === 'CommitDatabaseConnect')!;
    expect(actionsOf(connect)).toEqual(['rds-db:connect']);
    expect(JSON.stringify(connect.Resource)).toContain(':dbuser:prx-0abc/tm_iam');
    const vars = (
      onlyResource(template, 'AWS::Lambda::Function').props.Environment as {
        Variables: Record<string, unknown>;
      }
    ).Variables;
    expect(vars).toMatchObject({ [ENV.commitStore]: 'mysql', [ENV.dbIamAuth]: 'true' });
    expect(vars[ENV.dbSecret]).toBeUndefined();
  });

  it('wires Redis with its acknowledged durability, and refuses Redis without it', () => {
    const { template } = pipelineStack((stack) => ({
      commitDatabase: database(stack, {
        engine: 'redis',
        url: 'rediss://clustercfg.example:6379',
        redisDurability: 'memorydb',
        redisCluster: true,
      }),
    }));
    const vars = (
      onlyResource(template, 'AWS::Lambda::Function').props.Environment as {
        Variables: Record<string, unknown>;
      }
    ).Variables;
    expect(vars).toMatchObject({
      [ENV.commitStore]: 'redis',
      [ENV.redisDurability]: 'memorydb',
      [ENV.redisCluster]: 'true',
    });
    expect(vars.NODE_EXTRA_CA_CERTS).toBeUndefined();
    expect(() =>
      pipelineStack((stack) => ({ commitDatabase: database(stack, { engine: 'redis', url: 'redis://x' }) })),
    ).toThrow(/redisDurability/);
    expect(() => pipelineStack((stack) => ({ commitDatabase: database(stack, { url: undefined }) }))).toThrow(
      /url/,
    );
    expect(() =>
      pipelineStack((stack) => ({
        commitDatabase: database(stack),
        environment: { [ENV.dbUrl]: 'postgres://elsewhere' },
      })),
    ).toThrow(/TIDEMARK_DB_URL is set by TidemarkPipeline/);
  });

  it('reports no unacknowledged cdk-nag finding (AWS Solutions rules)', () => {
    const app = testApp();
    addPipelineStack(app, (stack) => ({
      commitDatabase: database(stack, {
        secret: Secret.fromSecretCompleteArn(stack, 'S', SECRET_ARN),
        iamAuth: { resourceId: 'cluster-ABC', user: 'tm' },
      }),
    }));
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    let threw: unknown;
    try {
      app.synth();
    } catch (err) {
      threw = err;
    }
    const report = JSON.parse(readFileSync(join(app.outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: Array<{ violations: unknown[] }>;
    };
    expect(report.pluginReports.flatMap((r) => r.violations)).toEqual([]);
    expect(threw).toBeUndefined();
  });
});

describe('bundles (esbuild, locally): only the chosen commit store’s driver', () => {
  function bundle(withDatabase: boolean): string {
    const app = testApp({ bundling: true, context: { 'aws:cdk:enable-asset-metadata': true } });
    const { template } = pipelineStack(
      (stack) => (withDatabase ? { commitDatabase: database(stack) } : {}),
      app,
    );
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0]!;
    return join(app.outdir, fn.Metadata['aws:asset:path'] as string, 'index.mjs');
  }

  it('leaves pg, mysql2, ioredis and the Secrets Manager client out of the DynamoDB bundle, and puts pg in the PostgreSQL one', () => {
    const dynamo = bundle(false);
    const code = readFileSync(dynamo, 'utf8');
    // Markers of each driver's code (error messages and names they ship).
    expect(code).not.toContain('pg-pool');
    expect(code).not.toContain('Connection terminated unexpectedly');
    expect(code).not.toContain('mysql_clear_password');
    expect(code).not.toContain('MaxRetriesPerRequestError');
    expect(code).not.toContain('GetSecretValue');
    const postgres = bundle(true);
    const pgCode = readFileSync(postgres, 'utf8');
    expect(pgCode).toContain('Connection terminated unexpectedly');
    expect(pgCode).not.toContain('mysql_clear_password');
    expect(pgCode).not.toContain('MaxRetriesPerRequestError');
    expect(statSync(postgres).size).toBeGreaterThan(statSync(dynamo).size);
  }, 180_000);
});
