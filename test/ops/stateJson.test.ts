import { describe, expect, it } from 'vitest';
import { tablesToJson } from '../../lib/ops/stateJson.ts';

describe('tablesToJson', () => {
  it('keeps a state key __proto__ as a key (never as a prototype)', () => {
    const data = new Map<string, unknown>([
      ['__proto__', { balance: 1, count: 1 }],
      ['a', JSON.parse('{"__proto__": {"x": 1}}')],
    ]);
    const json = tablesToJson([{ name: 'account', kind: 'value', scope: 'key', version: 1, data }]);
    const account = json.account!;
    expect(Object.keys(account)).toEqual(['__proto__', 'a']);
    expect(Object.getPrototypeOf(account)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(account, '__proto__')?.value).toEqual({ balance: 1, count: 1 });
    expect(JSON.stringify(json)).toBe(
      '{"account":{"__proto__":{"balance":1,"count":1},"a":{"__proto__":{"x":1}}}}',
    );
  });
});
