import type middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { BatchSummary } from '../checkpoint/epochEngine.ts';
import type { Processor } from '../checkpoint/processor.ts';
import { createRuntime, type TidemarkOptions, type TidemarkRuntime } from '../handler/runtime.ts';
import type { StateDescriptors } from '../state/descriptors.ts';

export type TidemarkMiddleware<S extends StateDescriptors> = middy.MiddlewareObj<
  unknown,
  BatchSummary,
  Error,
  Context
> & {
  readonly runtime: TidemarkRuntime<S>;
};

/**
 * middy middleware over the same core as `createKafkaHandler`. It processes the batch in its
 * `before` phase and returns the summary as the response (middy's early return), so the base
 * handler is not called; other middlewares (logging, tracing, …) still wrap it:
 *
 *     export const handler = middy().use(tidemark(processor));
 */
export function tidemark<S extends StateDescriptors>(
  processor: Processor<S>,
  options: TidemarkOptions = {},
): TidemarkMiddleware<S> {
  const runtime = createRuntime(processor, options);
  return {
    runtime,
    before: async function tidemarkBefore(request) {
      return runtime.invoke(request.event, request.context);
    },
  };
}
