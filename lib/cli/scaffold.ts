/**
 * `tidemark new <dir>`: a project for a new pipeline — a processor, its TestDriver test, the Lambda
 * handler, a CDK app deploying it with `TidemarkPipeline`, a README — from the templates shipped in
 * the package (`templates/new`). Its dev dependencies are pinned to the versions this Tidemark was
 * built and tested with.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PIPELINE_ID_PATTERN } from '../config/definitions.ts';
import { OperationError } from '../errors.ts';

/** The dev dependencies a new project gets (their versions: this package's own). */
const DEV_DEPENDENCIES = [
  '@types/node',
  'aws-cdk',
  'aws-cdk-lib',
  'cdk-nag',
  'constructs',
  'esbuild',
  'typescript',
  'vitest',
];

export interface ScaffoldOptions {
  /** The project directory (created; must be absent or empty). */
  dir: string;
  /** Pipeline id. Default: the directory's name. */
  pipeline?: string;
  /** The `tidemark` dependency of the new project. Default: `^<this version>`. */
  tidemark?: string;
}

export interface ScaffoldResult {
  dir: string;
  pipeline: string;
  files: string[];
}

/** This package's root: the directory of the `package.json` named tidemark above this file. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tidemark') {
      return dir;
    }
    const up = path.dirname(dir);
    if (up === dir) throw new OperationError('cannot find the tidemark package (its templates)');
    dir = up;
  }
}

function files(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(root, rel)).sort()) {
    const p = path.join(rel, name);
    if (statSync(path.join(root, p)).isDirectory()) out.push(...files(root, p));
    else out.push(p);
  }
  return out;
}

export function scaffold(options: ScaffoldOptions): ScaffoldResult {
  const dir = path.resolve(options.dir);
  const pipeline = options.pipeline ?? path.basename(dir);
  if (!PIPELINE_ID_PATTERN.test(pipeline)) {
    throw new OperationError(
      `pipeline id ${JSON.stringify(pipeline)} must match ${PIPELINE_ID_PATTERN} (give --pipeline)`,
    );
  }
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new OperationError(`${dir} exists and is not empty`);
  }
  const root = packageRoot();
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    version: string;
    devDependencies?: Record<string, string>;
  };
  const dev: Record<string, string> = {};
  for (const name of DEV_DEPENDENCIES) {
    const v = pkg.devDependencies?.[name];
    if (!v) throw new OperationError(`the tidemark package does not record a version of ${name}`);
    dev[name] = v;
  }
  const stackName = `${pipeline.replace(/[^A-Za-z0-9-]/g, '-').replace(/^[^A-Za-z]+/, '')}-pipeline`;
  const values: Record<string, string> = {
    __NAME__: pipeline,
    __PACKAGE__: pipeline.toLowerCase().replace(/[^a-z0-9._-]/g, '-'),
    __STACK__: stackName.charAt(0).toUpperCase() + stackName.slice(1),
    __TIDEMARK__: options.tidemark ?? `^${pkg.version}`,
    __DEV_DEPENDENCIES__: JSON.stringify(dev, null, 4).replace(/\n}$/, '\n  }'),
  };
  const templates = path.join(root, 'templates', 'new');
  const written: string[] = [];
  for (const rel of files(templates)) {
    // npm never packs a file named .gitignore, and a template's package.json is not JSON yet.
    const target = rel === 'gitignore' ? '.gitignore' : rel.replace(/\.tmpl$/, '');
    let text = readFileSync(path.join(templates, rel), 'utf8');
    for (const [k, v] of Object.entries(values)) text = text.replaceAll(k, v);
    mkdirSync(path.dirname(path.join(dir, target)), { recursive: true });
    writeFileSync(path.join(dir, target), text);
    written.push(target);
  }
  return { dir, pipeline, files: written };
}
