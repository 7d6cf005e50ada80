#!/usr/bin/env node
/**
 * Example app: deploys functions/balances.ts as a Tidemark pipeline.
 *
 *     npx cdk synth                                         # offline, placeholder MSK cluster
 *     npx cdk deploy -c mskClusterArn=arn:aws:kafka:…       # Amazon MSK, IAM authentication
 *     npx cdk deploy -c bootstrapServers=b1:9096,b2:9096 -c secretArn=arn:aws:secretsmanager:…
 *
 * Every setting and its environment variable: cdk/balancesSettings.ts and docs/deployment.md.
 * cdk-nag's AWS Solutions rules run on every synth; an unacknowledged error fails it.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readBalancesSettings } from '../balancesSettings.ts';
import { BalancesStack } from '../balancesStack.ts';

const app = new App();
const settings = readBalancesSettings((key) => app.node.tryGetContext(key));
new BalancesStack(app, settings.stackName, {
  settings,
  description: `Tidemark pipeline ${settings.pipelineId}: the balances example (functions/balances.ts)`,
  env:
    settings.account || settings.region ? { account: settings.account, region: settings.region } : undefined,
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
