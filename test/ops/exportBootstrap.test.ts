import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { defineProcessor } from '../../lib/checkpoint/processor.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { OperationError } from '../../lib/errors.ts';
import { bootstrapState, parseOffsets } from '../../lib/ops/bootstrap.ts';
import { exportState } from '../../lib/ops/exportState.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createSavepoint } from '../../lib/ops/savepoints.ts';
import { fromTaggedJson, toTaggedJson } from '../../lib/ops/taggedJson.ts';
import { listState, mapState, taskValueState, valueState } from '../../lib/state/descriptors.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { MemorySavepointStore } from '../../lib/store/memory/MemorySavepointStore.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';
import { createAwsStores, createSavepointStore } from '../../lib/store/stores.ts';

describe('tagged JSON', () => {
  it('round-trips every kind of value the snapshot codec keeps', () => {
    const value = {
      big: 2n ** 70n,
      neg: -(2n ** 64n),
      bytes: Buffer.from([0, 255, 7]),
      u8: new Uint8Array([1, 2, 3]),
      when: new Date('2024-02-29T12:00:00.123Z'),
      invalid: new Date(Number.NaN),
      map: new Map<unknown, unknown>([
        ['a', 1],
        [2, new Map([['x', [1n]]])],
      ]),
      nums: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0, 1.5],
      holes: [undefined, null],
      lookalike: { $bigint: '12' },
      lookalike2: { $object: { $map: 1 } },
      two: { $a: 1, $b: 2 },
      proto: JSON.parse('{"__proto__":{"polluted":true}}'),
    };
    const json = JSON.parse(JSON.stringify(toTaggedJson(value)));
    expect(json.big).toEqual({ $bigint: '1180591620717411303424' });
    expect(json.lookalike).toEqual({ $object: { $bigint: '12' } });
    expect(json.two).toEqual({ $a: 1, $b: 2 });
    const back = fromTaggedJson(json) as Record<string, unknown>;
    expect(back).toEqual({ ...value, u8: Buffer.from([1, 2, 3]) });
    expect(Object.is((back.nums as number[])[3], -0)).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(back.proto)).toBe(Object.prototype);
  });

  it('round-trips arbitrary values (property)', () => {
    fc.assert(
      fc.property(
        fc.anything({ withBigInt: true, withDate: true, withMap: true, withNullPrototype: false }),
        (v) => {
          const back = fromTaggedJson(JSON.parse(JSON.stringify(toTaggedJson(v))));
          expect(back).toEqual(v);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses unknown tags, malformed tags and values with no JSON form', () => {
    expect(() => fromTaggedJson({ $set: [] })).toThrow(/unknown tag \$set/);
    expect(() => fromTaggedJson({ $bigint: '1.5' })).toThrow(OperationError);
    expect(() => fromTaggedJson({ $map: [[1]] })).toThrow(OperationError);
    expect(() => toTaggedJson(new Set([1]))).toThrow(/type Set has no JSON form/);
    expect(() => toTaggedJson(() => 1)).toThrow(/type function/);
  });
});

/** A processor that stores every kind of state and value. */
const kitchen = defineProcessor({
  state: {
    totals: valueState<unknown>(),
    tags: mapState<unknown>(),
    log: listState<unknown>(),
    seen: taskValueState<bigint>(),
  },
  process(record, { state }) {
    const v = JSON.parse(record.value!.toString('utf8')) as { n: number; t: number };
    const prev = state.totals.get() as { n: bigint } | undefined;
    state.totals.set({
      n: (prev?.n ?? 0n) + BigInt(v.n) * 2n ** 60n,
      at: new Date(v.t),
      raw: Buffer.from(record.value!),
      nested: new Map<unknown, unknown>([[v.n, { $bigint: 'not a tag' }]]),
    });
    state.tags.put(`m${v.n % 3}`, { n: v.n, big: BigInt(v.n) });
    if (v.n % 5 === 0) state.tags.remove('m0');
    state.log.add(v.n);
    state.seen.set(record.offset);
  },
});

function records(from: number, to: number, partitions = [0, 1]): TestRecord[] {
  return partitions.flatMap((partition) =>
    Array.from({ length: to - from }, (_, i) => ({
      topic: 'events',
      partition,
      offset: from + i,
      key: `k${(from + i) % 4}`,
      value: { n: from + i + partition * 100, t: 1_700_000_000_000 + i },
    })),
  );
}

class Collect extends Writable {
  chunks: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.chunks.push(chunk.toString('utf8'));
    cb();
  }
  get lines(): Array<Record<string, unknown>> {
    return this.chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  get text(): string {
    return this.chunks.join('');
  }
}

async function* linesOf(text: string): AsyncIterable<string> {
  for (const l of text.split('\n')) yield l;
}

describe('export and bootstrap (DynamoDB Local and the S3 server)', () => {
  const s3 = createS3Client();
  const ddb = createDynamoDBClient();
  afterAll(() => {
    s3.destroy();
    ddb.destroy();
  });
  const table = process.env.TIDEMARK_TABLE!;
  const stores = {
    ...createAwsStores({ bucket: process.env.TIDEMARK_BUCKET!, table, s3, dynamodb: ddb }),
    savepoints: createSavepointStore({ table, dynamodb: ddb }),
  };

  async function runPipeline(pipeline: string) {
    const config = loadConfig(process.env, { pipeline, compactDeltaRatio: 100 });
    const engine = new EpochEngine({
      processor: kitchen,
      config,
      snapshots: stores.snapshots,
      commits: stores.commits,
    });
    await engine.processEvent(mskEvent(records(0, 6)));
    await engine.processEvent(mskEvent(records(6, 11)));
    return engine;
  }

  it('export → bootstrap into a new pipeline → identical state, offsets and declarations', async () => {
    const source = `exp-${randomUUID().slice(0, 8)}`;
    const target = `boot-${randomUUID().slice(0, 8)}`;
    await runPipeline(source);
    const out = new Collect();
    const r = await exportState(stores, { pipeline: source }, out);
    expect(r.tasks).toBe(2);
    const lines = out.lines;
    expect(lines[0]).toMatchObject({
      type: 'export',
      format: 'tidemark-state',
      version: 1,
      pipeline: source,
    });
    expect(lines[1]).toMatchObject({
      type: 'task',
      pipeline: source,
      topic: 'events',
      partition: 0,
      epoch: 2,
      committedOffset: '11',
      states: [
        { name: 'log', kind: 'list', scope: 'key', version: 1, entries: 4 },
        { name: 'seen', kind: 'value', scope: 'task', version: 1, entries: 1 },
        { name: 'tags', kind: 'map', scope: 'key', version: 1 },
        { name: 'totals', kind: 'value', scope: 'key', version: 1, entries: 4 },
      ],
    });
    expect(lines).toContainEqual({ type: 'entry', state: 'seen', key: '', value: { $bigint: '10' } });
    expect(r.entries).toBe(lines.filter((l) => l.type === 'entry').length);

    const b = await bootstrapState(stores, () => linesOf(out.text), { prefix: 'tidemark', pipeline: target });
    expect(b.tasks.map((t) => [t.partition, t.committedOffset])).toEqual([
      [0, '11'],
      [1, '11'],
    ]);
    for (const partition of [0, 1]) {
      const a = await inspectTask(stores, { pipeline: source, topic: 'events', partition });
      const c = await inspectTask(stores, { pipeline: target, topic: 'events', partition });
      expect(c).toMatchObject({ epoch: 1, committedOffset: a.committedOffset, quarantined: a.quarantined });
      expect(c.state).toEqual(a.state);
    }
    // Byte-level identity of the state: exporting the new pipeline gives the same lines.
    const again = new Collect();
    await exportState(stores, { pipeline: target }, again);
    const strip = (ls: Array<Record<string, unknown>>) =>
      ls.slice(1).map((l) => (l.type === 'task' ? { ...l, pipeline: '', epoch: 0, updatedAt: '' } : l));
    expect(strip(again.lines)).toEqual(strip(lines));
    // And the bootstrapped pipeline processes on from there like the source.
    const config = loadConfig(process.env, { pipeline: target });
    const engine = new EpochEngine({
      processor: kitchen,
      config,
      snapshots: stores.snapshots,
      commits: stores.commits,
    });
    await engine.processEvent(mskEvent(records(11, 14)));
    const sourceEngine = await runPipeline(`${source}b`);
    await sourceEngine.processEvent(mskEvent(records(11, 14)));
    const x = await inspectTask(stores, { pipeline: target, topic: 'events', partition: 1 });
    const y = await inspectTask(stores, { pipeline: `${source}b`, topic: 'events', partition: 1 });
    expect(x.state).toEqual(y.state);
  });

  it('refuses to overwrite existing tasks (writing nothing), and needs an offset for every task', async () => {
    const source = `exp-${randomUUID().slice(0, 8)}`;
    await runPipeline(source);
    const out = new Collect();
    await exportState(stores, { pipeline: source, topic: 'events', partition: 1 }, out);
    expect(out.lines.filter((l) => l.type === 'task')).toHaveLength(1);
    await expect(bootstrapState(stores, () => linesOf(out.text), { prefix: 'tidemark' })).rejects.toThrow(
      /already has checkpoints for events-1 \(epoch 2, offset 11\).*nothing was written/,
    );
    const target = `boot-${randomUUID().slice(0, 8)}`;
    const noOffset = out.text.replace('"committedOffset":"11"', '"committedOffset":null');
    await expect(
      bootstrapState(stores, () => linesOf(noOffset), { prefix: 'tidemark', pipeline: target }),
    ).rejects.toThrow(/no committed offset for events-1.*--offsets/);
    // --offsets gives it, and seeds a task the file does not hold with an empty state.
    const r = await bootstrapState(stores, () => linesOf(noOffset), {
      prefix: 'tidemark',
      pipeline: target,
      offsets: parseOffsets('events:1=42, events:3=7'),
    });
    expect(r.tasks.map((t) => [t.partition, t.committedOffset])).toEqual([
      [1, '42'],
      [3, '7'],
    ]);
    expect(await inspectTask(stores, { pipeline: target, topic: 'events', partition: 3 })).toMatchObject({
      epoch: 1,
      committedOffset: '7',
      state: {},
    });
    const t1 = await inspectTask(stores, { pipeline: target, topic: 'events', partition: 1 });
    expect(t1.committedOffset).toBe('42');
    expect(t1.state).toEqual(
      (await inspectTask(stores, { pipeline: source, topic: 'events', partition: 1 })).state,
    );
  });
});

describe('bootstrap input checks (memory stores)', () => {
  const stores = { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() };
  const task = (extra = '') =>
    `{"type":"task","topic":"t","partition":0,"committedOffset":"5","states":[{"name":"v","kind":"value","scope":"key","version":1},{"name":"m","kind":"map","scope":"key","version":2}]${extra}}`;
  const run = (text: string, pipeline = 'p') =>
    bootstrapState(stores, () => linesOf(text), { prefix: 'tidemark', pipeline });

  it('names the line of each problem and writes nothing', async () => {
    await expect(run('{"type":"entry","state":"v","key":"a","value":1}')).rejects.toThrow(
      /line 1: an entry before any task line/,
    );
    await expect(run(`${task()}\n{"type":"entry","state":"x","key":"a","value":1}`)).rejects.toThrow(
      /line 2: state x is not declared/,
    );
    await expect(run(`${task()}\n{"type":"entry","state":"m","key":"a","value":[1]}`)).rejects.toThrow(
      /line 2: a map-state value is an object/,
    );
    await expect(
      run(
        `${task()}\n{"type":"entry","state":"v","key":"a","value":1}\n{"type":"entry","state":"v","key":"a","value":2}`,
      ),
    ).rejects.toThrow(/line 3: key "a" of state v appears twice/);
    await expect(run(`${task()}\nnot json`)).rejects.toThrow(/line 2: not valid JSON/);
    await expect(
      run(`${task()}\n{"type":"entry","state":"v","key":"a","value":{"$nope":1}}`),
    ).rejects.toThrow(/line 2: unknown tag \$nope/);
    await expect(run(`${task()}\n${task()}`)).rejects.toThrow(/line 2: task t-0 appears twice/);
    await expect(run('{"type":"export","format":"other","version":1}')).rejects.toThrow(/format "other"/);
    await expect(run(task(), '')).rejects.toThrow(/pass --pipeline/);
    expect(stores.commits.items.size).toBe(0);
    expect(stores.snapshots.objects.size).toBe(0);
    expect(() => parseOffsets('t:0=1,bad')).toThrow(/"bad" is not topic:partition=offset/);
    expect(() => parseOffsets('t:0=9223372036854775808')).toThrow(/beyond int64/);
  });

  it('exports a savepoint instead of the current checkpoints', async () => {
    const s = { ...stores, savepoints: new MemorySavepointStore() };
    const config = loadConfig({}, { bucket: 'b', table: 't', pipeline: 'sp-export' });
    const engine = new EpochEngine({ processor: kitchen, config, ...stores });
    await engine.processEvent(mskEvent(records(0, 3, [0])));
    await createSavepoint(s, { prefix: 'tidemark', pipeline: 'sp-export', name: 'one' });
    await engine.processEvent(mskEvent(records(3, 6, [0])));
    const fromSp = new Collect();
    await exportState(s, { pipeline: 'sp-export', savepoint: 'one' }, fromSp);
    expect(fromSp.lines[0]).toMatchObject({ source: 'savepoint:one' });
    expect(fromSp.lines[1]).toMatchObject({ committedOffset: '3', epoch: 1 });
    const current = new Collect();
    await exportState(s, { pipeline: 'sp-export' }, current);
    expect(current.lines[1]).toMatchObject({ committedOffset: '6', epoch: 2 });
    await expect(exportState(s, { pipeline: 'sp-export', savepoint: 'two' }, new Collect())).rejects.toThrow(
      /no savepoint two/,
    );
  });
});
