/**
 * The sink of every SQL output of a processor (docs/outputs.md#sql). It never writes anything itself:
 * `attach` turns an epoch's rows into statements in the commit store's dialect, and the commit store
 * (lib/store/sql/SqlCommitStore.ts) runs them in the commit's own transaction, after its
 * compare-and-set won and while it holds the task's row lock:
 *
 *   BEGIN ─ UPDATE commits … WHERE epoch = E (1 row, or 0: lost, ROLLBACK, nothing written)
 *         ─ DELETE … / INSERT … ON CONFLICT … (this epoch's rows) ─ COMMIT
 *
 * So the rows commit with the epoch or not at all, and a task's epochs reach the table in commit
 * order. There is no after-commit path: `deliver` is never called for these outputs, and a SQL
 * output with another commit store is refused at cold start (`sqlOutput`'s check).
 */
import { ConfigurationError, OutputDeliveryError } from '../../errors.ts';
import type { AttachedWrites, Delivery, Sink, SinkEnvironment } from '../../output/types.ts';
import { sqlDialect } from './dialect.ts';
import { checkSqlCommitStore } from './sqlOutput.ts';
import { sqlStatements } from './statements.ts';

export class SqlOutputSink implements Sink {
  private readonly env: SinkEnvironment;

  constructor(env: SinkEnvironment) {
    this.env = env;
  }

  attach(delivery: Delivery): AttachedWrites {
    const dialect = checkSqlCommitStore(this.env);
    return { store: dialect, writes: sqlStatements(sqlDialect(dialect), delivery) };
  }

  async deliver(delivery: Delivery): Promise<void> {
    // Only an outbox written by a build that delivered SQL outputs after the commit could get here.
    throw new OutputDeliveryError(
      'sql',
      `${delivery.task.topic}-${delivery.task.partition} epoch ${delivery.epoch}: SQL outputs commit with the epoch only; an outbox holding them cannot be delivered`,
      { retriable: false, cause: new ConfigurationError('sqlOutput', 'no after-commit path') },
    );
  }
}
