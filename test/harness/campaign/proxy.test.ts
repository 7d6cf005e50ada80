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
