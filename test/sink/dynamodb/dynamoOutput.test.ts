/**
 * The DynamoDB output's encoding (what fails a record at emit time), the merge of an epoch's writes
 * into one per item (checked against applying them in order), and the split into delivery
 * transactions. No server: DynamoDB Local checks the same writes in the sink's tests.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { NumberValueImpl as NumberValue } from '@aws-sdk/util-dynamodb';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import { ConfigurationError } from '../../../lib/errors.ts';
import type { EmitContext } from '../../../lib/output/types.ts';
import { LIMITS } from '../../../lib/sink/dynamodb/constants.ts';
import { type DynamoEntry, type DynamoWrite, dynamoOutput } from '../../../lib/sink/dynamodb/index.ts';
import type { AttributeMap } from '../../../lib/sink/dynamodb/itemSize.ts';
import {
  chunkTables,
  chunkWrites,
  type ItemWrite,
  itemAction,
  mergeWrites,
  type TableEntry,
} from '../../../lib/sink/dynamodb/transactions.ts';

const ctx: EmitContext = { pipeline: 'p', topic: 'orders', partition: 3, offset: 7n, key: 'k' };
const task: TaskId = { pipeline: 'p', topic: 'orders', partition: 3 };

const writes = dynamoOutput<DynamoWrite>({ table: 'out-table', partitionKey: 'pk', write: (w) => w });
const encode = (w: DynamoWrite): DynamoEntry => writes.encode(w, ctx);
const failure = (f: () => unknown): Error => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not throw');
};

describe('dynamoOutput: encoding at emit time', () => {
  it('marshals puts, updates and deletes', () => {
    expect(
      encode({ put: { pk: 'a', n: 5, big: 2n ** 70n, tags: new Set(['x', 'y']), m: { b: true } } }),
    ).toEqual({
      op: 'put',
      item: {
        pk: { S: 'a' },
        n: { N: '5' },
        big: { N: '1180591620717411303424' },
        tags: { SS: ['x', 'y'] },
        m: { M: { b: { BOOL: true } } },
      },
    });
    expect(encode({ update: { pk: 'a' }, set: { n: 1, skip: undefined }, remove: ['old'] })).toEqual({
      op: 'update',
      key: { pk: { S: 'a' } },
      set: { n: { N: '1' } },
      remove: ['old'],
    });
    expect(encode({ delete: { pk: 'a' } })).toEqual({ op: 'delete', key: { pk: { S: 'a' } } });
    // The shorthand: `item` puts.
    const totals = dynamoOutput<{ id: string }>({
      table: 'tot',
      partitionKey: 'id',
      item: (v) => ({ id: v.id }),
    });
    expect(totals.encode({ id: 'x' }, ctx)).toEqual({ op: 'put', item: { id: { S: 'x' } } });
    expect(totals.decode?.(totals.encode({ id: 'x' }, ctx))).toEqual({ put: { id: 'x' } });
  });

  it.each<[string, DynamoWrite | unknown, RegExp]>([
    ['no operation', {}, /exactly one of put, update, delete/],
    ['two operations', { put: { pk: 'a' }, delete: { pk: 'a' } }, /exactly one/],
    ['a missing key attribute', { put: { id: 'a' } }, /key attribute 'pk' is missing/],
    ['a key of the wrong type', { put: { pk: 5 } }, /must be of type S, got N/],
    ['an empty string key', { put: { pk: '' } }, /key attribute 'pk' is empty/],
    ['a key over 2048 bytes', { put: { pk: 'é'.repeat(1025) } }, /exceeds 2048 bytes/],
    ['a fence item key', { put: { pk: 'tidemark#fence#p#orders#3' } }, /fence items/],
    ['a reserved attribute', { put: { pk: 'a', tidemarkEpoch: 1 } }, /reserved prefix/],
    [
      'an item over 400 KB',
      { put: { pk: 'a', v: 'x'.repeat(LIMITS.itemBytes) } },
      /over DynamoDB's 409600-byte/,
    ],
    ['NaN', { put: { pk: 'a', v: Number.NaN } }, /NaN/],
    ['an unsafe integer', { put: { pk: 'a', v: 2 ** 60 } }, /MAX_SAFE_INTEGER/],
    ['a bigint over 38 digits', { put: { pk: 'a', v: 10n ** 38n + 1n } }, /38 significant digits/],
    ['a number too small', { put: { pk: 'a', v: 1e-200 } }, /outside DynamoDB's range/],
    ['a number set with duplicates', { put: { pk: 'a', v: new Set([1, 1n]) } }, /duplicates/],
    ['an empty set', { put: { pk: 'a', v: new Set() } }, /non-empty set/],
    ['a class instance', { put: { pk: 'a', at: new Date(0) } }, /Unsupported type|convertClassInstanceToMap/],
    ['an empty attribute name', { put: { pk: 'a', m: { '': 1 } } }, /attribute name is empty/],
    ['lists nested 32 deep', { put: { pk: 'a', v: nest(32) } }, /nested deeper than 32/],
    [
      'an update of a key attribute',
      { update: { pk: 'a' }, set: { pk: 'b' } },
      /key attribute 'pk' cannot be set/,
    ],
    [
      'set and remove of one attribute',
      { update: { pk: 'a' }, set: { n: 1 }, remove: ['n'] },
      /both set and removed/,
    ],
    ['a key with more than the key', { delete: { pk: 'a', n: 1 } }, /only key attributes, not n/],
    [
      'an update over 400 KB',
      { update: { pk: 'a' }, set: { v: 'x'.repeat(LIMITS.itemBytes) } },
      /over DynamoDB/,
    ],
    ['not an object', { put: 'pk=a' }, /must be an object of attributes, got string/],
  ])('fails the record for %s', (_what, w, message) => {
    expect(failure(() => encode(w as DynamoWrite)).message).toMatch(message);
  });

  it('accepts what DynamoDB accepts at the edges', () => {
    expect(() => encode({ put: { pk: 'a', v: nest(31) } })).not.toThrow();
    expect(() =>
      encode({ put: { pk: 'a', v: 10n ** 37n, w: 1e-130, z: NumberValue.from('9.99e125') } }),
    ).not.toThrow();
    // The largest item that fits with the sink's attributes.
    const room = LIMITS.itemBytes - 2 - 1 - 1 - (16 + 13 + 17 + 13 + 11 + 1 + 6 + 3 * 21);
    expect(() => encode({ put: { pk: 'a', v: 'x'.repeat(room) } })).not.toThrow();
    expect(() => encode({ put: { pk: 'a', v: 'x'.repeat(room + 1) } })).toThrow(/item limit/);
  });

  it('checks key types and names of number and binary keys', () => {
    const bin = dynamoOutput<DynamoWrite>({
      table: 'bin-table',
      partitionKey: { name: 'id', type: 'B' },
      sortKey: { name: 'at', type: 'N' },
      write: (w) => w,
    });
    expect(bin.encode({ put: { id: new Uint8Array([1]), at: 5 } }, ctx)).toMatchObject({ op: 'put' });
    expect(failure(() => bin.encode({ put: { id: 'a', at: 5 } }, ctx)).message).toMatch(/type B, got S/);
    expect(failure(() => bin.encode({ put: { id: new Uint8Array([1]) } }, ctx)).message).toMatch(
      /'at' is missing/,
    );
  });

  it('refuses bad options when the output is declared', () => {
    const base = { table: 'out-table', partitionKey: 'pk', item: () => ({}) };
    for (const bad of [
      { ...base, partitionKey: '' },
      { ...base, partitionKey: 'tidemarkKey' },
      { ...base, sortKey: 'pk' },
      { ...base, table: 'x' },
      { ...base, table: { env: 'not a variable' } },
      { ...base, write: () => ({ delete: {} }) },
      { table: 'out-table', partitionKey: 'pk' },
      { ...base, partitionKey: { name: 'id', type: 'N' as const } },
    ]) {
      expect(() => dynamoOutput(bad as never), JSON.stringify(bad)).toThrow(ConfigurationError);
    }
    // A number partition key works with a fence key of its own.
    expect(() =>
      dynamoOutput({
        ...base,
        partitionKey: { name: 'id', type: 'N' },
        fenceKey: (t) => ({ id: -1 - t.partition }),
      }),
    ).not.toThrow();
  });
});

function nest(levels: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

// -------------------------------------------------------------------------------------------------
// Merging, against an independent model: the table after applying each write in order.

type Table = Map<string, AttributeMap>;

const keyName = (m: AttributeMap): string => (m.pk as { S: string }).S;

function applyInOrder(table: Table, entries: readonly DynamoEntry[]): void {
  for (const e of entries) {
    if (e.op === 'put') table.set(keyName(e.item), { ...e.item });
    else if (e.op === 'delete') table.delete(keyName(e.key));
    else {
      const item = { ...(table.get(keyName(e.key)) ?? e.key) };
      for (const r of e.remove) delete item[r];
      Object.assign(item, e.set);
      table.set(keyName(e.key), item);
    }
  }
}

function applyMerged(table: Table, merged: readonly ItemWrite[]): void {
  for (const w of merged) {
    const id = keyName(w.key);
    if (w.op === 'put') table.set(id, { ...w.item });
    else if (w.op === 'delete') table.delete(id);
    else {
      const item = { ...(table.get(id) ?? w.key) };
      for (const r of w.remove) delete item[r];
      Object.assign(item, w.set);
      table.set(id, item);
    }
  }
}

const attrName = fc.constantFrom('a', 'b', 'c');
const value = fc.integer({ min: 0, max: 9 }).map((n): AttributeValue => ({ N: String(n) }));
const attrs = fc.dictionary(attrName, value, { maxKeys: 3 });
const pk = fc.constantFrom('k1', 'k2', 'k3');
const entry: fc.Arbitrary<DynamoEntry> = fc.oneof(
  fc
    .record({ k: pk, a: attrs })
    .map(({ k, a }): DynamoEntry => ({ op: 'put', item: { ...a, pk: { S: k } } })),
  fc.record({ k: pk, set: attrs, remove: fc.uniqueArray(attrName, { maxLength: 2 }) }).map(
    ({ k, set, remove }): DynamoEntry => ({
      op: 'update',
      key: { pk: { S: k } },
      set,
      remove: remove.filter((r) => !(r in set)),
    }),
  ),
  pk.map((k): DynamoEntry => ({ op: 'delete', key: { pk: { S: k } } })),
);
const schema = { partition: { name: 'pk', type: 'S' as const }, sort: undefined };

describe('mergeWrites', () => {
  it('leaves what applying the writes in order leaves, with one write per item', () => {
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 20 }),
        fc.dictionary(pk, attrs, { maxKeys: 3 }),
        (entries, initial) => {
          const start = (): Table =>
            new Map(Object.entries(initial).map(([k, a]) => [k, { ...a, pk: { S: k } } as AttributeMap]));
          const expected = start();
          applyInOrder(expected, entries);
          const tableEntries: TableEntry[] = entries.map((e, seq) => ({
            table: 't',
            key: schema,
            seq,
            entry: e,
          }));
          const merged = mergeWrites(task, tableEntries);
          const actual = start();
          applyMerged(actual, merged);
          expect(actual).toEqual(expected);
          expect(new Set(merged.map((w) => w.id)).size).toBe(merged.length);
          // Each merged write carries the sequence number of the item's last write, in that order.
          const lastSeq = new Map(entries.map((e, seq) => [keyName(e.op === 'put' ? e.item : e.key), seq]));
          expect(merged.map((w) => w.seq)).toEqual([...lastSeq.values()].sort((a, b) => a - b));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('tells apart keys DynamoDB tells apart, and only those', () => {
    const entries: TableEntry[] = [
      { op: 'put', item: { pk: { S: '1' } } },
      { op: 'put', item: { pk: { N: '1' } } },
      { op: 'put', item: { pk: { N: '1.0' } } },
      { op: 'put', item: { pk: { B: new Uint8Array([49]) } } },
      { op: 'put', item: { pk: { B: Buffer.from([49]) } } },
    ].map((e, seq) => ({ table: 't', key: schema, seq, entry: e as DynamoEntry }));
    expect(mergeWrites(task, entries).map((w) => w.seq)).toEqual([0, 2, 4]);
    const twoTables = entries.slice(0, 1).flatMap((e) => [e, { ...e, table: 'u', seq: 9 }]);
    expect(mergeWrites(task, twoTables)).toHaveLength(2);
  });
});

describe('chunkWrites', () => {
  const put = (table: string, i: number, bytes = 10): ItemWrite => ({
    table,
    id: `${table}\u0000${i}`,
    key: { pk: { S: String(i) } },
    seq: i,
    bytes,
    op: 'put',
    item: { pk: { S: String(i) } },
  });

  it('fills transactions up to 100 actions, one fence per table included', () => {
    const one = chunkWrites(Array.from({ length: 250 }, (_, i) => put('t', i)));
    expect(one.map((c) => c.length)).toEqual([99, 99, 52]);
    const two = chunkWrites(Array.from({ length: 200 }, (_, i) => put(i % 2 ? 't' : 'u', i)));
    expect(two.map((c) => c.length + chunkTables(c).length)).toEqual([100, 100, 6]);
    expect(two.flat().map((w) => w.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('keeps each transaction under 4 MB', () => {
    const big = chunkWrites(Array.from({ length: 30 }, (_, i) => put('t', i, 400_000)));
    for (const c of big)
      expect(c.reduce((n, w) => n + w.bytes, 0)).toBeLessThanOrEqual(LIMITS.transactionBytes);
    expect(big.map((c) => c.length)).toEqual([9, 9, 9, 3]);
  });

  it('conditions every write on the item holding no newer write of the task', () => {
    const action = itemAction(put('t', 1), task, 12);
    expect(action.Put?.Item).toMatchObject({
      tidemarkPipeline: { S: 'p' },
      tidemarkTopic: { S: 'orders' },
      tidemarkPartition: { N: '3' },
      tidemarkEpoch: { N: '12' },
      tidemarkSeq: { N: '1' },
    });
    expect(action.Put?.ConditionExpression).toContain('#tEpoch < :tEpoch');
  });
});
