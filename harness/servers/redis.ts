/**
 * A throwaway Redis server (Debian package `redis-server`) on a free port of 127.0.0.1, in memory
 * (no RDB, no AOF), with `maxmemory-policy noeviction`, which the Redis commit store requires.
 */
import { Redis } from 'ioredis';
import { freePort } from '../ports.ts';
import { findBinary, spawnGuarded, tempDir, waitUntilReady } from './common.ts';

export interface LocalRedis {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startRedis(
  options: { port?: number; evictionPolicy?: string; cluster?: boolean } = {},
): Promise<LocalRedis> {
  const binary = findBinary(['redis-server', 'valkey-server'], [], 'redis-server');
  const dir = tempDir('redis');
  const port = options.port ?? (await freePort());
  const server = spawnGuarded(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      options.evictionPolicy ?? 'noeviction',
      '--protected-mode',
      'no',
      ...(options.cluster
        ? [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `${dir}/nodes.conf`,
            '--cluster-announce-ip',
            '127.0.0.1',
          ]
        : []),
    ],
    dir,
    { cwd: dir },
  );
  const url = `redis://127.0.0.1:${port}`;
  try {
    await waitUntilReady('Redis', server, async () => {
      const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => {});
      try {
        await r.connect();
        await r.ping();
        // A one-node cluster serving every slot (for the cluster-protocol client).
        if (options.cluster) {
          await r.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383').catch(() => {});
          // The cluster serves commands once its state turns ok (about two seconds).
          if (!String(await r.call('CLUSTER', 'INFO')).includes('cluster_state:ok'))
            throw new Error('cluster not ok yet');
        }
      } finally {
        r.disconnect();
      }
    });
  } catch (err) {
    await server.stop('SIGKILL');
    throw err;
  }
  return { url, port, stop: () => server.stop('SIGTERM') };
}
