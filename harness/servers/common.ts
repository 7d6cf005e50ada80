/**
 * What the local database servers (PostgreSQL, MariaDB, Redis) share: finding the Debian package's
 * binary (or saying which package to install), a temporary directory, a child process that dies
 * with us even under SIGKILL (its whole process group), and waiting until it answers.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalServerError } from '../dynamoLocal.ts';
import { killWithParent } from '../processGuard.ts';

/** A server binary is not installed; `debianPackage` is what to `apt-get install`. */
export class MissingServerBinaryError extends LocalServerError {
  readonly binary: string;
  readonly debianPackage: string;
  constructor(binary: string, debianPackage: string, searched: readonly string[]) {
    super(
      `${binary} not found (looked in ${searched.join(', ')}). On Debian/Ubuntu: apt-get install -y ${debianPackage}`,
    );
    this.name = 'MissingServerBinaryError';
    this.binary = binary;
    this.debianPackage = debianPackage;
  }
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first of `names` found in `dirs`, then on PATH; else `MissingServerBinaryError`. */
export function findBinary(names: readonly string[], dirs: readonly string[], debianPackage: string): string {
  const pathDirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  const searched = [...dirs, ...pathDirs, '/usr/sbin'];
  for (const name of names) {
    for (const dir of searched) {
      const file = path.join(dir, name);
      if (executable(file)) return file;
    }
  }
  throw new MissingServerBinaryError(names[0]!, debianPackage, [...new Set(searched)]);
}

/** Directories matching `<parent>/<version>/bin`, newest version first (e.g. /usr/lib/postgresql). */
export function versionedBinDirs(parent: string): string[] {
  try {
    return readdirSync(parent)
      .filter((d) => /^\d+$/.test(d))
      .sort((a, b) => Number(b) - Number(a))
      .map((d) => path.join(parent, d, 'bin'));
  } catch {
    return [];
  }
}

/** uid and gid of a system user, from /etc/passwd (undefined when there is no such user). */
export function systemUser(name: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [user, , uid, gid] = line.split(':');
      if (user === name && uid && gid) return { uid: Number(uid), gid: Number(gid) };
    }
  } catch {}
  return undefined;
}

export function tempDir(label: string): string {
  return mkdtempSync(path.join(tmpdir(), `tidemark-${label}-`));
}

export interface GuardedProcess {
  readonly child: ChildProcess;
  /** What the process wrote on stderr and stdout (the first 8 KB). */
  output(): string;
  /** The exit code once it exited (null when killed by a signal), else undefined. */
  exited(): number | null | undefined;
  /** Stops it with `signal` (SIGKILL after 5 s), then removes `dir`. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Spawns a server as the leader of its own process group, so that it and every process it forks are
 * killed when we die, however we die (see processGuard.ts). `dir` is removed when it stops.
 */
export function spawnGuarded(
  command: string,
  args: readonly string[],
  dir: string,
  options: Pick<SpawnOptions, 'uid' | 'gid' | 'cwd' | 'env'> = {},
): GuardedProcess {
  const child = spawn(command, args, {
    ...options,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.unref();
  const release = killWithParent(child, { group: true });
  const releaseDir = removeWithParent(dir);
  let out = '';
  const collect = (d: Buffer) => {
    if (out.length < 8192) out += d.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  (child.stdout as unknown as { unref?: () => void })?.unref?.();
  (child.stderr as unknown as { unref?: () => void })?.unref?.();
  let code: number | null | undefined;
  const done = new Promise<void>((resolve) => {
    child.once('exit', (c) => {
      code = c;
      resolve();
    });
    child.once('error', (err) => {
      out += String(err);
      code = code ?? -1;
      resolve();
    });
  });
  return {
    child,
    output: () => out,
    exited: () => code,
    async stop(signal = 'SIGTERM') {
      if (code === undefined && child.pid !== undefined) {
        try {
          process.kill(-child.pid, signal);
        } catch {}
        const timer = setTimeout(() => {
          try {
            if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          } catch {}
        }, 5000);
        await done;
        clearTimeout(timer);
      }
      release();
      releaseDir();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Removes `dir` when we die without stopping the server (a SIGKILLed test runner): a detached shell
 * holding a pipe from us waits for it to close, lets the server's own watchdog kill it, then removes
 * the directory. Returns a function that stops watching.
 */
function removeWithParent(dir: string): () => void {
  const watchdog = spawn('sh', ['-c', 'read _ ; sleep 2 ; rm -rf -- "$0"', dir], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.on('error', () => {});
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return () => {
    watchdog.kill('SIGKILL');
  };
}

/** Calls `probe` until it resolves; fails with the server's output when it exits or time runs out. */
export async function waitUntilReady(
  name: string,
  server: GuardedProcess,
  probe: () => Promise<unknown>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const code = server.exited();
    if (code !== undefined) {
      throw new LocalServerError(`${name} exited (code ${code}): ${server.output().trim().slice(-2000)}`);
    }
    try {
      await probe();
      return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new LocalServerError(
        `${name} did not answer within ${timeoutMs} ms (${String(last)}): ${server.output().trim().slice(-2000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Removes a directory (for start-up failures before a process owns it). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
