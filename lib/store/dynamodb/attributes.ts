/**
 * Small DynamoDB attribute helpers shared by the commit and savepoint stores: building attribute
 * values, and reading them back with a clear error naming the attribute that is missing or wrong.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { SnapshotRef } from '../../checkpoint/stores.ts';

export type Item = Record<string, AttributeValue>;

export const S = (s: string): AttributeValue => ({ S: s });
export const N = (n: number | bigint): AttributeValue => ({ N: n.toString() });
export const NULL: AttributeValue = { NULL: true };

/** A stored item that does not have the shape Tidemark writes. */
export class MalformedItemError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedItemError';
  }
}

export function str(m: Item, f: string): string {
  const v = m[f]?.S;
  if (v === undefined) throw new MalformedItemError(`attribute ${f} is missing or not a string`);
  return v;
}

export function strOrNull(m: Item, f: string): string | null {
  return m[f]?.NULL ? null : str(m, f);
}

export function int(m: Item, f: string): number {
  const v = m[f]?.N;
  const n = v === undefined ? Number.NaN : Number(v);
  if (!Number.isSafeInteger(n)) throw new MalformedItemError(`attribute ${f} is missing or not an integer`);
  return n;
}

/** An int64 offset stored as a DynamoDB number (exact to 38 digits). */
export function big(m: Item, f: string): bigint {
  const v = m[f]?.N;
  if (v === undefined || !/^\d+$/.test(v))
    throw new MalformedItemError(`attribute ${f} is missing or not an offset`);
  return BigInt(v);
}

export function list(m: Item, f: string): AttributeValue[] {
  const v = m[f]?.L;
  if (!v) throw new MalformedItemError(`attribute ${f} is missing or not a list`);
  return v;
}

export function snapshotKind(v: string): 'full' | 'delta' {
  if (v !== 'full' && v !== 'delta') throw new MalformedItemError(`snapshot kind ${v} is unknown`);
  return v;
}

/** A snapshot reference with its full key, readable on its own (savepoint items). */
export function refToAttr(r: SnapshotRef): AttributeValue {
  return {
    M: {
      key: S(r.key),
      bytes: N(r.bytes),
      checksum: S(r.checksum),
      kind: S(r.kind),
      epoch: N(r.epoch),
      entries: N(r.entries),
      ...(r.inline ? { inline: { B: r.inline } } : {}),
    },
  };
}

export function attrToRef(a: AttributeValue): SnapshotRef {
  const m = a.M;
  if (!m) throw new MalformedItemError('snapshot reference is not a map');
  const ref: SnapshotRef = {
    key: str(m, 'key'),
    bytes: int(m, 'bytes'),
    checksum: str(m, 'checksum'),
    kind: snapshotKind(str(m, 'kind')),
    epoch: int(m, 'epoch'),
    entries: int(m, 'entries'),
  };
  const inline = m.inline?.B;
  return inline ? { ...ref, inline } : ref;
}
