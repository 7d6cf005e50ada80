import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAULT_HEADER, type FaultProxy, startFaultProxy } from '../../../harness/campaign/proxy.ts';

let server: Server;
let proxy: FaultProxy;
let handled = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      handled++;
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy = await startFaultProxy({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
});

afterAll(async () => {
  await proxy.close();
  await new Promise<void>((r) => server.close(() => r()));
});

async function send(fault?: string): Promise<string> {
  try {
    const res = await fetch(`${proxy.endpoint}/x`, {
      method: 'PUT',
      body: 'payload',
      headers: fault ? { [FAULT_HEADER]: fault } : {},
      signal: AbortSignal.timeout(1_000),
    });
    return await res.text();
  } catch (e) {
    return `error ${(e as Error).name}`;
  }
}

describe('fault proxy', () => {
  it('passes unmarked requests through', async () => {
    expect(await send()).toBe('ok');
    expect(await send()).toBe('ok');
  });

  it('resets a marked request before the server sees it', async () => {
    const before = handled;
    expect(await send('reset-request')).toMatch(/^error/);
    expect(handled).toBe(before);
    expect(proxy.broken['reset-request']).toBe(1);
  });

  it('lets the server handle a request and then loses its response', async () => {
    const before = handled;
    expect(await send('reset-response')).toMatch(/^error/);
    expect(handled).toBe(before + 1);
    expect(proxy.broken['reset-response']).toBe(1);
  });

  it('swallows the response of a stalled request until the client gives up', async () => {
    const before = handled;
    expect(await send('stall')).toBe('error TimeoutError');
    expect(handled).toBe(before + 1);
    expect(proxy.broken.stall).toBe(1);
    expect(await send()).toBe('ok');
  });
});

describe('fault proxy with a latency model', () => {
  it('holds each response back by the model’s time (never less), bytes intact, over one keep-alive connection', async () => {
    const held: number[] = [];
    const slow = await startFaultProxy(
      { host: '127.0.0.1', port: (server.address() as { port: number }).port },
      {
        latency: {
          requestMs: () => {
            held.push(40);
            return 40;
          },
          transferMs: () => 0,
        },
      },
    );
    try {
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        const res = await fetch(`${slow.endpoint}/x`, { method: 'PUT', body: 'payload' });
        expect(await res.text()).toBe('ok');
        expect(performance.now() - started).toBeGreaterThanOrEqual(39);
      }
      expect(held).toEqual([40, 40, 40]); // one draw per request
    } finally {
      await slow.close();
    }
  });
});

describe('latency model', () => {
  it('draws a log-normal with the profile’s median and 99th percentile, the same for a seed', async () => {
    const { latencyModel } = await import('../../../harness/latency.ts');
    const draws = (seed: number) => {
      const m = latencyModel({ p50Ms: 6, p99Ms: 20, bytesPerSecond: 100e6 }, seed);
      return Array.from({ length: 20_000 }, () => m.requestMs()).sort((a, b) => a - b);
    };
    const d = draws(7);
    expect(draws(7)).toEqual(d);
    expect(d[10_000]).toBeGreaterThan(5.7);
    expect(d[10_000]).toBeLessThan(6.3);
    expect(d[19_800]).toBeGreaterThan(18);
    expect(d[19_800]).toBeLessThan(22);
    expect(latencyModel({ p50Ms: 1, p99Ms: 2, bytesPerSecond: 1e6 }, 1).transferMs(1000)).toBe(1);
  });
});
