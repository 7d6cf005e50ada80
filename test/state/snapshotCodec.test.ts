import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SnapshotIdentityError, StateError } from '../../lib/errors.ts';
import {
  decodeSnapshot,
  encodeSnapshot,
  type SnapshotMeta,
  type SnapshotSection,
  snapshotChecksum,
  verifySnapshotIdentity,
} from '../../lib/state/snapshotCodec.ts';
import { corrupt } from '../helpers/snapshots.ts';

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

function sections(): SnapshotSection[] {
  return [
    {
      name: 'account',
      kind: 'value',
      scope: 'key',
      version: 2,
      entries: new Map<string, unknown>([
        ['acct-1', { balance: -5, count: 1 }],
        ['ünïcödé 🎉', { balance: 2 ** 40, count: 2 }],
        [
          '',
          {
            big: 12345678901234567890n,
            bytes: Buffer.from([0, 255]),
            when: new Date(0),
            nested: [1, 'x', null],
          },
        ],
      ]),
    },
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
    { name: 'total', kind: 'value', scope: 'task', version: 1, entries: new Map([['', 42]]) },
  ];
}

describe('snapshot codec', () => {
  for (const compression of ['zstd', 'none'] as const) {
    it(`round-trips every state kind and value type (${compression})`, () => {
      const bytes = encodeSnapshot(meta, sections(), compression);
      const decoded = decodeSnapshot(bytes, 'k');
      expect(decoded.header).toMatchObject({ ...meta, entryCount: 6, compression });
      expect(decoded.sections.map((s) => [s.name, s.kind, s.scope, s.version])).toEqual(
        sections().map((s) => [s.name, s.kind, s.scope, s.version]),
      );
      const original = sections();
      for (let i = 0; i < original.length; i++) {
        expect(decoded.sections[i]!.entries).toEqual(original[i]!.entries);
      }
    });
  }

  it('round-trips any JSON-like state (property)', () => {
    // Objects keyed like prototype-pollution attempts, beside fast-check's own JSON values.
    const trickyKey = fc.constantFrom('__proto__', '__proto_', 'constructor', 'prototype', 'a', '');
    const tricky = fc.object({
      key: trickyKey,
      maxDepth: 3,
      values: [fc.integer(), fc.string({ maxLength: 4 }), fc.boolean(), fc.constant(null)],
    });
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.oneof(fc.jsonValue(), tricky)),
        fc.boolean(),
        (dict, zstd) => {
          const entries = new Map(Object.entries(dict).filter(([, v]) => v !== undefined));
          const bytes = encodeSnapshot(
            meta,
            [{ name: 's', kind: 'value', scope: 'key', version: 1, entries }],
            zstd ? 'zstd' : 'none',
          );
          const back = decodeSnapshot(bytes).sections[0]!.entries;
          // MessagePack has no negative zero: -0 is stored as 0 (as JSON does).
          expect(back).toEqual(new Map([...entries].map(([k, v]) => [k, JSON.parse(JSON.stringify(v))])));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps own __proto__ keys exactly, in every state kind, without touching any prototype', () => {
    const parsed = () =>
      JSON.parse(
        '{"__proto__": {"polluted": true, "__proto__": [1, {"__proto__": null}]}, "__proto_": 2, "constructor": {"prototype": {"polluted": true}}}',
      ) as Record<string, unknown>;
    for (const compression of ['zstd', 'none'] as const) {
      const bytes = encodeSnapshot(
        meta,
        [
          { name: 'v', kind: 'value', scope: 'key', version: 1, entries: new Map([['__proto__', parsed()]]) },
          {
            name: 'm',
            kind: 'map',
            scope: 'key',
            version: 1,
            entries: new Map([['k', new Map([['__proto__', parsed()]])]]),
          },
          {
            name: 'l',
            kind: 'list',
            scope: 'key',
            version: 1,
            entries: new Map([['k', [parsed(), parsed()]]]),
          },
        ],
        compression,
      );
      const [v, m, l] = decodeSnapshot(bytes).sections;
      const values = [
        v!.entries.get('__proto__'),
        (m!.entries.get('k') as Map<string, unknown>).get('__proto__'),
        ...(l!.entries.get('k') as unknown[]),
      ] as Array<Record<string, unknown>>;
      for (const value of values) {
        expect(value).toEqual(parsed());
        expect(Object.keys(value)).toEqual(['__proto__', '__proto_', 'constructor']);
        expect(Object.hasOwn(value, '__proto__')).toBe(true);
        expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
        expect(Object.getPrototypeOf(Object.getOwnPropertyDescriptor(value, '__proto__')?.value)).toBe(
          Object.prototype,
        );
        expect(Object.isFrozen(value)).toBe(true);
        expect(value.polluted).toBeUndefined();
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
  });

  it("keeps MessagePack's prototype-pollution guard for objects written without the extension", () => {
    // A snapshot whose body holds a plain MessagePack map keyed __proto__ (as a crafted or foreign
    // writer could produce): the decoder renames the key, and no prototype changes.
    const bytes = encodeSnapshot(
      meta,
      [
        {
          name: 'v',
          kind: 'value',
          scope: 'key',
          version: 1,
          entries: new Map([['k', { xxproto__: { polluted: true } }]]),
        },
      ],
      'none',
    );
    const at = bytes.indexOf('xxproto__');
    expect(at).toBeGreaterThan(0);
    bytes.write('__proto__', at);
    bytes.writeUInt32LE(crc32(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
    const value = decodeSnapshot(bytes).sections[0]!.entries.get('k') as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['__proto_']);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(value.polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses an own-__proto__ object whose entries are not a key/value list', () => {
    const bytes = encodeSnapshot(
      meta,
      [
        {
          name: 'v',
          kind: 'value',
          scope: 'key',
          version: 1,
          entries: new Map([['k', JSON.parse('{"__proto__":1}')]]),
        },
      ],
      'none',
    );
    // The extension's payload is the list ["__proto__", 1]; its key becomes 8 bytes of binary (same size).
    const at = bytes.indexOf(Buffer.from([0x92, 0xa9, ...Buffer.from('__proto__')]));
    expect(at).toBeGreaterThan(0);
    bytes[at + 1] = 0xc4;
    bytes[at + 2] = 0x08;
    bytes.writeUInt32LE(crc32(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
    expect(corrupt(() => decodeSnapshot(bytes)).message).toMatch(/key is not a string/);
  });

  it('refuses wrong magic, unknown version, unknown flags', () => {
    const bytes = encodeSnapshot(meta, sections());
    const badMagic = Buffer.from(bytes);
    badMagic.write('XXXX', 0);
    expect(corrupt(() => decodeSnapshot(badMagic)).message).toMatch(/bad magic/);
    const v3 = Buffer.from(bytes);
    v3.writeUInt16LE(3, 4);
    expect(corrupt(() => decodeSnapshot(v3)).message).toMatch(/version 3/);
    expect(corrupt(() => decodeSnapshot(Buffer.from('TDMK'))).message).toMatch(/truncated/);
  });

  it('refuses every truncation and any extension', () => {
    const bytes = encodeSnapshot(meta, sections());
    for (let len = 0; len < bytes.length; len++) corrupt(() => decodeSnapshot(bytes.subarray(0, len)));
    expect(corrupt(() => decodeSnapshot(Buffer.concat([bytes, Buffer.from([0])]))).message).toMatch(
      /extended|checksum/,
    );
  });

  it('refuses a flipped bit anywhere', () => {
    const bytes = encodeSnapshot(meta, sections());
    for (let i = 0; i < bytes.length; i++) {
      for (const bit of [0, 7]) {
        const b = Buffer.from(bytes);
        b[i]! ^= 1 << bit;
        corrupt(() => decodeSnapshot(b));
      }
    }
  });

  it('checks identity against the commit item: task, epoch, offset, size, checksum, kind', () => {
    const bytes = encodeSnapshot(meta, sections());
    const header = decodeSnapshot(bytes).header;
    const expected = {
      ...meta,
      bytes: bytes.length,
      checksum: snapshotChecksum(bytes),
      kind: 'full' as 'full' | 'delta',
    };
    verifySnapshotIdentity(bytes, header, expected);
    const wrong: Array<Partial<typeof expected>> = [
      { pipeline: 'q' },
      { topic: 'other' },
      { partition: 4 },
      { epoch: 8 },
      { committedOffset: 1n },
      { bytes: bytes.length + 1 },
      { checksum: '00000000' },
      { kind: 'delta' },
    ];
    for (const w of wrong) {
      expect(
        () => verifySnapshotIdentity(bytes, header, { ...expected, ...w }),
        JSON.stringify(Object.keys(w)),
      ).toThrow(SnapshotIdentityError);
    }
  });

  it('refuses values and keys it cannot encode faithfully', () => {
    expect(() =>
      encodeSnapshot(meta, [
        { name: 's', kind: 'value', scope: 'key', version: 1, entries: new Map([['k', Symbol('x')]]) },
      ]),
    ).toThrow(StateError);
    expect(() =>
      encodeSnapshot(meta, [
        { name: 's', kind: 'value', scope: 'key', version: 1, entries: new Map([['\ud800', 1]]) },
      ]),
    ).toThrow(/well-formed/);
  });

  it('encodes and decodes a 1 M-key state (time printed, not asserted)', () => {
    const n = 1_000_000;
    const entries = new Map<string, unknown>();
    for (let i = 0; i < n; i++)
      entries.set(`acct-${i.toString().padStart(7, '0')}`, { balance: (i * 7919) % 100_000, count: i % 50 });
    const t0 = performance.now();
    const bytes = encodeSnapshot(meta, [
      { name: 'account', kind: 'value', scope: 'key', version: 1, entries },
    ]);
    const t1 = performance.now();
    const decoded = decodeSnapshot(bytes);
    const t2 = performance.now();
    console.log(
      `1M-key snapshot: ${(bytes.length / 1e6).toFixed(1)} MB, encode ${(t1 - t0).toFixed(0)} ms, decode ${(t2 - t1).toFixed(0)} ms`,
    );
    const back = decoded.sections[0]!.entries;
    expect(back.size).toBe(n);
    expect(back.get('acct-0123456')).toEqual({ balance: (123456 * 7919) % 100_000, count: 123456 % 50 });
  });
});
