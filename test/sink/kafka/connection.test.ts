/**
 * Where the Kafka sink connects: the output's cluster options, else the TIDEMARK_KAFKA_OUTPUT_*
 * variables; SASL credentials from a Secrets Manager secret; MSK IAM; refusals name the setting.
 */
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../../lib/errors.ts';
import { kafkaOutputClientConfig } from '../../../lib/sink/kafka/connection.ts';
import { kafkaOutput, type ResolvedKafkaOutputOptions } from '../../../lib/sink/kafka/kafkaOutput.ts';

const clusterOf = (cluster: Parameters<typeof kafkaOutput>[0]['cluster'] = {}) =>
  (kafkaOutput({ topic: 't', cluster }).options as unknown as ResolvedKafkaOutputOptions).cluster;

async function refusal(p: Promise<unknown>): Promise<ConfigurationError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigurationError);
    return err as ConfigurationError;
  }
  throw new Error('expected a ConfigurationError');
}

describe('kafkaOutputClientConfig', () => {
  it('takes the brokers, TLS and SCRAM credentials from the environment when the options give none', async () => {
    const config = await kafkaOutputClientConfig(clusterOf(), 'balances', {
      TIDEMARK_KAFKA_OUTPUT_BROKERS: 'b-1:9096, b-2:9096',
      TIDEMARK_KAFKA_OUTPUT_TLS: 'true',
      TIDEMARK_KAFKA_OUTPUT_SASL_MECHANISM: 'scram-sha-512',
      TIDEMARK_KAFKA_OUTPUT_USERNAME: 'u',
      TIDEMARK_KAFKA_OUTPUT_PASSWORD: 'p',
    });
    expect(config).toMatchObject({
      brokers: ['b-1:9096', 'b-2:9096'],
      ssl: true,
      sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' },
      clientId: 'tidemark-balances',
    });
  });

  it('prefers the options to the environment, and reads credentials from a secret', async () => {
    const read: string[] = [];
    const config = await kafkaOutputClientConfig(
      clusterOf({
        brokers: ['mine:9092'],
        saslMechanism: 'scram-sha-256',
        secret: 'arn:secret',
        clientId: 'c',
      }),
      'p',
      { TIDEMARK_KAFKA_OUTPUT_BROKERS: 'other:9092' },
      {
        readSecret: async (id) => {
          read.push(id);
          return JSON.stringify({ username: 'from-secret', password: 'pw' });
        },
      },
    );
    expect(read).toEqual(['arn:secret']);
    expect(config).toMatchObject({
      brokers: ['mine:9092'],
      ssl: false,
      sasl: { mechanism: 'scram-sha-256', username: 'from-secret', password: 'pw' },
      clientId: 'c',
    });
  });

  it('signs MSK IAM tokens for the region, over TLS', async () => {
    const regions: string[] = [];
    const config = await kafkaOutputClientConfig(
      clusterOf({ brokers: 'b-1:9098', saslMechanism: 'aws-iam' }),
      'p',
      { AWS_REGION: 'eu-west-1' },
      {
        iamToken: async (region) => {
          regions.push(region);
          return { value: 'token' };
        },
      },
    );
    expect(config.ssl).toBe(true);
    const sasl = config.sasl as { mechanism: string; oauthBearerProvider: () => Promise<{ value: string }> };
    expect(sasl.mechanism).toBe('oauthbearer');
    expect(await sasl.oauthBearerProvider()).toEqual({ value: 'token' });
    expect(regions).toEqual(['eu-west-1']);
  });

  it('refuses what cannot connect, naming the setting', async () => {
    expect((await refusal(kafkaOutputClientConfig(clusterOf(), 'p', {}))).setting).toBe(
      'TIDEMARK_KAFKA_OUTPUT_BROKERS',
    );
    const env = { TIDEMARK_KAFKA_OUTPUT_BROKERS: 'b:9092' };
    expect(
      (
        await refusal(
          kafkaOutputClientConfig(clusterOf(), 'p', { ...env, TIDEMARK_KAFKA_OUTPUT_BROKERS: 'b' }),
        )
      ).setting,
    ).toBe('TIDEMARK_KAFKA_OUTPUT_BROKERS');
    expect(
      (
        await refusal(
          kafkaOutputClientConfig(clusterOf(), 'p', {
            ...env,
            TIDEMARK_KAFKA_OUTPUT_SASL_MECHANISM: 'gssapi',
          }),
        )
      ).setting,
    ).toBe('TIDEMARK_KAFKA_OUTPUT_SASL_MECHANISM');
    expect(
      (
        await refusal(
          kafkaOutputClientConfig(clusterOf(), 'p', {
            ...env,
            TIDEMARK_KAFKA_OUTPUT_SASL_MECHANISM: 'plain',
          }),
        )
      ).setting,
    ).toBe('TIDEMARK_KAFKA_OUTPUT_SECRET');
    expect(
      (await refusal(kafkaOutputClientConfig(clusterOf({ saslMechanism: 'aws-iam' }), 'p', env))).setting,
    ).toBe('AWS_REGION');
    expect(
      (await refusal(kafkaOutputClientConfig(clusterOf(), 'p', { ...env, TIDEMARK_KAFKA_OUTPUT_TLS: 'yes' })))
        .setting,
    ).toBe('TIDEMARK_KAFKA_OUTPUT_TLS');
    const notJson = kafkaOutputClientConfig(clusterOf({ saslMechanism: 'plain', secret: 's' }), 'p', env, {
      readSecret: async () => 'not json',
    });
    expect((await refusal(notJson)).setting).toBe('TIDEMARK_KAFKA_OUTPUT_SECRET');
  });
});
