/**
 * Opens the table of an `icebergOutput`: its catalog and file IO from the output's options and the
 * environment (`icebergTarget`), then `IcebergTable.open` (creating the table, and in the DynamoDB
 * catalog its namespace, when asked). Shared by the sink, the scheduled committer and the harness.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { createDynamoDBClient, createS3Client } from '../../store/clients.ts';
import type { IcebergCatalog } from './catalog.ts';
import { DynamoDbIcebergCatalog } from './DynamoDbIcebergCatalog.ts';
import { S3FileIO } from './fileIO.ts';
import { IcebergTable } from './IcebergTable.ts';
import { type IcebergTarget, icebergTarget, type ResolvedIcebergOutputOptions } from './icebergOutput.ts';
import { S3HadoopCatalog } from './S3HadoopCatalog.ts';

export interface OpenedOutputTable {
  readonly table: IcebergTable;
  readonly catalog: IcebergCatalog;
  readonly target: IcebergTarget;
  /** Releases the clients opened for it (not those the options supplied). */
  close(): void;
}

/** A DynamoDB catalog that creates the namespace item before a table (Iceberg's catalog requires it). */
function withNamespace(catalog: DynamoDbIcebergCatalog): IcebergCatalog {
  return {
    loadTable: (id) => catalog.loadTable(id),
    defaultLocation: (id) => catalog.defaultLocation(id),
    commitTable: (base, m) => catalog.commitTable(base, m),
    createTable: async (id, m) => {
      await catalog.createNamespace(id.namespace);
      return catalog.createTable(id, m);
    },
  };
}

export async function openIcebergOutputTable(
  options: ResolvedIcebergOutputOptions,
  context: { readonly env: Readonly<Record<string, string | undefined>>; readonly pipeline: string },
): Promise<OpenedOutputTable> {
  const { env, pipeline } = context;
  const target = icebergTarget(options, env);
  const owned: Array<S3Client | DynamoDBClient> = [];
  const s3 = options.clients?.s3 ?? (options.io ? undefined : createS3Client(env));
  if (s3 && !options.clients?.s3) owned.push(s3);
  const close = () => {
    for (const c of owned) c.destroy();
  };
  try {
    const io = options.io ?? new S3FileIO({ client: s3 as S3Client });
    let catalog: IcebergCatalog;
    if (typeof options.catalog === 'function') catalog = await options.catalog({ io, env });
    else if (target.kind === 's3') catalog = new S3HadoopCatalog({ io, warehouse: target.warehouse });
    else if (target.kind === 'dynamodb') {
      const client = options.clients?.dynamodb ?? createDynamoDBClient(env);
      if (!options.clients?.dynamodb) owned.push(client);
      catalog = withNamespace(
        new DynamoDbIcebergCatalog({
          client,
          io,
          warehouse: target.warehouse,
          tableName: target.catalogTable,
        }),
      );
    } else if (target.kind === 'rest') {
      const { RestIcebergCatalog } = await import('./RestIcebergCatalog.ts');
      catalog = new RestIcebergCatalog({
        uri: target.uri,
        ...(target.warehouse ? { warehouse: target.warehouse } : {}),
        signing: target.signing,
        env,
        ...(s3 ? { credentials: s3.config.credentials } : {}),
      });
    } else throw new TypeError(`unknown catalog ${(target as { kind: string }).kind}`);
    const { identifier } = options;
    const table = await IcebergTable.open({
      catalog,
      identifier,
      io,
      schema: options.schema,
      pipeline,
      create: options.createTable,
      ...(options.properties ? { properties: options.properties } : {}),
      ...(options.maxRowsPerFile ? { maxRowsPerFile: options.maxRowsPerFile } : {}),
      ...(options.rowGroupRows ? { rowGroupRows: options.rowGroupRows } : {}),
      ...(options.stagingLocation
        ? { stagingLocation: `${options.stagingLocation}/${identifier.namespace}.${identifier.name}` }
        : {}),
    });
    return { table, catalog, target, close };
  } catch (err) {
    close();
    throw err;
  }
}
