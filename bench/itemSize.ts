/**
 * Approximate DynamoDB item size, after the rules in the DynamoDB developer guide ("Item sizes and
 * formats"): attribute names count their UTF-8 bytes; strings their UTF-8 bytes; numbers about one
 * byte per two significant digits plus one; binary its bytes; booleans and null one byte; lists and
 * maps 3 bytes plus one byte per element plus their contents. Write units are 1 per started KB,
 * strongly consistent read units 1 per started 4 KB. Used only by the cost model (approximate).
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';

function numberSize(n: string): number {
  const digits = n.replace(/^-/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
  return Math.ceil(Math.max(digits.length, 1) / 2) + 1;
}

function valueSize(v: AttributeValue): number {
  if (v.S !== undefined) return Buffer.byteLength(v.S, 'utf8');
  if (v.N !== undefined) return numberSize(v.N);
  if (v.B !== undefined) return v.B.length;
  if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
  if (v.SS) return v.SS.reduce((n, s) => n + Buffer.byteLength(s, 'utf8'), 0);
  if (v.NS) return v.NS.reduce((n, s) => n + numberSize(s), 0);
  if (v.L) return 3 + v.L.reduce((n, e) => n + 1 + valueSize(e), 0);
  if (v.M) return 3 + itemSize(v.M) + Object.keys(v.M).length;
  return 0;
}

export function itemSize(item: Record<string, AttributeValue>): number {
  let n = 0;
  for (const [name, v] of Object.entries(item)) n += Buffer.byteLength(name, 'utf8') + valueSize(v);
  return n;
}

export function writeUnits(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / 1024));
}

export function strongReadUnits(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / 4096));
}
