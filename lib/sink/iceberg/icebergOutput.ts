/**
 * `icebergOutput`: rows written to an Apache Iceberg table, exactly once per committed epoch (see
 * docs/iceberg.md). This module declares the output and resolves where its table lives; it loads
 * nothing heavy: the Parquet and Avro writers, the catalogs and the AWS SDK are imported when the
 * sink is first built (`IcebergOutputSink.ts`) or the committer first runs (`committerHandler.ts`),
 * so a processor that declares no Iceberg output never loads them.
 *
 * An emitted value becomes a row (`options.row`, default the value itself) and is encoded at once
 * with the table's schema (`schema.encodeRow`): a row that does not fit the schema fails its record
 * at emit time, never at delivery. After the epoch commits, the sink writes the epoch's rows as
 * Parquet data files and stages them (`IcebergTable.writeDataFiles`); a scheduled committer
 * (`createIcebergCommitter`) commits every staged epoch of every task in one snapshot.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { ENV, ICEBERG_CATALOGS, type IcebergCatalogKind } from '../../config/env.ts';
import { ConfigurationError } from '../../errors.ts';
import type { OutputDescriptor, SinkEnvironment } from '../../output/types.ts';
import type { IcebergCatalog, TableIdentifier } from './catalog.ts';
import type { IcebergFileIO } from './fileIO.ts';
import {
  type CanonicalValue,
  type IcebergTableDeclaration,
  IcebergTableSchema,
  type PartitionSpecJson,
  type SchemaJson,
} from './schema.ts';

export const ICEBERG_OUTPUT_DEFAULTS = {
  catalog: 'dynamodb',
  /** The warehouse is `s3://<TIDEMARK_BUCKET>/<this>` unless one is given. */
  warehousePrefix: 'iceberg',
  catalogTable: 'iceberg',
  restSigning: 'none',
  createTable: true,
} as const;

/** SigV4 signing of a REST catalog's requests: none, or the service name of AWS's endpoint. */
export const ICEBERG_REST_SIGNING = ['none', 'glue', 's3tables'] as const;
export type IcebergRestSigning = (typeof ICEBERG_REST_SIGNING)[number];

/** What a catalog factory is given: the sink's file IO (S3) and the environment. */
export interface IcebergCatalogContext {
  readonly io: IcebergFileIO;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export interface IcebergOutputOptions<T> {
  /** The table, `namespace.name` (the last dot separates them), or an identifier. */
  readonly table: string | TableIdentifier;
  /** Its schema (and partition spec): `defineIcebergTable({ columns, partitionBy })`, or the declaration. */
  readonly schema: IcebergTableSchema | IcebergTableDeclaration;
  /**
   * Turns an emitted value into a row (an object keyed by column name), at emit time. Default: the
   * value is the row.
   */
  readonly row?: (value: T) => Readonly<Record<string, unknown>>;
  /**
   * The catalog: `dynamodb` (Iceberg's DynamoDB catalog layout), `s3` (Hadoop layout on S3), `rest`
   * (an Iceberg REST catalog), or a factory of your own. Default: `TIDEMARK_ICEBERG_CATALOG`, else
   * `dynamodb`.
   */
  readonly catalog?:
    | IcebergCatalogKind
    | ((ctx: IcebergCatalogContext) => IcebergCatalog | Promise<IcebergCatalog>);
  /**
   * `dynamodb`, `s3`: where new tables go, `s3://bucket/prefix`; `rest`: the warehouse asked of the
   * catalog. Default: `TIDEMARK_ICEBERG_WAREHOUSE`, else `s3://<TIDEMARK_BUCKET>/iceberg`.
   */
  readonly warehouse?: string;
  /** The DynamoDB catalog's table. Default: `TIDEMARK_ICEBERG_CATALOG_TABLE`, else `iceberg`. */
  readonly catalogTable?: string;
  /** The REST catalog's base URI. Default: `TIDEMARK_ICEBERG_REST_URI`. */
  readonly restUri?: string;
  /** SigV4 signing of REST requests. Default: `TIDEMARK_ICEBERG_REST_SIGNING`, else `none`. */
  readonly restSigning?: IcebergRestSigning;
  /** Create the table (and its namespace) when the catalog does not have it. Default true. */
  readonly createTable?: boolean;
  /** Table properties of a table created here. */
  readonly properties?: Readonly<Record<string, string>>;
  /** Rows per data file at most. Default 1,000,000. */
  readonly maxRowsPerFile?: number;
  /** Rows per Parquet row group. Default 100,000. */
  readonly rowGroupRows?: number;
  /**
   * Where staged-epoch records go (an `s3://` prefix). Default: the table's location (the records
   * go to `<location>/tidemark/<pipeline>/staged/…`).
   */
  readonly stagingLocation?: string;
  /** SDK clients. Default: one each per container, from the standard AWS environment. */
  readonly clients?: { readonly s3?: S3Client; readonly dynamodb?: DynamoDBClient };
  /** File IO (tests inject faults here). Default: S3 through `clients.s3`. */
  readonly io?: IcebergFileIO;
}

/** The options as the sink and the committer read them (`descriptor.options`). */
export interface ResolvedIcebergOutputOptions {
  readonly identifier: TableIdentifier;
  readonly schema: IcebergTableSchema;
  readonly catalog:
    | IcebergCatalogKind
    | ((ctx: IcebergCatalogContext) => IcebergCatalog | Promise<IcebergCatalog>)
    | undefined;
  readonly warehouse: string | undefined;
  readonly catalogTable: string | undefined;
  readonly restUri: string | undefined;
  readonly restSigning: IcebergRestSigning | undefined;
  readonly createTable: boolean;
  readonly properties: Readonly<Record<string, string>> | undefined;
  readonly maxRowsPerFile: number | undefined;
  readonly rowGroupRows: number | undefined;
  readonly stagingLocation: string | undefined;
  readonly clients: { readonly s3?: S3Client; readonly dynamodb?: DynamoDBClient } | undefined;
  readonly io: IcebergFileIO | undefined;
}

/** The catalog settings of an output once the environment filled the gaps. */
export type IcebergTarget =
  | { readonly kind: 'dynamodb'; readonly warehouse: string; readonly catalogTable: string }
  | { readonly kind: 's3'; readonly warehouse: string }
  | {
      readonly kind: 'rest';
      readonly uri: string;
      readonly warehouse: string | undefined;
      readonly signing: IcebergRestSigning;
    }
  | { readonly kind: 'custom' };

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,254}$/;
const S3_LOCATION = /^s3a?:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/;

function bad(setting: string, message: string): ConfigurationError {
  return new ConfigurationError(setting, `icebergOutput: ${message}`);
}

export function parseTableIdentifier(table: string | TableIdentifier): TableIdentifier {
  const id =
    typeof table === 'string'
      ? {
          namespace: table.slice(0, Math.max(0, table.lastIndexOf('.'))),
          name: table.slice(table.lastIndexOf('.') + 1),
        }
      : table;
  const parts = id.namespace.split('.');
  if (!NAME.test(id.name) || id.namespace === '' || !parts.every((p) => NAME.test(p))) {
    throw bad(
      'icebergOutput.table',
      `table must be 'namespace.name' of letters, digits, '_' and '-', got ${JSON.stringify(table)}`,
    );
  }
  return { namespace: id.namespace, name: id.name };
}

function checkS3Location(setting: string, value: string): string {
  if (!S3_LOCATION.test(value))
    throw bad(setting, `${setting} must be an s3://bucket/prefix location, got ${JSON.stringify(value)}`);
  return value.replace(/\/+$/, '');
}

function positive(setting: string, value: number | undefined): number | undefined {
  if (value !== undefined && (!Number.isSafeInteger(value) || value <= 0)) {
    throw bad(setting, `${setting} must be a positive integer, got ${value}`);
  }
  return value;
}

function resolve<T>(options: IcebergOutputOptions<T>): ResolvedIcebergOutputOptions {
  if (!options || typeof options !== 'object') throw new TypeError('icebergOutput: options are required');
  const schema =
    options.schema instanceof IcebergTableSchema ? options.schema : new IcebergTableSchema(options.schema);
  const catalog = options.catalog;
  if (typeof catalog === 'string' && !(ICEBERG_CATALOGS as readonly string[]).includes(catalog)) {
    throw bad(
      'icebergOutput.catalog',
      `catalog must be one of ${ICEBERG_CATALOGS.join(', ')} or a function, got ${JSON.stringify(catalog)}`,
    );
  }
  if (
    options.restSigning !== undefined &&
    !(ICEBERG_REST_SIGNING as readonly string[]).includes(options.restSigning)
  ) {
    throw bad('icebergOutput.restSigning', `restSigning must be one of ${ICEBERG_REST_SIGNING.join(', ')}`);
  }
  return {
    identifier: parseTableIdentifier(options.table),
    schema,
    catalog,
    // A REST warehouse is an identifier of the catalog's (an account id, an ARN), not a location.
    warehouse:
      options.warehouse === undefined || catalog === 'rest'
        ? options.warehouse
        : checkS3Location('icebergOutput.warehouse', options.warehouse),
    catalogTable: options.catalogTable,
    restUri: options.restUri,
    restSigning: options.restSigning,
    createTable: options.createTable ?? ICEBERG_OUTPUT_DEFAULTS.createTable,
    properties: options.properties,
    maxRowsPerFile: positive('icebergOutput.maxRowsPerFile', options.maxRowsPerFile),
    rowGroupRows: positive('icebergOutput.rowGroupRows', options.rowGroupRows),
    stagingLocation:
      options.stagingLocation === undefined
        ? undefined
        : checkS3Location('icebergOutput.stagingLocation', options.stagingLocation),
    clients: options.clients,
    io: options.io,
  };
}

/** Where an output's table lives: its options, else the environment, else the defaults. */
export function icebergTarget(
  options: ResolvedIcebergOutputOptions,
  env: Readonly<Record<string, string | undefined>>,
): IcebergTarget {
  if (typeof options.catalog === 'function') return { kind: 'custom' };
  const fromEnv = env[ENV.icebergCatalog]?.trim() || undefined;
  const kind = options.catalog ?? fromEnv ?? ICEBERG_OUTPUT_DEFAULTS.catalog;
  if (!(ICEBERG_CATALOGS as readonly string[]).includes(kind)) {
    throw bad(
      ENV.icebergCatalog,
      `${ENV.icebergCatalog} must be one of ${ICEBERG_CATALOGS.join(', ')}, got ${JSON.stringify(kind)}`,
    );
  }
  const warehouseSetting = options.warehouse ?? (env[ENV.icebergWarehouse]?.trim() || undefined);
  if (kind === 'rest') {
    const uri = options.restUri ?? (env[ENV.icebergRestUri]?.trim() || undefined);
    if (!uri || !/^https?:\/\/[^/]+/.test(uri)) {
      throw bad(
        ENV.icebergRestUri,
        `a REST catalog needs its base URI (restUri or ${ENV.icebergRestUri}), got ${JSON.stringify(uri ?? '')}`,
      );
    }
    const signing =
      options.restSigning ?? (env[ENV.icebergRestSigning]?.trim() || ICEBERG_OUTPUT_DEFAULTS.restSigning);
    if (!(ICEBERG_REST_SIGNING as readonly string[]).includes(signing)) {
      throw bad(
        ENV.icebergRestSigning,
        `${ENV.icebergRestSigning} must be one of ${ICEBERG_REST_SIGNING.join(', ')}, got ${JSON.stringify(signing)}`,
      );
    }
    return {
      kind: 'rest',
      uri: uri.replace(/\/+$/, ''),
      warehouse: warehouseSetting,
      signing: signing as IcebergRestSigning,
    };
  }
  let warehouse = warehouseSetting;
  if (warehouse === undefined) {
    const bucket = env[ENV.bucket]?.trim();
    if (!bucket) {
      throw bad(
        ENV.icebergWarehouse,
        `no warehouse (give \`warehouse\`, or set ${ENV.icebergWarehouse} or ${ENV.bucket})`,
      );
    }
    warehouse = `s3://${bucket}/${ICEBERG_OUTPUT_DEFAULTS.warehousePrefix}`;
  }
  warehouse = checkS3Location(ENV.icebergWarehouse, warehouse);
  if (kind === 's3') return { kind: 's3', warehouse };
  const catalogTable =
    options.catalogTable ?? (env[ENV.icebergCatalogTable]?.trim() || ICEBERG_OUTPUT_DEFAULTS.catalogTable);
  return { kind: 'dynamodb', warehouse, catalogTable };
}

/** The schema and spec as one string: two outputs may share a table only if they declare the same. */
export function schemaFingerprint(schema: IcebergTableSchema): string {
  const s: SchemaJson = schema.schemaJson();
  const p: PartitionSpecJson = schema.specJson();
  return JSON.stringify([s.fields, p.fields]);
}

/**
 * Declares an output whose rows go to an Iceberg table, exactly once per committed epoch: each
 * task-epoch's rows become Parquet data files and a staged-epoch record; the scheduled committer
 * (`createIcebergCommitter`) makes them visible in one snapshot with many other epochs.
 */
export function icebergOutput<T = Readonly<Record<string, unknown>>>(
  options: IcebergOutputOptions<T>,
): OutputDescriptor<T, Record<string, CanonicalValue>, Record<string, CanonicalValue>> {
  const resolved = resolve(options);
  const { schema } = resolved;
  const row = options.row;
  const where =
    typeof resolved.catalog === 'function'
      ? 'custom'
      : `${resolved.catalog ?? 'env'}:${resolved.warehouse ?? 'env'}:${resolved.catalogTable ?? ''}`;
  return {
    kind: 'iceberg',
    // One sink per table: every output naming it is delivered in the same staged epoch.
    sinkId: `iceberg:${where}:${resolved.identifier.namespace}.${resolved.identifier.name}`,
    encode(value: T): Record<string, CanonicalValue> {
      return schema.encodeRow(row ? row(value) : (value as Readonly<Record<string, unknown>>));
    },
    // The canonical row: bigints for long, timestamp (µs) and decimal (unscaled) columns, days for dates.
    decode: (entry: Record<string, CanonicalValue>) => entry,
    async createSink(env: SinkEnvironment) {
      const { IcebergOutputSink } = await import('./IcebergOutputSink.ts');
      return new IcebergOutputSink(env, resolved);
    },
    options: resolved as unknown as Readonly<Record<string, unknown>>,
  };
}

/** The resolved options of an Iceberg output descriptor (throws for any other kind). */
export function icebergOptionsOf(descriptor: OutputDescriptor): ResolvedIcebergOutputOptions {
  if (descriptor.kind !== 'iceberg') throw new TypeError(`not an Iceberg output (kind ${descriptor.kind})`);
  return descriptor.options as unknown as ResolvedIcebergOutputOptions;
}
