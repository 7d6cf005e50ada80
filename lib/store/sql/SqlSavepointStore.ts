/**
 * `SavepointStore` on PostgreSQL or MySQL/MariaDB: a savepoint's meta item in `<prefix>_savepoints`
 * (one row, primary key pipeline + name: a name is taken once), its tasks in
 * `<prefix>_savepoint_tasks`. Items are JSON (lib/checkpoint/commitRecordJson.ts).
 */
import {
  decodeStoredJson,
  encodeStoredJson,
  fromStoredJson,
  MalformedRecordError,
} from '../../checkpoint/commitRecordJson.ts';
import {
  compareTasks,
  type Savepoint,
  type SavepointMeta,
  type SavepointStore,
  type SavepointTask,
} from '../../checkpoint/savepoints.ts';
import { OperationError, StoreError } from '../../errors.ts';
import { withReconnect } from '../database/commitProtocol.ts';
import type { SqlDriver } from './SqlDriver.ts';

/** A stored JSON item: text (MySQL) or already parsed (PostgreSQL jsonb). */
export function storedItem<T>(
  store: string,
  what: string,
  value: unknown,
  check: (v: Record<string, unknown>) => boolean,
): T {
  let v: unknown;
  try {
    v = typeof value === 'string' ? decodeStoredJson(value) : fromStoredJson(value);
  } catch (err) {
    if (!(err instanceof MalformedRecordError)) throw err;
    v = undefined;
  }
  if (typeof v !== 'object' || v === null || !check(v as Record<string, unknown>)) {
    throw new StoreError(store as 'postgres', 'read', `${what} is malformed`, { retriable: false });
  }
  return v as T;
}

export const isMeta = (v: Record<string, unknown>) =>
  typeof v.pipeline === 'string' &&
  typeof v.name === 'string' &&
  (v.status === 'creating' || v.status === 'complete') &&
  typeof v.topics === 'object' &&
  Number.isSafeInteger(v.tasks);

export const isTask = (v: Record<string, unknown>) =>
  typeof v.pipeline === 'string' &&
  typeof v.topic === 'string' &&
  Number.isSafeInteger(v.partition) &&
  (v.committedOffset === null || typeof v.committedOffset === 'bigint') &&
  Array.isArray(v.chain);

export function nameTaken(meta: SavepointMeta, cause?: unknown): OperationError {
  return new OperationError(
    `savepoint ${meta.name} already exists in pipeline ${meta.pipeline} (delete it first, or pick another name)`,
    cause === undefined ? {} : { cause },
  );
}

export class SqlSavepointStore implements SavepointStore {
  private readonly driver: SqlDriver;

  constructor(driver: SqlDriver) {
    this.driver = driver;
  }

  private run(operation: string, sql: string, values: readonly unknown[]) {
    return withReconnect(this.driver, operation, () => this.driver.session((s) => s.query(sql, values)));
  }

  async create(meta: SavepointMeta): Promise<void> {
    let affected: number;
    try {
      affected = (
        await this.run('savepoint-create', this.driver.statements.insertSavepoint, [
          meta.pipeline,
          meta.name,
          encodeStoredJson(meta),
        ])
      ).affected;
    } catch (err) {
      if (err instanceof StoreError && this.driver.classify(err.cause) === 'conflict')
        throw nameTaken(meta, err);
      throw err;
    }
    if (affected !== 1) throw nameTaken(meta);
  }

  async putTask(task: SavepointTask): Promise<void> {
    await this.run('savepoint-put-task', this.driver.statements.upsertSavepointTask, [
      task.pipeline,
      task.name,
      task.topic,
      task.partition,
      encodeStoredJson(task),
    ]);
  }

  async updateMeta(meta: SavepointMeta): Promise<void> {
    await this.run('savepoint-update', this.driver.statements.upsertSavepoint, [
      meta.pipeline,
      meta.name,
      encodeStoredJson(meta),
    ]);
  }

  async read(pipeline: string, name: string): Promise<Savepoint | undefined> {
    const m = await this.run('savepoint-read', this.driver.statements.selectSavepoint, [pipeline, name]);
    const row = m.rows[0];
    if (!row) return undefined;
    const meta = storedItem<SavepointMeta>(
      this.driver.kind,
      `savepoint ${name} of ${pipeline}`,
      row.meta,
      isMeta,
    );
    const t = await this.run('savepoint-read', this.driver.statements.selectSavepointTasks, [pipeline, name]);
    const tasks = t.rows.map((r) =>
      storedItem<SavepointTask>(
        this.driver.kind,
        `a task of savepoint ${name} of ${pipeline}`,
        r.task,
        isTask,
      ),
    );
    return { meta, tasks: tasks.sort(compareTasks) };
  }

  async *list(pipeline: string): AsyncIterable<SavepointMeta> {
    const r = await this.run('savepoint-list', this.driver.statements.listSavepoints, [pipeline]);
    for (const row of r.rows) {
      yield storedItem<SavepointMeta>(this.driver.kind, `a savepoint of ${pipeline}`, row.meta, isMeta);
    }
  }

  async delete(pipeline: string, name: string): Promise<void> {
    // Task rows first, the meta row last: an interrupted delete still lists the savepoint.
    await this.run('savepoint-delete', this.driver.statements.deleteSavepointTasks, [pipeline, name]);
    await this.run('savepoint-delete', this.driver.statements.deleteSavepoint, [pipeline, name]);
  }
}
