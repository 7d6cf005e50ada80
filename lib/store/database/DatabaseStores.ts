/** What a database store module (PostgreSQL, MySQL/MariaDB, Redis) gives: both stores on one connection pool. */
import type { SavepointStore } from '../../checkpoint/savepoints.ts';
import type { CommitStore } from '../../checkpoint/stores.ts';

export interface DatabaseStores {
  readonly commits: CommitStore;
  readonly savepoints: SavepointStore;
  /**
   * Creates the tables when missing (SQL; idempotent), or checks the server is fit (Redis: eviction
   * policy). `npx tidemark init`.
   */
  ensureSchema(): Promise<'created' | 'exists'>;
  /** Closes every connection (CLI, tests; a Lambda container keeps them). */
  close(): Promise<void>;
}
