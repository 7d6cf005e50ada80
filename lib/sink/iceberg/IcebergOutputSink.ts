/**
 * The Iceberg output sink: delivers a committed task-epoch's rows as staged data files. It never
 * commits to the table itself (the scheduled committer does, many epochs at once), so the table's
 * commit rate does not follow the epoch rate.
 *
 *   step                                   | a crash here leaves…                     | the redelivery…
 *   ---------------------------------------+------------------------------------------+---------------------------------------
 *   1 epoch ≤ the task's progress in the   | nothing                                  | skips it again
 *     table (read when the table was       |                                          |
 *     opened) → in the table: done         |                                          |
 *   2 staged record there → done           | nothing                                  | finds it: done
 *   3 PUT the Parquet data files (keys     | some files, no record: not in the table, | rewrites the same keys with the same
 *     derived from task, epoch and bytes)  | not staged (orphans until redelivered)   | bytes
 *   4 create the staged record             | the record: delivered                    | finds it (step 2)
 *     (If-None-Match: *)                   |                                          |
 *
 * Idempotence rests on the staged record until the committer commits the epoch, then on the
 * table's progress, which never expires: a redelivery after the committer removed the record finds
 * the epoch in the progress the next cold start reads, or stages it again, and the committer drops
 * an epoch the table already holds. So the outbox never needs to be settled.
 */
import type { TaskId } from '../../checkpoint/stores.ts';
import { ConfigurationError } from '../../errors.ts';
import type { Delivery, Sink, SinkEnvironment } from '../../output/types.ts';
import { type ResolvedIcebergOutputOptions, schemaFingerprint } from './icebergOutput.ts';
import { taskKey } from './metadata.ts';
import { type OpenedOutputTable, openIcebergOutputTable } from './outputTable.ts';

export class IcebergOutputSink implements Sink {
  private readonly env: SinkEnvironment;
  private readonly options: ResolvedIcebergOutputOptions;
  private readonly fingerprint: string;
  private opened: Promise<OpenedOutputTable> | undefined;
  /** Per task, the last epoch the table was seen to hold (only grows). */
  private readonly inTable = new Map<string, number>();
  /** Deliveries skipped because the table already held their epoch (redeliveries). */
  skipped = 0;

  constructor(env: SinkEnvironment, options: ResolvedIcebergOutputOptions) {
    this.env = env;
    this.options = options;
    this.fingerprint = schemaFingerprint(options.schema);
  }

  /** The table, opened once per container (again after a failed open). */
  table(): Promise<OpenedOutputTable> {
    if (!this.opened) {
      const opened = openIcebergOutputTable(this.options, { env: this.env.env, pipeline: this.env.pipeline });
      this.opened = opened;
      opened.then(
        (o) => {
          for (const [task, p] of o.table.progressAtOpen) this.note(task, p.epoch);
        },
        () => {
          if (this.opened === opened) this.opened = undefined;
        },
      );
    }
    return this.opened;
  }

  private note(task: string, epoch: number): void {
    if (epoch > (this.inTable.get(task) ?? 0)) this.inTable.set(task, epoch);
  }

  async deliver(delivery: Delivery): Promise<void> {
    for (const part of delivery.parts) {
      const other = part.descriptor.options as unknown as ResolvedIcebergOutputOptions;
      if (other !== this.options && schemaFingerprint(other.schema) !== this.fingerprint) {
        throw new ConfigurationError(
          `processor.outputs.${part.name}`,
          `Iceberg outputs writing table ${this.options.identifier.namespace}.${this.options.identifier.name} declare different schemas`,
        );
      }
    }
    const { table } = await this.table();
    const task: TaskId = delivery.task;
    if (delivery.epoch <= (this.inTable.get(taskKey(task)) ?? 0)) {
      this.skipped++;
      return;
    }
    const rows = delivery.parts.flatMap((p) =>
      p.entries.map((e) => e.entry as Readonly<Record<string, unknown>>),
    );
    if (rows.length === 0) return;
    await table.writeDataFiles(task, delivery.epoch, rows, { committedOffset: delivery.committedOffset });
  }

  async close(): Promise<void> {
    const opened = this.opened;
    this.opened = undefined;
    if (opened) (await opened.catch(() => undefined))?.close();
  }
}
