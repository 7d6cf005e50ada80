/**
 * A TCP proxy in front of a local server that breaks connections on request, for network faults the
 * SDK cannot fake: the campaign's client middleware marks one request attempt with the
 * `x-tidemark-fault` header, and the proxy then
 * - `reset-request`: resets the connection before the server sees a byte of that request;
 * - `reset-response`: forwards the request, lets the server handle it, and resets the connection
 *   when the response starts (the write happened; the client never learns it);
 * - `stall`: forwards the request and swallows the response, so the client's request timeout fires.
 * Unmarked traffic passes through untouched (HTTP keep-alive connections included).
 *
 * With `latency`, every response is held back as a latency model says (the AWS-latency profile of
 * the benchmark, harness/latency.ts): the first byte of each response by a drawn per-request time,
 * and its bytes by their transfer time. Clients send one request at a time per connection (HTTP/1.1
 * without pipelining), so a response starts with the first bytes from the server after a request.
 */
import net from 'node:net';
import type { LatencyModel } from '../latency.ts';

export const FAULT_HEADER = 'x-tidemark-fault';
export const NET_FAULTS = ['reset-request', 'reset-response', 'stall'] as const;
export type NetFault = (typeof NET_FAULTS)[number];

const MARKER = Buffer.from(`${FAULT_HEADER}: `, 'latin1');

export interface FaultProxy {
  readonly endpoint: string;
  readonly port: number;
  /** Connections broken, by fault. */
  readonly broken: Record<NetFault, number>;
  close(): Promise<void>;
}

function markedFault(chunk: Buffer): NetFault | undefined {
  const at = chunk.indexOf(MARKER);
  if (at < 0) return undefined;
  const end = chunk.indexOf('\r\n', at, 'latin1');
  const value = chunk.toString('latin1', at + MARKER.length, end < 0 ? undefined : end).trim();
  return (NET_FAULTS as readonly string[]).includes(value) ? (value as NetFault) : undefined;
}

export async function startFaultProxy(
  target: { host: string; port: number },
  options: { latency?: LatencyModel } = {},
): Promise<FaultProxy> {
  const latency = options.latency;
  const sockets = new Set<net.Socket>();
  const broken: Record<NetFault, number> = { 'reset-request': 0, 'reset-response': 0, stall: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    let mode: 'pass' | 'reset-response' | 'stall' = 'pass';
    // Latency: when the response under way may be forwarded (its first byte held back by a drawn time).
    let awaitingResponse = false;
    let releaseAt = 0;
    const forward = (chunk: Buffer) => {
      if (!latency) {
        client.write(chunk);
        return;
      }
      const now = performance.now();
      if (awaitingResponse) {
        awaitingResponse = false;
        releaseAt = Math.max(releaseAt, now + latency.requestMs());
      }
      releaseAt = Math.max(releaseAt, now) + latency.transferMs(chunk.length);
      const wait = releaseAt - now;
      if (wait < 1) client.write(chunk);
      else
        setTimeout(() => {
          if (!client.destroyed) client.write(chunk);
        }, wait);
    };
    const kill = () => {
      client.resetAndDestroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      const fault = markedFault(chunk);
      if (fault === 'reset-request') {
        broken[fault]++;
        kill();
        return;
      }
      if (fault) mode = fault;
      awaitingResponse = true;
      upstream.write(chunk);
    });
    let stalled = false;
    upstream.on('data', (chunk: Buffer) => {
      if (mode === 'reset-response') {
        broken['reset-response']++;
        kill();
      } else if (mode === 'pass') forward(chunk);
      else if (!stalled) {
        // The response goes nowhere; the connection stays open until the client gives up on it.
        stalled = true;
        broken.stall++;
      }
    });
    const close = () => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    // A response still held back is delivered before the connection closes behind it.
    upstream.on('close', () => {
      const left = releaseAt - performance.now();
      if (latency && left > 0) setTimeout(close, left + 1);
      else close();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    broken,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
