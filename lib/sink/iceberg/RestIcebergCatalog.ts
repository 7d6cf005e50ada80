/**
 * An Iceberg REST catalog client (the REST catalog OpenAPI spec): AWS Glue's Iceberg REST endpoint
 * (`https://glue.<region>.amazonaws.com/iceberg`, warehouse = the account id, SigV4 name `glue`),
 * S3 Tables' (`https://s3tables.<region>.amazonaws.com/iceberg`, warehouse = the table bucket ARN,
 * SigV4 name `s3tables`), or any other REST catalog (Polaris, Nessie, Gravitino, …). Tables there
 * are what Athena, Trino, Spark and Flink query through the same catalog.
 *
 * The committer hands this catalog whole metadata (base → next), as it does the file-based
 * catalogs; a REST catalog instead takes *requirements* and *updates*, and writes the metadata file
 * itself. `commitTable` therefore diffs the two: new snapshots → `add-snapshot`, removed ones →
 * `remove-snapshots`, changed refs → `set-snapshot-ref` / `remove-snapshot-ref`, changed properties
 * → `set-properties` / `remove-properties`; anything else (schema, spec, location) is refused. The
 * requirements make it a compare-and-swap: `assert-table-uuid` and `assert-ref-snapshot-id` of
 * `main` (the base's current snapshot, or none). The server answers 409 when another writer moved
 * `main` first (→ 'conflict': the committer reloads and re-checks its progress), and 500, 502, 503
 * or 504 when the outcome is unknown (→ thrown, retriable: the committer reloads and looks for its
 * snapshot id).
 *
 * Written here rather than with `iceberg-js` (a REST client on npm): that client parses and writes
 * JSON with plain `JSON.parse`/`JSON.stringify`, which rounds the 63-bit snapshot ids other engines
 * write (and cannot write bigints at all); a commit asserting a rounded id would fail forever.
 * This one reads and writes JSON losslessly (`parseJsonLossless`). SigV4 signing uses the AWS SDK's
 * signer (`@smithy/signature-v4`).
 */
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { IcebergError } from '../../errors.ts';
import type { CommitOutcome, IcebergCatalog, LoadedTable, TableIdentifier } from './catalog.ts';
import { tableName } from './catalog.ts';
import type { IcebergRestSigning } from './icebergOutput.ts';
import {
  currentSnapshotId,
  parseJsonLossless,
  type SnapshotRefJson,
  stringifyJsonLossless,
  type TableMetadata,
} from './metadata.ts';

export interface RestIcebergCatalogOptions {
  /** Base URI; requests go to `<uri>/v1/…`. */
  readonly uri: string;
  /** Sent to `GET /v1/config` (the server's `overrides.prefix` then prefixes every path). */
  readonly warehouse?: string;
  /** SigV4 service name to sign with, or `none`. Default `none`. */
  readonly signing?: IcebergRestSigning;
  /** Region and credentials for signing (default: `AWS_REGION` and the default credential chain). */
  readonly region?: string;
  readonly credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** The environment (region when none is given). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Extra headers (e.g. `Authorization: Bearer …` for catalogs with OAuth tokens). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Default `globalThis.fetch`. */
  readonly fetch?: typeof fetch;
  /** Per-request timeout. Default 30 s. */
  readonly timeoutMs?: number;
}

interface ErrorModel {
  error?: { message?: string; type?: string; code?: number };
}

interface LoadTableResult {
  'metadata-location'?: string;
  metadata: TableMetadata;
}

/** HTTP statuses after which a commit may or may not have been applied (the spec's CommitStateUnknown). */
const UNKNOWN_OUTCOME = new Set([500, 502, 503, 504]);

/** A REST response that is not a success. */
export class RestCatalogResponseError extends IcebergError {
  readonly status: number;
  readonly type: string | undefined;
  constructor(status: number, body: ErrorModel | undefined, what: string, table?: string) {
    const type = body?.error?.type;
    super(`${what}: HTTP ${status}${type ? ` ${type}` : ''}: ${body?.error?.message ?? 'no message'}`, {
      retriable: status === 429 || status >= 500,
      ...(table ? { table } : {}),
    });
    this.name = 'RestCatalogResponseError';
    this.status = status;
    this.type = type;
  }
}

function encodeNamespace(namespace: string): string {
  // Multi-level namespaces are joined with the unit separator (0x1F) in paths.
  return encodeURIComponent(namespace.split('.').join('\u001f'));
}

export class RestIcebergCatalog implements IcebergCatalog {
  /** The server writes and retires metadata files itself: callers must not delete them. */
  readonly managesMetadataFiles = true;
  private readonly options: RestIcebergCatalogOptions;
  private readonly base: string;
  private readonly signer: SignatureV4 | undefined;
  private prefix: Promise<string> | undefined;

  constructor(options: RestIcebergCatalogOptions) {
    this.options = options;
    this.base = options.uri.replace(/\/+$/, '');
    const signing = options.signing ?? 'none';
    if (signing !== 'none') {
      const env = options.env ?? process.env;
      const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
      if (!region) throw new IcebergError('signing REST catalog requests needs a region (AWS_REGION)');
      this.signer = new SignatureV4({
        service: signing,
        region,
        sha256: Sha256,
        credentials: options.credentials ?? defaultCredentials(env),
      });
    }
  }

  /** `GET /v1/config`: the path prefix the server asks for (once per instance). */
  private pathPrefix(): Promise<string> {
    if (!this.prefix) {
      const query = this.options.warehouse ? `?warehouse=${encodeURIComponent(this.options.warehouse)}` : '';
      const p = this.request<{ overrides?: Record<string, string>; defaults?: Record<string, string> }>(
        'GET',
        `/v1/config${query}`,
        undefined,
        'load the catalog configuration',
      ).then(({ status, body }) => {
        if (status !== 200 || !body)
          throw new RestCatalogResponseError(status, body as ErrorModel, 'GET /v1/config');
        const prefix = body.overrides?.prefix ?? body.defaults?.prefix;
        return prefix ? `/v1/${prefix.split('/').map(encodeURIComponent).join('/')}` : '/v1';
      });
      p.catch(() => {
        if (this.prefix === p) this.prefix = undefined;
      });
      this.prefix = p;
    }
    return this.prefix;
  }

  private async tablePath(id: TableIdentifier): Promise<string> {
    return `${await this.pathPrefix()}/namespaces/${encodeNamespace(id.namespace)}/tables/${encodeURIComponent(id.name)}`;
  }

  /** One request: JSON in and out (lossless), signed when configured, with a timeout. */
  private async request<T>(
    method: 'GET' | 'POST',
    path: string,
    payload: unknown,
    what: string,
  ): Promise<{ status: number; body: T | undefined }> {
    const url = new URL(`${this.base}${path}`);
    const body = payload === undefined ? undefined : stringifyJsonLossless(payload);
    let headers: Record<string, string> = {
      host: url.host,
      accept: 'application/json',
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...this.options.headers,
    };
    if (this.signer) {
      const query: Record<string, string> = {};
      for (const [k, v] of url.searchParams) query[k] = v;
      const signed = await this.signer.sign({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query,
        headers,
        ...(body !== undefined ? { body } : {}),
      });
      headers = signed.headers as Record<string, string>;
    }
    const { host: _host, ...sent } = headers;
    let response: Response;
    try {
      response = await (this.options.fetch ?? fetch)(url, {
        method,
        headers: sent,
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      });
    } catch (err) {
      // No answer: for a commit the outcome is unknown; the caller reloads to find out.
      throw new IcebergError(`${what}: ${err instanceof Error ? err.message : String(err)}`, {
        retriable: true,
        cause: err,
      });
    }
    const text = await response.text();
    let parsed: T | undefined;
    if (text) {
      try {
        parsed = parseJsonLossless(text) as T;
      } catch {
        parsed = undefined;
      }
    }
    return { status: response.status, body: parsed };
  }

  async defaultLocation(): Promise<string> {
    // The server chooses a new table's location.
    return '';
  }

  async loadTable(id: TableIdentifier): Promise<LoadedTable | undefined> {
    const { status, body } = await this.request<LoadTableResult>(
      'GET',
      await this.tablePath(id),
      undefined,
      `load table ${tableName(id)}`,
    );
    if (status === 404) return undefined;
    if (status !== 200 || !body?.metadata)
      throw new RestCatalogResponseError(status, body as ErrorModel, 'load table', tableName(id));
    return this.loaded(id, body);
  }

  private loaded(id: TableIdentifier, body: LoadTableResult): LoadedTable {
    const location = body['metadata-location'];
    if (!location)
      throw new IcebergError('the catalog returned no metadata-location', { table: tableName(id) });
    return { identifier: id, metadataLocation: location, metadata: body.metadata, version: location };
  }

  /** `POST /namespaces` (an existing namespace is fine). */
  async createNamespace(namespace: string): Promise<void> {
    const { status, body } = await this.request(
      'POST',
      `${await this.pathPrefix()}/namespaces`,
      { namespace: namespace.split('.'), properties: {} },
      `create namespace ${namespace}`,
    );
    if (status !== 200 && status !== 409)
      throw new RestCatalogResponseError(status, body as ErrorModel, `create namespace ${namespace}`);
  }

  /**
   * `POST /namespaces/{ns}/tables` with the schema, spec and properties of `metadata` (the server
   * makes the metadata: its uuid, and field ids it may reassign — declare ids in column order).
   * Creates the namespace first; returns undefined when the table exists.
   */
  async createTable(id: TableIdentifier, metadata: TableMetadata): Promise<LoadedTable | undefined> {
    await this.createNamespace(id.namespace);
    const schema = metadata.schemas.find((s) => s['schema-id'] === metadata['current-schema-id']);
    const spec = metadata['partition-specs'].find((s) => s['spec-id'] === metadata['default-spec-id']);
    const { status, body } = await this.request<LoadTableResult>(
      'POST',
      `${await this.pathPrefix()}/namespaces/${encodeNamespace(id.namespace)}/tables`,
      {
        name: id.name,
        ...(metadata.location ? { location: metadata.location } : {}),
        schema,
        'partition-spec': spec,
        properties: metadata.properties ?? {},
        'stage-create': false,
      },
      `create table ${tableName(id)}`,
    );
    if (status === 409) return undefined;
    if (status !== 200 || !body?.metadata)
      throw new RestCatalogResponseError(status, body as ErrorModel, 'create table', tableName(id));
    return this.loaded(id, body);
  }

  async commitTable(base: LoadedTable, next: TableMetadata): Promise<CommitOutcome> {
    const id = base.identifier;
    const request = {
      identifier: { namespace: id.namespace.split('.'), name: id.name },
      requirements: [
        { type: 'assert-table-uuid', uuid: base.metadata['table-uuid'] },
        {
          type: 'assert-ref-snapshot-id',
          ref: 'main',
          'snapshot-id': currentSnapshotId(base.metadata) ?? null,
        },
      ],
      updates: tableUpdates(base.metadata, next, tableName(id)),
    };
    const { status, body } = await this.request<LoadTableResult>(
      'POST',
      await this.tablePath(id),
      request,
      `commit to table ${tableName(id)}`,
    );
    if (status === 409) return { status: 'conflict' };
    if (status === 200 && body?.metadata) return { status: 'committed', table: this.loaded(id, body) };
    const error = new RestCatalogResponseError(status, body as ErrorModel, 'commit', tableName(id));
    if (UNKNOWN_OUTCOME.has(status)) throw error; // retriable: reload and look
    throw error;
  }
}

/** The REST updates that turn `base` into `next` (see the module comment). */
export function tableUpdates(base: TableMetadata, next: TableMetadata, table: string): unknown[] {
  for (const key of [
    'schemas',
    'current-schema-id',
    'partition-specs',
    'default-spec-id',
    'location',
    'sort-orders',
  ] as const) {
    if (JSON.stringify(base[key]) !== JSON.stringify(next[key])) {
      throw new IcebergError(`a REST commit cannot change ${key} (not supported by this sink)`, { table });
    }
  }
  const updates: unknown[] = [];
  const had = new Set((base.snapshots ?? []).map((s) => String(s['snapshot-id'])));
  const has = new Set((next.snapshots ?? []).map((s) => String(s['snapshot-id'])));
  for (const s of next.snapshots ?? [])
    if (!had.has(String(s['snapshot-id']))) updates.push({ action: 'add-snapshot', snapshot: s });
  const removed = (base.snapshots ?? [])
    .filter((s) => !has.has(String(s['snapshot-id'])))
    .map((s) => s['snapshot-id']);
  if (removed.length > 0) updates.push({ action: 'remove-snapshots', 'snapshot-ids': removed });
  const baseRefs: Record<string, SnapshotRefJson> = { ...base.refs };
  for (const [name, ref] of Object.entries(next.refs ?? {})) {
    if (stringifyJsonLossless(baseRefs[name]) !== stringifyJsonLossless(ref)) {
      updates.push({ action: 'set-snapshot-ref', 'ref-name': name, ...ref });
    }
  }
  for (const name of Object.keys(baseRefs)) {
    if (!next.refs?.[name]) updates.push({ action: 'remove-snapshot-ref', 'ref-name': name });
  }
  const set: Record<string, string> = {};
  for (const [k, v] of Object.entries(next.properties ?? {})) if (base.properties?.[k] !== v) set[k] = v;
  if (Object.keys(set).length > 0) updates.push({ action: 'set-properties', updates: set });
  const gone = Object.keys(base.properties ?? {}).filter((k) => next.properties?.[k] === undefined);
  if (gone.length > 0) updates.push({ action: 'remove-properties', removals: gone });
  return updates;
}

/** The AWS SDK's default credential chain, loaded on first use (environment, profile, container, instance). */
function defaultCredentials(
  env: Readonly<Record<string, string | undefined>>,
): AwsCredentialIdentityProvider {
  let provider: Promise<AwsCredentialIdentityProvider> | undefined;
  return async () => {
    const {
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_SESSION_TOKEN: sessionToken,
    } = env;
    if (accessKeyId && secretAccessKey)
      return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
    provider ??= import('@aws-sdk/client-s3').then(({ S3Client }) => {
      const client = new S3Client({});
      return client.config.credentials as AwsCredentialIdentityProvider;
    });
    return (await provider)();
  };
}
