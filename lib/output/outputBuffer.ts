/**
 * A task's emitted outputs for the epoch being built, with the same per-record rollback as the
 * state's undo journal: a record that throws leaves none of its emits behind. Sequence numbers are
 * assigned in emit order over all outputs of the task-epoch and stay contiguous (a rolled-back
 * record's numbers are reused by the next record).
 */
import { StateError } from '../errors.ts';
import type {
  EmitContext,
  OutputDescriptor,
  OutputDescriptors,
  OutputEntry,
  OutputHandle,
  OutputHandles,
  OutputPart,
} from './types.ts';

interface Slot {
  readonly name: string;
  readonly descriptor: OutputDescriptor;
  readonly entries: OutputEntry[];
}

export class OutputBuffer<O extends OutputDescriptors = OutputDescriptors> {
  private readonly slots: Slot[];
  /** Emits in order: the slot of each (for rollback). */
  private readonly order: Slot[] = [];
  private recordStart = 0;
  private readonly base: Omit<EmitContext, 'offset' | 'key'>;
  private offset = -1n;
  private key: string | null = null;
  /** Built on the first emit of a record (most records emit nothing: no allocation for them). */
  private context: EmitContext | undefined;
  readonly handles: OutputHandles<O>;

  constructor(descriptors: O, context: Omit<EmitContext, 'offset' | 'key'>) {
    this.base = context;
    this.slots = Object.entries(descriptors).map(([name, descriptor]) => ({ name, descriptor, entries: [] }));
    const handles: Record<string, OutputHandle<unknown>> = {};
    for (const slot of this.slots) handles[slot.name] = { emit: (value: unknown) => this.emit(slot, value) };
    this.handles = Object.freeze(handles) as OutputHandles<O>;
  }

  /** What `encode` sees about the current record. */
  get emitContext(): EmitContext {
    this.context ??= { ...this.base, offset: this.offset, key: this.key };
    return this.context;
  }

  /** Whether the processor declared any output. */
  get declared(): boolean {
    return this.slots.length > 0;
  }

  /** Outputs emitted so far in this epoch. */
  get size(): number {
    return this.order.length;
  }

  private emit(slot: Slot, value: unknown): void {
    let entry: unknown;
    try {
      entry = slot.descriptor.encode(value, this.emitContext);
    } catch (err) {
      throw new StateError(
        `output '${slot.name}': the value cannot be encoded (${err instanceof Error ? err.message : String(err)})`,
        { cause: err },
      );
    }
    slot.entries.push({ seq: this.order.length, entry });
    this.order.push(slot);
  }

  /** Starts a record (its emits can be rolled back until `commitRecord`). */
  beginRecord(offset: bigint, key: string | null): void {
    this.recordStart = this.order.length;
    this.offset = offset;
    this.key = key;
    this.context = undefined;
  }

  commitRecord(): void {
    this.recordStart = this.order.length;
  }

  /** Drops every emit since `beginRecord`. */
  rollbackRecord(): void {
    this.rollbackTo(this.recordStart);
  }

  /** Changes the key `encode` sees, within the current record (a timer firing after it). */
  setKey(key: string | null): void {
    if (this.key !== key) {
      this.key = key;
      this.context = undefined;
    }
  }

  /** A point of the current record to roll back to (`rollbackTo`), e.g. before a timer fires. */
  mark(): number {
    return this.order.length;
  }

  /** Drops every emit since `mark` returned `mark`. */
  rollbackTo(mark: number): void {
    while (this.order.length > mark) this.order.pop()!.entries.pop();
  }

  /** The epoch's outputs, by declared output (those with entries only), and an empty buffer. */
  take(): OutputPart[] {
    const parts: OutputPart[] = [];
    for (const slot of this.slots) {
      if (slot.entries.length === 0) continue;
      parts.push({ name: slot.name, descriptor: slot.descriptor, entries: slot.entries.splice(0) });
    }
    this.order.length = 0;
    this.recordStart = 0;
    return parts;
  }

  /** Drops everything emitted in the epoch (its state is being dropped too). */
  clear(): void {
    this.take();
  }
}
