/**
 * A TCP proxy in front of a local server that answers as slowly as a latency model says (the
 * benchmark's AWS-latency profile, bench/awsLatency.ts): the first byte of each response reaches the
 * client a drawn time after its request's first byte reached the proxy, plus the transfer time of the
 * request's bytes (the local server's own time counts towards it; a server slower than that is not
 * held back further), and every byte of the response takes its transfer time. Requests pass through untouched. Clients send one request at a time per
 * connection (HTTP/1.1 without pipelining), so a response starts with the first bytes from the
 * server after a request.
 *
 * Two properties the benchmark relies on, whatever the load of the machine: a response is never
 * released before its time (a timer may fire early by the event loop's cached clock, so a release
 * re-checks `performance.now()` and waits again), and the bytes of a connection leave in the order
 * they came (one queue per connection, drained by one timer). Hand-written: the proxies on npm either
 * inject faults at random or add a fixed delay per chunk, not a drawn time per request.
 */
import net from 'node:net';
import type { LatencyModel } from './latency.ts';

export interface LatencyProxy {
  readonly endpoint: string;
  readonly port: number;
  /** Responses held back so far (one draw each). */
  readonly responses: number;
  close(): Promise<void>;
}

export async function startLatencyProxy(
  target: { host: string; port: number },
  latency: LatencyModel,
): Promise<LatencyProxy> {
  const sockets = new Set<net.Socket>();
  let responses = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const queue: Array<{ chunk: Buffer; at: number }> = [];
    let timer: NodeJS.Timeout | undefined;
    let awaitingResponse = false;
    let requestAt = 0;
    let requestBytes = 0;
    let releaseAt = 0;
    let upstreamEnded = false;
    const close = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      queue.length = 0;
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    const drain = () => {
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && queue[0]!.at <= now) client.write(queue.shift()!.chunk);
      if (queue.length > 0) timer = setTimeout(drain, Math.max(1, Math.ceil(queue[0]!.at - now)));
      else if (upstreamEnded) close();
    };
    client.on('data', (chunk: Buffer) => {
      if (!awaitingResponse) {
        requestAt = performance.now();
        requestBytes = 0;
      }
      requestBytes += chunk.length;
      awaitingResponse = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      const now = performance.now();
      if (awaitingResponse) {
        awaitingResponse = false;
        responses++;
        releaseAt = Math.max(releaseAt, requestAt + latency.requestMs() + latency.transferMs(requestBytes));
      }
      releaseAt = Math.max(releaseAt, now) + latency.transferMs(chunk.length);
      queue.push({ chunk, at: releaseAt });
      if (!timer) drain();
    });
    // What the server sent is delivered before the connection closes behind it.
    upstream.on('close', () => {
      upstreamEnded = true;
      if (!timer) drain();
    });
    client.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
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
    get responses() {
      return responses;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
