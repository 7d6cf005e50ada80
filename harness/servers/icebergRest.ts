/**
 * An Iceberg REST catalog stand-in for tests: the endpoints a writer needs (config, namespaces,
 * load / create / commit table) with the spec's commit semantics, in process, on a free port.
 * Metadata files are written to S3 (the local server) through an `IcebergFileIO`, as a real
 * catalog writes them; the pointer to the current one is kept in memory and swapped atomically.
 *
 * Commits (`POST …/tables/{table}`): every requirement is checked against the current metadata —
 * `assert-create`, `assert-table-uuid`, `assert-ref-snapshot-id` (null: the ref must not exist),
 * `assert-current-schema-id`, `assert-default-spec-id`, `assert-last-assigned-field-id`,
 * `assert-last-assigned-partition-id` — a failed one answers 409 `CommitFailedException`, nothing
 * changed. Then the updates are applied in order (`add-snapshot`, whose sequence number must be above
 * the table's; `set-snapshot-ref`, `remove-snapshots`, `remove-snapshot-ref`, `set-properties`,
 * `remove-properties`; others answer 400), a new metadata file is written and the pointer swapped.
 *
 * Faults for tests: `faults.commitStatus` answers the next commits with a status, before (`before`)
 * or after (`after`: the swap happened, the response says it did not — the spec's unknown state)
 * applying them. `requests` records method, path and the Authorization header of every request.
 * Not a real catalog: no authentication check, no views, no multi-table transactions, no
 * pagination, one process.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IcebergFileIO } from '../../lib/sink/iceberg/fileIO.ts';
import {
  parseJsonLossless,
  type SnapshotJson,
  stringifyJsonLossless,
  type TableMetadata,
} from '../../lib/sink/iceberg/metadata.ts';

interface TableEntry {
  metadataLocation: string;
  metadata: TableMetadata;
  version: number;
}

export interface RestCatalogStandIn {
  /** Base URI (`http://127.0.0.1:<port>`); requests go to `<uri>/v1/…`. */
  readonly uri: string;
  /** The prefix `GET /v1/config` hands out. */
  readonly prefix: string;
  readonly requests: Array<{ method: string; path: string; authorization: string | undefined }>;
  readonly faults: { commitStatus: Array<{ status: number; when: 'before' | 'after' }> };
  /** Commits that changed a table, and those refused with 409. */
  readonly stats: { commits: number; conflicts: number };
  /** The current metadata of a table (`namespace.name`), for tests to look at or seed. */
  table(name: string): TableEntry | undefined;
  /** Replaces a table's current metadata (as another engine's commit would). */
  replaceTable(name: string, metadata: TableMetadata): Promise<void>;
  close(): Promise<void>;
}

class HttpError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

const long = (v: unknown) => (v === null || v === undefined ? null : String(v));

function checkRequirement(entry: TableEntry | undefined, r: Record<string, unknown>): void {
  const m = entry?.metadata;
  const fail = (why: string) => {
    throw new HttpError(409, 'CommitFailedException', `Requirement failed: ${why}`);
  };
  switch (r.type) {
    case 'assert-create':
      if (entry) fail('table already exists');
      return;
    case 'assert-table-uuid':
      if (m?.['table-uuid'] !== r.uuid) fail(`table uuid ${m?.['table-uuid']} is not ${r.uuid}`);
      return;
    case 'assert-ref-snapshot-id': {
      const ref = m?.refs?.[r.ref as string];
      const want = long(r['snapshot-id']);
      if (want === null ? ref !== undefined : long(ref?.['snapshot-id']) !== want) {
        fail(`ref ${r.ref} is ${long(ref?.['snapshot-id'])}, expected ${want}`);
      }
      return;
    }
    case 'assert-current-schema-id':
      if (m?.['current-schema-id'] !== r['current-schema-id']) fail('current schema changed');
      return;
    case 'assert-default-spec-id':
      if (m?.['default-spec-id'] !== r['default-spec-id']) fail('default spec changed');
      return;
    case 'assert-last-assigned-field-id':
      if (m?.['last-column-id'] !== r['last-assigned-field-id']) fail('last assigned field id changed');
      return;
    case 'assert-last-assigned-partition-id':
      if (m?.['last-partition-id'] !== r['last-assigned-partition-id']) fail('last partition id changed');
      return;
    default:
      throw new HttpError(400, 'BadRequestException', `unknown requirement ${String(r.type)}`);
  }
}

function applyUpdate(m: TableMetadata, u: Record<string, unknown>, now: number): TableMetadata {
  switch (u.action) {
    case 'add-snapshot': {
      const s = u.snapshot as SnapshotJson;
      if (BigInt(s['sequence-number']) <= BigInt(m['last-sequence-number'])) {
        throw new HttpError(400, 'BadRequestException', 'sequence number must be above the last one');
      }
      if ((m.snapshots ?? []).some((x) => long(x['snapshot-id']) === long(s['snapshot-id']))) {
        throw new HttpError(400, 'BadRequestException', `snapshot ${long(s['snapshot-id'])} exists`);
      }
      return {
        ...m,
        snapshots: [...(m.snapshots ?? []), s],
        'last-sequence-number': s['sequence-number'],
        'last-updated-ms': s['timestamp-ms'],
      };
    }
    case 'set-snapshot-ref': {
      const { action: _a, 'ref-name': name, ...ref } = u as Record<string, unknown> & { 'ref-name': string };
      const id = ref['snapshot-id'];
      if (!(m.snapshots ?? []).some((x) => long(x['snapshot-id']) === long(id))) {
        throw new HttpError(400, 'BadRequestException', `no snapshot ${long(id)}`);
      }
      const next: TableMetadata = { ...m, refs: { ...m.refs, [name]: ref as never } };
      if (name === 'main') {
        next['current-snapshot-id'] = id as never;
        next['snapshot-log'] = [
          ...(m['snapshot-log'] ?? []),
          { 'snapshot-id': id as never, 'timestamp-ms': now },
        ];
      }
      return next;
    }
    case 'remove-snapshots': {
      const gone = new Set((u['snapshot-ids'] as unknown[]).map(long));
      return {
        ...m,
        snapshots: (m.snapshots ?? []).filter((s) => !gone.has(long(s['snapshot-id']))),
        'snapshot-log': (m['snapshot-log'] ?? []).filter((e) => !gone.has(long(e['snapshot-id']))),
      };
    }
    case 'remove-snapshot-ref': {
      const refs = { ...m.refs };
      delete refs[u['ref-name'] as string];
      return { ...m, refs, ...(u['ref-name'] === 'main' ? { 'current-snapshot-id': -1 } : {}) };
    }
    case 'set-properties':
      return { ...m, properties: { ...m.properties, ...(u.updates as Record<string, string>) } };
    case 'remove-properties': {
      const properties = { ...m.properties };
      for (const k of u.removals as string[]) delete properties[k];
      return { ...m, properties };
    }
    default:
      throw new HttpError(400, 'BadRequestException', `update ${String(u.action)} is not supported here`);
  }
}

export async function startRestCatalog(options: {
  io: IcebergFileIO;
  /** `s3://bucket/prefix`: tables go to `<warehouse>/<namespace>/<table>`. */
  warehouse: string;
  prefix?: string;
}): Promise<RestCatalogStandIn> {
  const prefix = options.prefix ?? 'standin';
  const namespaces = new Set<string>();
  const tables = new Map<string, TableEntry>();
  const requests: RestCatalogStandIn['requests'] = [];
  const faults: RestCatalogStandIn['faults'] = { commitStatus: [] };
  const stats = { commits: 0, conflicts: 0 };
  // Commits of one table are serialized: the swap is atomic.
  let lock: Promise<unknown> = Promise.resolve();
  const serialized = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lock.then(fn, fn);
    lock = run.catch(() => undefined);
    return run;
  };

  const writeMetadata = async (location: string, version: number, metadata: TableMetadata) => {
    const file = `${location}/metadata/${String(version).padStart(5, '0')}-${randomUUID()}.metadata.json`;
    await options.io.put(file, new TextEncoder().encode(stringifyJsonLossless(metadata, 2)), {
      contentType: 'application/json',
    });
    return file;
  };

  const commit = (name: string, body: { requirements?: unknown[]; updates?: unknown[] }) =>
    serialized(async () => {
      const fault = faults.commitStatus.shift();
      if (fault?.when === 'before') throw new HttpError(fault.status, 'ServiceFailureException', 'injected');
      const entry = tables.get(name);
      try {
        for (const r of body.requirements ?? []) checkRequirement(entry, r as Record<string, unknown>);
      } catch (err) {
        if (err instanceof HttpError && err.status === 409) stats.conflicts++;
        throw err;
      }
      if (!entry) throw new HttpError(404, 'NoSuchTableException', `Table does not exist: ${name}`);
      const now = Date.now();
      let m = entry.metadata;
      for (const u of body.updates ?? []) m = applyUpdate(m, u as Record<string, unknown>, now);
      const log = [
        ...(m['metadata-log'] ?? []),
        { 'metadata-file': entry.metadataLocation, 'timestamp-ms': entry.metadata['last-updated-ms'] },
      ];
      m = { ...m, 'last-updated-ms': now, 'metadata-log': log };
      const version = entry.version + 1;
      const metadataLocation = await writeMetadata(m.location, version, m);
      tables.set(name, { metadataLocation, metadata: m, version });
      stats.commits++;
      if (fault?.when === 'after')
        throw new HttpError(fault.status, 'CommitStateUnknownException', 'injected');
      return { 'metadata-location': metadataLocation, metadata: m };
    });

  const route = async (method: string, path: string, body: unknown): Promise<unknown> => {
    const url = new URL(path, 'http://x');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (method === 'GET' && url.pathname === '/v1/config') return { defaults: {}, overrides: { prefix } };
    if (parts[0] !== 'v1' || parts[1] !== prefix || parts[2] !== 'namespaces') {
      throw new HttpError(404, 'NotFoundException', `no route ${method} ${url.pathname}`);
    }
    if (parts.length === 3 && method === 'POST') {
      const ns = ((body as { namespace: string[] }).namespace ?? []).join('.');
      if (namespaces.has(ns))
        throw new HttpError(409, 'AlreadyExistsException', `Namespace already exists: ${ns}`);
      namespaces.add(ns);
      return { namespace: ns.split('.'), properties: {} };
    }
    const ns = parts[3]?.split('\u001f').join('.') ?? '';
    if (parts[4] !== 'tables') throw new HttpError(404, 'NotFoundException', 'no route');
    if (parts.length === 5 && method === 'POST') {
      const req = body as {
        name: string;
        location?: string;
        schema: TableMetadata['schemas'][number];
        'partition-spec'?: TableMetadata['partition-specs'][number];
        properties?: Record<string, string>;
      };
      if (!namespaces.has(ns))
        throw new HttpError(404, 'NoSuchNamespaceException', `Namespace does not exist: ${ns}`);
      const name = `${ns}.${req.name}`;
      return serialized(async () => {
        if (tables.has(name))
          throw new HttpError(409, 'AlreadyExistsException', `Table already exists: ${name}`);
        const location =
          req.location || `${options.warehouse.replace(/\/+$/, '')}/${ns.split('.').join('/')}/${req.name}`;
        const spec = req['partition-spec'] ?? { 'spec-id': 0, fields: [] };
        const metadata: TableMetadata = {
          'format-version': 2,
          'table-uuid': randomUUID(),
          location,
          'last-sequence-number': 0,
          'last-updated-ms': Date.now(),
          'last-column-id': Math.max(0, ...req.schema.fields.map((f) => f.id)),
          schemas: [{ ...req.schema, 'schema-id': 0 }],
          'current-schema-id': 0,
          'partition-specs': [{ ...spec, 'spec-id': 0 }],
          'default-spec-id': 0,
          'last-partition-id': Math.max(999, ...spec.fields.map((f) => f['field-id'])),
          properties: req.properties ?? {},
          'current-snapshot-id': -1,
          refs: {},
          snapshots: [],
          'snapshot-log': [],
          'metadata-log': [],
          'sort-orders': [{ 'order-id': 0, fields: [] }],
          'default-sort-order-id': 0,
        };
        const metadataLocation = await writeMetadata(location, 0, metadata);
        tables.set(name, { metadataLocation, metadata, version: 0 });
        return { 'metadata-location': metadataLocation, metadata, config: {} };
      });
    }
    const name = `${ns}.${parts[5]}`;
    if (parts.length === 6 && method === 'GET') {
      const entry = tables.get(name);
      if (!entry) throw new HttpError(404, 'NoSuchTableException', `Table does not exist: ${name}`);
      return { 'metadata-location': entry.metadataLocation, metadata: entry.metadata, config: {} };
    }
    if (parts.length === 6 && method === 'POST') return commit(name, body as never);
    throw new HttpError(404, 'NotFoundException', `no route ${method} ${url.pathname}`);
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        authorization: req.headers.authorization,
      });
      const text = Buffer.concat(chunks).toString('utf8');
      const reply = (status: number, payload: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(stringifyJsonLossless(payload));
      };
      let body: unknown;
      try {
        body = text ? parseJsonLossless(text) : undefined;
      } catch {
        reply(400, { error: { message: 'not JSON', type: 'BadRequestException', code: 400 } });
        return;
      }
      route(req.method ?? 'GET', req.url ?? '/', body).then(
        (out) => reply(200, out),
        (err: unknown) => {
          const e =
            err instanceof HttpError ? err : new HttpError(500, 'ServiceFailureException', String(err));
          reply(e.status, { error: { message: e.message, type: e.type, code: e.status } });
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    uri: `http://127.0.0.1:${port}`,
    prefix,
    requests,
    faults,
    stats,
    table: (name) => tables.get(name),
    replaceTable: async (name, metadata) => {
      const entry = tables.get(name);
      if (!entry) throw new Error(`no table ${name}`);
      const version = entry.version + 1;
      tables.set(name, {
        metadataLocation: await writeMetadata(metadata.location, version, metadata),
        metadata,
        version,
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
