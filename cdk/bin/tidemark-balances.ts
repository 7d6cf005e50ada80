#!/usr/bin/env node
/**
 * Example app: deploys functions/balances.ts as a Tidemark pipeline and, with `-c spend=true`,
 * functions/spend.ts (the windowed example: per-account spend per minute to Kafka) as a second one on
 * the same cluster and topic, in a stack of its own (`npx cdk deploy --all -c spend=true …`).
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
import { SpendStack } from '../spendStack.ts';

const app = new App();
const settings = readBalancesSettings((key) => app.node.tryGetContext(key));
const env =
  settings.account || settings.region ? { account: settings.account, region: settings.region } : undefined;
new BalancesStack(app, settings.stackName, {
  settings,
  description: `Tidemark pipeline ${settings.pipelineId}: the balances example (functions/balances.ts)`,
  env,
});
// The windowed example, on request (-c spend=true): spend per account and minute on the same cluster
// and topic, to Kafka. A second stack: deploy both with --all, or name one.
const context = (key: string, envName: string) =>
  String(app.node.tryGetContext(key) ?? process.env[envName] ?? '').trim();
if (['true', '1', 'yes'].includes(context('spend', 'TIDEMARK_DEPLOY_SPEND'))) {
  const outputBrokers = context('spendOutputBrokers', 'TIDEMARK_DEPLOY_SPEND_OUTPUT_BROKERS')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  new SpendStack(app, `${settings.stackName}Spend`, {
    settings,
    ...(outputBrokers.length > 0 ? { outputBrokers } : {}),
    description: 'Tidemark pipeline spend: the windowed example (functions/spend.ts)',
    env,
  });
}
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
