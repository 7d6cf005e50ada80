import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { PLACEHOLDER_CLUSTER_ARN, readBalancesSettings, SETTINGS } from '../../cdk/balancesSettings.ts';
import { BalancesStack } from '../../cdk/balancesStack.ts';
import { killWithParent } from '../../harness/processGuard.ts';
import { REPO_ROOT, removeOutdirs, testApp } from './synth.ts';

afterAll(removeOutdirs);

const context = (values: Record<string, string>) => (key: string) => values[key];
const MSK = 'arn:aws:kafka:eu-central-1:210987654321:cluster/prod/11111111-2222-3333-4444-555555555555-7';

describe('the example app settings', () => {
  it('default to a placeholder MSK cluster so that synth works with no flags', () => {
    const s = readBalancesSettings(context({}), {});
    expect(s).toMatchObject({
      stackName: 'TidemarkBalances',
      pipelineId: 'balances',
      topic: 'balances',
      cluster: { kind: 'msk', clusterArn: PLACEHOLDER_CLUSTER_ARN, placeholder: true },
    });
    expect(s.region).toBeUndefined();
  });

  it('take the cluster from context first, then from the environment, and the region from the MSK ARN', () => {
    const env = {
      [SETTINGS.mskClusterArn.env]: 'arn:aws:kafka:us-west-2:1:cluster/x/y-1',
      CDK_DEFAULT_REGION: 'us-east-1',
    };
    expect(readBalancesSettings(context({ mskClusterArn: MSK }), env)).toMatchObject({
      cluster: { kind: 'msk', clusterArn: MSK, placeholder: false },
      region: 'eu-central-1',
    });
    expect(readBalancesSettings(context({}), env)).toMatchObject({
      cluster: { clusterArn: 'arn:aws:kafka:us-west-2:1:cluster/x/y-1' },
      region: 'us-west-2',
    });
    expect(readBalancesSettings(context({ mskClusterArn: MSK, region: 'eu-west-3' }), env).region).toBe(
      'eu-west-3',
    );
  });

  it('describe a self-managed cluster from bootstrap servers, a secret and an optional VPC', () => {
    const s = readBalancesSettings(
      context({
        bootstrapServers: 'b1.example.com:9096, b2.example.com:9096',
        secretArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:kafka-AbCdEf',
        authentication: 'SASL_SCRAM_256_AUTH',
        subnetIds: 'subnet-1,subnet-2',
        securityGroupId: 'sg-1',
      }),
      {},
    );
    expect(s.cluster).toEqual({
      kind: 'self-managed',
      bootstrapServers: ['b1.example.com:9096', 'b2.example.com:9096'],
      secretArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:kafka-AbCdEf',
      secretKeyArn: undefined,
      authentication: 'SASL_SCRAM_256_AUTH',
      vpc: { subnetIds: ['subnet-1', 'subnet-2'], securityGroupId: 'sg-1' },
      placeholder: false,
    });
  });

  it('refuse contradictory or incomplete cluster details', () => {
    expect(() =>
      readBalancesSettings(context({ mskClusterArn: MSK, bootstrapServers: 'b:9092' }), {}),
    ).toThrow(/either/);
    expect(() => readBalancesSettings(context({ bootstrapServers: 'b:9092' }), {})).toThrow(/secretArn/);
    expect(() =>
      readBalancesSettings(context({ bootstrapServers: 'b:9092', subnetIds: 'subnet-1' }), {}),
    ).toThrow(/securityGroupId/);
    expect(() => readBalancesSettings(context({ authentication: 'BASIC_AUTH' }), {})).toThrow(/MSK/);
    expect(() => readBalancesSettings(context({ authentication: 'PLAIN' }), {})).toThrow(/one of/);
  });
});

describe('BalancesStack', () => {
  it('deploys functions/balances.ts against self-managed Kafka in a VPC, passing the AWS Solutions rules', () => {
    const app = testApp();
    const settings = readBalancesSettings(
      context({
        bootstrapServers: '10.0.1.5:9092',
        subnetIds: 'subnet-a,subnet-b',
        securityGroupId: 'sg-0123',
        alarmTopicArn: 'arn:aws:sns:eu-west-1:111122223333:oncall',
        pipelineId: 'balances-eu',
      }),
      {},
    );
    const stack = new BalancesStack(app, 'Balances', { settings });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    app.synth(); // throws on an unacknowledged cdk-nag error
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      SelfManagedEventSource: { Endpoints: { KafkaBootstrapServers: ['10.0.1.5:9092'] } },
      SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: 'balances-eu' },
      SourceAccessConfigurations: [
        { Type: 'VPC_SECURITY_GROUP', URI: 'sg-0123' },
        { Type: 'VPC_SUBNET', URI: 'subnet-a' },
        { Type: 'VPC_SUBNET', URI: 'subnet-b' },
      ],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmActions: ['arn:aws:sns:eu-west-1:111122223333:oncall'],
    });
    expect(Object.keys(template.findOutputs('*')).sort()).toEqual(
      ['BucketName', 'DashboardName', 'EventSourceMappingId', 'FunctionName', 'TableName'].sort(),
    );
  });
});

/** Runs the CDK CLI to completion; the child's whole process group dies with the test process. */
function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'node_modules/aws-cdk/bin/cdk'), ...args], {
      cwd: REPO_ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const unwatch = killWithParent(child, { group: true });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {}
    }, 150_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      unwatch();
      resolve({ code, output });
    });
  });
}

describe('npx cdk synth', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it('synthesizes the example app offline, with no flags and no AWS credentials', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
    for (const name of Object.keys(env)) {
      if (name.startsWith('AWS_') && name !== 'AWS_CA_BUNDLE') delete env[name];
      if (name.startsWith('CDK_') || name.startsWith('TIDEMARK_')) delete env[name];
    }
    const { code, output } = await runCli(['synth', '--quiet', '--no-notices', '-o', outdir], env);
    expect(code, output).toBe(0);
    expect(output).toContain('placeholder MSK cluster ARN');
    const template = JSON.parse(readFileSync(join(outdir, 'TidemarkBalances.template.json'), 'utf8'));
    const esm = Object.values(
      template.Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>,
    ).find((r) => r.Type === 'AWS::Lambda::EventSourceMapping');
    expect(esm?.Properties.EventSourceArn).toBe(PLACEHOLDER_CLUSTER_ARN);
    const asset = readdirSync(outdir).find((d) => d.startsWith('asset.'));
    expect(asset && existsSync(join(outdir, asset, 'index.mjs'))).toBe(true);
  }, 180_000);
});
