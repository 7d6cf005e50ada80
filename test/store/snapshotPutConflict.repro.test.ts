/**
 * Repro: S3 answers a conditional PUT that races another one on the same key with
 * `409 ConditionalRequestConflict`, at once (AWS's conditional-writes documentation: retry on 409).
 * The engine's snapshot PUT can race itself: its first attempt is still uploading when the SDK,
 * having timed out on it, sends the retry. The SDK does not retry a 409, so the epoch failed,
 * although the key is unique to the attempt and the object is (or will be) the engine's own.
 * The local S3 server queued the racing PUT instead of answering 409, so this never showed locally.
 *
 * Expected (and fixed): the local server answers 409 at once, as S3 does; the S3 snapshot store
 * tries a conditional PUT answered 409 again (bounded, short jittered backoff), so the race ends as
 * a success or as `ObjectExistsError`, which the engine takes for its own object: the epoch commits.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { epochOfSnapshotKey } from '../../lib/checkpoint/layout.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { ObjectExistsError } from '../../lib/errors.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { MemoryCommitStore } from '../../lib/store/memory/memoryStores.ts';
import { S3SnapshotStore } from '../../lib/store/s3/S3SnapshotStore.ts';

const bucket = process.env.TIDEMARK_BUCKET!;
const endpoint = new URL(process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL!);

const clients: S3Client[] = [];
const held = new Set<http.ClientRequest>();
afterAll(() => {
  for (const c of clients) c.destroy();
  for (const r of held) r.destroy();
});

/** A client like the production one against the local server, with short timeouts. */
function client(): S3Client {
  const c = new S3Client({
    endpoint: endpoint.origin,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { requestTimeout: 2_000, throwOnRequestTimeout: true },
    maxAttempts: 3,
  });
  clients.push(c);
  return c;
}

interface SignedRequest {
  method: string;
  path: string;
  query?: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body: Uint8Array;
}

/**
 * Sends a signed request's head and half its body, and holds it there: an upload in progress.
 * `started` resolves once the server is handling it: the head asks for `100 Continue`, which the
 * server sends as it hands the request to its handlers (the conditional-write check is the first).
 */
function startHeldUpload(req: SignedRequest): {
  started: Promise<void>;
  finish(): Promise<number>;
  abandon(): void;
} {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query ?? {})) {
    for (const x of Array.isArray(v) ? v : [v]) query.append(k, x ?? '');
  }
  const qs = query.toString();
  let status: (code: number) => void = () => {};
  const answered = new Promise<number>((r) => (status = r));
  const raw = http.request({
    host: endpoint.hostname,
    port: Number(endpoint.port),
    method: req.method,
    path: `${req.path}${qs ? `?${qs}` : ''}`,
    headers: { ...req.headers, expect: '100-continue' },
    agent: false,
  });
  held.add(raw);
  raw.on('response', (res) => {
    res.resume();
    res.on('end', () => status(res.statusCode ?? 0));
  });
  raw.on('error', () => status(-1));
  const body = Buffer.from(req.body);
  const half = body.length >> 1;
  const started = new Promise<void>((resolve) =>
    raw.once('continue', () => {
      raw.write(body.subarray(0, half));
      resolve();
    }),
  );
  raw.flushHeaders();
  return {
    started,
    finish: () => {
      raw.end(body.subarray(half));
      return answered;
    },
    abandon: () => raw.destroy(),
  };
}

/**
 * The first attempt of the first PUT matching `isTarget` is taken over: its head and half its body
 * go to the server and stay there, and the SDK hears a timeout, so it retries while that upload is
 * still in progress. When a PUT then fails with a 409, `onConflict` runs before the caller hears
 * of it (so the race's outcome does not depend on timing).
 */
function raceFirstPut(
  c: S3Client,
  isTarget: (key: string) => boolean,
  onConflict: (upload: ReturnType<typeof startHeldUpload>) => Promise<void>,
): { conflicts: number; started: boolean } {
  const seen = { conflicts: 0, started: false };
  let upload: ReturnType<typeof startHeldUpload> | undefined;
  c.middlewareStack.add(
    (next, context) => async (args) => {
      const key = (args.input as { Key?: string }).Key ?? '';
      if (
        seen.started ||
        (context as { commandName?: string }).commandName !== 'PutObjectCommand' ||
        !isTarget(key)
      ) {
        return next(args);
      }
      seen.started = true;
      upload = startHeldUpload((args as unknown as { request: SignedRequest }).request);
      await upload.started;
      throw Object.assign(new Error('the request timed out (the upload goes on)'), {
        name: 'TimeoutError',
        $metadata: {},
      });
    },
    // Inside the SDK's retry loop, after signing: this attempt fails, the SDK sends the next one.
    { step: 'deserialize', priority: 'low', name: 'reproRaceFirstPut' },
  );
  c.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 409) {
          seen.conflicts++;
          if (upload) await onConflict(upload);
        }
        throw err;
      }
    },
    // Outside the SDK's retries: sees what the store sees.
    { step: 'initialize', name: 'reproSeeConflicts' },
  );
  return seen;
}

describe('a conditional PUT racing another one on the same key (local S3 server)', () => {
  it('is answered 409 ConditionalRequestConflict at once, as S3 does', async () => {
    const c = client();
    const key = `repro/${randomUUID()}/racing`;
    const put = () =>
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.alloc(1000, 1), IfNoneMatch: '*' });
    const seen = raceFirstPut(
      c,
      (k) => k === key,
      async () => {},
    );
    const outcome = await c.send(put()).then(
      () => 'created',
      (e: { name?: string; $metadata?: { httpStatusCode?: number } }) =>
        `${e.name} ${e.$metadata?.httpStatusCode}`,
    );
    expect(seen.started).toBe(true);
    expect(outcome).toBe('ConditionalRequestConflict 409');
  });

  it('ends, in the S3 snapshot store, as ObjectExistsError once the racing upload completed', async () => {
    const c = client();
    const key = `repro/${randomUUID()}/completed`;
    const seen = raceFirstPut(
      c,
      (k) => k === key,
      async (upload) => {
        expect(await upload.finish()).toBe(200);
      },
    );
    const store = new S3SnapshotStore({ client: c, bucket });
    const err = await store.put(key, Buffer.alloc(1000, 7)).catch((e: unknown) => e);
    expect(seen.conflicts).toBeGreaterThan(0);
    expect(err).toBeInstanceOf(ObjectExistsError);
    expect(Buffer.from((await store.get(key))!)).toEqual(Buffer.alloc(1000, 7));
  });

  it('ends, in the S3 snapshot store, as a success once the racing upload was abandoned', async () => {
    const c = client();
    const key = `repro/${randomUUID()}/abandoned`;
    const seen = raceFirstPut(
      c,
      (k) => k === key,
      async (upload) => upload.abandon(),
    );
    const store = new S3SnapshotStore({ client: c, bucket });
    await store.put(key, Buffer.alloc(1000, 9));
    expect(seen.conflicts).toBeGreaterThan(0);
    expect(Buffer.from((await store.get(key))!)).toEqual(Buffer.alloc(1000, 9));
  });

  it("commits the epoch whose snapshot PUT raced the SDK's retry of itself", async () => {
    const c = client();
    const seen = raceFirstPut(
      c,
      (k) => epochOfSnapshotKey(k) !== undefined,
      async (upload) => {
        expect(await upload.finish()).toBe(200);
      },
    );
    const pipeline = `repro-${randomUUID().slice(0, 8)}`;
    const stores = {
      snapshots: new S3SnapshotStore({ client: c, bucket }),
      commits: new MemoryCommitStore(),
    };
    // Every snapshot an object of its own (none inline in the commit item).
    const config = loadConfig({}, { bucket, table: 'unused', pipeline, snapshotInlineMaxBytes: 0 });
    const engine = new EpochEngine({ processor: balances, config, ...stores });
    const records = Array.from({ length: 5 }, (_, i) => deposit('orders', 0, i, 'a', 2));
    const summary = await engine.processEvent(mskEvent(records));
    expect(seen.conflicts).toBeGreaterThan(0);
    expect(summary).toMatchObject({ applied: 5, epochsCommitted: 1 });
    const task = await inspectTask(stores, { pipeline, topic: 'orders', partition: 0 });
    expect(task).toMatchObject({
      committedOffset: '5',
      state: { account: { a: { balance: 10, count: 5 } } },
    });
  });
});
