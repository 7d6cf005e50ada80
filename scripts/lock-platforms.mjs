#!/usr/bin/env node
// Keeps `npm ci` working when the registry in use lacks some platform builds of optional
// dependencies (e.g. a mirror holding only Linux binaries of a linter or a native accelerator).
// `npm install` then leaves those packages out of package-lock.json, and `npm ci` refuses the lock
// as "out of sync". This adds, for every optional dependency the lock names but does not hold, an
// entry with its version, `optional: true` and the os/cpu its name says, so `npm ci` skips it on
// other platforms exactly as it would with a complete lock. Run it after changing dependencies:
//   node scripts/lock-platforms.mjs          (writes package-lock.json)
//   node scripts/lock-platforms.mjs --check  (exit 1 when an entry is missing)
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LOCK = path.join(ROOT, 'package-lock.json');
const OS = ['android', 'darwin', 'freebsd', 'linux', 'openbsd', 'netbsd', 'sunos', 'win32', 'aix'];
const CPU = ['arm64', 'arm', 'x64', 'ia32', 'loong64', 'mips64el', 'ppc64', 'riscv64', 's390x'];

/** os and cpu from a platform package name such as `@scope/cli-linux-arm64-musl`. */
function platformOf(name) {
  const parts = name.split('/').pop().split('-');
  const os = parts.find((p) => OS.includes(p));
  const cpu = parts.find((p) => CPU.includes(p));
  return { ...(os ? { os: [os] } : {}), ...(cpu ? { cpu: [cpu] } : {}) };
}

export function missingEntries(lock) {
  const packages = lock.packages ?? {};
  const added = {};
  for (const [where, entry] of Object.entries(packages)) {
    for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
      // npm resolves a dependency next to its parent first, then up the tree; stubs go at the top.
      const nested = `${where ? `${where}/` : ''}node_modules/${name}`;
      const top = `node_modules/${name}`;
      if (packages[nested] || packages[top] || added[top]) continue;
      added[top] = {
        version: String(version).replace(/^[~^=]/, ''),
        ...(entry.dev ? { dev: true } : {}),
        optional: true,
        ...platformOf(name),
      };
    }
  }
  return added;
}

const lock = JSON.parse(readFileSync(LOCK, 'utf8'));
const added = missingEntries(lock);
const names = Object.keys(added);
if (process.argv.includes('--check')) {
  if (names.length > 0) {
    process.stderr.write(
      `package-lock.json lacks ${names.length} optional platform package(s): ${names.join(', ')}\nrun: node scripts/lock-platforms.mjs\n`,
    );
    process.exit(1);
  }
  process.exit(0);
}
if (names.length === 0) {
  process.stdout.write('package-lock.json already names every optional platform package\n');
} else {
  lock.packages = Object.fromEntries(
    Object.entries({ ...lock.packages, ...added }).sort(([a], [b]) =>
      a === '' ? -1 : b === '' ? 1 : a.localeCompare(b),
    ),
  );
  writeFileSync(LOCK, `${JSON.stringify(lock, null, 2)}\n`);
  process.stdout.write(
    `added ${names.length} entr${names.length === 1 ? 'y' : 'ies'}: ${names.join(', ')}\n`,
  );
}
