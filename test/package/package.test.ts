/**
 * Tidemark as users get it (issue 11 §4): the tarball `npm pack` makes, installed into a temporary
 * project outside this repository (so nothing resolves to the sources here), used from plain
 * JavaScript; then a project made by `npx tidemark new`, with its own `npm install`, `npm test`,
 * type check and `cdk synth`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const INSTALL = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

async function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  try {
    return await run(cmd, args, {
      cwd,
      env: { ...process.env, ...env, npm_config_update_notifier: 'false' },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`,
    );
  }
}

describe('the npm package, installed in a project that cannot see this repository', () => {
  let work = '';
  let tarball = '';
  /** The project `tidemark new` made, with its own `npm install`: the consumer of every check. */
  let consumer = '';
  let created = '';

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'tidemark-package-'));
    // prepack builds dist/ (tsc): a type error anywhere in what ships fails here.
    const packed = await sh('npm', ['pack', '--pack-destination', work, '--loglevel=error'], ROOT);
    tarball = path.join(work, packed.stdout.trim().split('\n').pop()!);
    // As a user without a project would: run the package's CLI once (npm exec installs it apart).
    created = (
      await sh(
        'npm',
        [
          'exec',
          '--yes',
          '--prefer-offline',
          `--package=${tarball}`,
          '--',
          'tidemark',
          'new',
          'orders',
          '--tidemark',
          `file:${tarball}`,
        ],
        work,
      )
    ).stdout;
    consumer = path.join(work, 'orders');
    await sh('npm', INSTALL, consumer);
  }, 900_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds what a user needs, and not the harness, the benchmarks, the tests or the CI script', async () => {
    const { stdout } = await sh('tar', ['tzf', tarball], work);
    const files = stdout
      .trim()
      .split('\n')
      .map((f) => f.replace(/^package\//, ''));
    expect(files).toContain('dist/lib/index.js');
    expect(files).toContain('dist/lib/index.d.ts');
    expect(files).toContain('dist/cdk/index.js');
    expect(files).toContain('bin/tidemark.mjs');
    expect(files).toContain('templates/new/src/processor.ts');
    expect(
      files.filter((f) => /^(harness|bench|test|examples|functions|scripts|\.ci|lib|cdk)\//.test(f)),
    ).toEqual([]);
    expect(files.filter((f) => /\.test\.|results\//.test(f) && !f.startsWith('templates/'))).toEqual([]);
  });

  it('is imported from plain JavaScript: every entry point, and a processor through TestDriver', async () => {
    writeFileSync(
      path.join(consumer, 'check.mjs'),
      `
import { createKafkaHandler, defineProcessor, PoisonRecordError, valueState, taskValueState } from 'tidemark';
import { TestDriver } from 'tidemark/testing';
const entries = ['tidemark/middy', 'tidemark/cdk', 'tidemark/ops', 'tidemark/kafka', 'tidemark/dynamodb', 'tidemark/s3', 'tidemark/iceberg', 'tidemark/sql'];
const loaded = {};
for (const e of entries) loaded[e] = Object.keys(await import(e)).length;
const processor = defineProcessor({
  state: { balance: valueState(), records: taskValueState() },
  poisonPolicy: 'quarantine',
  process(record, { state }) {
    state.records.set((state.records.get() ?? 0) + 1);
    const amount = Number(record.value.toString());
    if (!Number.isSafeInteger(amount)) throw new PoisonRecordError('not an integer');
    state.balance.set((state.balance.get() ?? 0) + amount);
  },
});
const driver = new TestDriver(processor, { topic: 'deposits', partitions: 2 });
await driver.send([
  { partition: 0, offset: 10, key: 'a', value: '5' },
  { partition: 0, key: 'a', value: 'x' },
  { partition: 1, key: 'b', value: '2' },
]);
await driver.redeliver();
await driver.restart();
await driver.send([{ partition: 0, offset: 11, key: 'a', value: 'x' }, { partition: 0, offset: 12, key: 'a', value: '7' }]);
console.log(JSON.stringify({
  loaded,
  handler: typeof createKafkaHandler(processor, { env: { TIDEMARK_BUCKET: 'b', TIDEMARK_TABLE: 't', TIDEMARK_PIPELINE: 'p' }, telemetry: false }),
  a: driver.state('balance', 'a'),
  b: driver.state('balance', 'b'),
  records0: driver.state('records', undefined, { partition: 0 }),
  committed0: String(driver.committed(0).offset),
  quarantined: driver.quarantined().map((q) => String(q.offset)),
}));
`,
    );
    const { stdout } = await sh('node', ['check.mjs'], consumer);
    const r = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(r).toMatchObject({
      handler: 'function',
      a: 12,
      b: 2,
      records0: 2, // the poison record's own change is rolled back with it
      committed0: '13',
      quarantined: ['11'],
    });
    for (const [entry, n] of Object.entries(r.loaded as Record<string, number>)) {
      expect(n, entry).toBeGreaterThan(0);
    }
  });

  it('runs the CLI from node_modules (npx tidemark --help)', async () => {
    const { stdout } = await sh('npx', ['--no-install', 'tidemark', '--help'], consumer);
    expect(stdout).toMatch(/Usage: tidemark/);
    expect(stdout).toMatch(/\bnew\b/);
    expect(stdout).toMatch(/\bsavepoint\b/);
  });

  it("synthesizes a CDK app with tidemark/cdk that deploys the project's own handler file", async () => {
    writeFileSync(
      path.join(consumer, 'handler.mjs'),
      `import { createKafkaHandler, defineProcessor, valueState } from 'tidemark';
export const handler = createKafkaHandler(defineProcessor({
  state: { n: valueState() },
  process(_r, { state }) { state.n.set((state.n.get() ?? 0) + 1); },
}));
`,
    );
    writeFileSync(
      path.join(consumer, 'app.mjs'),
      `import { App, Stack } from 'aws-cdk-lib';
import { TidemarkPipeline } from 'tidemark/cdk';
const app = new App({ outdir: process.env.OUT });
const stack = new Stack(app, 'Consumer');
new TidemarkPipeline(stack, 'Pipeline', {
  pipelineId: 'consumer',
  entry: new URL('./handler.mjs', import.meta.url).pathname,
  source: { kind: 'msk', clusterArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/c/00000000-0000-0000-0000-000000000000-1' },
  topic: 'deposits',
});
app.synth();
`,
    );
    const out = path.join(consumer, 'cdk.out');
    await sh('node', ['app.mjs'], consumer, { OUT: out });
    const template = JSON.parse(readFileSync(path.join(out, 'Consumer.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };
    const fn = Object.values(template.Resources).find((r) => r.Type === 'AWS::Lambda::Function')!;
    expect(fn.Properties).toMatchObject({ Runtime: 'nodejs24.x', Handler: 'index.handler' });
    const asset = readdirSync(out).find(
      (d) => d.startsWith('asset.') && readdirSync(path.join(out, d)).includes('index.mjs'),
    );
    expect(asset).toBeDefined();
    const code = readFileSync(path.join(out, asset!, 'index.mjs'), 'utf8');
    expect(code).toMatch(/createKafkaHandler|tidemark/);
  }, 300_000);

  it('scaffolds a project (tidemark new) whose npm install, npm test, type check and cdk synth pass', async () => {
    expect(created).toMatch(/created pipeline orders/);
    for (const f of [
      'src/processor.ts',
      'src/handler.ts',
      'test/processor.test.ts',
      'cdk/app.ts',
      'README.md',
    ]) {
      expect(readdirSync(path.join(consumer, path.dirname(f)))).toContain(path.basename(f));
    }
    const test = await sh('npm', ['test'], consumer);
    expect(test.stdout).toMatch(/2 passed/);
    await sh('npm', ['run', 'typecheck'], consumer);
    await sh('npx', ['--no-install', 'cdk', 'synth', '--quiet', '--output', 'cdk.synth'], consumer);
    const template = readdirSync(path.join(consumer, 'cdk.synth')).find((f) => f.endsWith('.template.json'));
    expect(template).toBeDefined();
  }, 900_000);
});
