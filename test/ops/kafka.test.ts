import { describe, expect, it } from 'vitest';
import { OperationError } from '../../lib/errors.ts';
import { kafkaClientConfig, lagOf, parseBrokers } from '../../lib/ops/kafka.ts';
import { mskIamToken } from '../../lib/store/msk/mskIamToken.ts';

const brokers = ['b-1.example:9096', 'b-2.example:9096'];

describe('kafkaClientConfig: options → kafkajs configuration', () => {
  it('plain: no TLS, no SASL', () => {
    const c = kafkaClientConfig({ brokers });
    expect(c).toMatchObject({ brokers, ssl: false, clientId: 'tidemark-cli' });
    expect(c.sasl).toBeUndefined();
  });

  it('TLS with the default trust store or a CA file', () => {
    expect(kafkaClientConfig({ brokers, ssl: true }).ssl).toBe(true);
    const read: string[] = [];
    const c = kafkaClientConfig(
      { brokers, caFile: '/etc/ca.pem' },
      {
        readFile: (p) => {
          read.push(p);
          return '-----BEGIN CERTIFICATE-----';
        },
      },
    );
    expect(c.ssl).toEqual({ ca: ['-----BEGIN CERTIFICATE-----'] });
    expect(read).toEqual(['/etc/ca.pem']);
  });

  it.each(['scram-sha-256', 'scram-sha-512', 'plain'] as const)('SASL %s with username and password', (m) => {
    const c = kafkaClientConfig({
      brokers,
      ssl: true,
      saslMechanism: m,
      saslUsername: 'u',
      saslPassword: 'p',
    });
    expect(c.sasl).toEqual({ mechanism: m, username: 'u', password: 'p' });
    expect(c.ssl).toBe(true);
    expect(() => kafkaClientConfig({ brokers, saslMechanism: m, saslUsername: 'u' })).toThrow(
      /needs --sasl-username and --sasl-password/,
    );
  });

  it('aws-iam: OAUTHBEARER with a token from the signer for the region, over TLS', async () => {
    const regions: string[] = [];
    const c = kafkaClientConfig(
      { brokers, saslMechanism: 'aws-iam', region: 'eu-west-1' },
      {
        iamToken: async (r) => {
          regions.push(r);
          return { value: 'signed-token' };
        },
      },
    );
    expect(c.ssl).toBe(true);
    expect(c.sasl?.mechanism).toBe('oauthbearer');
    const provider = (c.sasl as { oauthBearerProvider: () => Promise<{ value: string }> })
      .oauthBearerProvider;
    expect(await provider()).toEqual({ value: 'signed-token' });
    expect(regions).toEqual(['eu-west-1']);
    expect(() => kafkaClientConfig({ brokers, saslMechanism: 'aws-iam' })).toThrow(/needs --region/);
  });

  it('refuses an unknown mechanism and credentials without a mechanism', () => {
    expect(() => kafkaClientConfig({ brokers, saslMechanism: 'gssapi' as never })).toThrow(OperationError);
    expect(() => kafkaClientConfig({ brokers, saslUsername: 'u', saslPassword: 'p' })).toThrow(
      /without --sasl-mechanism/,
    );
  });

  it('parses broker lists', () => {
    expect(parseBrokers(' a:1, b.c:9092 ,[::1]:9092')).toEqual(['a:1', 'b.c:9092', '[::1]:9092']);
    expect(() => parseBrokers('a')).toThrow(/not host:port/);
    expect(() => parseBrokers(' , ')).toThrow(/no Kafka broker/);
  });

  it('computes lag from the group offset, or from the earliest offset when the group has none', () => {
    expect(lagOf(5n, { partition: 0, low: 2n, high: 20n })).toBe(15n);
    expect(lagOf(null, { partition: 0, low: 2n, high: 20n })).toBe(18n);
    expect(lagOf(25n, { partition: 0, low: 2n, high: 20n })).toBe(0n);
  });
});

describe('mskIamToken (the official signer, offline)', () => {
  it('signs a kafka-cluster:Connect request for the region with the environment credentials', async () => {
    const t = await mskIamToken('eu-west-1');
    const url = new URL(Buffer.from(t.value, 'base64url').toString('utf8'));
    expect(url.host).toBe('kafka.eu-west-1.amazonaws.com');
    expect(url.searchParams.get('Action')).toBe('kafka-cluster:Connect');
    expect(url.searchParams.get('X-Amz-Credential')).toContain(`${process.env.AWS_ACCESS_KEY_ID}/`);
    expect(t.expiresAt).toBeGreaterThan(Date.now());
  });
});
