/**
 * A throwaway PostgreSQL server (Debian package `postgresql`): a new cluster in a temporary
 * directory, on a free port of 127.0.0.1, trust authentication, no fsync (a test server: its data
 * does not survive a machine crash, and need not). PostgreSQL refuses to run as root: as root the
 * server runs as the `postgres` system user (or `nobody`), which owns the temporary directory.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { LocalServerError } from '../dynamoLocal.ts';
import { freePort } from '../ports.ts';
import {
  findBinary,
  removeDir,
  spawnGuarded,
  systemUser,
  tempDir,
  versionedBinDirs,
  waitUntilReady,
} from './common.ts';

export interface LocalPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (superuser, no password). */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

const PACKAGE = 'postgresql';

export async function startPostgres(options: { port?: number } = {}): Promise<LocalPostgres> {
  const dirs = versionedBinDirs('/usr/lib/postgresql');
  const initdb = findBinary(['initdb'], dirs, PACKAGE);
  const postgres = findBinary(['postgres'], [path.dirname(initdb)], PACKAGE);
  const root = tempDir('pg');
  const data = path.join(root, 'data');
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? (systemUser('postgres') ?? systemUser('nobody')) : undefined;
  if (asRoot && !user) {
    removeDir(root);
    throw new LocalServerError('PostgreSQL refuses to run as root, and there is no postgres or nobody user');
  }
  try {
    mkdirSync(data, { mode: 0o700 });
    if (user) {
      chownSync(root, user.uid, user.gid);
      chownSync(data, user.uid, user.gid);
    }
    const init = spawnSync(
      initdb,
      ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '--encoding=UTF8', '--locale=C'],
      { encoding: 'utf8', ...(user ? { uid: user.uid, gid: user.gid } : {}), cwd: root },
    );
    if (init.status !== 0) {
      throw new LocalServerError(
        `initdb failed (${init.status}): ${init.stderr || init.stdout || init.error}`,
      );
    }
  } catch (err) {
    removeDir(root);
    throw err;
  }
  const port = options.port ?? (await freePort());
  const server = spawnGuarded(
    postgres,
    [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      root,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=200',
    ],
    root,
    { cwd: root, ...(user ? { uid: user.uid, gid: user.gid } : {}) },
  );
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  try {
    await waitUntilReady('PostgreSQL', server, async () => {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
      } finally {
        await client.end().catch(() => {});
      }
    });
  } catch (err) {
    await server.stop('SIGKILL');
    throw err;
  }
  return {
    url,
    port,
    // SIGINT is PostgreSQL's fast shutdown: open connections are closed, not waited for.
    stop: () => server.stop('SIGINT'),
  };
}
