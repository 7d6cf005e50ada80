/**
 * The shape of the code (issue 11 §6): what ships (`lib/`) imports only what ships; the runtime entry
 * point loads nothing of the CDK code, the CLI, the operator operations or the harness; `cdk/` imports
 * only shared definitions from `lib/`; the Lambda hot path does not load operator-only modules.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<
  string,
  Record<string, string>
>;
const SHIPPED_PACKAGES = new Set([
  ...Object.keys(pkg.dependencies ?? {}),
  ...Object.keys(pkg.peerDependencies ?? {}),
]);

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(ROOT, dir))) {
    const rel = path.join(dir, name);
    if (statSync(path.join(ROOT, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (rel.endsWith('.ts')) out.push(rel);
  }
  return out;
}

interface Import {
  specifier: string;
  typeOnly: boolean;
  dynamic: boolean;
}

/** The imports of a source file (static, type-only, dynamic), from its text. */
function importsOf(file: string): Import[] {
  const src = readFileSync(path.join(ROOT, file), 'utf8');
  const out: Import[] = [];
  for (const m of src.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?\bfrom\s+['"]([^'"]+)['"]/gms)) {
    out.push({ specifier: m[3]!, typeOnly: m[2] !== undefined, dynamic: false });
  }
  for (const m of src.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) {
    out.push({ specifier: m[1]!, typeOnly: false, dynamic: false });
  }
  for (const m of src.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    out.push({ specifier: m[1]!, typeOnly: false, dynamic: true });
  }
  return out;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

const isBuiltin = (s: string) => s.startsWith('node:') || builtinModules.includes(s);

function resolveRelative(from: string, specifier: string): string {
  return path.normalize(path.join(path.dirname(from), specifier));
}

/** Files and packages a file loads when it is imported (static, non-type imports, transitively). */
function loadClosure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const i of importsOf(file)) {
      if (i.typeOnly || i.dynamic) continue;
      if (i.specifier.startsWith('.')) visit(resolveRelative(file, i.specifier));
      else if (!isBuiltin(i.specifier)) packages.add(packageName(i.specifier));
    }
  };
  visit(entry);
  return { files, packages };
}

describe('code structure', () => {
  it('lib/ imports only lib/ files, Node built-ins and the packages it ships with', () => {
    const problems: string[] = [];
    for (const file of tsFiles('lib')) {
      for (const i of importsOf(file)) {
        if (i.specifier.startsWith('.')) {
          const target = resolveRelative(file, i.specifier);
          if (!target.startsWith(`lib${path.sep}`)) problems.push(`${file} imports ${target}`);
        } else if (
          !isBuiltin(i.specifier) &&
          !SHIPPED_PACKAGES.has(packageName(i.specifier)) &&
          !(i.typeOnly && SHIPPED_PACKAGES.has(`@types/${packageName(i.specifier)}`))
        ) {
          problems.push(`${file} imports ${i.specifier}, which is not a dependency or peer dependency`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('the runtime entry point loads nothing of the CDK code, the CLI, the operations, the harness or the sinks', () => {
    const { files, packages } = loadClosure('lib/index.ts');
    const forbidden = [...files].filter((f) =>
      /^(cdk|harness|examples|bench|test)\/|^lib\/(cli|ops|testing|sink|middleware)\//.test(f),
    );
    expect(forbidden).toEqual([]);
    for (const p of [
      'aws-cdk-lib',
      'constructs',
      'commander',
      'kafkajs',
      '@middy/core',
      'pg',
      'mysql2',
      'ioredis',
    ]) {
      expect(packages).not.toContain(p);
    }
  });

  it('the Lambda hot path (functions/balances.ts) does not load operator-only code at module load', () => {
    const { files, packages } = loadClosure('functions/balances.ts');
    expect([...files].filter((f) => /DynamoSavepointStore|lib\/ops\/|lib\/cli\//.test(f))).toEqual([]);
    for (const p of ['@aws-sdk/lib-storage', '@aws-sdk/client-lambda', 'commander', 'kafkajs']) {
      expect(packages).not.toContain(p);
    }
  });

  it('cdk/ imports only shared definitions from lib/', () => {
    const shared = new Set([
      'lib/config/env.ts',
      'lib/config/definitions.ts',
      'lib/observability/metricNames.ts',
    ]);
    const problems: string[] = [];
    for (const file of tsFiles('cdk')) {
      for (const i of importsOf(file)) {
        if (!i.specifier.startsWith('.')) continue;
        const target = resolveRelative(file, i.specifier);
        if (target.startsWith(`lib${path.sep}`) && !shared.has(target))
          problems.push(`${file} imports ${target}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every package entry point has a source file', () => {
    const exportsMap = pkg.exports as unknown as Record<string, { default?: string } | string>;
    for (const [entry, target] of Object.entries(exportsMap)) {
      if (typeof target === 'string') continue;
      const source = target.default!.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts');
      expect(statSync(path.join(ROOT, source)).isFile(), `${entry} → ${source}`).toBe(true);
    }
  });
});
