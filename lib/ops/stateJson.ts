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
  const out: Record<string, Record<string, unknown>> = {};
  for (const t of tables) {
    const entries: Record<string, unknown> = {};
    for (const [k, v] of t.data) entries[k] = toJsonValue(v);
    out[t.name] = entries;
  }
  return out;
}
