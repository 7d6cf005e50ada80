import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Validations } from 'aws-cdk-lib';
import { SecurityGroup, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLED_COMMIT_STORE_DEFINE, type TidemarkCommitDatabase } from '../../cdk/commitDatabase.ts';
import { ENV } from '../../lib/config/env.ts';
import type { DatabaseStores } from '../../lib/store/database/DatabaseStores.ts';
import { createMysqlStores } from '../../lib/store/mysql/MysqlStores.ts';
import { createPostgresStores } from '../../lib/store/postgres/PostgresStores.ts';
import {
  actionsOf,
  addPipelineStack,
  BALANCES_ENTRY,
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
  function bundle(engine: 'postgres' | 'mysql'): string {
    const app = testApp({ bundling: true, context: { 'aws:cdk:enable-asset-metadata': true } });
    const { template } = pipelineStack(
      (stack) => (engine ? { commitDatabase: database(stack, { engine }) } : {}),
      app,
    );
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0]!;
    return join(app.outdir, fn.Metadata['aws:asset:path'] as string, 'index.mjs');
  }

  /** Loads a bundled handler with the store settings in the environment, runs one event, returns the task's commit. */
  async function runBundle(file: string, settings: Record<string, string>, stores: DatabaseStores) {
    const pipeline = `bundle-${randomUUID().slice(0, 8)}`;
    const saved = { ...process.env };
    Object.assign(process.env, settings, { [ENV.pipeline]: pipeline });
    try {
      const mod = (await import(pathToFileURL(file).href)) as {
        handler: (event: unknown, context: unknown) => Promise<{ applied: number; epochsCommitted: number }>;
      };
      const summary = await mod.handler(
        {
          eventSource: 'aws:kafka',
          eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/test/abc',
          bootstrapServers: 'b-1:9092',
          records: {
            'orders-0': [0, 1].map((offset) => ({
              topic: 'orders',
              partition: 0,
              offset,
              timestamp: 1,
              timestampType: 'CREATE_TIME',
              key: Buffer.from('alice').toString('base64'),
              value: Buffer.from(JSON.stringify({ amount: 5 })).toString('base64'),
              headers: [],
            })),
          },
        },
        { awsRequestId: 'r', functionName: 'bundled', getRemainingTimeInMillis: () => 60_000 },
      );
      expect(summary).toMatchObject({ applied: 2, epochsCommitted: 1 });
      return await stores.commits.read({ pipeline, topic: 'orders', partition: 0 });
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  }

  /** The same esbuild settings as the construct's (one ES module for Node 24), without CDK around it. */
  async function esbuildBundle(store: string): Promise<string> {
    const { build } = await import('esbuild');
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-esbuild-'));
    dirs.push(dir);
    const outfile = join(dir, 'index.mjs');
    await build({
      entryPoints: [BALANCES_ENTRY],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      mainFields: ['main', 'module'],
      conditions: ['node'],
      banner: {
        js: "import { createRequire as __tidemarkRequire } from 'node:module'; const require = __tidemarkRequire(import.meta.url);",
      },
      minify: true,
      define: { [BUNDLED_COMMIT_STORE_DEFINE]: JSON.stringify(store) },
      outfile,
      logLevel: 'silent',
    });
    return outfile;
  }
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const MARKERS = {
    postgres: 'Connection terminated unexpectedly',
    mysql: 'mysql_clear_password',
    redis: 'MaxRetriesPerRequestError',
    secrets: 'GetSecretValue',
  };

  it('leaves every driver out of the DynamoDB bundle', async () => {
    const code = readFileSync(await esbuildBundle('dynamodb'), 'utf8');
    for (const marker of Object.values(MARKERS)) expect(code).not.toContain(marker);
  }, 120_000);

  it('the construct bundles PostgreSQL’s driver only for a PostgreSQL commit store, and the bundle commits there', async () => {
    const file = bundle('postgres');
    const code = readFileSync(file, 'utf8');
    expect(code).toContain(MARKERS.postgres);
    expect(code).not.toContain(MARKERS.mysql);
    expect(code).not.toContain(MARKERS.redis);
    await expectBundleCommits(file, 'postgres', process.env.TIDEMARK_TEST_POSTGRES_URL!);
  }, 240_000);

  it('a MySQL bundle carries mysql2 only, and commits to MariaDB', async () => {
    const file = await esbuildBundle('mysql');
    const code = readFileSync(file, 'utf8');
    expect(code).toContain(MARKERS.mysql);
    expect(code).not.toContain(MARKERS.postgres);
    await expectBundleCommits(file, 'mysql', process.env.TIDEMARK_TEST_MYSQL_URL!);
  }, 120_000);

  async function expectBundleCommits(file: string, engine: 'postgres' | 'mysql', url: string) {
    const prefix = `bundle_${randomUUID().slice(0, 8)}`;
    const stores = (engine === 'postgres' ? createPostgresStores : createMysqlStores)({
      url,
      prefix,
      tls: 'off',
    });
    try {
      await stores.ensureSchema();
      const commit = await runBundle(
        file,
        { [ENV.commitStore]: engine, [ENV.dbUrl]: url, [ENV.dbTls]: 'off', [ENV.dbPrefix]: prefix },
        stores,
      );
      expect(commit).toMatchObject({ epoch: 1, committedOffset: 2n });
    } finally {
      await stores.close();
    }
  }
});
