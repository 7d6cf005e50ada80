/**
 * The kafkajs client configuration of a Kafka output cluster: each setting from the output's
 * cluster options, else from the `TIDEMARK_KAFKA_OUTPUT_*` variables; TLS, SASL/SCRAM, SASL/PLAIN
 * and IAM for Amazon MSK are wired by the operator commands' `kafkaClientConfig`. A Secrets Manager
 * secret (MSK's SCRAM form, `{"username", "password"}`) is read when the sink is built.
 */
import type { KafkaConfig } from 'kafkajs';
import { ENV } from '../../config/env.ts';
import { ConfigurationError, OperationError } from '../../errors.ts';
import { type KafkaConfigDeps, kafkaClientConfig } from '../../ops/kafka.ts';
import {
  KAFKA_SASL_MECHANISMS,
  type KafkaSaslMechanism,
  parseBrokerList,
  type ResolvedKafkaCluster,
} from './kafkaOutput.ts';

export interface KafkaConnectionDeps extends KafkaConfigDeps {
  /** Reads a Secrets Manager secret's string (default: the AWS SDK, loaded on first use). */
  readSecret?: (secretId: string) => Promise<string>;
}

async function readSecretFromAws(secretId: string): Promise<string> {
  const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const client = new SecretsManagerClient({});
  try {
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    if (out.SecretString === undefined) throw new Error(`secret ${secretId} has no string value`);
    return out.SecretString;
  } finally {
    client.destroy();
  }
}

function flag(name: string, text: string | undefined): boolean | undefined {
  const t = text?.trim().toLowerCase();
  if (!t) return undefined;
  if (t === 'true' || t === '1') return true;
  if (t === 'false' || t === '0') return false;
  throw new ConfigurationError(name, `${name} must be true or false, got ${JSON.stringify(text)}`);
}

/** The kafkajs configuration of an output cluster (without `logLevel`/`retry` tuning: the sink adds it). */
export async function kafkaOutputClientConfig(
  cluster: ResolvedKafkaCluster,
  pipeline: string,
  env: Readonly<Record<string, string | undefined>>,
  deps: KafkaConnectionDeps = {},
): Promise<KafkaConfig> {
  const pick = (v: string | undefined, name: string) => v ?? (env[name]?.trim() || undefined);
  const brokersText = cluster.brokers ?? pick(undefined, ENV.kafkaOutputBrokers);
  if (brokersText === undefined) {
    throw new ConfigurationError(
      ENV.kafkaOutputBrokers,
      `kafkaOutput: no brokers for the output cluster: give cluster.brokers or set ${ENV.kafkaOutputBrokers}`,
    );
  }
  let brokers: string[];
  try {
    brokers = parseBrokerList(ENV.kafkaOutputBrokers, brokersText);
  } catch (err) {
    throw new ConfigurationError(ENV.kafkaOutputBrokers, (err as Error).message, { cause: err });
  }
  const mechanism = (cluster.saslMechanism ?? pick(undefined, ENV.kafkaOutputSaslMechanism)) as
    | KafkaSaslMechanism
    | undefined;
  if (mechanism !== undefined && !(KAFKA_SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
    throw new ConfigurationError(
      ENV.kafkaOutputSaslMechanism,
      `${ENV.kafkaOutputSaslMechanism} must be one of ${KAFKA_SASL_MECHANISMS.join(', ')}, got ${JSON.stringify(mechanism)}`,
    );
  }
  let username = pick(cluster.username, ENV.kafkaOutputUsername);
  let password = pick(cluster.password, ENV.kafkaOutputPassword);
  const secret = pick(cluster.secret, ENV.kafkaOutputSecret);
  if (mechanism !== undefined && mechanism !== 'aws-iam') {
    if (secret) {
      const text = await (deps.readSecret ?? readSecretFromAws)(secret);
      let fields: { username?: unknown; password?: unknown };
      try {
        fields = JSON.parse(text) as typeof fields;
      } catch (err) {
        throw new ConfigurationError(
          ENV.kafkaOutputSecret,
          `secret ${secret} is not JSON ({"username", "password"})`,
          {
            cause: err,
          },
        );
      }
      if (typeof fields.username === 'string') username = fields.username;
      if (typeof fields.password === 'string') password = fields.password;
    }
    if (!username || !password) {
      throw new ConfigurationError(
        ENV.kafkaOutputSecret,
        `kafkaOutput: SASL ${mechanism} needs a username and a password (cluster.secret or ${ENV.kafkaOutputSecret}, or username and password)`,
      );
    }
  }
  const region = cluster.region ?? (env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || undefined);
  if (mechanism === 'aws-iam' && !region) {
    throw new ConfigurationError(
      'AWS_REGION',
      'kafkaOutput: SASL aws-iam needs the cluster region (cluster.region or AWS_REGION)',
    );
  }
  const tls = cluster.tls ?? flag(ENV.kafkaOutputTls, env[ENV.kafkaOutputTls]);
  try {
    const config = kafkaClientConfig(
      {
        brokers,
        ssl: tls,
        caFile: pick(cluster.caFile, ENV.kafkaOutputCaFile),
        saslMechanism: mechanism,
        ...(mechanism === 'aws-iam' ? { region } : { saslUsername: username, saslPassword: password }),
        clientId: cluster.clientId ?? `tidemark-${pipeline}`,
      },
      deps,
    );
    return config;
  } catch (err) {
    if (err instanceof OperationError) {
      throw new ConfigurationError('kafkaOutput.cluster', `kafkaOutput: ${err.message}`, { cause: err });
    }
    throw err;
  }
}
