/**
 * The MySQL/MariaDB commit and savepoint stores (MySQL 8, MariaDB, Aurora MySQL, RDS Proxy), sharing
 * one pool. Loaded only when `TIDEMARK_COMMIT_STORE=mysql` (lib/store/stores.ts).
 */
import type { DatabaseStores } from '../database/DatabaseStores.ts';
import { type DatabaseStoreOptions, withDefaults } from '../database/options.ts';
import { SqlCommitStore } from '../sql/SqlCommitStore.ts';
import { SqlSavepointStore } from '../sql/SqlSavepointStore.ts';
import { MysqlDriver } from './MysqlDriver.ts';

export function createMysqlStores(options: DatabaseStoreOptions): DatabaseStores {
  const driver = new MysqlDriver(withDefaults(options));
  const commits = new SqlCommitStore(driver);
  return {
    commits,
    savepoints: new SqlSavepointStore(driver),
    ensureSchema: () => commits.ensureSchema(),
    close: () => driver.close(),
  };
}
