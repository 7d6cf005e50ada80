/**
 * Region, credentials and endpoints of the lightweight transport, from the standard AWS environment
 * variables the SDK reads too: `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (Lambda sets all of them for the execution role) and
 * the endpoint overrides `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`.
 * What the transport does not do (credentials from profiles, SSO, container or instance metadata;
 * FIPS or dual-stack endpoints) makes `liteAwsSettings` answer with the reason, and the caller uses
 * the SDK instead.
 */
import { dynamoEndpointOverride, s3EndpointOverride } from '../clientOptions.ts';
import type { AwsCredentials } from './transport.ts';

type Env = Readonly<Record<string, string | undefined>>;

export interface LiteAwsSettings {
  region: string;
  credentials: AwsCredentials;
  /** The endpoint override, if any (local servers); regional AWS endpoints otherwise. */
  endpoint?: string;
}

const truthy = (v: string | undefined) => v !== undefined && /^(true|1)$/i.test(v.trim());

/** The settings, or why the lightweight transport cannot serve this environment. */
export function liteAwsSettings(
  service: 'dynamodb' | 's3',
  env: Env = process.env,
): LiteAwsSettings | { unsupported: string } {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (!region) return { unsupported: 'AWS_REGION is not set' };
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    return {
      unsupported: 'credentials are not in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)',
    };
  }
  if (truthy(env.AWS_USE_FIPS_ENDPOINT)) return { unsupported: 'AWS_USE_FIPS_ENDPOINT is set' };
  if (truthy(env.AWS_USE_DUALSTACK_ENDPOINT)) return { unsupported: 'AWS_USE_DUALSTACK_ENDPOINT is set' };
  const endpoint = service === 'dynamodb' ? dynamoEndpointOverride(env) : s3EndpointOverride(env);
  return {
    region,
    credentials: {
      accessKeyId,
      secretAccessKey,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    },
    ...(endpoint ? { endpoint } : {}),
  };
}

/** DNS suffixes of the partitions other than `aws` (whose suffix is `amazonaws.com`), by region prefix. */
const PARTITION_SUFFIXES: ReadonlyArray<readonly [string, string]> = [
  ['cn-', 'amazonaws.com.cn'],
  ['eusc-', 'amazonaws.eu'],
  ['us-isob-', 'sc2s.sgov.gov'],
  ['us-iso-', 'c2s.ic.gov'],
];

/** The DNS suffix of a region's endpoints (the partition's: China, the European Sovereign Cloud, …). */
export function dnsSuffix(region: string): string {
  return PARTITION_SUFFIXES.find(([prefix]) => region.startsWith(prefix))?.[1] ?? 'amazonaws.com';
}
