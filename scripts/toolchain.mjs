// Finds a Node.js that can run this project (>= 22.18, with TypeScript type stripping).
// Plain JavaScript that still runs on old Node versions: it is the first thing `npm start`,
// `npm test` and `npx tidemark` execute. When the running Node is too old it uses (and if needed
// installs) the project-local toolchain in .toolchain/ (the npm package `node@24`); it never touches
// the machine's own Node.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const TOOLCHAIN_BIN = path.join(ROOT, '.toolchain', 'node_modules', '.bin');
const TOOLCHAIN_PACKAGE = 'node@24';
const MIN = [22, 18];

export function isSupported(version = process.versions.node) {
  const [major, minor] = version.split('.').map(Number);
  return major > MIN[0] || (major === MIN[0] && minor >= MIN[1]);
}

function toolchainVersion(nodeBin) {
  try {
    return execFileSync(nodeBin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

/** Returns the directory holding a supported `node` binary: the current one, or the project toolchain. */
export function ensureNodeDir() {
  if (isSupported()) return path.dirname(process.execPath);
  const nodeBin = path.join(TOOLCHAIN_BIN, 'node');
  const existing = existsSync(nodeBin) ? toolchainVersion(nodeBin) : undefined;
  if (existing && isSupported(existing)) return TOOLCHAIN_BIN;
  process.stderr.write(
    `tidemark: Node.js ${process.versions.node} is too old (need >= ${MIN.join('.')}); ` +
      `installing ${TOOLCHAIN_PACKAGE} into .toolchain/ (the machine's own Node is left alone)...\n`,
  );
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(
    npm,
    ['install', '--prefix', path.join(ROOT, '.toolchain'), '--no-audit', '--no-fund', TOOLCHAIN_PACKAGE],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const installed = existsSync(nodeBin) ? toolchainVersion(nodeBin) : undefined;
  if (r.status !== 0 || !installed || !isSupported(installed)) {
    process.stderr.write(
      `tidemark: could not provide Node.js >= ${MIN.join('.')}. Install Node.js 22.18+ (24 recommended) ` +
        `or run: npm install --prefix .toolchain ${TOOLCHAIN_PACKAGE}\n`,
    );
    process.exit(1);
  }
  return TOOLCHAIN_BIN;
}

/** Environment whose PATH resolves `node` (and scripts with `#!/usr/bin/env node`) to a supported Node. */
export function supportedEnv(env = process.env) {
  const dir = ensureNodeDir();
  return { ...env, PATH: `${dir}${path.delimiter}${env.PATH ?? ''}` };
}
