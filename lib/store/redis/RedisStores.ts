/**
 * The Redis commit and savepoint stores (MemoryDB, ElastiCache for Valkey or Redis OSS, self-hosted
 * Redis or Valkey), on one ioredis connection. Loaded only when `TIDEMARK_COMMIT_STORE=redis`.
 *
 * Honesty first (docs/stores.md): Redis is a safe commit store only where an acknowledged write
 * survives a failover. The store refuses to start unless its durability is acknowledged
 * (`TIDEMARK_REDIS_DURABILITY`), and refuses a server that may evict keys (`maxmemory-policy` must be
 * `noeviction`, read from INFO, which managed services allow, or else CONFIG GET). No key has a TTL.
 *
 * Keys of a pipeline share one hash slot (`{<prefix>:<pipeline>}`), so one Lua script can check and
 * write a task's commit item and the pipeline's task index atomically, on a cluster too:
 *
 *   {p:pipe}:task:<topic>:<partition>   hash  epoch, record (JSON, lib/checkpoint/commitRecordJson.ts)
 *   {p:pipe}:tasks                      set   <topic>:<partition> of every task with a commit item
 *   {p:pipe}:savepoints                 set   savepoint names
 *   {p:pipe}:savepoint:<name>           string  the meta item (created with SET NX: a name is taken once)
 *   {p:pipe}:savepoint:<name>:tasks     hash  <topic>:<partition> → task item
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import {
  decodeCommitRecord,
  encodeCommitRecord,
  encodeStoredJson,
  MalformedRecordError,
} from '../../checkpoint/commitRecordJson.ts';
import {
  compareTasks,
  type Savepoint,
  type SavepointMeta,
  type SavepointStore,
  type SavepointTask,
} from '../../checkpoint/savepoints.ts';
import type { CommitRecord, CommitStore, TaskId } from '../../checkpoint/stores.ts';
import { ENV, REDIS_DURABILITY } from '../../config/env.ts';
import { ConfigurationError, StoreError, StoreMissingError, StoreUnsafeError } from '../../errors.ts';
import {
  commitResolvingOutcome,
  type ErrorKind,
  type StoreConnection,
  withReconnect,
} from '../database/commitProtocol.ts';
import { resolveEndpoint } from '../database/credentials.ts';
import type { DatabaseStores } from '../database/DatabaseStores.ts';
import { type RedisStoreOptions, type ResolvedDatabaseOptions, withDefaults } from '../database/options.ts';
import { isMeta, isTask, nameTaken, storedItem } from '../sql/SqlSavepointStore.ts';

/**
 * The compare-and-set. KEYS: the task's hash, the pipeline's task index. ARGV: expected epoch (0:
 * the task must not exist), new epoch, record, index member. Returns 1, or the stored record (the
 * winner) when the stored epoch is not the expected one.
 */
const COMMIT_SCRIPT = `
local stored = redis.call('HGET', KEYS[1], 'epoch')
if (ARGV[1] == '0' and stored) or (ARGV[1] ~= '0' and stored ~= ARGV[1]) then
  return redis.call('HGET', KEYS[1], 'record') or false
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'record', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
`;

type Client = Redis | Cluster;
type ScriptClient = Client & {
  tidemarkCommit(
    task: string,
    index: string,
    expected: string,
    epoch: string,
    record: string,
    member: string,
  ): Promise<unknown>;
};

const CONNECTION_MESSAGES =
  /Connection is closed|Command timed out|max retries per request|Stream isn't writeable|connect ETIMEDOUT|socket|ECONNRESET|ECONNREFUSED|EPIPE|LOADING|READONLY|CLUSTERDOWN|TRYAGAIN|None of startup nodes is available|Failed to refresh slots cache/i;

export function classifyRedisError(err: unknown): ErrorKind {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string } | null)?.code;
  if (/^(NOAUTH|WRONGPASS|NOPERM)/.test(message)) return 'missing';
  if (code && /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)/.test(code))
    return 'connection';
  if ((err as { name?: string } | null)?.name === 'MaxRetriesPerRequestError') return 'connection';
  if (CONNECTION_MESSAGES.test(message)) return 'connection';
  return 'other';
}

/** `maxmemory-policy` from `INFO memory`, else `CONFIG GET`; undefined when the server shows neither. */
async function evictionPolicy(client: Client): Promise<string | undefined> {
  const node = client instanceof Cluster ? client.nodes('master')[0] : client;
  if (!node) return undefined;
  try {
    const info = await node.info('memory');
    const m = /^maxmemory_policy:(\S+)/m.exec(info);
    if (m) return m[1];
  } catch {}
  try {
    const r = (await node.call('CONFIG', 'GET', 'maxmemory-policy')) as string[];
    if (Array.isArray(r) && typeof r[1] === 'string') return r[1];
  } catch {}
  return undefined;
}

class RedisConnection implements StoreConnection {
  readonly options: ResolvedDatabaseOptions & RedisStoreOptions;
  private client: Promise<ScriptClient> | undefined;
  private refused: (() => void) | undefined;

  constructor(options: RedisStoreOptions) {
    const durability = options.durability;
    if (durability === undefined || !(REDIS_DURABILITY as readonly string[]).includes(durability)) {
      throw new ConfigurationError(
        ENV.redisDurability,
        `the Redis commit store refuses to start without ${ENV.redisDurability} (memorydb, elasticache-sync or accept-loss): an acknowledged commit lost in a failover makes processing at-least-once; see docs/stores.md`,
      );
    }
    this.options = { ...withDefaults(options), durability, cluster: options.cluster ?? false };
  }

  private async connect(): Promise<ScriptClient> {
    const o = this.options;
    const e = await resolveEndpoint('redis', o);
    this.refused = () => e.refused();
    const password = await e.password();
    const common: RedisOptions = {
      ...(e.user ? { username: e.user } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(e.tls ? { tls: e.tls } : {}),
      lazyConnect: true,
      connectTimeout: o.connectTimeoutMs,
      commandTimeout: o.statementTimeoutMs,
      keepAlive: 10_000,
      // A lost connection ends the client: its commands in flight fail at once ("Connection is
      // closed"), never sent again behind our back, and the store connects anew (the commit protocol
      // reads the item to learn whether a commit in flight was applied). With ioredis's own
      // reconnection, a command in flight would instead wait for commandTimeout, then be dropped.
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      // After a failover the old primary answers READONLY: reconnect (to the new one).
      reconnectOnError: (err) => err.message.startsWith('READONLY'),
    };
    const db = e.database !== undefined && /^\d+$/.test(e.database) ? Number(e.database) : undefined;
    const client: Client = o.cluster
      ? new Cluster([{ host: e.host, port: e.port }], {
          redisOptions: common,
          // TLS certificates of managed clusters name the configuration endpoint, not the node IPs.
          dnsLookup: (address, callback) => callback(null, address),
          clusterRetryStrategy: (times) => (times > 3 ? null : 100 * times),
          lazyConnect: true,
        })
      : new Redis({ ...common, host: e.host, port: e.port, ...(db !== undefined ? { db } : {}) });
    // Reported through the commands that fail; the last one explains a failed connect (WRONGPASS).
    let lastError: unknown;
    client.on('error', (err) => {
      lastError = err;
    });
    client.defineCommand('tidemarkCommit', { numberOfKeys: 2, lua: COMMIT_SCRIPT });
    try {
      await client.connect();
      const policy = await evictionPolicy(client);
      if (policy !== 'noeviction') {
        throw new StoreUnsafeError(
          'redis',
          'connect',
          policy === undefined
            ? 'cannot read the server’s maxmemory-policy (neither INFO memory nor CONFIG GET answered); Tidemark needs noeviction, so that no commit item can be evicted'
            : `maxmemory-policy is ${policy}: under memory pressure Redis would evict commit items (a task would start over); set it to noeviction`,
        );
      }
    } catch (err) {
      client.disconnect();
      throw classifyRedisError(lastError) === 'missing' ? lastError : err;
    }
    return client as ScriptClient;
  }

  /** The connected client; a new one when the last one ended (the server closed an idle connection). */
  async get(): Promise<ScriptClient> {
    for (;;) {
      let pending = this.client;
      if (!pending) {
        const c = this.connect();
        c.catch(() => {
          if (this.client === c) this.client = undefined;
        });
        this.client = c;
        pending = c;
      }
      const client = await pending;
      if (client.status !== 'end') return client;
      if (this.client === pending) this.client = undefined;
    }
  }

  classify(err: unknown): ErrorKind {
    return classifyRedisError(err);
  }

  storeError(operation: string, err: unknown): StoreError {
    const kind = classifyRedisError(err);
    const message = err instanceof Error ? err.message : String(err);
    if (kind === 'missing') {
      this.refused?.();
      return new StoreMissingError('redis', operation, `the server (${message})`, { cause: err });
    }
    return new StoreError('redis', operation, message, {
      cause: err,
      retriable: kind === 'connection' || /^(BUSY|OOM|TRYAGAIN|MOVED|ASK)/.test(message),
    });
  }

  reset(): void {
    const old = this.client;
    this.client = undefined;
    old?.then((c) => c.disconnect()).catch(() => {});
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await (await c).quit().catch(() => {});
  }

  /** The slot-sharing key of a pipeline. */
  base(pipeline: string): string {
    return `{${this.options.prefix}:${pipeline}}`;
  }
}

function member(task: Pick<TaskId, 'topic' | 'partition'>): string {
  return `${task.topic}:${task.partition}`;
}

class RedisCommitStore implements CommitStore {
  readonly kind = 'redis';
  private readonly conn: RedisConnection;

  constructor(conn: RedisConnection) {
    this.conn = conn;
  }

  private taskKey(task: TaskId): string {
    return `${this.conn.base(task.pipeline)}:task:${member(task)}`;
  }

  private decode(text: string, task: Pick<TaskId, 'pipeline' | 'topic' | 'partition'>): CommitRecord {
    try {
      return decodeCommitRecord(text);
    } catch (err) {
      if (!(err instanceof MalformedRecordError)) throw err;
      throw new StoreError(
        'redis',
        'read',
        `commit item of ${task.pipeline} ${member(task)} is malformed: ${err.message}`,
        {
          retriable: false,
          cause: err,
        },
      );
    }
  }

  async read(task: TaskId): Promise<CommitRecord | undefined> {
    const text = await withReconnect(this.conn, 'read', async () =>
      (await this.conn.get()).hget(this.taskKey(task), 'record'),
    );
    return text === null ? undefined : this.decode(text, task);
  }

  async commit(
    next: CommitRecord,
    expectedEpoch: number,
    attached?: Parameters<CommitStore['commit']>[2],
  ): Promise<void> {
    if (attached !== undefined) {
      throw new ConfigurationError(
        'attached',
        `the Redis commit store takes no attached writes (store ${JSON.stringify((attached as { store?: unknown }).store)}): its outputs go through the outbox`,
      );
    }
    const record = encodeCommitRecord(next);
    let winner: CommitRecord | undefined;
    const attempt = async (): Promise<'won' | 'lost'> => {
      const r = await (await this.conn.get()).tidemarkCommit(
        this.taskKey(next),
        `${this.conn.base(next.pipeline)}:tasks`,
        String(expectedEpoch),
        String(next.epoch),
        record,
        member(next),
      );
      if (r === 1) return 'won';
      winner = typeof r === 'string' ? this.decode(r, next) : undefined;
      return 'lost';
    };
    // The script returns the winner itself (Redis runs it atomically); a read is needed only
    // after a lost connection.
    await commitResolvingOutcome(this.conn, next, expectedEpoch, attempt, async () =>
      winner !== undefined ? winner : this.read(next),
    );
  }

  async probe(): Promise<void> {
    await withReconnect(this.conn, 'probe', async () => (await this.conn.get()).ping());
  }

  async *list(pipeline: string): AsyncIterable<CommitRecord> {
    const base = this.conn.base(pipeline);
    const rows = await withReconnect(this.conn, 'list', async () => {
      const c = await this.conn.get();
      const members = (await c.smembers(`${base}:tasks`)).sort();
      const out: Array<[string, string | null]> = [];
      for (let i = 0; i < members.length; i += 500) {
        const chunk = members.slice(i, i + 500);
        const p = c.pipeline();
        for (const m of chunk) p.hget(`${base}:task:${m}`, 'record');
        const results = (await p.exec()) ?? [];
        results.forEach(([err, v], j) => {
          if (err) throw err;
          out.push([chunk[j]!, v as string | null]);
        });
      }
      return out;
    });
    for (const [m, text] of rows) {
      if (text === null) continue;
      const cut = m.lastIndexOf(':');
      yield this.decode(text, { pipeline, topic: m.slice(0, cut), partition: Number(m.slice(cut + 1)) });
    }
  }
}

class RedisSavepointStore implements SavepointStore {
  private readonly conn: RedisConnection;

  constructor(conn: RedisConnection) {
    this.conn = conn;
  }

  private keys(pipeline: string, name: string) {
    const base = this.conn.base(pipeline);
    return {
      index: `${base}:savepoints`,
      meta: `${base}:savepoint:${name}`,
      tasks: `${base}:savepoint:${name}:tasks`,
    };
  }

  private run<T>(operation: string, fn: (c: Client) => Promise<T>): Promise<T> {
    return withReconnect(this.conn, operation, async () => fn(await this.conn.get()));
  }

  async create(meta: SavepointMeta): Promise<void> {
    const k = this.keys(meta.pipeline, meta.name);
    // Listed first, created second: a crash in between leaves a name without a meta item, which
    // `list` skips and a later `create` of that name completes.
    const created = await this.run('savepoint-create', async (c) => {
      await c.sadd(k.index, meta.name);
      return c.set(k.meta, encodeStoredJson(meta), 'NX');
    });
    if (created !== 'OK') throw nameTaken(meta);
  }

  async putTask(task: SavepointTask): Promise<void> {
    const k = this.keys(task.pipeline, task.name);
    await this.run('savepoint-put-task', (c) => c.hset(k.tasks, member(task), encodeStoredJson(task)));
  }

  async updateMeta(meta: SavepointMeta): Promise<void> {
    const k = this.keys(meta.pipeline, meta.name);
    await this.run('savepoint-update', async (c) => {
      await c.sadd(k.index, meta.name);
      await c.set(k.meta, encodeStoredJson(meta));
    });
  }

  async read(pipeline: string, name: string): Promise<Savepoint | undefined> {
    const k = this.keys(pipeline, name);
    const [metaText, taskTexts] = await this.run('savepoint-read', async (c) =>
      Promise.all([c.get(k.meta), c.hvals(k.tasks)]),
    );
    if (metaText === null) return undefined;
    const meta = storedItem<SavepointMeta>('redis', `savepoint ${name} of ${pipeline}`, metaText, isMeta);
    const tasks = taskTexts.map((t) =>
      storedItem<SavepointTask>('redis', `a task of savepoint ${name} of ${pipeline}`, t, isTask),
    );
    return { meta, tasks: tasks.sort(compareTasks) };
  }

  async *list(pipeline: string): AsyncIterable<SavepointMeta> {
    const index = `${this.conn.base(pipeline)}:savepoints`;
    const metas = await this.run('savepoint-list', async (c) => {
      const names = await c.smembers(index);
      if (names.length === 0) return [];
      return c.mget(names.map((n) => this.keys(pipeline, n).meta));
    });
    for (const text of metas) {
      if (text !== null) yield storedItem<SavepointMeta>('redis', `a savepoint of ${pipeline}`, text, isMeta);
    }
  }

  async delete(pipeline: string, name: string): Promise<void> {
    const k = this.keys(pipeline, name);
    // Tasks first, the meta item last: an interrupted delete still lists the savepoint.
    await this.run('savepoint-delete', async (c) => {
      await c.del(k.tasks);
      await c.del(k.meta);
      await c.srem(k.index, name);
    });
  }
}

export function createRedisStores(options: RedisStoreOptions): DatabaseStores {
  const conn = new RedisConnection(options);
  const commits = new RedisCommitStore(conn);
  return {
    commits,
    savepoints: new RedisSavepointStore(conn),
    // Nothing to create: connecting checks the eviction policy.
    ensureSchema: async () => {
      await commits.probe();
      return 'exists';
    },
    close: () => conn.close(),
  };
}
