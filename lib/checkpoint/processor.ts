import type { PoisonPolicy, TidemarkConfig } from '../config/config.ts';
import type { KafkaRecord } from '../event/types.ts';
import type { OutputDescriptors, OutputHandles } from '../output/types.ts';
import type { StateDescriptors, StateHandles } from '../state/descriptors.ts';

/** No outputs declared. */
// biome-ignore lint/complexity/noBannedTypes: an empty record of outputs
export type NoOutputs = {};

export interface ProcessContext<S extends StateDescriptors, O extends OutputDescriptors = NoOutputs> {
  /** State handles, scoped to the current record's key (keyed state) or to the task. */
  readonly state: StateHandles<S>;
  /** Output handles: `outputs.alerts.emit(value)` (rolled back if the record fails). */
  readonly outputs: OutputHandles<O>;
  /**
   * The state key of the current record (from `keyOf`), or null. Computed only when the processor
   * declares key-scoped state, gives its own `keyOf`, or reads this property.
   */
  readonly key: string | null;
  readonly pipeline: string;
  readonly topic: string;
  readonly partition: number;
}

/**
 * A stateful processor: the user's code. `process` is called once per record, in offset order
 * within each topic-partition, and must be synchronous and deterministic in its state changes.
 * Throwing marks the record as failed: its state changes and emitted outputs are rolled back, then
 * the poison policy applies — unless the error says `retriable: true`, in which case the invocation
 * fails and the ESM retries it (for transient failures, which must not be quarantined).
 */
export interface Processor<
  S extends StateDescriptors = StateDescriptors,
  O extends OutputDescriptors = NoOutputs,
> {
  /** Declared state, by name. */
  readonly state: S;
  /** Declared outputs, by name (see `lib/output/types.ts`). */
  readonly outputs?: O;
  /** The state key of a record. Default: the record key decoded as UTF-8 (null for a null key). */
  readonly keyOf?: (record: KafkaRecord) => string | null;
  readonly process: (record: KafkaRecord, ctx: ProcessContext<S, O>) => void;
  /** What happens to records that fail (see `TidemarkConfig.poisonPolicy`). */
  readonly poisonPolicy?: PoisonPolicy;
  /** Configuration given in code (the environment still takes precedence). */
  readonly config?: Partial<TidemarkConfig>;
}

/** Declares a processor (an identity function that keeps the state and output types). */
export function defineProcessor<S extends StateDescriptors, O extends OutputDescriptors = NoOutputs>(
  processor: Processor<S, O>,
): Processor<S, O> {
  if (typeof processor.process !== 'function') throw new TypeError('processor.process must be a function');
  if (typeof processor.state !== 'object' || processor.state === null) {
    throw new TypeError('processor.state must be an object of state descriptors');
  }
  if (processor.outputs !== undefined) {
    if (typeof processor.outputs !== 'object' || processor.outputs === null) {
      throw new TypeError('processor.outputs must be an object of output descriptors');
    }
    for (const [name, d] of Object.entries(processor.outputs)) {
      if (
        typeof d?.encode !== 'function' ||
        typeof d.createSink !== 'function' ||
        typeof d.sinkId !== 'string'
      ) {
        throw new TypeError(
          `processor.outputs.${name} is not an output descriptor (use kafkaOutput, dynamoOutput, …)`,
        );
      }
    }
  }
  return processor;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The default state key: the record key as UTF-8. Invalid UTF-8 throws (a poison record), because
 * replacing bytes would merge distinct keys.
 */
export function utf8Key(record: KafkaRecord): string | null {
  const key = record.key;
  if (key === null) return null;
  const s = key.toString('utf8');
  if (s.includes('\uFFFD')) STRICT_UTF8.decode(key);
  return s;
}
