/**
 * What DynamoDB would refuse in a marshalled item, checked at emit time so that a value that cannot
 * be written fails its record instead of a delivery after the commit: numbers out of range or too
 * precise, duplicates in a set, empty attribute names, nesting deeper than 32, and the item's size
 * computed by DynamoDB's rules (names plus values; a number takes 1 byte per two significant digits
 * plus 1; lists and maps 3 bytes plus 1 per element). `@aws-sdk/util-dynamodb` marshals but checks
 * none of these, hence this module.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { LIMITS } from './constants.ts';

export type AttributeMap = Record<string, AttributeValue>;

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

const NUMBER = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * A DynamoDB number's significant digits and canonical form (`digits` `e` `exponent` of the leading
 * digit), or a thrown RangeError when DynamoDB would refuse it.
 */
export function checkNumber(n: string, path: string): { digits: number; canonical: string } {
  const m = NUMBER.exec(n);
  if (!m || (m[2] === '' && (m[3] ?? '') === ''))
    throw new RangeError(`${path}: ${JSON.stringify(n)} is not a number`);
  const int = m[2]!;
  const frac = m[3] ?? '';
  const all = int + frac;
  const first = all.search(/[1-9]/);
  if (first < 0) return { digits: 1, canonical: '0' };
  const significant = all.slice(first).replace(/0+$/, '');
  if (significant.length > LIMITS.numberDigits) {
    throw new RangeError(`${path}: ${n} has more than ${LIMITS.numberDigits} significant digits`);
  }
  const exponent = int.length - 1 - first + Number(m[4] ?? 0);
  if (exponent > LIMITS.numberMaxExponent || exponent < LIMITS.numberMinExponent) {
    throw new RangeError(`${path}: ${n} is outside DynamoDB's range (1E-130 to 9.9…E+125 in magnitude)`);
  }
  return { digits: significant.length, canonical: `${m[1] === '-' ? '-' : ''}${significant}e${exponent}` };
}

function numberBytes(digits: number): number {
  return Math.ceil(digits / 2) + 1;
}

function noDuplicates(values: readonly string[], path: string): void {
  if (new Set(values).size !== values.length) throw new TypeError(`${path}: the set holds duplicates`);
}

/** The size of an attribute value by DynamoDB's rules; throws when DynamoDB would refuse it. */
export function attributeValueSize(v: AttributeValue, path: string, depth = 0): number {
  const a = v as unknown as Record<string, unknown>;
  if (a.S !== undefined) return utf8(a.S as string);
  if (a.N !== undefined) return numberBytes(checkNumber(a.N as string, path).digits);
  if (a.B !== undefined) return (a.B as Uint8Array).byteLength;
  if (a.BOOL !== undefined || a.NULL !== undefined) return 1;
  if (a.SS !== undefined) {
    const ss = a.SS as string[];
    noDuplicates(ss, path);
    return ss.reduce((n, s) => n + utf8(s), 0);
  }
  if (a.NS !== undefined) {
    const checked = (a.NS as string[]).map((s) => checkNumber(s, path));
    noDuplicates(
      checked.map((c) => c.canonical),
      path,
    );
    return checked.reduce((n, c) => n + numberBytes(c.digits), 0);
  }
  if (a.BS !== undefined) {
    const bs = a.BS as Uint8Array[];
    noDuplicates(
      bs.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')),
      path,
    );
    return bs.reduce((n, b) => n + b.byteLength, 0);
  }
  if ((a.L !== undefined || a.M !== undefined) && depth >= LIMITS.depth - 1) {
    throw new RangeError(
      `${path}: lists and maps nested deeper than ${LIMITS.depth} levels (the item counts as one)`,
    );
  }
  if (a.L !== undefined) {
    return (a.L as AttributeValue[]).reduce(
      (n, e, i) => n + 1 + attributeValueSize(e, `${path}[${i}]`, depth + 1),
      3,
    );
  }
  if (a.M !== undefined) return 3 + mapSize(a.M as AttributeMap, path, depth + 1);
  throw new TypeError(`${path}: not a DynamoDB attribute value`);
}

function mapSize(m: AttributeMap, path: string, depth: number): number {
  let n = 0;
  for (const [name, value] of Object.entries(m)) {
    if (name === '') throw new TypeError(`${path}: an attribute name is empty`);
    n += utf8(name) + attributeValueSize(value, `${path}.${name}`, depth) + (depth > 0 ? 1 : 0);
  }
  return n;
}

/** The size of an item (or of the attributes an update sets) by DynamoDB's rules; throws what DynamoDB would refuse. */
export function itemSize(item: AttributeMap, what = 'item'): number {
  return mapSize(item, what, 0);
}
