import {
  compareTasks,
  type Savepoint,
  type SavepointMeta,
  type SavepointStore,
  type SavepointTask,
} from '../../checkpoint/savepoints.ts';
import { OperationError } from '../../errors.ts';

/** In-memory `SavepointStore` (unit tests): the same contract as the DynamoDB one. */
export class MemorySavepointStore implements SavepointStore {
  readonly savepoints = new Map<string, { meta: SavepointMeta; tasks: Map<string, SavepointTask> }>();

  private id(pipeline: string, name: string): string {
    return `${pipeline}\u0000${name}`;
  }

  async create(meta: SavepointMeta): Promise<void> {
    await Promise.resolve();
    const id = this.id(meta.pipeline, meta.name);
    if (this.savepoints.has(id)) {
      throw new OperationError(
        `savepoint ${meta.name} already exists in pipeline ${meta.pipeline} (delete it first, or pick another name)`,
      );
    }
    this.savepoints.set(id, { meta: structuredClone(meta), tasks: new Map() });
  }

  async putTask(task: SavepointTask): Promise<void> {
    await Promise.resolve();
    const s = this.savepoints.get(this.id(task.pipeline, task.name));
    // DynamoDB would write an item without its meta item: keep the same (lenient) behaviour.
    if (!s) {
      throw new OperationError(`savepoint ${task.name} of pipeline ${task.pipeline} has no meta item`);
    }
    s.tasks.set(`${task.topic}\u0000${task.partition}`, structuredClone(task));
  }

  async updateMeta(meta: SavepointMeta): Promise<void> {
    await Promise.resolve();
    const id = this.id(meta.pipeline, meta.name);
    const s = this.savepoints.get(id);
    if (s) s.meta = structuredClone(meta);
    else this.savepoints.set(id, { meta: structuredClone(meta), tasks: new Map() });
  }

  async read(pipeline: string, name: string): Promise<Savepoint | undefined> {
    await Promise.resolve();
    const s = this.savepoints.get(this.id(pipeline, name));
    if (!s) return undefined;
    return structuredClone({ meta: s.meta, tasks: [...s.tasks.values()].sort(compareTasks) });
  }

  async *list(pipeline: string): AsyncIterable<SavepointMeta> {
    await Promise.resolve();
    for (const s of this.savepoints.values()) if (s.meta.pipeline === pipeline) yield structuredClone(s.meta);
  }

  async delete(pipeline: string, name: string): Promise<void> {
    await Promise.resolve();
    this.savepoints.delete(this.id(pipeline, name));
  }
}
