/**
 * Repro (found by the fault campaign's `net-stall` faults): the production clients' socket
 * timeouts (`CLIENT_TIMEOUTS` in lib/store/clients.ts) do not fail a request whose server never
 * answers. With the SDK's current HTTP handler, `requestTimeout` only logs a warning unless
 * `throwOnRequestTimeout: true` is set (or a `socketTimeout` is given), so a stalled connection
 * hangs the invocation until Lambda kills it, instead of failing retriably "long before the
 * function times out" as the comment there promises.
 *
 * The test builds a client exactly as `createDynamoDBClient` does but with the request timeout
 * shortened to 200 ms, points it at a server that accepts connections and never answers, and
 * expects the request to fail within a few seconds (fixed: clients.ts sets throwOnRequestTimeout
 * and a socketTimeout).
 */
import { createServer, type Socket } from 'node:net';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { expect, it } from 'vitest';
import { CLIENT_TIMEOUTS, createDynamoDBClient } from '../../lib/store/clients.ts';

it('fails a request whose server never answers once the request timeout is over', async () => {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('data', () => {}); // read the request, never answer
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = createDynamoDBClient({
    AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${port}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'x',
    AWS_SECRET_ACCESS_KEY: 'x',
  });
  // Same handler settings as production, with a short request timeout (the SDK logs that it is exceeded).
  const handler = client.config.requestHandler as unknown as {
    updateHttpClientConfig(k: string, v: unknown): void;
  };
  handler.updateHttpClientConfig('requestTimeout', 200);
  expect(CLIENT_TIMEOUTS.requestTimeout).toBeGreaterThan(0);
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      client.send(new GetItemCommand({ TableName: 't', Key: { pk: { S: 'a' } } }), {}).then(
        () => 'answered',
        (e: Error) => `failed: ${e.name}`,
      ),
      new Promise<string>((r) => {
        timer = setTimeout(() => r('still waiting'), 5_000);
      }),
    ]);
    expect(outcome).toMatch(/^failed: TimeoutError/);
  } finally {
    clearTimeout(timer);
    client.destroy();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
