/**
 * A lossless JSON form of state values (what `export` writes and `bootstrap` reads). State values
 * are whatever processors stored and the snapshot codec (MessagePack) keeps: JSON values plus
 * bigint, bytes, Date, Map, undefined and non-finite numbers. Those become one-key objects whose
 * key starts with `$`:
 *
 *     123n                   {"$bigint":"123"}
 *     Buffer / Uint8Array    {"$bytes":"<base64>"}
 *     Date                   {"$date":"2024-01-01T00:00:00.000Z"}      (invalid date: null)
 *     Map                    {"$map":[[<key>,<value>], …]}              (keys and values tagged too)
 *     undefined              {"$undefined":true}
 *     NaN, ±Infinity, -0     {"$number":"NaN"} …
 *
 * A plain object that itself has exactly one key starting with `$` is escaped as
 * `{"$object":{…}}`, so nothing a processor stored can be mistaken for a tag.
 */
import { OperationError } from '../errors.ts';

const TAGS = ['$bigint', '$bytes', '$date', '$map', '$undefined', '$number', '$object'] as const;

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function looksTagged(o: object): boolean {
  const keys = Object.keys(o);
  return keys.length === 1 && keys[0]!.startsWith('$');
}

export function toTaggedJson(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value) && !Object.is(value, -0)) return value;
      return { $number: Object.is(value, -0) ? '-0' : String(value) };
    case 'bigint':
      return { $bigint: value.toString() };
    case 'undefined':
      return { $undefined: true };
    case 'object': {
      if (value === null) return null;
      if (value instanceof Uint8Array) {
        return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
      }
      if (value instanceof Date) return { $date: Number.isNaN(value.getTime()) ? null : value.toISOString() };
      if (value instanceof Map)
        return { $map: [...value].map(([k, v]) => [toTaggedJson(k), toTaggedJson(v)]) };
      if (Array.isArray(value)) return Array.from(value, toTaggedJson);
      if (isPlainObject(value)) {
        const out = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toTaggedJson(v)]));
        return looksTagged(out) ? { $object: out } : out;
      }
      throw new OperationError(
        `a state value of type ${value.constructor?.name ?? 'object'} has no JSON form (export supports JSON values, bigint, bytes, Date, Map)`,
      );
    }
    default:
      throw new OperationError(`a state value of type ${typeof value} has no JSON form`);
  }
}

export function fromTaggedJson(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(fromTaggedJson);
  const o = value as Record<string, unknown>;
  if (!looksTagged(o)) {
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fromTaggedJson(v)]));
  }
  const [tag, arg] = Object.entries(o)[0]!;
  const bad = () => new OperationError(`invalid ${tag} value ${JSON.stringify(arg)}`);
  switch (tag as (typeof TAGS)[number]) {
    case '$bigint':
      if (typeof arg !== 'string' || !/^-?\d+$/.test(arg)) throw bad();
      return BigInt(arg);
    case '$bytes':
      if (typeof arg !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(arg)) throw bad();
      return Buffer.from(arg, 'base64');
    case '$date': {
      if (arg === null) return new Date(Number.NaN);
      const d = typeof arg === 'string' ? new Date(arg) : undefined;
      if (!d || Number.isNaN(d.getTime())) throw bad();
      return d;
    }
    case '$map':
      if (!Array.isArray(arg) || !arg.every((e) => Array.isArray(e) && e.length === 2)) throw bad();
      return new Map(arg.map(([k, v]) => [fromTaggedJson(k), fromTaggedJson(v)]));
    case '$undefined':
      return undefined;
    case '$number':
      if (arg === '-0') return -0;
      if (arg === 'NaN' || arg === 'Infinity' || arg === '-Infinity') return Number(arg);
      throw bad();
    case '$object':
      if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) throw bad();
      return Object.fromEntries(Object.entries(arg).map(([k, v]) => [k, fromTaggedJson(v)]));
    default:
      throw new OperationError(`unknown tag ${tag} (a one-key object whose key starts with $ must be a tag)`);
  }
}
