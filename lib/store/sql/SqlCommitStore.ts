/**
 * `CommitStore` on PostgreSQL or MySQL/MariaDB: one row per task in `<prefix>_commits`, the commit
 * item in one JSON column (lib/checkpoint/commitRecordJson.ts) next to the columns the
 * compare-and-set and operators need (task, epoch, committed offset). The compare-and-set:
 *
 *   first commit (expected epoch 0)   INSERT …                  a duplicate key / 0 rows: lost
 *   any later one                     UPDATE … WHERE epoch = E  0 rows: lost
 *
 * A concurrent loser blocks on the winner's row lock, re-checks `epoch = E` once the winner commits
 * and matches 0 rows. The winner is then read with its own statement (lib/store/database/commitProtocol.ts).
 *
 * Attached writes (`AttachedWrites` whose `store` is this store's kind, `writes` of `SqlWrite`s) run in
 * the commit's own transaction, after the compare-and-set won and while it holds the row lock: a
 * losing attempt writes nothing. After a lost connection the commit may be attempted again, with its
 * writes: they are applied once or not at all, with the commit.
 */
import {
  decodeCommitRecord,
  encodeCommitRecord,
  MalformedRecordError,
} from '../../checkpoint/commitRecordJson.ts';
import type { CommitRecord, CommitStore, TaskId } from '../../checkpoint/stores.ts';
import { ConfigurationError, StoreError } from '../../errors.ts';
import { commitResolvingOutcome, withReconnect } from '../database/commitProtocol.ts';
import { isSqlWrite, type SqlDriver, type SqlSession, type SqlWrite } from './SqlDriver.ts';

type Attached = Parameters<CommitStore['commit']>[2];

/** Thrown inside a commit transaction to roll it back when the compare-and-set matched nothing. */
class LostRace extends Error {}

export class SqlCommitStore implements CommitStore {
  readonly kind: 'postgres' | 'mysql';
  private readonly driver: SqlDriver;

  constructor(driver: SqlDriver) {
    this.driver = driver;
    this.kind = driver.kind;
  }

  private decode(value: unknown, task: TaskId): CommitRecord {
    try {
      return decodeCommitRecord(value as string | object);
    } catch (err) {
      if (!(err instanceof MalformedRecordError)) throw err;
      throw new StoreError(
        this.kind,
        'read',
        `commit item of ${task.pipeline} ${task.topic}-${task.partition} is malformed: ${err.message}`,
        { retriable: false, cause: err },
      );
    }
  }

  async read(task: TaskId): Promise<CommitRecord | undefined> {
    return withReconnect(this.driver, 'read', async () => {
      const r = await this.driver.session((s) =>
        s.query(this.driver.statements.selectCommit, [task.pipeline, task.topic, task.partition]),
      );
      const row = r.rows[0];
      return row ? this.decode(row.record, task) : undefined;
    });
  }

  private writesOf(attached: Attached): readonly SqlWrite[] {
    if (attached === undefined) return [];
    const a = attached as { store?: unknown; writes?: unknown };
    if (a.store !== this.kind || !Array.isArray(a.writes) || !a.writes.every(isSqlWrite)) {
      throw new ConfigurationError(
        'attached',
        `the ${this.kind} commit store takes attached writes of store '${this.kind}' ({ sql, values } statements), got store ${JSON.stringify(a.store)}`,
      );
    }
    return a.writes as SqlWrite[];
  }

  async commit(next: CommitRecord, expectedEpoch: number, attached?: Attached): Promise<void> {
    const writes = this.writesOf(attached);
    const st = this.driver.statements;
    const record = encodeCommitRecord(next);
    const offset = next.committedOffset.toString();
    const key = [next.pipeline, next.topic, next.partition];
    const cas = (s: SqlSession) =>
      expectedEpoch === 0
        ? s.query(st.insertCommit, [...key, next.epoch, offset, record])
        : s.query(st.updateCommit, [next.epoch, offset, record, ...key, expectedEpoch]);
    const attempt = async (): Promise<'won' | 'lost'> => {
      if (writes.length === 0) {
        const r = await this.driver.session((s) => cas(s));
        return r.affected === 1 ? 'won' : 'lost';
      }
      try {
        await this.driver.transaction(async (s) => {
          const r = await cas(s);
          if (r.affected !== 1) throw new LostRace();
          for (const [i, w] of writes.entries()) {
            try {
              await s.query(w.sql, w.values ?? []);
            } catch (err) {
              throw this.attachedWriteFailed(i, writes.length, err);
            }
          }
        });
        return 'won';
      } catch (err) {
        if (err instanceof LostRace) return 'lost';
        throw err;
      }
    };
    await commitResolvingOutcome(this.driver, next, expectedEpoch, attempt, () => this.read(next));
  }

  /**
   * An attached write's own failure (rolled back with the commit). A duplicate key there is the
   * output table's, not the compare-and-set's: it must not read as a lost race (the task would be
   * restored and fail the same way), and it is not retriable. A lost connection stays a driver error
   * (the commit's outcome is unknown).
   */
  private attachedWriteFailed(index: number, count: number, err: unknown): unknown {
    const kind = this.driver.classify(err);
    if (kind === 'connection') return err;
    const base = this.driver.storeError('commit', err);
    return new StoreError(
      this.kind,
      'commit',
      `an output write attached to the commit failed (statement ${index + 1} of ${count}), the commit is rolled back: ${base.message.replace(/^\S+ commit: /, '')}`,
      { cause: err, retriable: kind === 'conflict' ? false : base.retriable },
    );
  }

  async probe(): Promise<void> {
    await withReconnect(this.driver, 'probe', () =>
      this.driver.session((s) => s.query(this.driver.statements.probe)),
    );
  }

  async *list(pipeline: string): AsyncIterable<CommitRecord> {
    const r = await withReconnect(this.driver, 'list', () =>
      this.driver.session((s) => s.query(this.driver.statements.listCommits, [pipeline])),
    );
    for (const row of r.rows) {
      yield this.decode(row.record, {
        pipeline,
        topic: String(row.topic),
        partition: Number(row.kafka_partition),
      });
    }
  }

  /** Creates the tables when missing (idempotent; `npx tidemark init`). */
  async ensureSchema(): Promise<'created' | 'exists'> {
    return withReconnect(this.driver, 'create-schema', async () => {
      try {
        await this.driver.session((s) => s.query(this.driver.statements.probe));
        return 'exists' as const;
      } catch (err) {
        if (this.driver.classify(err) !== 'missing') throw err;
      }
      const create = () =>
        this.driver.session(async (s) => {
          for (const ddl of this.driver.statements.schema) await s.query(ddl);
        });
      try {
        await create();
      } catch (err) {
        // Two `CREATE TABLE IF NOT EXISTS` racing (PostgreSQL: a duplicate type): the other one won.
        if (this.driver.classify(err) !== 'conflict') throw err;
        await create();
      }
      return 'created' as const;
    });
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}
