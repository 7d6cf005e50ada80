/**
 * The PostgreSQL commit and savepoint stores (PostgreSQL, Aurora PostgreSQL, RDS Proxy), sharing one
 * pool. Loaded only when `TIDEMARK_COMMIT_STORE=postgres` (lib/store/stores.ts).
 */
import type { DatabaseStores } from '../database/DatabaseStores.ts';
import { type DatabaseStoreOptions, withDefaults } from '../database/options.ts';
import { SqlCommitStore } from '../sql/SqlCommitStore.ts';
import { SqlSavepointStore } from '../sql/SqlSavepointStore.ts';
import { PostgresDriver } from './PostgresDriver.ts';

export function createPostgresStores(options: DatabaseStoreOptions): DatabaseStores {
  const driver = new PostgresDriver(withDefaults(options));
  const commits = new SqlCommitStore(driver);
  return {
    commits,
    savepoints: new SqlSavepointStore(driver),
    ensureSchema: () => commits.ensureSchema(),
    close: () => driver.close(),
  };
}
