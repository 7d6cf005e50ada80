/**
 * A TCP proxy in front of a local server that breaks connections on request, for network faults the
 * SDK cannot fake: the campaign's client middleware marks one request attempt with the
 * `x-tidemark-fault` header, and the proxy then
 * - `reset-request`: resets the connection before the server sees a byte of that request;
 * - `reset-response`: forwards the request, lets the server handle it, and resets the connection
 *   when the response starts (the write happened; the client never learns it);
 * - `stall`: forwards the request and swallows the response, so the client's request timeout fires.
 * Unmarked traffic passes through untouched (HTTP keep-alive connections included).
 */
import net from 'node:net';

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

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const sockets = new Set<net.Socket>();
  const broken: Record<NetFault, number> = { 'reset-request': 0, 'reset-response': 0, stall: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    let mode: 'pass' | 'reset-response' | 'stall' = 'pass';
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
      upstream.write(chunk);
    });
    let stalled = false;
    upstream.on('data', (chunk: Buffer) => {
      if (mode === 'reset-response') {
        broken['reset-response']++;
        kill();
      } else if (mode === 'pass') client.write(chunk);
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
    upstream.on('close', close);
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
