/**
 * Deploys the __NAME__ pipeline: the function (src/handler.ts, bundled with esbuild), its S3 bucket,
 * DynamoDB table, event source mapping, dashboard and alarms, checked by cdk-nag.
 *
 *     npx cdk synth                                              # offline, against a placeholder MSK cluster
 *     npx cdk deploy -c mskClusterArn=arn:aws:kafka:… -c topic=deposits
 */
import { fileURLToPath } from 'node:url';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { TidemarkPipeline } from 'tidemark/cdk';

const app = new App();
const clusterArn =
  (app.node.tryGetContext('mskClusterArn') as string | undefined) ??
  'arn:aws:kafka:us-east-1:123456789012:cluster/placeholder/00000000-0000-0000-0000-000000000000-1';
const topic = (app.node.tryGetContext('topic') as string | undefined) ?? 'deposits';

const stack = new Stack(app, '__STACK__');
new TidemarkPipeline(stack, 'Pipeline', {
  pipelineId: '__NAME__',
  entry: fileURLToPath(new URL('../src/handler.ts', import.meta.url)),
  source: { kind: 'msk', clusterArn },
  topic,
});
// cdk-nag's AWS Solutions rules run on every synth: an unacknowledged finding fails it.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
