/**
 * An in-memory sink for `TestDriver`: it plays the downstream system, remembering what each output
 * received. It keeps the property every real sink guarantees — a delivery of a (task, epoch) that
 * already happened changes nothing — so a test sees exactly what a reader of the real system would
 * see after restarts, redeliveries and lost races. Outputs of kinds that commit inside the commit
 * store's transaction in production (`dynamodb`, `sql`) are attached to the memory store's commit,
 * as one atomic step with it.
 */
import type { TaskId } from '../checkpoint/stores.ts';
import {
  type AttachedWrites,
  type Delivery,
  type OutputId,
  outputIdString,
  type Sink,
} from '../output/types.ts';

/** One output as a downstream reader sees it. */
export interface ReceivedOutput<T = unknown> {
  /** `pipeline/topic/partition/epoch/seq`. */
  readonly id: string;
  readonly outputId: OutputId;
  /** The value as a reader gets it back (the descriptor's `decode`), else the encoded entry. */
  readonly value: T;
  /** The encoded entry, as the real sink would write it. */
  readonly entry: unknown;
}

const IN_COMMIT_KINDS = new Set(['dynamodb', 'sql']);

export class MemorySink implements Sink {
  /** Received outputs by output name, in the order they became visible. */
  readonly received = new Map<string, ReceivedOutput[]>();
  /** Deliveries that found their epoch already there (redeliveries made harmless). */
  duplicateDeliveries = 0;
  private readonly seen = new Set<string>();
  private readonly inCommit: boolean;

  /** `inCommit`: attach outputs of in-commit kinds to the (memory) commit. */
  constructor(options: { inCommit: boolean }) {
    this.inCommit = options.inCommit;
  }

  attach(delivery: Delivery): AttachedWrites | undefined {
    if (!this.inCommit || !delivery.parts.every((p) => IN_COMMIT_KINDS.has(p.descriptor.kind)))
      return undefined;
    return { store: 'memory', writes: [() => this.receive(delivery)] };
  }

  async deliver(delivery: Delivery): Promise<void> {
    await Promise.resolve();
    this.receive(delivery);
  }

  private receive(delivery: Delivery): void {
    const t: TaskId = delivery.task;
    const key = `${t.pipeline}\u0000${t.topic}\u0000${t.partition}\u0000${delivery.epoch}`;
    if (this.seen.has(key)) {
      this.duplicateDeliveries++;
      return;
    }
    this.seen.add(key);
    for (const part of delivery.parts) {
      const list = this.received.get(part.name) ?? [];
      for (const e of part.entries) {
        const outputId: OutputId = { ...t, epoch: delivery.epoch, seq: e.seq };
        list.push({
          id: outputIdString(outputId),
          outputId,
          value: part.descriptor.decode ? part.descriptor.decode(e.entry) : e.entry,
          entry: e.entry,
        });
      }
      this.received.set(part.name, list);
    }
  }
}
