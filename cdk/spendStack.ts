/**
 * The windowed example's stack: `functions/spend.ts` (per-account spend per minute, examples/spend.ts)
 * deployed as a second Tidemark pipeline of the example app, on the same cluster and input topic as
 * the balances pipeline (its own consumer group), with scheduled ticks for idle partitions and its
 * Kafka output topic `spend-per-minute` on that cluster. The function must reach the brokers to
 * deliver: with Amazon MSK, its public endpoints (IAM or SCRAM), or build the pipeline in your own stack
 * with `outputs.kafka.vpc`.
 */
import { fileURLToPath } from 'node:url';
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import type { BalancesSettings } from './balancesSettings.ts';
import { kafkaSource } from './balancesStack.ts';
import type { KafkaOutputAuthentication } from './tidemarkOutputs.ts';
import { TidemarkPipeline } from './tidemarkPipeline.ts';

/** The example's output topic (examples/spend.ts `SPEND_OUTPUT_TOPIC`; cdk/ imports no runtime code). */
export const SPEND_OUTPUT_TOPIC = 'spend-per-minute';

/** Brokers standing in for an MSK cluster's when none are given (synth only). */
export const PLACEHOLDER_OUTPUT_BROKERS = ['b-1.tidemark-placeholder.kafka.us-east-1.amazonaws.com:9098'];

export interface SpendStackProps extends StackProps {
  /** The example app's settings (cluster, input topic, alarm topic). */
  readonly settings: BalancesSettings;
  /**
   * Bootstrap brokers for the output (context `spendOutputBrokers`, env `TIDEMARK_DEPLOY_SPEND_OUTPUT_BROKERS`):
   * for MSK, the cluster's brokers for its authentication (IAM: port 9098, SCRAM: 9096).
   * @default - self-managed: the input's bootstrap servers; MSK: a placeholder (synth only)
   */
  readonly outputBrokers?: readonly string[];
  /** @default 'spend' */
  readonly pipelineId?: string;
}

export class SpendStack extends Stack {
  readonly pipeline: TidemarkPipeline;

  constructor(scope: Construct, id: string, props: SpendStackProps) {
    super(scope, id, props);
    const s = props.settings;
    const c = s.cluster;
    const secret = c.secretArn
      ? Secret.fromSecretAttributes(this, 'OutputSecret', {
          secretCompleteArn: c.secretArn,
          encryptionKey: c.secretKeyArn ? Key.fromKeyArn(this, 'OutputSecretKey', c.secretKeyArn) : undefined,
        })
      : undefined;
    const authentication: KafkaOutputAuthentication = secret
      ? {
          kind: 'scram',
          secret,
          mechanism: c.authentication === 'SASL_SCRAM_256_AUTH' ? 'scram-sha-256' : 'scram-sha-512',
        }
      : c.kind === 'msk'
        ? { kind: 'msk-iam', clusterArn: c.clusterArn! }
        : { kind: 'none' };
    const brokers =
      props.outputBrokers ?? (c.kind === 'self-managed' ? c.bootstrapServers! : PLACEHOLDER_OUTPUT_BROKERS);
    this.pipeline = new TidemarkPipeline(this, 'Spend', {
      pipelineId: props.pipelineId ?? 'spend',
      entry: fileURLToPath(new URL('../functions/spend.ts', import.meta.url)),
      depsLockFilePath: fileURLToPath(new URL('../package-lock.json', import.meta.url)),
      source: kafkaSource(this, c),
      topic: s.topic,
      ticks: true,
      outputs: { kafka: { brokers, topics: [SPEND_OUTPUT_TOPIC], authentication } },
    });
    const p = this.pipeline;
    new CfnOutput(this, 'FunctionName', { value: p.function.functionName });
    new CfnOutput(this, 'TickRuleName', { value: p.ticks!.rule.ruleName });
  }
}
