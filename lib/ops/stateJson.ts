import type { StateTable } from '../state/stateStore.ts';

/** JSON-safe form of a state value: bigint → decimal string, bytes → base64, Map → object. */
export function toJsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (value instanceof Map)
    return Object.fromEntries([...value].map(([k, v]) => [String(k), toJsonValue(v)]));
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonValue(v)]));
  }
  return value;
}

/** `{ "<stateName>": { "<key>": <value>, … }, … }`; map state values become objects, lists arrays. */
export function tablesToJson(tables: Iterable<StateTable>): Record<string, Record<string, unknown>> {
  // Object.fromEntries defines properties: a key `__proto__` (a record key like any other) stays a
  // key, where an assignment would replace the object's prototype.
  return Object.fromEntries(
    [...tables].map((t) => [t.name, Object.fromEntries([...t.data].map(([k, v]) => [k, toJsonValue(v)]))]),
  );
}
