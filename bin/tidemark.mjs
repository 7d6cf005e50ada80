#!/usr/bin/env node
// `npx tidemark …`. Installed as a package it runs the built CLI (dist/lib/cli/bin.js); in a clone of
// the repository it runs the TypeScript sources (lib/cli/bin.ts), on a Node.js that can strip types
// (scripts/toolchain.mjs provides one when the machine's is older).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const source = path.resolve(here, '../lib/cli/bin.ts');
const installed = here.split(path.sep).includes('node_modules') || !existsSync(source);
if (installed) {
  await import(pathToFileURL(path.resolve(here, '../dist/lib/cli/bin.js')).href);
} else {
  const { ensureNodeDir, isSupported } = await import('../scripts/toolchain.mjs');
  if (isSupported()) {
    await import(pathToFileURL(source).href);
  } else {
    const node = path.join(ensureNodeDir(), 'node');
    const r = spawnSync(node, [source, ...process.argv.slice(2)], { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
}
