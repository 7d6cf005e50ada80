import type middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { BatchSummary } from '../checkpoint/epochEngine.ts';
import type { NoOutputs, Processor } from '../checkpoint/processor.ts';
import { BatchFailedError } from '../errors.ts';
import { createRuntime, type TidemarkOptions, type TidemarkRuntime } from '../handler/runtime.ts';
import type { OutputDescriptors } from '../output/types.ts';
import type { StateDescriptors } from '../state/descriptors.ts';

const SUMMARY = 'tidemark.summary';

export type TidemarkMiddleware<
  S extends StateDescriptors,
  O extends OutputDescriptors = NoOutputs,
> = middy.MiddlewareObj<unknown, unknown, Error, Context> & {
  readonly runtime: TidemarkRuntime<S, O>;
};

/**
 * middy middleware over the same core as `createKafkaHandler`:
 *
 *     export const handler = middy().use(injectLambdaContext(logger)).use(tidemark(processor));
 *
 * It processes the batch in its `before` phase (a failure goes through the onError chain with its
 * typed error) and, when the base handler returns nothing, makes the batch summary the response in
 * its `after` phase (when it returns an object, a partial batch response's `batchItemFailures` are
 * added to it). It never short-circuits, so every other middleware's `after` still runs.
 */
export function tidemark<S extends StateDescriptors, O extends OutputDescriptors = NoOutputs>(
  processor: Processor<S, O>,
  options: TidemarkOptions = {},
): TidemarkMiddleware<S, O> {
  const runtime = createRuntime(processor, options);
  return {
    runtime,
    before: async function tidemarkBefore(request) {
      (request.internal as Record<string, unknown>)[SUMMARY] = await runtime.invoke(
        request.event,
        request.context,
      );
    },
    after: async function tidemarkAfter(request) {
      const summary = (request.internal as Record<string, unknown>)[SUMMARY] as BatchSummary;
      if (request.response === undefined) {
        request.response = summary;
        return;
      }
      // Failed tasks to deliver again (ReportBatchItemFailures): the mapping must see them whatever
      // else the base handler returns, or it would move past their records.
      const failures = summary.batchItemFailures;
      if (!failures) return;
      const r = request.response;
      if (typeof r !== 'object' || r === null || Array.isArray(r)) {
        throw new BatchFailedError(
          (summary.failedTasks ?? []).map((f) => ({ task: f.task, error: new Error(f.error) })),
        );
      }
      const own = (r as { batchItemFailures?: unknown }).batchItemFailures;
      request.response = { ...r, batchItemFailures: [...(Array.isArray(own) ? own : []), ...failures] };
    },
  };
}
