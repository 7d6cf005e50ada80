/**
 * Provides the local Kafka mock cluster binary (`.kafka-mock/kafka-mock`): librdkafka's mock
 * cluster, patched for kafkajs and built from sources by `scripts/kafka-mock/build.sh`. The script
 * is cached by a stamp (instant once built), takes a lock (two processes never build at once), and
 * exits with status 3 when build tools are missing, which becomes a `KafkaMockToolchainError`.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { killWithParent } from '../processGuard.ts';
import { KafkaMockBuildError, KafkaMockError, KafkaMockToolchainError } from './errors.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const KAFKA_MOCK_BUILD_SCRIPT = path.join(REPO_ROOT, 'scripts', 'kafka-mock', 'build.sh');
/** Exit status of the build script when build tools are missing. */
const MISSING_TOOLS_STATUS = 3;

export interface KafkaMockBuildOptions {
  /** Output directory. Default: `KAFKA_MOCK_DIR`, else `<repo>/.kafka-mock`. */
  dir?: string;
  /** Environment of the build (PATH decides which tools are found). Default: `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Receives the build script's progress lines (it prints nothing when the binary is cached). */
  onOutput?: (line: string) => void;
}

export function kafkaMockDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env.KAFKA_MOCK_DIR || path.join(REPO_ROOT, '.kafka-mock');
}

/**
 * Returns the path of a runnable `kafka-mock`, building it first when needed (about 35 s on two
 * cores, once). `KAFKA_MOCK_BIN` names a prebuilt binary and skips the build.
 */
export async function ensureKafkaMock(options: KafkaMockBuildOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const prebuilt = env.KAFKA_MOCK_BIN;
  if (prebuilt) {
    try {
      accessSync(prebuilt, constants.X_OK);
    } catch {
      throw new KafkaMockError(`KAFKA_MOCK_BIN=${prebuilt} is not an executable file`);
    }
    return prebuilt;
  }
  const dir = options.dir ?? kafkaMockDir(env);
  const child = spawn('bash', [KAFKA_MOCK_BUILD_SCRIPT], {
    env: { ...env, KAFKA_MOCK_DIR: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
    // Its own process group: if we die mid-build, configure/make/gcc die with it.
    detached: true,
  });
  const release = killWithParent(child, { group: true });
  const lines: string[] = [];
  let partial = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      options.onOutput?.(line);
    }
  });
  const status = await new Promise<number | null>((resolve, reject) => {
    child.once('error', (err) =>
      reject(new KafkaMockError(`cannot run the Kafka mock build script: ${err.message}`, { cause: err })),
    );
    child.once('close', (code) => resolve(code));
  }).finally(release);
  if (partial) lines.push(partial);
  if (status === 0) return path.join(dir, 'kafka-mock');
  if (status === MISSING_TOOLS_STATUS) {
    const m = /missing (.+)$/m.exec(lines.join('\n'));
    throw new KafkaMockToolchainError(m?.[1]?.trim().split(/\s+/) ?? ['build tools']);
  }
  throw new KafkaMockBuildError(
    `building the Kafka mock cluster failed (exit ${status}):\n${lines.slice(-30).join('\n')}`,
    path.join(dir, 'build.log'),
  );
}
