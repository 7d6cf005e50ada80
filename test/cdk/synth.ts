/** Helpers to synthesize Tidemark constructs in tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { TidemarkPipeline, type TidemarkPipelineProps } from '../../cdk/tidemarkPipeline.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BALANCES_ENTRY = join(REPO_ROOT, 'functions/balances.ts');
export const CLUSTER_ARN =
  'arn:aws:kafka:eu-west-1:111122223333:cluster/orders-cluster/5a7b3c1d-1111-2222-3333-444455556666-3';

const outdirs: string[] = [];

/** An app writing to a temporary directory; without `bundling` the function code is not built. */
export function testApp(options: { bundling?: boolean; context?: Record<string, unknown> } = {}): App {
  const outdir = mkdtempSync(join(tmpdir(), 'tidemark-cdk-'));
  outdirs.push(outdir);
  return new App({
    outdir,
    context: {
      ...(options.bundling ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
}

/** Removes every temporary output directory made by `testApp`. */
export function removeOutdirs(): void {
  for (const d of outdirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export type PipelineOverrides = Partial<TidemarkPipelineProps>;

/** Adds a pipeline (MSK with IAM authentication unless overridden) to a new stack of `app`. */
export function addPipelineStack(
  app: App,
  overrides: PipelineOverrides | ((stack: Stack) => PipelineOverrides) = {},
): { stack: Stack; pipeline: TidemarkPipeline } {
  const stack = new Stack(app, `Test${app.node.children.length}`);
  const extra = typeof overrides === 'function' ? overrides(stack) : overrides;
  const pipeline = new TidemarkPipeline(stack, 'Pipeline', {
    pipelineId: 'orders',
    entry: BALANCES_ENTRY,
    source: { kind: 'msk', clusterArn: CLUSTER_ARN },
    topic: 'orders-topic',
    ...extra,
  });
  return { stack, pipeline };
}

/**
 * A stack holding one pipeline, and its template. Making the template synthesizes the app (once:
 * later `app.synth()` calls return the same assembly, so add validation plugins before this).
 */
export function pipelineStack(
  overrides: PipelineOverrides | ((stack: Stack) => PipelineOverrides) = {},
  app: App = testApp(),
): { app: App; stack: Stack; pipeline: TidemarkPipeline; template: Template } {
  const { stack, pipeline } = addPipelineStack(app, overrides);
  return { app, stack, pipeline, template: Template.fromStack(stack) };
}

export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

/** Every statement of every policy attached to roles in the template (inline or AWS::IAM::Policy). */
export function roleStatements(template: Template): Statement[] {
  const out: Statement[] = [];
  for (const p of Object.values(template.findResources('AWS::IAM::Policy'))) {
    out.push(...(p.Properties.PolicyDocument.Statement as Statement[]));
  }
  for (const r of Object.values(template.findResources('AWS::IAM::Role'))) {
    for (const p of (r.Properties.Policies ?? []) as Array<{ PolicyDocument: { Statement: Statement[] } }>) {
      out.push(...p.PolicyDocument.Statement);
    }
  }
  return out;
}

export const actionsOf = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);

/** The only resource of the only resource of a given type. */
export function onlyResource(
  template: Template,
  type: string,
): { id: string; props: Record<string, unknown> } {
  const all = Object.entries(template.findResources(type));
  if (all.length !== 1) throw new Error(`expected one ${type}, found ${all.length}`);
  const [id, r] = all[0]!;
  return { id, props: r.Properties as Record<string, unknown> };
}
