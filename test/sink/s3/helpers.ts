/**
 * Helpers of the S3 output sink's tests: S3 faults by key (SDK middleware on a client of its own),
 * and an independent reader that uses nothing of the sink but the documented layout.
 */
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../../lib/store/clients.ts';

type KeyTest = (key: string) => boolean;
const never = () => new Promise<never>(() => {});

export const isManifest: KeyTest = (key) => key.includes('/manifests/');
export const isData: KeyTest = (key) => key.includes('/data/');

interface Fault {
  test: KeyTest;
  kind: 'crash-before' | 'crash-after' | 'lose-response' | 'fail-after' | 'conflict-409' | 'gate-before';
  /** How many more times it fires. */
  times: number;
  fired: () => void;
  /** For `gate-before`: what the PUT waits for. */
  wait?: Promise<void>;
}

/**
 * An S3 client whose PutObject requests can be made to fail by key:
 * - `crash-before` / `crash-after`: the request never answers (before it is sent / after it was
 *   applied): the container is dead from there on;
 * - `lose-response`: applied, then a timeout, inside the SDK's retry loop (the SDK retries it);
 * - `fail-after`: applied, then an error the sink sees (outside the SDK's retries);
 * - `conflict-409`: answered 409 ConditionalRequestConflict without being applied, as S3 answers a
 *   conditional PUT racing another;
 * - `gate-before`: waits for a promise, then goes on (a paused container that resumes).
 */
export class FaultyS3 {
  readonly client: S3Client;
  readonly puts: string[] = [];
  private faults: Fault[] = [];

  constructor() {
    this.client = createS3Client();
    const take = (key: string, kinds: Fault['kind'][]): Fault | undefined => {
      const f = this.faults.find((x) => kinds.includes(x.kind) && x.times > 0 && x.test(key));
      if (!f) return undefined;
      f.times--;
      f.fired();
      return f;
    };
    const keyOf = (context: unknown, args: unknown): string | undefined =>
      (context as { commandName?: string }).commandName === 'PutObjectCommand'
        ? ((args as { input: { Key?: string } }).input.Key ?? '')
        : undefined;
    // Outside the SDK's retries: what the caller (the sink) sees.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const key = keyOf(context, args);
        if (key === undefined) return next(args);
        const f = take(key, ['crash-before', 'crash-after', 'fail-after', 'conflict-409', 'gate-before']);
        if (f?.kind === 'crash-before') return never();
        if (f?.kind === 'gate-before') await f.wait;
        if (f?.kind === 'conflict-409') {
          throw Object.assign(new Error('A conflicting conditional operation is in progress'), {
            name: 'ConditionalRequestConflict',
            $metadata: { httpStatusCode: 409 },
          });
        }
        const out = await next(args);
        this.puts.push(key);
        if (f?.kind === 'crash-after') return never();
        if (f?.kind === 'fail-after') {
          throw Object.assign(new Error('socket hang up (injected after the PUT was applied)'), {
            name: 'ECONNRESET',
            $metadata: {},
          });
        }
        return out;
      },
      { step: 'initialize', priority: 'high', name: 'testS3Faults' },
    );
    // Inside the SDK's retry loop.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const key = keyOf(context, args);
        if (key === undefined) return next(args);
        const f = take(key, ['lose-response']);
        const out = await next(args);
        if (f) {
          throw Object.assign(new Error('socket timed out after the write was applied (injected)'), {
            name: 'TimeoutError',
            $metadata: {},
          });
        }
        return out;
      },
      { step: 'finalizeRequest', priority: 'low', name: 'testS3LoseResponse' },
    );
  }

  /** Arms a fault for the next `times` PUTs whose key passes `test`; resolves when it first fires. */
  arm(
    kind: Fault['kind'],
    test: KeyTest,
    options: { times?: number; wait?: Promise<void> } = {},
  ): Promise<void> {
    return new Promise<void>((fired) => {
      let once = false;
      this.faults.push({
        kind,
        test,
        times: options.times ?? 1,
        wait: options.wait,
        fired: () => {
          if (!once) fired();
          once = true;
        },
      });
    });
  }

  disarm(): void {
    this.faults = [];
  }

  destroy(): void {
    this.client.destroy();
  }
}

/** Everything under a prefix: key → bytes. */
export async function snapshotPrefix(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: prefix })) {
    for (const o of page.Contents ?? []) out.set(o.Key!, await getObject(client, bucket, o.Key!));
  }
  return out;
}

export async function getObject(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/**
 * An independent reader: ListObjectsV2 of the manifests, GetObject of what each lists, lines parsed
 * as JSON. Knows only the documented layout and manifest format (docs/outputs.md#s3).
 */
export async function plainRead(
  client: S3Client,
  bucket: string,
  root: string,
): Promise<Array<{ topic: string; partition: number; epoch: number; value: unknown }>> {
  const out: Array<{ topic: string; partition: number; epoch: number; value: unknown }> = [];
  for await (const page of paginateListObjectsV2(
    { client },
    { Bucket: bucket, Prefix: `${root}manifests/` },
  )) {
    for (const o of page.Contents ?? []) {
      const m = JSON.parse((await getObject(client, bucket, o.Key!)).toString('utf8')) as {
        topic: string;
        partition: number;
        epoch: number;
        encoding: string;
        withIds: boolean;
        objects: Array<{ key: string }>;
      };
      for (const obj of m.objects) {
        let body = await getObject(client, bucket, obj.key);
        if (m.encoding === 'jsonl.gz') body = gunzipSync(body);
        for (const line of body.toString('utf8').split('\n')) {
          if (line === '') continue;
          const parsed = JSON.parse(line) as { value?: unknown };
          out.push({
            topic: m.topic,
            partition: m.partition,
            epoch: m.epoch,
            value: m.withIds ? parsed.value : parsed,
          });
        }
      }
    }
  }
  return out;
}
