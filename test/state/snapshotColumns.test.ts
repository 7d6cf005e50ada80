/**
 * Snapshot format 2: value tables written as typed columns (numbers, or objects of one shape with
 * number fields), made row by row on access; and format 1 snapshots (every value MessagePack, what
 * earlier versions wrote) still read, alone or as the base of a chain whose deltas are newer.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildCheckpoint } from '../../lib/checkpoint/restore.ts';
import type { SnapshotRef } from '../../lib/checkpoint/stores.ts';
import { SnapshotCorruptError } from '../../lib/errors.ts';
import { ColumnarTable } from '../../lib/state/columnarTable.ts';
import {
  decodeSnapshot,
  encodeSnapshot,
  type SnapshotMeta,
  type SnapshotSection,
  snapshotChecksum,
} from '../../lib/state/snapshotCodec.ts';
import { corrupt, resealed } from '../helpers/snapshots.ts';

const meta: SnapshotMeta = {
  pipeline: 'p',
  topic: 'orders',
  partition: 3,
  epoch: 7,
  committedOffset: 9223372036854775000n,
  kind: 'full',
  baseEpoch: null,
  parentEpoch: null,
  attempt: 'a1b2c3',
  createdAt: '2026-01-01T00:00:00.000Z',
};

const ROWS = 1024; // the fewest rows written as typed columns

function valueTable(name: string, entries: Map<string, unknown>): SnapshotSection {
  return { name, kind: 'value', scope: 'key', version: 1, entries };
}

function rows(n: number, value: (i: number) => unknown): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i < n; i++) m.set(`k${i}`, value(i));
  return m;
}

/** The snapshot with its header changed by `edit` (header length and checksum made right again). */
function withHeader(bytes: Buffer, edit: (h: Record<string, unknown>) => void): Buffer {
  const headerLen = bytes.readUInt32LE(8);
  const header = JSON.parse(bytes.subarray(12, 12 + headerLen).toString('utf8')) as Record<string, unknown>;
  edit(header);
  const blob = Buffer.from(JSON.stringify(header), 'utf8');
  const fixed = Buffer.alloc(12);
  bytes.copy(fixed, 0, 0, 8);
  fixed.writeUInt32LE(blob.length, 8);
  const out = Buffer.concat([fixed, blob, bytes.subarray(12 + headerLen, bytes.length - 4), Buffer.alloc(4)]);
  return resealed(out);
}

/** What earlier versions wrote (format 1): the state the fixture was written from. */
function fixtureState(): SnapshotSection[] {
  const account = rows(0, () => 0);
  for (let i = 0; i < 2000; i++)
    account.set(`acct-${i}`, { balance: ((i * 7919) % 100_000) - 500, count: 1 + (i % 97) });
  account.set('odd', { balance: 1.5, count: 0 });
  const deadlines = new Map<string, unknown>();
  for (let i = 0; i < 1500; i++) deadlines.set(`acct-${i}`, 1_700_000_000_000 + i * 1000);
  return [
    { name: 'account', kind: 'value', scope: 'key', version: 2, entries: account },
    { name: 'tidemark:ttl:account', kind: 'value', scope: 'key', version: 1, entries: deadlines },
    {
      name: 'seen',
      kind: 'map',
      scope: 'key',
      version: 1,
      entries: new Map([
        [
          'k',
          new Map<string, unknown>([
            ['m1', 1],
            ['m2', { a: 1 }],
          ]),
        ],
      ]),
    },
    { name: 'events', kind: 'list', scope: 'key', version: 1, entries: new Map([['k', ['a', 'b']]]) },
  ];
}

const fixture = readFileSync(new URL('./fixtures/snapshot-v1.tdmk', import.meta.url));

/** An uncompressed snapshot of one typed table: an int32 and a float64 column. */
function twoColumns(): Buffer {
  return encodeSnapshot(
    meta,
    [
      valueTable(
        's',
        rows(ROWS, (i) => ({ a: i, b: i / 2 })),
      ),
    ],
    'none',
  );
}

describe('snapshot format 2: typed value columns', () => {
  const shapes: Array<[string, (i: number) => unknown, Array<'i32' | 'f64'>, string[] | null]> = [
    [
      'objects of int32 fields',
      (i) => ({ balance: i * 3 - 900, count: i % 7 }),
      ['i32', 'i32'],
      ['balance', 'count'],
    ],
    ['objects with a float field', (i) => ({ total: i / 8, n: i }), ['f64', 'i32'], ['total', 'n']],
    [
      'large and special numbers',
      (i) => ({
        t: 1.7e12 + i,
        x: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53][i % 4],
      }),
      ['f64', 'f64'],
      ['t', 'x'],
    ],
    ['numbers', (i) => 1_700_000_000_000 + i, ['f64'], null],
    ['int32 numbers', (i) => 5 - i, ['i32'], null],
    ['integer-like field names', (i) => ({ 2: i, 1: i + 1, b: 0.5 }), ['i32', 'i32', 'f64'], ['1', '2', 'b']],
  ];
  for (const [what, value, types, fields] of shapes) {
    it(`writes ${what} as columns and reads them back equal and frozen, columnar or not`, () => {
      const entries = rows(ROWS + 7, value);
      for (const compression of ['zstd', 'none'] as const) {
        const bytes = encodeSnapshot(meta, [valueTable('s', entries)], compression);
        expect(bytes.readUInt16LE(4)).toBe(2);
        for (const columnar of [false, true]) {
          const decoded = decodeSnapshot(bytes, 'k', { columnar });
          expect(decoded.header.tables[0]!.layout).toEqual({ fields, types });
          const back = decoded.sections[0]!.entries;
          expect(back instanceof ColumnarTable).toBe(columnar);
          expect(new Map(back)).toEqual(entries);
          expect([...back.keys()]).toEqual([...entries.keys()]);
          for (const [k, v] of back) {
            if (typeof v === 'object') {
              expect(Object.isFrozen(v)).toBe(true);
              expect(Object.keys(v as object)).toEqual(Object.keys(entries.get(k) as object));
              expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
            }
          }
        }
      }
    });
  }

  it('reads objects across chunks of 4,096 rows: a field that stops being int32 in a later chunk is float64', () => {
    const entries = rows(10_007, (i) => ({ a: i === 9_000 ? 0.5 : i, b: 5 - i }));
    const bytes = encodeSnapshot(meta, [valueTable('s', entries)]);
    const decoded = decodeSnapshot(bytes, 'k', { columnar: true });
    expect(decoded.header.tables[0]!.layout).toEqual({ fields: ['a', 'b'], types: ['f64', 'i32'] });
    expect(new Map(decoded.sections[0]!.entries)).toEqual(entries);
  });

  it('writes the same table again after its keys or values changed, and earlier snapshots stay intact', () => {
    // The encoder reuses a table's key columns while its keys are the same: that may neither leak
    // into what a later encoding writes nor change what an earlier one returned.
    const table = rows(ROWS + 3, (i) => ({ balance: i, count: 1 }));
    const states: Array<Map<string, unknown>> = [];
    const written: Buffer[] = [];
    const encode = (compression: 'zstd' | 'none') => {
      states.push(new Map(table));
      written.push(encodeSnapshot(meta, [valueTable('account', table)], compression));
    };
    for (const compression of ['zstd', 'none'] as const) {
      encode(compression);
      table.set('k5', { balance: -1, count: 2 }); // a value changes: the keys are the same
      encode(compression);
      table.delete('k7'); // a key goes
      encode(compression);
      table.set('k7', { balance: 7, count: 7 }); // and comes back, last
      encode(compression);
      table.delete('k8'); // same count, a key of another length in another place
      table.set('k80000', { balance: 8, count: 8 });
      encode(compression);
      const swapped = [...table].reverse(); // same keys, another order
      table.clear();
      for (const [k, v] of swapped) table.set(k, v);
      encode(compression);
      table.set('k1', 0.5); // another shape: MessagePack, and a body of another size
      encode(compression);
      table.set('k1', { balance: 1, count: 1 });
    }
    written.forEach((bytes, i) => {
      const back = decodeSnapshot(bytes, 'k').sections[0]!.entries;
      expect(new Map(back)).toEqual(states[i]);
      expect([...back.keys()]).toEqual([...states[i]!.keys()]);
    });
  });

  it('restores typed tables among others, at any offset of the body, leaving the others intact', () => {
    // The index of a typed table is built in its own dead bytes of the decompressed body: the tables
    // around it (binary values are views of the body) must come back unchanged.
    const bin = (n: number) => rows(n, (i) => ({ b: Buffer.from([i & 255, 7]) }));
    const sections: SnapshotSection[] = [
      valueTable('bin', bin(3)),
      valueTable('odd', new Map([['x', 'y']])),
      valueTable(
        'a',
        rows(ROWS + 3, (i) => ({ v: i, w: i * 0.5 })),
      ),
      valueTable('bin2', bin(2000)),
      valueTable(
        'n',
        rows(ROWS * 2, (i) => i * 3),
      ),
      // Short keys and int32 values: too few bytes of its own for the index, which is then allocated.
      valueTable('short', new Map(Array.from({ length: ROWS }, (_, i) => [i.toString(36), i]))),
      valueTable('bin3', bin(2000)),
      {
        ...valueTable(
          'l',
          rows(5, (i) => [Buffer.from([i])]),
        ),
        kind: 'list',
      },
    ];
    const bytes = encodeSnapshot(meta, sections, 'zstd');
    const decoded = decodeSnapshot(bytes, 'k', { columnar: true });
    expect(decoded.header.tables.map((t) => t.layout !== undefined)).toEqual([
      false,
      false,
      true,
      false,
      true,
      true,
      false,
      false,
    ]);
    for (let i = 0; i < sections.length; i++) {
      expect(new Map(decoded.sections[i]!.entries), sections[i]!.name).toEqual(sections[i]!.entries);
      for (const [k] of sections[i]!.entries as Map<string, unknown>)
        expect(decoded.sections[i]!.entries.has(k)).toBe(true);
    }
  });

  it('stores -0 as 0, as MessagePack does', () => {
    const entries = rows(ROWS, (i) => ({ a: i === 5 ? -0 : i, b: i === 5 ? -0 : i + 0.5 }));
    const back = decodeSnapshot(encodeSnapshot(meta, [valueTable('s', entries)])).sections[0]!.entries;
    expect(Object.is((back.get('k5') as { a: number }).a, 0)).toBe(true);
    expect(Object.is((back.get('k5') as { b: number }).b, 0)).toBe(true);
  });

  it('keeps MessagePack (and format 1) for values of other shapes, other types, or small tables', () => {
    const others: Array<[string, Map<string, unknown>]> = [
      ['a field missing', rows(ROWS, (i) => (i === 700 ? { a: 1 } : { a: 1, b: 2 }))],
      ['a field more', rows(ROWS, (i) => (i === 700 ? { a: 1, b: 2, c: 3 } : { a: 1, b: 2 }))],
      ['fields in another order', rows(ROWS, (i) => (i === 700 ? { b: 2, a: 1 } : { a: 1, b: 2 }))],
      ['a string field', rows(ROWS, (i) => ({ a: 1, b: i === 3 ? 'x' : 2 }))],
      ['a bigint field', rows(ROWS, (i) => ({ a: 1, b: i === 3 ? 2n : 2 }))],
      ['a null field', rows(ROWS, (i) => ({ a: 1, b: i === ROWS - 1 ? null : 2 }))],
      ['a nested object', rows(ROWS, () => ({ a: { b: 1 } }))],
      ['no fields', rows(ROWS, () => ({}))],
      ['arrays', rows(ROWS, (i) => [i])],
      ['dates', rows(ROWS, (i) => new Date(i))],
      ['a string among numbers', rows(ROWS, (i) => (i === 9 ? '9' : i))],
      ['an own __proto__ field', rows(ROWS, () => JSON.parse('{"__proto__": 1, "a": 2}'))],
      ['fewer rows', rows(ROWS - 1, (i) => ({ a: i }))],
      // Objects are read in chunks of 4,096 rows: a misfit in a later chunk, or in its last row.
      [
        'a field more in a later chunk',
        rows(10_000, (i) => (i === 9_000 ? { a: 1, b: 2, c: 3 } : { a: 1, b: 2 })),
      ],
      ["a string field in a chunk's last row", rows(8_192, (i) => ({ a: 1, b: i === 8_191 ? 'x' : 2 }))],
      ['a number among objects in a later chunk', rows(5_000, (i) => (i === 4_096 ? 7 : { a: i }))],
    ];
    for (const [what, entries] of others) {
      const bytes = encodeSnapshot(meta, [valueTable('s', entries)]);
      expect(bytes.readUInt16LE(4), what).toBe(1);
      const decoded = decodeSnapshot(bytes);
      expect(decoded.header.tables[0]!.layout, what).toBeUndefined();
      expect(decoded.sections[0]!.entries, what).toEqual(entries);
    }
    // Map and list tables keep MessagePack whatever their values.
    const lists: SnapshotSection = {
      ...valueTable(
        'l',
        rows(ROWS, (i) => [i]),
      ),
      kind: 'list',
    };
    expect(encodeSnapshot(meta, [lists]).readUInt16LE(4)).toBe(1);
  });

  it('round-trips tables of numbers and records whatever the numbers (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, 2 ** 31 - 1, -(2 ** 31), 2 ** 31)), {
          minLength: ROWS,
          maxLength: ROWS + 40,
        }),
        fc.boolean(),
        (numbers, asRecords) => {
          const entries = new Map<string, unknown>(
            numbers.map((x, i) => [`k${i}`, asRecords ? { x, i } : x]),
          );
          const bytes = encodeSnapshot(meta, [valueTable('s', entries)], 'none');
          const back = decodeSnapshot(bytes, 'k', { columnar: true }).sections[0]!.entries;
          // -0 comes back as 0 (as MessagePack and JSON do).
          const expected = new Map(
            [...entries].map(([k, v]) => [
              k,
              asRecords ? { ...(v as object), x: (v as { x: number }).x + 0 } : (v as number) + 0,
            ]),
          );
          expect(new Map(back)).toEqual(expected);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('refuses a layout that does not match the body, is malformed, or is in a format 1 snapshot', () => {
    const bytes = twoColumns();
    type T = { layout: { fields: unknown; types: unknown }; kind: string };
    const edits: Array<[string, (t: T, h: Record<string, unknown>) => void, RegExp]> = [
      ['a type changed', (t) => (t.layout.types = ['i32', 'i32']), /match their layout/],
      ['a field dropped', (t) => (t.layout = { fields: ['a'], types: ['i32'] }), /match their layout/],
      ['fields and types of other lengths', (t) => (t.layout.fields = ['a']), /layout/],
      ['an unknown type', (t) => (t.layout.types = ['i32', 'u8']), /layout/],
      ['a field twice', (t) => (t.layout.fields = ['a', 'a']), /layout/],
      ['a __proto__ field', (t) => (t.layout.fields = ['__proto__', 'b']), /layout/],
      ['a field not a string', (t) => (t.layout.fields = ['a', 1]), /layout/],
      ['numbers with two types', (t) => (t.layout.fields = null), /layout/],
      ['not an object', (t) => ((t as { layout: unknown }).layout = 'i32'), /layout/],
      ['a list table', (t) => (t.kind = 'list'), /layout/],
    ];
    for (const [what, edit, message] of edits) {
      const bad = withHeader(bytes, (h) => edit((h.tables as T[])[0]!, h));
      expect(corrupt(() => decodeSnapshot(bad)).message, what).toMatch(message);
    }
    const v1 = Buffer.from(bytes);
    v1.writeUInt16LE(1, 4);
    expect(corrupt(() => decodeSnapshot(resealed(v1))).message).toMatch(/layout/);
  });

  it('refuses tampered column snapshots whose checksum was recomputed with a typed error, or decodes them', () => {
    const bytes = twoColumns();
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }), (edits) => {
        const b = Buffer.from(bytes);
        for (const [at, v] of edits) b[at % (b.length - 4)] = v;
        try {
          const t = decodeSnapshot(resealed(b), 'k', { columnar: true }).sections[0]?.entries;
          if (t) for (const _ of t);
        } catch (e) {
          if (!(e instanceof SnapshotCorruptError)) throw e;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('snapshot format 1 (written by earlier versions)', () => {
  it('reads the fixture written by the previous encoder, columnar or not', () => {
    expect(fixture.readUInt16LE(4)).toBe(1);
    for (const columnar of [false, true]) {
      const decoded = decodeSnapshot(fixture, 'fixture', { columnar });
      expect(decoded.header).toMatchObject({ ...meta, entryCount: 2001 + 1500 + 2 });
      expect(decoded.header.tables.every((t) => t.layout === undefined)).toBe(true);
      const expected = fixtureState();
      expect(decoded.sections.map((s) => [s.name, s.kind, s.version])).toEqual(
        expected.map((s) => [s.name, s.kind, s.version]),
      );
      for (let i = 0; i < expected.length; i++) {
        expect(new Map(decoded.sections[i]!.entries)).toEqual(expected[i]!.entries);
      }
      expect(Object.isFrozen(decoded.sections[0]!.entries.get('acct-5'))).toBe(true);
    }
  });

  it('the same state is now written as format 2 and decodes to the same tables', () => {
    const bytes = encodeSnapshot(meta, fixtureState());
    expect(bytes.readUInt16LE(4)).toBe(2);
    const now = decodeSnapshot(bytes, 'k', { columnar: true });
    const old = decodeSnapshot(fixture, 'fixture', { columnar: true });
    expect(now.header.tables.map((t) => t.layout?.types ?? null)).toEqual([
      ['f64', 'i32'],
      ['f64'],
      null,
      null,
    ]);
    for (let i = 0; i < old.sections.length; i++)
      expect(new Map(now.sections[i]!.entries)).toEqual(new Map(old.sections[i]!.entries));
  });

  it('restores a chain whose base is format 1 and whose deltas are format 1 and 2', () => {
    const task = { pipeline: meta.pipeline, topic: meta.topic, partition: meta.partition };
    const ref = (bytes: Buffer, epoch: number, kind: 'full' | 'delta'): SnapshotRef => ({
      key: `k${epoch}`,
      bytes: bytes.length,
      checksum: snapshotChecksum(bytes),
      kind,
      epoch,
      entries: 0,
    });
    const delta = (epoch: number, parentEpoch: number, sections: SnapshotSection[]) =>
      encodeSnapshot(
        { ...meta, kind: 'delta', epoch, committedOffset: BigInt(epoch), baseEpoch: 7, parentEpoch },
        sections,
      );
    // A small delta (format 1), then one rewriting 1,100 balances (format 2), then one deleting some.
    const d1 = delta(8, 7, [
      {
        ...valueTable('account', new Map([['acct-1', { balance: 1, count: 1 }]])),
        version: 2,
        deletes: ['acct-2'],
      },
    ]);
    const d2 = delta(9, 8, [
      {
        ...valueTable(
          'account',
          rows(1100, (i) => ({ balance: i + 0.25, count: i })),
        ),
        version: 2,
      },
    ]);
    const d3 = delta(10, 9, [{ ...valueTable('account', new Map()), version: 2, deletes: ['k3', 'acct-3'] }]);
    expect([d1, d2, d3].map((d) => d.readUInt16LE(4))).toEqual([1, 2, 1]);
    const chain = [ref(fixture, 7, 'full'), ref(d1, 8, 'delta'), ref(d2, 9, 'delta'), ref(d3, 10, 'delta')];
    const { store } = buildCheckpoint(
      task,
      { epoch: 10, committedOffset: 10n, chain, updatedAt: '' },
      [fixture, d1, d2, d3],
      {},
    );
    const expected = new Map(fixtureState()[0]!.entries as Map<string, unknown>);
    expected.set('acct-1', { balance: 1, count: 1 });
    expected.delete('acct-2');
    for (const [k, v] of rows(1100, (i) => ({ balance: i + 0.25, count: i }))) expected.set(k, v);
    expected.delete('k3');
    expected.delete('acct-3');
    expect(new Map(store.table('account')!.data)).toEqual(expected);
    expect(store.table('tidemark:ttl:account')!.data.get('acct-1499')).toBe(1_700_000_000_000 + 1499 * 1000);
  });
});
