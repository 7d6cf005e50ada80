/**
 * The warm cache: the tasks whose last commit and state this container keeps in memory between
 * invocations, least recently used first, at most `warmCacheMaxTasks`. A task is *taken out* while
 * an invocation works on it and put back only once it is known to equal its last commit, so a failure
 * half-way never leaves a half-applied state behind for the next invocation.
 */
import type { TaskId } from './stores.ts';

export class WarmCache<T> {
  private readonly entries = new Map<string, T>();

  private readonly maxTasks: number;

  constructor(maxTasks: number) {
    this.maxTasks = maxTasks;
  }

  private static key(task: Pick<TaskId, 'topic' | 'partition'>): string {
    return `${task.topic}\u0000${task.partition}`;
  }

  /** Removes and returns the task's entry, if this container has one. */
  take(task: Pick<TaskId, 'topic' | 'partition'>): T | undefined {
    const key = WarmCache.key(task);
    const entry = this.entries.get(key);
    this.entries.delete(key);
    return entry;
  }

  /** Keeps the task's entry (most recently used), evicting the least recently used beyond the limit. */
  put(task: Pick<TaskId, 'topic' | 'partition'>, entry: T): void {
    const key = WarmCache.key(task);
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxTasks) this.entries.delete(this.entries.keys().next().value as string);
  }

  /** The kept entries, least recently used first (inspection only). */
  values(): IterableIterator<T> {
    return this.entries.values();
  }

  get size(): number {
    return this.entries.size;
  }
}
