import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latencyModel } from '../../harness/latency.ts';
import { startLatencyProxy } from '../../harness/latencyProxy.ts';

let server: Server;
let port = 0;
/** The streamed body: 256 chunks of 8 KiB, each different, written with pauses between them. */
const CHUNKS = Array.from({ length: 256 }, (_, i) => Buffer.alloc(8192, i % 251));
const STREAMED = createHash('sha256').update(Buffer.concat(CHUNKS)).digest('hex');

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', async () => {
      if (req.url !== '/stream') {
        res.end('ok');
        return;
      }
      for (const chunk of CHUNKS) {
        res.write(chunk);
        // Irregular gaps: some chunks arrive just before the ones held back are due.
        if (Math.random() < 0.5) await new Promise((r) => setTimeout(r, Math.random() < 0.5 ? 1 : 2));
      }
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

describe('latency proxy', () => {
  it('holds each response back by its drawn time, never less, one draw per request on a keep-alive connection', async () => {
    const drawn: number[] = [];
    const proxy = await startLatencyProxy(
      { host: '127.0.0.1', port },
      {
        requestMs: () => {
          drawn.push(40);
          return 40;
        },
        transferMs: () => 0,
      },
    );
    try {
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        const res = await fetch(`${proxy.endpoint}/x`, { method: 'PUT', body: 'payload' });
        expect(await res.text()).toBe('ok');
        // A lower bound the proxy guarantees however busy the machine is (a release re-checks the
        // clock): load can only make it longer.
        expect(performance.now() - started).toBeGreaterThanOrEqual(40);
      }
      expect(drawn).toEqual([40, 40, 40]);
      expect(proxy.responses).toBe(3);
    } finally {
      await proxy.close();
    }
  });

  it('delivers a streamed response byte for byte and in order while it paces it', async () => {
    // A quarter of a millisecond of transfer time per chunk, and gaps of 0–2 ms between chunks:
    // chunks keep arriving just before earlier ones fall due, the case where bytes could overtake
    // each other (a chunk due at once written while an earlier one waits for its timer).
    const proxy = await startLatencyProxy(
      { host: '127.0.0.1', port },
      latencyModel({ p50Ms: 1, p99Ms: 3, bytesPerSecond: 8192 * 4000 }, 3),
    );
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${proxy.endpoint}/stream`);
        const body = Buffer.from(await res.arrayBuffer());
        expect(body.length).toBe(CHUNKS.length * 8192);
        expect(createHash('sha256').update(body).digest('hex')).toBe(STREAMED);
      }
      expect(proxy.responses).toBe(3);
    } finally {
      await proxy.close();
    }
  });
});
