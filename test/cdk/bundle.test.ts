import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { ENV } from '../../lib/config/env.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createAwsStores } from '../../lib/store/stores.ts';
import { onlyResource, pipelineStack, removeOutdirs, testApp } from './synth.ts';

afterAll(removeOutdirs);

/** AWS SDK packages whose code is in the bundle, from esbuild's metafile. */
function sdkPackages(assetDir: string): string[] {
  const meta = JSON.parse(readFileSync(join(assetDir, 'index.meta.json'), 'utf8')) as {
    inputs: Record<string, unknown>;
  };
  const found = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const m = /node_modules\/(@aws-sdk\/[^/]+)\//.exec(input);
    if (m) found.add(m[1]!);
  }
  return [...found].sort();
}

/** Module specifiers the bundle leaves for the runtime to resolve, Node built-ins excepted. */
function externals(code: string): string[] {
  const specifiers = [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\(\s*)["']([^"']+)["']/g)].map(
    (m) => m[1]!,
  );
  return [...new Set(specifiers.filter((m) => !builtinModules.includes(m.replace(/^node:/, ''))))].sort();
}

describe.each([
  ['lite', 'the lightweight AWS client (default)'],
  ['sdk', "awsClient 'sdk'"],
] as const)('the bundled function asset (esbuild, locally, no Docker), %s: %s', (awsClient, _label) => {
  let assetDir = '';
  let handlerName = '';

  beforeAll(() => {
    const app = testApp({ bundling: true, context: { 'aws:cdk:enable-asset-metadata': true } });
    const { template } = pipelineStack(
      { ...(awsClient === 'sdk' ? { awsClient } : {}), bundling: { metafile: true } },
      app,
    );
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0]!;
    assetDir = join(app.outdir, fn.Metadata['aws:asset:path'] as string);
    handlerName = onlyResource(template, 'AWS::Lambda::Function').props.Handler as string;
  }, 120_000);

  it('is one ES module with a source map, carrying the chosen AWS client and nothing of the other', () => {
    expect(handlerName).toBe('index.handler');
    const code = readFileSync(join(assetDir, 'index.mjs'), 'utf8');
    expect(existsSync(join(assetDir, 'index.mjs.map'))).toBe(true);
    if (awsClient === 'lite') {
      // No SDK client in the handler's path: nothing for the runtime to resolve but Node built-ins.
      expect(sdkPackages(assetDir).filter((p) => /client-(dynamodb|s3)$/.test(p))).toEqual([]);
      expect(externals(code)).toEqual([]);
      expect(statSync(join(assetDir, 'index.mjs')).size).toBeLessThan(400_000);
    } else {
      expect(sdkPackages(assetDir)).toEqual(
        expect.arrayContaining(['@aws-sdk/client-dynamodb', '@aws-sdk/client-s3']),
      );
      // The two optional SigV4a signers the SDK requires lazily, inside a try, for multi-region
      // access points only.
      expect(externals(code)).toEqual(['@aws-sdk/signature-v4-crt', '@aws-sdk/signature-v4a']);
    }
  });

  it('loads, exports the handler, and processes an MSK event against DynamoDB and S3', async () => {
    const pipeline = `bundle-${randomUUID().slice(0, 8)}`;
    const previous = process.env[ENV.pipeline];
    process.env[ENV.pipeline] = pipeline;
    try {
      const mod = (await import(pathToFileURL(join(assetDir, 'index.mjs')).href)) as {
        handler: (event: unknown, context: unknown) => Promise<{ applied: number; epochsCommitted: number }>;
      };
      expect(typeof mod.handler).toBe('function');
      const summary = await mod.handler(
        mskEvent([deposit('orders', 0, 0, 'alice', 5), deposit('orders', 0, 1, 'alice', 7)]),
        { ...lambdaContext(), functionName: 'bundled' },
      );
      expect(summary).toMatchObject({ applied: 2, epochsCommitted: 1 });
      const stores = createAwsStores({ bucket: process.env[ENV.bucket]!, table: process.env[ENV.table]! });
      const task = await inspectTask(stores, { pipeline, topic: 'orders', partition: 0 });
      expect(task.state).toEqual({ account: { alice: { balance: 12, count: 2 } } });
    } finally {
      if (previous === undefined) delete process.env[ENV.pipeline];
      else process.env[ENV.pipeline] = previous;
    }
  });
});
