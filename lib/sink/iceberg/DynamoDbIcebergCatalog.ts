/**
 * Iceberg's own DynamoDB catalog layout (Iceberg's `DynamoDbCatalog` and `DynamoDbTableOperations`,
 * aws module), so Spark, Flink and Trino configured with that catalog see and commit to the same
 * tables. One DynamoDB table (default name `iceberg`), string keys `identifier` (hash) and `namespace`
 * (range), a global secondary index `namespace-identifier` (namespace, identifier; keys only):
 *
 *   namespace item  identifier = "NAMESPACE"      namespace = "<ns>"   p.<property>…, v, created_at, updated_at
 *   table item      identifier = "<ns>.<table>"   namespace = "<ns>"
 *                   p.table_type = "ICEBERG", p.metadata_location, p.previous_metadata_location,
 *                   v = a fresh UUID on every change, created_at, updated_at (epoch millis, numbers)
 *
 * Creating a table is a PutItem conditioned on `attribute_not_exists(v)`; a commit writes
 * `<location>/metadata/<version+1, 5 digits>-<uuid>.metadata.json`, then one UpdateItem that sets
 * the new location (the old one becomes `p.previous_metadata_location`) and a new `v`, on the
 * condition `v = :v` — the `v` read with the metadata being replaced. The default table location is
 * `<warehouse>/<ns>.db/<table>`, or `<p.default_location of the namespace>/<table>`.
 */
import { randomUUID } from 'node:crypto';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ResourceInUseException,
  UpdateItemCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { IcebergError } from '../../errors.ts';
import { dynamoError } from '../../store/dynamodb/DynamoCommitStore.ts';
import type { CommitOutcome, IcebergCatalog, LoadedTable, TableIdentifier } from './catalog.ts';
import { tableName } from './catalog.ts';
import type { IcebergFileIO } from './fileIO.ts';
import {
  metadataDirectory,
  metadataVersion,
  metastoreMetadataFileName,
  parseTableMetadata,
  stringifyTableMetadata,
  type TableMetadata,
} from './metadata.ts';

export const DYNAMODB_CATALOG_DEFAULT_TABLE = 'iceberg';
const GSI_NAMESPACE_IDENTIFIER = 'namespace-identifier';
const NAMESPACE_IDENTIFIER = 'NAMESPACE';
const METADATA_LOCATION = 'p.metadata_location';
const PREVIOUS_METADATA_LOCATION = 'p.previous_metadata_location';
const TABLE_TYPE = 'p.table_type';
const DEFAULT_LOCATION = 'p.default_location';

export interface DynamoDbIcebergCatalogOptions {
  readonly client: DynamoDBClient;
  readonly io: IcebergFileIO;
  /** `s3://bucket/prefix`: tables of namespace `ns` go to `<warehouse>/<ns>.db/<table>`. */
  readonly warehouse: string;
  /** The catalog's DynamoDB table. Default `iceberg` (Iceberg's default `dynamodb.table-name`). */
  readonly tableName?: string;
}

export class DynamoDbIcebergCatalog implements IcebergCatalog {
  readonly tableName: string;
  private readonly client: DynamoDBClient;
  private readonly io: IcebergFileIO;
  private readonly warehouse: string;

  constructor(options: DynamoDbIcebergCatalogOptions) {
    this.client = options.client;
    this.io = options.io;
    this.warehouse = options.warehouse.replace(/\/+$/, '');
    this.tableName = options.tableName ?? DYNAMODB_CATALOG_DEFAULT_TABLE;
  }

  /** Creates the catalog's DynamoDB table when missing, as Iceberg's catalog does on first use. */
  async ensureCatalogTable(): Promise<'created' | 'exists'> {
    try {
      await this.client.send(new DescribeTableCommand({ TableName: this.tableName }));
      return 'exists';
    } catch (err) {
      if ((err as { name?: string }).name !== 'ResourceNotFoundException') {
        throw dynamoError('describe-table', this.tableName, err);
      }
    }
    try {
      await this.client.send(
        new CreateTableCommand({
          TableName: this.tableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: 'identifier', AttributeType: 'S' },
            { AttributeName: 'namespace', AttributeType: 'S' },
          ],
          KeySchema: [
            { AttributeName: 'identifier', KeyType: 'HASH' },
            { AttributeName: 'namespace', KeyType: 'RANGE' },
          ],
          GlobalSecondaryIndexes: [
            {
              IndexName: GSI_NAMESPACE_IDENTIFIER,
              KeySchema: [
                { AttributeName: 'namespace', KeyType: 'HASH' },
                { AttributeName: 'identifier', KeyType: 'RANGE' },
              ],
              Projection: { ProjectionType: 'KEYS_ONLY' },
            },
          ],
        }),
      );
    } catch (err) {
      if (!(err instanceof ResourceInUseException)) throw dynamoError('create-table', this.tableName, err);
      return 'exists';
    }
    await waitUntilTableExists({ client: this.client, maxWaitTime: 60 }, { TableName: this.tableName });
    return 'created';
  }

  /** Creates a namespace item (no change when it exists). */
  async createNamespace(namespace: string, properties: Readonly<Record<string, string>> = {}): Promise<void> {
    const now = String(Date.now());
    const item: Record<string, AttributeValue> = {
      identifier: { S: NAMESPACE_IDENTIFIER },
      namespace: { S: namespace },
      created_at: { N: now },
      updated_at: { N: now },
      v: { S: randomUUID() },
    };
    for (const [k, v] of Object.entries(properties)) item[`p.${k}`] = { S: v };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(v)',
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return;
      throw dynamoError('put-namespace', this.tableName, err);
    }
  }

  async defaultLocation(id: TableIdentifier): Promise<string> {
    const ns = await this.getItem(NAMESPACE_IDENTIFIER, id.namespace, 'get-namespace');
    const base = ns?.[DEFAULT_LOCATION]?.S;
    return base
      ? `${base.replace(/\/+$/, '')}/${id.name}`
      : `${this.warehouse}/${id.namespace}.db/${id.name}`;
  }

  async loadTable(id: TableIdentifier): Promise<LoadedTable | undefined> {
    const item = await this.getItem(tableName(id), id.namespace, 'get-table');
    if (!item) return undefined;
    const location = item[METADATA_LOCATION]?.S;
    const version = item.v?.S;
    if (!location || !version) {
      throw new IcebergError(`catalog item has no ${METADATA_LOCATION} or v`, { table: tableName(id) });
    }
    return {
      identifier: id,
      metadataLocation: location,
      metadata: await this.readMetadata(id, location),
      version,
    };
  }

  async createTable(id: TableIdentifier, metadata: TableMetadata): Promise<LoadedTable | undefined> {
    const location = `${metadataDirectory(metadata)}/${metastoreMetadataFileName(0)}`;
    await this.writeMetadataFile(id, location, metadata);
    const now = String(Date.now());
    const version = randomUUID();
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            identifier: { S: tableName(id) },
            namespace: { S: id.namespace },
            [TABLE_TYPE]: { S: 'ICEBERG' },
            [METADATA_LOCATION]: { S: location },
            created_at: { N: now },
            updated_at: { N: now },
            v: { S: version },
          },
          ConditionExpression: 'attribute_not_exists(v)',
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        // Best effort: an unreferenced file is harmless (a writer allowed to create tables but
        // not to delete files leaves it to orphan-file removal).
        await this.io.delete([location]).catch(() => {});
        return undefined;
      }
      throw dynamoError('create-table-item', this.tableName, err);
    }
    return { identifier: id, metadataLocation: location, metadata, version };
  }

  /**
   * The swap (see the module comment). Timeline of a commit:
   *   1. PUT <version+1>-<uuid>.metadata.json   (unique name: no other writer can produce it)
   *   2. UpdateItem … SET p.metadata_location = new, p.previous_metadata_location = base, v = fresh
   *      CONDITION v = base.v                   (the only decision point)
   *   3a. condition failed → another writer committed first: delete the file of step 1, 'conflict'
   *       (unless the item, returned with the failure, already names that file: the SDK retried
   *       a request whose first attempt succeeded)
   *   3b. any other failure → unknown outcome: rethrow, keep the file (the update may have landed)
   */
  async commitTable(base: LoadedTable, metadata: TableMetadata): Promise<CommitOutcome> {
    const next = Math.max(metadataVersion(base.metadataLocation), 0) + 1;
    const location = `${metadataDirectory(metadata)}/${metastoreMetadataFileName(next)}`;
    await this.writeMetadataFile(base.identifier, location, metadata);
    const version = randomUUID();
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { identifier: { S: tableName(base.identifier) }, namespace: { S: base.identifier.namespace } },
          UpdateExpression: 'SET #loc = :loc, #prev = :prev, #type = :type, updated_at = :now, v = :newv',
          ConditionExpression: 'v = :v',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          ExpressionAttributeNames: {
            '#loc': METADATA_LOCATION,
            '#prev': PREVIOUS_METADATA_LOCATION,
            '#type': TABLE_TYPE,
          },
          ExpressionAttributeValues: {
            ':loc': { S: location },
            ':prev': { S: base.metadataLocation },
            ':type': { S: 'ICEBERG' },
            ':now': { N: String(Date.now()) },
            ':newv': { S: version },
            ':v': { S: base.version },
          },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        // The SDK retries a request whose response was lost: the retry then fails the condition
        // because the first attempt already changed `v`. The item as it stands tells.
        const current = err.Item;
        if (current?.[METADATA_LOCATION]?.S === location && current.v?.S) {
          return {
            status: 'committed',
            table: {
              identifier: base.identifier,
              metadataLocation: location,
              metadata,
              version: current.v.S,
            },
          };
        }
        // A retry whose item names another file: the first attempt may have landed and another
        // writer committed on top of it before the retry went out. Unknown, not a conflict: a
        // conflict would delete the manifests of a snapshot the table now holds. The caller
        // reloads and looks for its snapshot (test/sink/iceberg/catalogLostResponse.repro.test.ts).
        if ((err.$metadata?.attempts ?? 1) > 1) {
          throw new IcebergError(
            'the swap was sent again after a lost response and found the table changed: whether the first attempt landed is unknown',
            { table: tableName(base.identifier), retriable: true, cause: err },
          );
        }
        await this.io.delete([location]);
        return { status: 'conflict' };
      }
      throw dynamoError('commit-table', this.tableName, err);
    }
    return {
      status: 'committed',
      table: { identifier: base.identifier, metadataLocation: location, metadata, version },
    };
  }

  /**
   * Creates a metadata file (its name is unique to this attempt). "Exists" with other bytes, or no
   * object at all, means S3 answered 409 to an SDK retry that met this attempt's first PUT still in
   * flight, which may never land: nothing may point to the file until it is there, so that is a
   * retriable failure before the swap (test/sink/iceberg/catalogLostResponse.repro.test.ts).
   */
  private async writeMetadataFile(
    id: TableIdentifier,
    location: string,
    metadata: TableMetadata,
  ): Promise<void> {
    const bytes = new TextEncoder().encode(stringifyTableMetadata(metadata));
    if (await this.io.put(location, bytes, { ifAbsent: true, contentType: 'application/json' })) return;
    const existing = await this.io.get(location);
    if (!existing || !Buffer.from(existing).equals(Buffer.from(bytes))) {
      throw new IcebergError(
        `metadata file ${location} is not there yet (its first PUT is still in flight)`,
        {
          table: tableName(id),
          retriable: true,
        },
      );
    }
  }

  private async getItem(identifier: string, namespace: string, operation: string) {
    try {
      const out = await this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: { identifier: { S: identifier }, namespace: { S: namespace } },
          ConsistentRead: true,
        }),
      );
      return out.Item;
    } catch (err) {
      throw dynamoError(operation, this.tableName, err);
    }
  }

  private async readMetadata(id: TableIdentifier, location: string): Promise<TableMetadata> {
    const bytes = await this.io.get(location);
    if (!bytes) {
      throw new IcebergError(`metadata file ${location} named by the catalog does not exist`, {
        table: tableName(id),
      });
    }
    return parseTableMetadata(new TextDecoder().decode(bytes), location);
  }
}
