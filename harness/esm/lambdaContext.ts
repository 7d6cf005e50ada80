/**
 * A Lambda-like invocation context: the fields the Node.js runtime provides, and a
 * `getRemainingTimeInMillis()` that counts down to the invocation's deadline.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

export interface LambdaContextOptions {
  functionName: string;
  /** The invocation's time limit from now, in ms. */
  timeoutMs: number;
  memoryMb?: number;
  region?: string;
  requestId?: string;
  /** Clock, ms (default `Date.now`). */
  now?: () => number;
}

export interface LambdaContext extends Context {
  /** When Lambda stops the invocation (ms since the epoch, on the context's clock). */
  readonly deadline: number;
}

export function createLambdaContext(options: LambdaContextOptions): LambdaContext {
  const now = options.now ?? Date.now;
  const deadline = now() + options.timeoutMs;
  const region = options.region ?? 'us-east-1';
  const requestId = options.requestId ?? randomUUID();
  const unsupported = () => {
    throw new Error('callback-style completion (done/succeed/fail) is not supported: return a promise');
  };
  return {
    deadline,
    callbackWaitsForEmptyEventLoop: true,
    functionName: options.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:123456789012:function:${options.functionName}`,
    memoryLimitInMB: String(options.memoryMb ?? 1024),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${options.functionName}`,
    logStreamName: `local/[$LATEST]${requestId.replaceAll('-', '')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}

/** A context for tests: `createLambdaContext` for a function named `test`, with `ms` left. */
export function lambdaContext(ms = 60_000, requestId = 'req-1'): LambdaContext {
  return createLambdaContext({ functionName: 'test', timeoutMs: ms, requestId });
}
