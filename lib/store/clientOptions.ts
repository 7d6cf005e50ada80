/**
 * Settings of the SDK clients built from the standard AWS environment: region, credentials and
 * endpoints come from the SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`, …), so
 * the same code runs in Lambda and against local servers. Only when an endpoint override is present
 * do we switch on what local S3 servers need: path-style addressing, and checksums only when an
 * operation requires them (streamed bodies are otherwise stored with their aws-chunked framing).
 */

/**
 * Timeouts: a hung connection or a server that never answers must fail (retriably, through the
 * SDK's retries) long before the function times out. `requestTimeout` only warns in the SDK's HTTP
 * handler unless `throwOnRequestTimeout` is set; `socketTimeout` bounds inactivity on the socket.
 */
export const CLIENT_TIMEOUTS = {
  connectionTimeout: 3_000,
  requestTimeout: 30_000,
  throwOnRequestTimeout: true,
  socketTimeout: 30_000,
} as const;

type Env = Readonly<Record<string, string | undefined>>;

export function s3EndpointOverride(env: Env = process.env): string | undefined {
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
}

export function dynamoEndpointOverride(env: Env = process.env): string | undefined {
  return env.AWS_ENDPOINT_URL_DYNAMODB || env.AWS_ENDPOINT_URL || undefined;
}

/** Region and credentials taken from `env` when it is not the process environment (which the SDK reads itself). */
export function explicit(env: Env) {
  if (env === process.env) return {};
  const { AWS_REGION: region, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = env;
  return {
    ...(region ? { region } : {}),
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
  };
}
