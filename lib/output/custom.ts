/**
 * `customOutput`: outputs delivered by your own function (SQS, EventBridge, HTTP, …), AT LEAST ONCE.
 *
 * Tidemark cannot make a destination it knows nothing about idempotent, so it gives every output a
 * stable id (`pipeline/topic/partition/epoch/seq`, the same on every redelivery) and redelivers an
 * epoch's outputs until `deliver` resolved for all of them. A retry after a failed `deliver`, a
 * container that restores the task (cold start, lost race) and a container paused after its
 * delivery began all deliver the WHOLE epoch again, so a receiver sees some outputs more than once
 * and must deduplicate on the id (docs/outputs.md#custom). Outputs of an epoch that did not commit
 * are never delivered; epochs of a task are delivered in order.
 */
import { OutputDeliveryError, TidemarkError } from '../errors.ts';
import type { Delivery, OutputDescriptor, OutputId, OutputPart, Sink } from './types.ts';
import { outputIdString } from './types.ts';

/** One output as `deliver` receives it. */
export interface CustomOutputMessage<T> {
  /** `pipeline/topic/partition/epoch/seq`: the same on every redelivery. Deduplicate on it. */
  readonly id: string;
  readonly outputId: OutputId;
  /** The emitted value as JSON round-trips it (a `Date` arrives as its ISO string). */
  readonly value: T;
  /** The value's JSON text. */
  readonly json: string;
}

/** What one `deliver` call receives: consecutive outputs of one output, one task and one epoch. */
export interface CustomOutputBatch<T> {
  /** The output's declared name. */
  readonly output: string;
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  /** In emit order; at most `batchSize`. */
  readonly messages: readonly CustomOutputMessage<T>[];
}

export interface CustomOutputOptions<T> {
  /**
   * Sends a batch downstream. Resolve only once the destination has every message of it; reject (or
   * throw) otherwise, and the whole epoch is delivered again later. Called for one batch at a time.
   */
  readonly deliver: (batch: CustomOutputBatch<T>) => Promise<void>;
  /** Messages per `deliver` call (SQS `SendMessageBatch` takes 10, EventBridge `PutEvents` 10). Default 100. */
  readonly batchSize?: number;
}

export const CUSTOM_OUTPUT_DEFAULTS = { batchSize: 100 } as const;

type CustomOptions = {
  readonly deliver: (batch: CustomOutputBatch<unknown>) => Promise<void>;
  readonly batchSize: number;
};

/**
 * Declares an output delivered by `options.deliver`, at least once, each value with its stable id.
 * A value `JSON.stringify` cannot serialize (a bigint, a cycle, `undefined`) fails the record.
 */
export function customOutput<T>(options: CustomOutputOptions<T>): OutputDescriptor<T, string, T> {
  if (typeof options?.deliver !== 'function') throw new TypeError('customOutput: deliver must be a function');
  const batchSize = options.batchSize ?? CUSTOM_OUTPUT_DEFAULTS.batchSize;
  if (!Number.isSafeInteger(batchSize) || batchSize <= 0) {
    throw new TypeError(`customOutput: batchSize must be a positive integer, got ${batchSize}`);
  }
  const resolved: CustomOptions = {
    deliver: options.deliver as CustomOptions['deliver'],
    batchSize,
  };
  return {
    kind: 'custom',
    // One sink per container serves every custom output (each part carries its own `deliver`).
    sinkId: 'custom',
    encode(value: T): string {
      const json = JSON.stringify(value);
      if (typeof json !== 'string') throw new TypeError('the value has no JSON form');
      return json;
    },
    decode: (entry: string) => JSON.parse(entry),
    createSink: () => new CustomSink(),
    options: resolved,
  };
}

/** Calls each output's `deliver`, batch after batch, in emit order. Idempotence is the receiver's. */
export class CustomSink implements Sink {
  async deliver(delivery: Delivery): Promise<void> {
    for (const part of delivery.parts) await this.deliverPart(delivery, part);
  }

  private async deliverPart(delivery: Delivery, part: OutputPart): Promise<void> {
    const { deliver, batchSize } = part.descriptor.options as CustomOptions;
    const { task, epoch } = delivery;
    for (let i = 0; i < part.entries.length; i += batchSize) {
      const messages = part.entries.slice(i, i + batchSize).map((e): CustomOutputMessage<unknown> => {
        const outputId: OutputId = { ...task, epoch, seq: e.seq };
        const json = e.entry as string;
        return { id: outputIdString(outputId), outputId, value: JSON.parse(json), json };
      });
      const batch: CustomOutputBatch<unknown> = {
        output: part.name,
        pipeline: task.pipeline,
        topic: task.topic,
        partition: task.partition,
        epoch,
        messages,
      };
      try {
        await deliver(batch);
      } catch (err) {
        // Always retriable: the epoch is committed, its outputs must get through eventually.
        throw new OutputDeliveryError(
          `custom output '${part.name}'`,
          err instanceof Error
            ? `${err instanceof TidemarkError ? '' : `${err.name}: `}${err.message}`
            : String(err),
          { cause: err, retriable: true },
        );
      }
    }
  }
}
