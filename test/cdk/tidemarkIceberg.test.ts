/**
 * The Iceberg part of `TidemarkPipeline` (`iceberg` prop): the scheduled committer, the DynamoDB
 * catalog table, least-privilege grants of both functions, and cdk-nag with it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duration, Validations } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addPipelineStack,
  pipelineStack,
  removeOutdirs,
  roleStatements,
  type Statement,
  testApp,
} from './synth.ts';

afterAll(removeOutdirs);

const ICEBERG = { tables: ['lake.orders', 'lake.refunds'] };

function functions(template: Template) {
  return Object.entries(template.findResources('AWS::Lambda::Function')).map(([id, r]) => ({
    id,
    props: r.Properties as {
      Handler: string;
      Role: { 'Fn::GetAtt': [string, string] };
      Environment: { Variables: Record<string, unknown> };
      Timeout: number;
    },
  }));
}

/** Statements of the policies attached to one role. */
function statementsOf(template: Template, roleId: string): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

const bySid = (statements: Statement[], sid: string) => {
  const found = statements.filter((s) => s.Sid === sid);
  if (found.length !== 1) throw new Error(`${found.length} statements ${sid}`);
  return found[0]!;
};

describe('TidemarkPipeline with Iceberg outputs', () => {
  it('changes nothing when the pipeline has none', () => {
    const { template } = pipelineStack();
    expect(functions(template)).toHaveLength(1);
    template.resourceCountIs('AWS::Events::Rule', 0);
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    expect(roleStatements(template).some((s) => s.Sid?.startsWith('Iceberg'))).toBe(false);
  });

  it('adds the committer on a schedule, the catalog table, and the settings of both functions', () => {
    const { template } = pipelineStack({ iceberg: { ...ICEBERG, commitInterval: Duration.minutes(2) } });
    const fns = functions(template);
    expect(fns).toHaveLength(2);
    const committer = fns.find((f) => f.props.Handler === 'index.commitIceberg')!;
    const pipelineFn = fns.find((f) => f.props.Handler === 'index.handler')!;
    expect(committer.props.Timeout).toBe(300);
    for (const f of [committer, pipelineFn]) {
      expect(f.props.Environment.Variables).toMatchObject({
        TIDEMARK_ICEBERG_CATALOG: 'dynamodb',
        TIDEMARK_PIPELINE: 'orders',
        TIDEMARK_ICEBERG_CATALOG_TABLE: { Ref: expect.stringMatching(/^PipelineIcebergCatalogTable/) },
      });
      expect(JSON.stringify(f.props.Environment.Variables.TIDEMARK_ICEBERG_WAREHOUSE)).toMatch(/\/iceberg"/);
    }
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(2 minutes)',
      State: 'ENABLED',
      Targets: [{ Arn: { 'Fn::GetAtt': [committer.id, 'Arn'] }, RetryPolicy: { MaximumRetryAttempts: 0 } }],
    });
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'identifier', KeyType: 'HASH' },
        { AttributeName: 'namespace', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'namespace-identifier',
          KeySchema: [
            { AttributeName: 'namespace', KeyType: 'HASH' },
            { AttributeName: 'identifier', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      DeletionProtectionEnabled: true,
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: committer.id } }],
      Threshold: 1,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
    });
  });

  it("grants each function only its tables' files and catalog items; only the committer swaps and deletes", () => {
    const { template } = pipelineStack({ iceberg: ICEBERG });
    const fns = functions(template);
    const roleOf = (handler: string) =>
      fns.find((f) => f.props.Handler === handler)!.props.Role['Fn::GetAtt'][0];
    const pipelineStatements = statementsOf(template, roleOf('index.handler'));
    const committerStatements = statementsOf(template, roleOf('index.commitIceberg'));
    const locations = ['iceberg/lake.db/orders/*', 'iceberg/lake.db/refunds/*'];
    const resources = (s: Statement) => JSON.stringify(s.Resource);
    const delivery = bySid(pipelineStatements, 'IcebergDelivery');
    expect(delivery.Action).toEqual(['s3:GetObject', 's3:PutObject']);
    for (const l of locations) expect(resources(delivery)).toContain(`/${l}`);
    const files = bySid(committerStatements, 'IcebergTableFiles');
    expect(files.Action).toEqual(['s3:GetObject', 's3:PutObject', 's3:DeleteObject']);
    expect(bySid(committerStatements, 'IcebergTableListing').Condition).toEqual({
      StringLike: { 's3:prefix': locations },
    });
    const keys = {
      'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['lake.orders', 'lake.refunds', 'NAMESPACE'] },
    };
    expect(bySid(pipelineStatements, 'IcebergCatalogRead')).toMatchObject({
      Action: ['dynamodb:GetItem', 'dynamodb:PutItem'],
      Condition: keys,
    });
    expect(bySid(committerStatements, 'IcebergCatalogCommit')).toMatchObject({
      Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
      Condition: keys,
    });
    // The committer gets nothing of the pipeline's own: no checkpoints, no commit items, no Kafka.
    const committerActions = committerStatements.flatMap((s) =>
      Array.isArray(s.Action) ? s.Action : [s.Action],
    );
    expect(committerActions.some((a) => a.startsWith('kafka') || a.startsWith('ec2:'))).toBe(false);
    expect(committerStatements.some((s) => s.Sid === 'CheckpointObjects' || s.Sid === 'CommitItems')).toBe(
      false,
    );
  });

  it('uses the S3 Hadoop layout without a catalog table', () => {
    const { template } = pipelineStack({
      iceberg: { ...ICEBERG, catalog: 's3', warehousePrefix: 'wh/iceberg' },
    });
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    const statements = roleStatements(template);
    expect(statements.some((s) => s.Sid?.startsWith('IcebergCatalog'))).toBe(false);
    expect(JSON.stringify(statements.filter((s) => s.Sid === 'IcebergDelivery'))).toContain(
      '/wh/iceberg/lake/orders/*',
    );
  });

  it('sets a REST catalog (Glue) on both functions and grants nothing for it', () => {
    const rest = {
      uri: 'https://glue.eu-west-1.amazonaws.com/iceberg',
      warehouse: '111122223333',
      signing: 'glue' as const,
    };
    const { template } = pipelineStack({ iceberg: { ...ICEBERG, catalog: 'rest', rest } });
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    for (const f of functions(template)) {
      expect(f.props.Environment.Variables).toMatchObject({
        TIDEMARK_ICEBERG_CATALOG: 'rest',
        TIDEMARK_ICEBERG_REST_URI: rest.uri,
        TIDEMARK_ICEBERG_WAREHOUSE: rest.warehouse,
        TIDEMARK_ICEBERG_REST_SIGNING: 'glue',
      });
    }
    expect(roleStatements(template).some((s) => s.Sid?.startsWith('Iceberg'))).toBe(false);
    expect(() => pipelineStack({ iceberg: { ...ICEBERG, catalog: 'rest' } })).toThrow(
      /iceberg\.rest is required/,
    );
  });

  it('rejects what would not work, at synth time', () => {
    expect(() => pipelineStack({ iceberg: { tables: [] } })).toThrow(/at least one table/);
    expect(() => pipelineStack({ iceberg: { tables: ['orders'] } })).toThrow(/not namespace\.name/);
    expect(() => pipelineStack({ iceberg: { ...ICEBERG, commitInterval: Duration.seconds(30) } })).toThrow(
      /whole number of minutes/,
    );
    expect(() =>
      pipelineStack({ iceberg: ICEBERG, environment: { TIDEMARK_ICEBERG_WAREHOUSE: 's3://x/y' } }),
    ).toThrow(/is set by TidemarkPipeline/);
  });

  it('reports no unacknowledged cdk-nag finding (AWS Solutions rules)', () => {
    const app = testApp();
    addPipelineStack(app, { iceberg: ICEBERG });
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
