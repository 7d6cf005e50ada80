import type { Context } from 'aws-lambda';
import type { BatchSummary } from '../checkpoint/epochEngine.ts';
import type { NoOutputs, Processor } from '../checkpoint/processor.ts';
import type { OutputDescriptors } from '../output/types.ts';
import type { StateDescriptors } from '../state/descriptors.ts';
import { createRuntime, type TidemarkOptions, type TidemarkRuntime } from './runtime.ts';

export type KafkaHandler<
  S extends StateDescriptors = StateDescriptors,
  O extends OutputDescriptors = NoOutputs,
> = ((event: unknown, context?: Partial<Context>) => Promise<BatchSummary>) & {
  readonly runtime: TidemarkRuntime<S, O>;
};

/**
 * Turns a processor into a Lambda handler for Kafka ESM events (Amazon MSK or self-managed):
 *
 *     export const handler = createKafkaHandler(processor);
 *
 * Call it at module scope: configuration is checked and clients are built once per container.
 */
export function createKafkaHandler<S extends StateDescriptors, O extends OutputDescriptors = NoOutputs>(
  processor: Processor<S, O>,
  options: TidemarkOptions = {},
): KafkaHandler<S, O> {
  const runtime = createRuntime(processor, options);
  const handler = (event: unknown, context: Partial<Context> = {}) => runtime.invoke(event, context);
  return Object.assign(handler, { runtime });
}
