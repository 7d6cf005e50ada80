/**
 * Where a database store connects and with which password: the URL, a Secrets Manager secret (RDS
 * JSON form) filling what the URL lacks, or an RDS IAM auth token made for each new connection. The
 * AWS clients load on first use only (the DynamoDB path never loads them). Secrets are cached for
 * 5 minutes (and dropped at once when the server refuses them: a rotated password), tokens for
 * 10 of their 15 minutes.
 */
import { readFileSync } from 'node:fs';
import { ENV } from '../../config/env.ts';
import { ConfigurationError, type StoreName } from '../../errors.ts';
import type { ResolvedDatabaseOptions } from './options.ts';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** Database name (SQL) or database number (Redis), when given. */
  readonly database: string | undefined;
  readonly user: string | undefined;
  /** The password for a new connection (a fresh IAM token when due), or undefined for none. */
  password(): Promise<string | undefined>;
  /** Forget a cached secret (the server refused its password: it may have been rotated). */
  refused(): void;
  /** TLS options for Node's `tls.connect`, or undefined for plain TCP. */
  readonly tls: { rejectUnauthorized: boolean; ca?: Buffer; servername?: string } | undefined;
}

const DEFAULT_PORTS: Record<string, number> = { postgres: 5432, mysql: 3306, redis: 6379 };
const SECRET_TTL_MS = 5 * 60_000;
const TOKEN_TTL_MS = 10 * 60_000;

interface SecretFields {
  username?: string;
  password?: string;
  host?: string;
  port?: number | string;
  dbname?: string;
}

const secrets = new Map<string, { at: number; value: Promise<SecretFields> }>();
const tokens = new Map<string, { at: number; value: Promise<string> }>();

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

async function signTokenWithAws(e: { host: string; port: number; user: string }): Promise<string> {
  const { Signer } = await import('@aws-sdk/rds-signer');
  return new Signer({ hostname: e.host, port: e.port, username: e.user }).getAuthToken();
}

function parseSecret(secretId: string, text: string): SecretFields {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'object' && v !== null) return v as SecretFields;
  } catch {}
  // A plain-text secret is the password alone (ElastiCache AUTH tokens are often kept so).
  if (!text.trim().startsWith('{')) return { password: text };
  throw new ConfigurationError(
    ENV.dbSecret,
    `secret ${secretId} is not JSON in the RDS form (username, password, …)`,
  );
}

function cached<T>(
  map: Map<string, { at: number; value: Promise<T> }>,
  key: string,
  ttl: number,
  make: () => Promise<T>,
) {
  const hit = map.get(key);
  if (hit && Date.now() - hit.at < ttl) return hit.value;
  const value = make();
  map.set(key, { at: Date.now(), value });
  value.catch(() => {
    if (map.get(key)?.value === value) map.delete(key);
  });
  return value;
}

/** The endpoint of a database store, its secret read once (and again after 5 minutes). */
export async function resolveEndpoint(
  store: Exclude<StoreName, 's3' | 'dynamodb' | 'memory'>,
  o: ResolvedDatabaseOptions,
): Promise<Endpoint> {
  let url: URL | undefined;
  if (o.url) {
    try {
      url = new URL(o.url);
    } catch {
      throw new ConfigurationError(ENV.dbUrl, `${ENV.dbUrl} is not a URL`);
    }
  }
  const readSecret = o.readSecret ?? readSecretFromAws;
  const secretId = o.secret;
  const fromSecret = secretId
    ? await cached(secrets, secretId, SECRET_TTL_MS, async () =>
        parseSecret(secretId, await readSecret(secretId)),
      )
    : {};
  const host = url?.hostname || fromSecret.host;
  if (!host) {
    throw new ConfigurationError(ENV.dbUrl, `no database host: set ${ENV.dbUrl}, or a secret with a host`);
  }
  const port = Number(url?.port || fromSecret.port || DEFAULT_PORTS[store]);
  const path = url?.pathname.replace(/^\//, '') ?? '';
  const database = path ? decodeURIComponent(path) : fromSecret.dbname;
  const user = url?.username ? decodeURIComponent(url.username) : fromSecret.username;
  const urlPassword = url?.password ? decodeURIComponent(url.password) : undefined;
  if (o.iamAuth && !user) {
    throw new ConfigurationError(ENV.dbIamAuth, `IAM authentication needs a user name in ${ENV.dbUrl}`);
  }
  if (o.iamAuth && o.tls === 'off') {
    throw new ConfigurationError(
      ENV.dbTls,
      `IAM authentication needs TLS (${ENV.dbTls} require or no-verify)`,
    );
  }
  const signToken = o.signToken ?? signTokenWithAws;
  const tlsOn = o.tls !== 'off' || url?.protocol === 'rediss:';
  return {
    host,
    port,
    database,
    user,
    async password() {
      if (o.iamAuth) {
        const key = `${host}:${port}:${user}`;
        return cached(tokens, key, TOKEN_TTL_MS, () => signToken({ host, port, user: user! }));
      }
      if (urlPassword !== undefined) return urlPassword;
      if (!secretId) return undefined;
      const s = await cached(secrets, secretId, SECRET_TTL_MS, async () =>
        parseSecret(secretId, await readSecret(secretId)),
      );
      return s.password;
    },
    refused() {
      if (secretId) secrets.delete(secretId);
    },
    tls: tlsOn
      ? {
          rejectUnauthorized: o.tls !== 'no-verify',
          ...(o.tlsCaFile ? { ca: readFileSync(o.tlsCaFile) } : {}),
          servername: host,
        }
      : undefined,
  };
}
