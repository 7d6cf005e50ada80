#!/usr/bin/env node
// `npx tidemark …`: runs the operator CLI (lib/cli/bin.ts) on a Node.js that can load it.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureNodeDir, isSupported } from '../scripts/toolchain.mjs';

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../lib/cli/bin.ts');
if (isSupported()) {
  await import(pathToFileURL(main).href);
} else {
  const node = path.join(ensureNodeDir(), 'node');
  const r = spawnSync(node, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
