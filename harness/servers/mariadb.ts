/**
 * A throwaway MariaDB server (Debian package `mariadb-server`): a new data directory in a temporary
 * directory, on a free port of 127.0.0.1, `root` without a password, a `tidemark` database, and no
 * flush at each commit (a test server).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { LocalServerError } from '../dynamoLocal.ts';
import { freePort } from '../ports.ts';
import { findBinary, removeDir, spawnGuarded, tempDir, waitUntilReady } from './common.ts';

export interface LocalMariaDb {
  /** `mysql://root@127.0.0.1:<port>/tidemark`. */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

const PACKAGE = 'mariadb-server';

export async function startMariaDb(options: { port?: number } = {}): Promise<LocalMariaDb> {
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db'], [], PACKAGE);
  const mariadbd = findBinary(['mariadbd', 'mysqld'], ['/usr/sbin'], PACKAGE);
  const root = tempDir('mariadb');
  const data = path.join(root, 'data');
  const asRoot = process.getuid?.() === 0;
  const userArgs = asRoot ? ['--user=root'] : [];
  const init = spawnSync(
    installDb,
    [
      '--no-defaults',
      `--datadir=${data}`,
      ...userArgs,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      '--skip-name-resolve',
    ],
    { encoding: 'utf8', cwd: root },
  );
  if (init.status !== 0) {
    removeDir(root);
    throw new LocalServerError(
      `mariadb-install-db failed (${init.status}): ${init.stderr || init.stdout || init.error}`,
    );
  }
  const port = options.port ?? (await freePort());
  const server = spawnGuarded(
    mariadbd,
    [
      '--no-defaults',
      `--datadir=${data}`,
      ...userArgs,
      `--socket=${path.join(root, 'mysqld.sock')}`,
      `--pid-file=${path.join(root, 'mysqld.pid')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      '--skip-log-bin',
      '--innodb-flush-log-at-trx-commit=0',
      '--innodb-buffer-pool-size=32M',
      '--innodb-log-file-size=16M',
      '--max-connections=200',
    ],
    root,
    { cwd: root },
  );
  const admin = { host: '127.0.0.1', port, user: 'root', connectTimeout: 1000 };
  try {
    await waitUntilReady('MariaDB', server, async () => {
      const c = await mysql.createConnection(admin);
      try {
        await c.query('CREATE DATABASE IF NOT EXISTS tidemark');
      } finally {
        await c.end().catch(() => {});
      }
    });
  } catch (err) {
    await server.stop('SIGKILL');
    throw err;
  }
  return {
    url: `mysql://root@127.0.0.1:${port}/tidemark`,
    port,
    stop: () => server.stop('SIGTERM'),
  };
}
