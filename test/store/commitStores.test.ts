/** The commit store contract (commitStore.contract.ts) on every store Tidemark has. */
import { afterAll, beforeAll } from 'vitest';
import { createDynamoDBClient } from '../../lib/store/clients.ts';
import { DynamoCommitStore } from '../../lib/store/dynamodb/DynamoCommitStore.ts';
import { DynamoSavepointStore } from '../../lib/store/dynamodb/DynamoSavepointStore.ts';
import { MemorySavepointStore } from '../../lib/store/memory/MemorySavepointStore.ts';
import { MemoryCommitStore } from '../../lib/store/memory/memoryStores.ts';
import { dynamoLite } from '../helpers/liteClients.ts';
import { type ContractBackend, commitStoreContract } from './commitStore.contract.ts';
import { type DatabaseBackend, mariadbBackend, postgresBackend, redisBackend } from './databases.ts';

commitStoreContract('memory', () => ({
  commits: new MemoryCommitStore(),
  savepoints: new MemorySavepointStore(),
}));

const ddb = createDynamoDBClient();
afterAll(() => ddb.destroy());
const table = () => process.env.TIDEMARK_TABLE!;
commitStoreContract(
  'DynamoDB Local',
  (): ContractBackend => ({
    commits: new DynamoCommitStore({ client: ddb, table: table() }),
    savepoints: new DynamoSavepointStore({ client: ddb, table: table() }),
    missing: () => ({
      commits: new DynamoCommitStore({ client: ddb, table: `no-such-table-${Date.now()}` }),
      close: async () => {},
    }),
    unreachable: () => {
      const client = createDynamoDBClient({
        ...process.env,
        AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:9',
      });
      return {
        commits: new DynamoCommitStore({ client, table: table() }),
        close: async () => client.destroy(),
      };
    },
  }),
);

// The same on the lightweight transport the Lambda handler uses (savepoints stay on the SDK).
commitStoreContract(
  'DynamoDB Local, lightweight client',
  (): ContractBackend => ({
    commits: new DynamoCommitStore({ client: dynamoLite(), table: table() }),
    savepoints: new DynamoSavepointStore({ client: ddb, table: table() }),
    missing: () => ({
      commits: new DynamoCommitStore({ client: dynamoLite(), table: `no-such-table-${Date.now()}` }),
      close: async () => {},
    }),
    unreachable: () => ({
      commits: new DynamoCommitStore({
        client: dynamoLite({ ...process.env, AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:9' }),
        table: table(),
      }),
      close: async () => {},
    }),
  }),
);

for (const [name, start] of [
  ['PostgreSQL', postgresBackend],
  ['MariaDB', mariadbBackend],
  ['Redis', redisBackend],
] as const) {
  let backend: DatabaseBackend | undefined;
  beforeAll(async () => {
    backend = await start();
  });
  afterAll(async () => {
    await backend?.close();
  });
  commitStoreContract(name, () => backend!);
}
