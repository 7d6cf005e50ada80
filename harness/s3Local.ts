/**
 * An S3 server in this process: s3rver 3.7.1 plus the shims it needs (see docs/local-servers.md):
 * - conditional writes: s3rver ignores If-None-Match / If-Match on PutObject and on
 *   CompleteMultipartUpload; a Koa middleware in front of its router adds them, as S3 answers them:
 *   412 PreconditionFailed on a failed condition, and 409 ConditionalRequestConflict, at once, for a
 *   conditional write of a key that another conditional write is still writing (one write per key
 *   in flight makes check-and-write atomic), and a conditional create whose body was cut short
 *   leaves no object (s3rver would keep the bytes it got). An object being created is not visible
 *   (GET and HEAD answer 404) until its PUT completed, data and metadata together, and a client
 *   that goes away after sending the whole body does not stop the write. So the conditional-create
 *   path of the snapshot store and of the S3 output sink, and their answer to a conflict, are
 *   exercised for real;
 * - paginated listings: s3rver's continuation token uses single DES, which OpenSSL 3 only has in its
 *   legacy provider. 3DES-EDE with K1=K2=K3 computes exactly single DES, so 'des' is mapped to it.
 *   (This patches node:crypto for the 'des' algorithm in this process only; nothing else uses it.)
 * - deletes leave directories: s3rver removes a key's directories once a delete empties them, and a
 *   PUT of another key that has just created the same directory then writes into a directory that
 *   is gone (a 500, or an unhandled stream error that kills the process). S3 has no directories.
 * - atomic PUTs: s3rver writes an object's body straight into its file and may answer before the
 *   file is flushed; a PUT here appears whole, with its metadata, or not at all (`atomicPuts`).
 */
import crypto from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';

let desPatched = false;

function patchDes(): void {
  if (desPatched) return;
  desPatched = true;
  const c = crypto as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const f of ['createCipheriv', 'createDecipheriv']) {
    const original = c[f]!;
    c[f] = (alg: unknown, key: unknown, iv: unknown, ...rest: unknown[]) =>
      alg === 'des'
        ? original('des-ede3-cbc', Buffer.concat([key as Buffer, key as Buffer, key as Buffer]), iv, ...rest)
        : original(alg, key, iv, ...rest);
  }
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | undefined>;
  status: number;
  type: string;
  body: unknown;
  req: { readonly complete: boolean };
  res: { once(event: 'close', listener: () => void): unknown };
  get(header: string): string;
}
type Next = () => Promise<void>;
interface S3rverInternals {
  middleware: Array<(ctx: KoaContext, next: Next) => Promise<void>>;
  store: {
    existsObject(bucket: string, key: string): Promise<boolean>;
    deleteObject(bucket: string, key: string): Promise<void>;
    getMetadata(bucket: string, key: string): Promise<{ etag?: string }>;
  };
}

function addConditionalWrites(server: S3rver): void {
  const srv = server as unknown as S3rverInternals;
  /** Keys a conditional write is writing now. */
  const inFlight = new Set<string>();
  /** Keys a conditional create is writing now: not visible to reads until the write completes. */
  const creatingNow = new Set<string>();
  const fail = (ctx: KoaContext, status: number, code: string, message = code) => {
    ctx.status = status;
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  };
  srv.middleware.unshift(async (ctx, next) => {
    // S3 makes an object visible, data and metadata together, once its PUT completed; s3rver writes
    // the object's file as the body arrives, then its metadata. A read of a key being created sees
    // no object (a 404), as on S3.
    if ((ctx.method === 'GET' || ctx.method === 'HEAD') && creatingNow.size > 0) {
      const [, b = '', ...k] = ctx.path.split('/');
      if (k.length > 0 && creatingNow.has(`${b}/${decodeURIComponent(k.join('/'))}`)) {
        return fail(ctx, 404, 'NoSuchKey', 'The specified key does not exist.');
      }
    }
    const ifNoneMatch = ctx.get('if-none-match');
    const ifMatch = ctx.get('if-match');
    const isPut = ctx.method === 'PUT' && ctx.query.partNumber === undefined;
    const isComplete = ctx.method === 'POST' && ctx.query.uploadId !== undefined;
    if ((!ifNoneMatch && !ifMatch) || !(isPut || isComplete)) return next();
    const [, bucket = '', ...rest] = ctx.path.split('/');
    const key = decodeURIComponent(rest.join('/'));
    if (!key) return next();
    const id = `${bucket}/${key}`;
    // S3 does not queue a conditional write behind another one of the same key: it answers 409.
    if (inFlight.has(id)) {
      return fail(
        ctx,
        409,
        'ConditionalRequestConflict',
        'A conflicting conditional operation is currently in progress against this resource. Please try again.',
      );
    }
    inFlight.add(id);
    let creating = false;
    let released: Promise<void> | undefined;
    const release = () => {
      released ??= (async () => {
        // S3 never makes an object of an upload cut short; s3rver keeps the bytes it received.
        // A create whose body did not arrive whole is undone before anyone else may write the key.
        // (An If-Match overwrite cut short has already replaced the old object: not undone.)
        if (creating && !ctx.req.complete) await srv.store.deleteObject(bucket, key).catch(() => undefined);
        creatingNow.delete(id);
        inFlight.delete(id);
      })();
      return released;
    };
    // A client that goes away mid-body leaves s3rver's handler waiting for ever: the connection
    // closing must free the key too, or every later conditional PUT of it would be refused. A client
    // that goes away once the whole body arrived (a client-side timeout) does not: the write goes on
    // to completion, as on S3, and the key stays taken until it is done.
    ctx.res.once('close', () => {
      if (!ctx.req.complete) void release();
    });
    try {
      const exists = await srv.store.existsObject(bucket, key);
      if (ifNoneMatch === '*' && exists) return fail(ctx, 412, 'PreconditionFailed');
      if (ifMatch && !exists) return fail(ctx, 404, 'NoSuchKey');
      if (ifMatch && ifMatch !== '*' && ifMatch !== (await srv.store.getMetadata(bucket, key)).etag) {
        return fail(ctx, 412, 'PreconditionFailed');
      }
      creating = ifNoneMatch === '*' && isPut;
      if (creating) creatingNow.add(id);
      await next();
    } finally {
      await release();
    }
  });
}

interface FilesystemStoreInternals {
  getResourcePath(bucket: string, key: string, resource: string): string;
  deleteObject(bucket: string, key: string): Promise<void>;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
  putObject(object: {
    bucket: string;
    key: string;
    content: Buffer | NodeJS.ReadableStream;
    metadata: Record<string, string>;
  }): Promise<{ size: number; md5: string }>;
}

/**
 * A PUT makes its object appear whole or not at all, as on S3. s3rver writes the body into the
 * object's own file as it arrives and answers once its hashing stream ended, possibly before the
 * file was flushed; a body cut short left a truncated object. Here the body goes to a file of its
 * own, is flushed, the metadata is written, and only then is the file renamed onto the object's
 * (an atomic step). A body that never ends leaves no object (its file is not listed: its name does
 * not end like an object's).
 */
function atomicPuts(server: S3rver): void {
  const store = (server as unknown as { store: FilesystemStoreInternals }).store;
  store.putObject = async (object) => {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    const partial = store.getResourcePath(object.bucket, object.key, `upload-${crypto.randomUUID()}`);
    await mkdir(path.dirname(objectPath), { recursive: true });
    const md5 = crypto.createHash('md5');
    let size = 0;
    try {
      const content = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
      await pipeline(
        content,
        new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            md5.update(chunk);
            size += chunk.length;
            callback(null, chunk);
          },
        }),
        createWriteStream(partial),
      );
      const digest = md5.digest('hex');
      await store.putMetadata(object.bucket, object.key, object.metadata, digest);
      await rename(partial, objectPath);
      return { size, md5: digest };
    } catch (err) {
      await unlink(partial).catch(() => undefined);
      throw err;
    }
  };
}

/** A delete removes the object's files and leaves its directories (see the module comment). */
function keepDirectoriesOnDelete(server: S3rver): void {
  const store = (server as unknown as { store: FilesystemStoreInternals }).store;
  store.deleteObject = async (bucket, key) => {
    await Promise.all(
      ['object', 'object.md5', 'metadata.json'].map((resource) =>
        unlink(store.getResourcePath(bucket, key, resource)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        }),
      ),
    );
  };
}

export interface S3Local {
  endpoint: string;
  port: number;
  directory: string;
  stop(): Promise<void>;
}

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export async function startS3Local(
  options: { port?: number; directory?: string; buckets?: string[] } = {},
): Promise<S3Local> {
  patchDes();
  const owned = options.directory === undefined;
  const directory = options.directory ?? mkdtempSync(path.join(tmpdir(), 'tidemark-s3-'));
  const server = new S3rver({
    port: options.port ?? 0,
    address: '127.0.0.1',
    directory,
    silent: true,
    resetOnClose: owned,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name, configs: [] })),
  });
  addConditionalWrites(server);
  keepDirectoriesOnDelete(server);
  atomicPuts(server);
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    directory,
    stop: async () => {
      await server.close();
      if (owned) rmSync(directory, { recursive: true, force: true });
    },
  };
}
