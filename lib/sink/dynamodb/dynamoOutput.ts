/**
 * `dynamoOutput`: an output written to a DynamoDB table, exactly once per committed epoch (see
 * docs/outputs.md#dynamodb). This module declares the output and encodes emitted values (marshalled
 * and checked against DynamoDB's rules at emit time); the DynamoDB client is loaded only when the
 * sink is first built (`DynamoOutputSink.ts`).
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  marshall,
  type marshallOptions,
  type NativeAttributeValue,
  unmarshall,
} from '@aws-sdk/util-dynamodb';
import type { TaskId } from '../../checkpoint/stores.ts';
import { ConfigurationError } from '../../errors.ts';
import type { EmitContext, OutputDescriptor, SinkEnvironment } from '../../output/types.ts';
import {
  DEFAULT_TABLE_ENV,
  FENCE_KEY_PREFIX,
  FENCE_SORT_KEY,
  ITEM_ATTRIBUTES,
  LIMITS,
  RESERVED_PREFIX,
} from './constants.ts';
import { type AttributeMap, attributeValueSize, itemSize } from './itemSize.ts';

/** A key attribute's type, as in the table's definition (`S` string, `N` number, `B` binary). */
export type DynamoKeyType = 'S' | 'N' | 'B';

/** A key attribute of the output table (the same shape as CDK's `partitionKey`/`sortKey`). */
export interface DynamoKeyAttribute {
  readonly name: string;
  /** Default `S`. */
  readonly type?: DynamoKeyType;
}

/** An item, a key or attributes to set, as plain JavaScript values (marshalled by the sink). */
export type DynamoItem = Readonly<Record<string, NativeAttributeValue>>;

/**
 * One write to the output table:
 * - `{ put: item }` creates or replaces the whole item (its key attributes included);
 * - `{ update: key, set: attributes, remove?: names }` sets the given top-level attributes (and
 *   removes the named ones), keeping the others; creates the item when it does not exist;
 * - `{ delete: key }` deletes the item.
 */
export type DynamoWrite =
  | { readonly put: DynamoItem }
  | { readonly update: DynamoItem; readonly set: DynamoItem; readonly remove?: readonly string[] }
  | { readonly delete: DynamoItem };

/** Marshalling options the sink passes to `@aws-sdk/util-dynamodb` (the others are fixed). */
export type DynamoMarshallOptions = Pick<
  marshallOptions,
  'removeUndefinedValues' | 'convertEmptyValues' | 'convertClassInstanceToMap'
>;

interface DynamoOutputCommon {
  /**
   * The table: its name, or `{ env }` naming the environment variable that holds it. Default
   * `{ env: 'TIDEMARK_DYNAMODB_OUTPUT_TABLE' }`.
   */
  readonly table?: string | { readonly env: string };
  /** The table's partition key: its name (a string key) or `{ name, type }`. */
  readonly partitionKey: string | DynamoKeyAttribute;
  /** The table's sort key, if it has one. */
  readonly sortKey?: string | DynamoKeyAttribute;
  /**
   * Write with the epoch's commit, in its transaction, when commits are in DynamoDB and the epoch's
   * writes fit (default true). Set false for a table the commit's transaction cannot reach (another
   * account or region, given through `client`).
   */
  readonly inCommit?: boolean;
  /** Default `{ removeUndefinedValues: true }` (an undefined attribute is left out). */
  readonly marshallOptions?: DynamoMarshallOptions;
  /**
   * The key of the task's fence item in this table (see docs). Default: the partition key
   * `tidemark#fence#<pipeline>#<topic>#<partition>` (its UTF-8 bytes for a binary key) and, when the
   * table has a sort key, `tidemark#fence` (0 for a number). Required when a key attribute is a
   * number; it must give each task its own key, never one of the outputs' own items.
   */
  readonly fenceKey?: (task: TaskId) => DynamoItem;
  /**
   * The DynamoDB client. Default: one per container, from the standard AWS environment. Every
   * DynamoDB output of a processor must use the same client (one transaction spans them).
   */
  readonly client?: DynamoDBClient;
}

/** What `dynamoOutput` takes: the table, its key, and either `item` (a put per value) or `write`. */
export type DynamoOutputOptions<T> = DynamoOutputCommon &
  (
    | {
        /** The item to put (create or replace) for a value. */
        readonly item: (value: T, ctx: EmitContext) => DynamoItem;
        readonly write?: never;
      }
    | {
        /** The write (put, update or delete) for a value. */
        readonly write: (value: T, ctx: EmitContext) => DynamoWrite;
        readonly item?: never;
      }
  );

/** The table's key attributes, resolved. */
export interface DynamoKeySchema {
  readonly partition: Required<DynamoKeyAttribute>;
  readonly sort: Required<DynamoKeyAttribute> | undefined;
}

/** The options as the sink reads them (`descriptor.options`). */
export type ResolvedDynamoOutputOptions = {
  readonly table: string | { readonly env: string };
  readonly key: DynamoKeySchema;
  readonly inCommit: boolean;
  /** The fence item's key in this table, marshalled. */
  readonly fenceKey: (task: TaskId) => AttributeMap;
  readonly client: DynamoDBClient | undefined;
};

/**
 * An encoded output: a marshalled write, checked against DynamoDB's rules. Plain data (it travels in
 * the outbox). The sink adds the output's identity attributes when it writes it.
 */
export type DynamoEntry =
  | { readonly op: 'put'; readonly item: AttributeMap }
  | {
      readonly op: 'update';
      readonly key: AttributeMap;
      readonly set: AttributeMap;
      readonly remove: readonly string[];
    }
  | { readonly op: 'delete'; readonly key: AttributeMap };

const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function keyAttribute(
  option: string,
  a: string | DynamoKeyAttribute | undefined,
): Required<DynamoKeyAttribute> | undefined {
  if (a === undefined) return undefined;
  const k = typeof a === 'string' ? { name: a, type: 'S' as const } : { name: a.name, type: a.type ?? 'S' };
  if (typeof k.name !== 'string' || k.name === '' || Buffer.byteLength(k.name) > 255) {
    throw new ConfigurationError(option, `dynamoOutput: ${option} needs a name of 1 to 255 bytes`);
  }
  if (k.name.startsWith(RESERVED_PREFIX)) {
    throw new ConfigurationError(
      option,
      `dynamoOutput: ${option} '${k.name}' uses the reserved prefix 'tidemark'`,
    );
  }
  if (k.type !== 'S' && k.type !== 'N' && k.type !== 'B') {
    throw new ConfigurationError(
      option,
      `dynamoOutput: ${option}.type must be S, N or B, got ${String(k.type)}`,
    );
  }
  return k;
}

/** The table an output writes to, from its options and the environment. */
export function dynamoOutputTable(
  options: Pick<ResolvedDynamoOutputOptions, 'table'>,
  env: Readonly<Record<string, string | undefined>>,
): string {
  if (typeof options.table === 'string') return options.table;
  const name = env[options.table.env]?.trim();
  if (!name) {
    throw new ConfigurationError(
      options.table.env,
      `dynamoOutput: no table (give \`table\`, or set ${options.table.env})`,
    );
  }
  if (!TABLE_NAME.test(name)) {
    throw new ConfigurationError(
      options.table.env,
      `dynamoOutput: invalid table name ${JSON.stringify(name)}`,
    );
  }
  return name;
}

const MARSHALL_FIXED = { convertTopLevelContainer: false, allowImpreciseNumbers: false } as const;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Marshals a plain object to an attribute map (throws what cannot be marshalled). */
function marshallMap(what: string, v: unknown, options: marshallOptions): AttributeMap {
  if (!isRecord(v)) throw new TypeError(`${what} must be an object of attributes, got ${describe(v)}`);
  try {
    return marshall(v as Record<string, NativeAttributeValue>, options) as AttributeMap;
  } catch (err) {
    throw new TypeError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

function noReserved(what: string, names: Iterable<string>): void {
  for (const n of names) {
    if (n.startsWith(RESERVED_PREFIX)) {
      throw new TypeError(
        `${what}: attribute '${n}' uses the reserved prefix 'tidemark' (the sink's own attributes)`,
      );
    }
  }
}

function checkKeyAttribute(
  what: string,
  attributes: AttributeMap,
  k: Required<DynamoKeyAttribute>,
  maxBytes: number,
  fence: boolean,
): void {
  const v = attributes[k.name] as Record<string, unknown> | undefined;
  if (v === undefined) throw new TypeError(`${what}: key attribute '${k.name}' is missing`);
  const value = v[k.type];
  if (value === undefined) {
    throw new TypeError(
      `${what}: key attribute '${k.name}' must be of type ${k.type}, got ${Object.keys(v)[0]}`,
    );
  }
  const bytes = attributeValueSize(v as unknown as AttributeValue, `${what}.${k.name}`);
  if (k.type !== 'N' && bytes === 0) throw new TypeError(`${what}: key attribute '${k.name}' is empty`);
  if (bytes > maxBytes) throw new RangeError(`${what}: key attribute '${k.name}' exceeds ${maxBytes} bytes`);
  if (!fence && k.type === 'S' && (value as string).startsWith(FENCE_KEY_PREFIX)) {
    throw new TypeError(
      `${what}: key attribute '${k.name}' starts with '${FENCE_KEY_PREFIX}' (the sink's fence items)`,
    );
  }
}

/**
 * Checks the key attributes (present, of the declared type, not empty, not too long, not a fence
 * item's); `exact`: nothing else (a key, not an item).
 */
function checkKey(what: string, attributes: AttributeMap, key: DynamoKeySchema, exact: boolean): void {
  const fence = what === 'fenceKey';
  checkKeyAttribute(what, attributes, key.partition, LIMITS.partitionKeyBytes, fence);
  if (key.sort) checkKeyAttribute(what, attributes, key.sort, LIMITS.sortKeyBytes, fence);
  if (exact) {
    const extra = Object.keys(attributes).filter((n) => n !== key.partition.name && n !== key.sort?.name);
    if (extra.length > 0)
      throw new TypeError(`${what}: a key holds only key attributes, not ${extra.join(', ')}`);
  }
}

/** Bytes of the identity attributes the sink adds (epoch and sequence taken at their largest). */
function identityBytes(ctx: Pick<EmitContext, 'pipeline' | 'topic'>): number {
  const names = Object.values(ITEM_ATTRIBUTES).reduce((n, a) => n + a.length, 0);
  return names + Buffer.byteLength(ctx.pipeline) + Buffer.byteLength(ctx.topic) + 3 * 21;
}

function checkSize(what: string, bytes: number, ctx: EmitContext): void {
  const total = bytes + identityBytes(ctx);
  if (total > LIMITS.itemBytes) {
    throw new RangeError(
      `${what} is ${total} bytes with the sink's attributes, over DynamoDB's ${LIMITS.itemBytes}-byte item limit`,
    );
  }
}

/** Encodes one write (marshalled, checked). Exported for tests. */
export function encodeDynamoWrite(
  write: DynamoWrite,
  ctx: EmitContext,
  key: DynamoKeySchema,
  options: marshallOptions,
): DynamoEntry {
  if (!isRecord(write))
    throw new TypeError(`the write must be { put } | { update, set } | { delete }, got ${describe(write)}`);
  const ops = (['put', 'update', 'delete'] as const).filter((op) => op in write);
  if (ops.length !== 1) {
    throw new TypeError(
      `the write must have exactly one of put, update, delete (got ${ops.length ? ops.join(', ') : Object.keys(write).join(', ') || 'none'})`,
    );
  }
  const w = write as Record<string, unknown>;
  switch (ops[0]) {
    case 'put': {
      const item = marshallMap('put', w.put, options);
      noReserved('put', Object.keys(item));
      checkKey('put', item, key, false);
      checkSize('put item', itemSize(item, 'put'), ctx);
      return { op: 'put', item };
    }
    case 'delete': {
      const k = marshallMap('delete', w.delete, options);
      checkKey('delete', k, key, true);
      return { op: 'delete', key: k };
    }
    default: {
      const k = marshallMap('update', w.update, options);
      checkKey('update', k, key, true);
      const set = marshallMap('update set', w.set ?? {}, options);
      const remove = w.remove ?? [];
      if (!Array.isArray(remove) || remove.some((r) => typeof r !== 'string' || r === '')) {
        throw new TypeError('update remove must be an array of attribute names');
      }
      const names = [...Object.keys(set), ...(remove as string[])];
      noReserved('update', names);
      for (const n of names) {
        if (n === key.partition.name || n === key.sort?.name) {
          throw new TypeError(`update: key attribute '${n}' cannot be set or removed`);
        }
      }
      if (new Set(names).size !== names.length) {
        throw new TypeError('update: an attribute is both set and removed (or removed twice)');
      }
      checkSize('update', itemSize(k, 'update') + itemSize(set, 'update set'), ctx);
      return { op: 'update', key: k, set, remove: [...new Set(remove as string[])] };
    }
  }
}

/** The write an entry stands for, unmarshalled (what a reader of the table sees it do). */
export function decodeDynamoEntry(entry: DynamoEntry): DynamoWrite {
  switch (entry.op) {
    case 'put':
      return { put: unmarshall(entry.item) };
    case 'update':
      return {
        update: unmarshall(entry.key),
        set: unmarshall(entry.set),
        ...(entry.remove.length ? { remove: entry.remove } : {}),
      };
    default:
      return { delete: unmarshall(entry.key) };
  }
}

function defaultFenceKey(key: DynamoKeySchema): (task: TaskId) => AttributeMap {
  const value = (type: DynamoKeyType, s: string): AttributeValue =>
    type === 'B' ? { B: Buffer.from(s, 'utf8') } : type === 'N' ? { N: '0' } : { S: s };
  return (task) => ({
    [key.partition.name]: value(
      key.partition.type,
      `${FENCE_KEY_PREFIX}${task.pipeline}#${task.topic}#${task.partition}`,
    ),
    ...(key.sort ? { [key.sort.name]: value(key.sort.type, FENCE_SORT_KEY) } : {}),
  });
}

function resolve<T>(options: DynamoOutputOptions<T>): ResolvedDynamoOutputOptions {
  if (!isRecord(options)) throw new ConfigurationError('dynamoOutput', 'dynamoOutput: options are required');
  const partition = keyAttribute('partitionKey', options.partitionKey);
  if (!partition) throw new ConfigurationError('partitionKey', 'dynamoOutput: partitionKey is required');
  const sort = keyAttribute('sortKey', options.sortKey);
  if (sort?.name === partition.name) {
    throw new ConfigurationError('sortKey', 'dynamoOutput: sortKey must differ from partitionKey');
  }
  const key: DynamoKeySchema = { partition, sort };
  const table = options.table ?? { env: DEFAULT_TABLE_ENV };
  if (typeof table === 'string' ? !TABLE_NAME.test(table) : !ENV_NAME.test(table?.env ?? '')) {
    throw new ConfigurationError(
      'table',
      `dynamoOutput: table must be a table name or { env: VARIABLE }, got ${JSON.stringify(table)}`,
    );
  }
  if ((typeof options.item === 'function') === (typeof options.write === 'function')) {
    throw new ConfigurationError(
      'dynamoOutput',
      'dynamoOutput: give exactly one of item and write (functions)',
    );
  }
  let fenceKey = defaultFenceKey(key);
  if (options.fenceKey) {
    const given = options.fenceKey;
    fenceKey = (task) => {
      const k = marshallMap('fenceKey', given(task), {});
      checkKey('fenceKey', k, { partition, sort: key.sort }, true);
      return k;
    };
  } else if (partition.type === 'N') {
    throw new ConfigurationError(
      'fenceKey',
      'dynamoOutput: a table with a number partition key needs fenceKey (a key per task for its fence item)',
    );
  }
  return {
    table,
    key,
    inCommit: options.inCommit ?? true,
    fenceKey,
    client: options.client,
  };
}

/**
 * Declares an output written to a DynamoDB table, exactly once per committed epoch: in the epoch's
 * commit transaction when commits are in DynamoDB and the epoch's writes fit one, otherwise after
 * the commit in fenced transactions. Each written item carries the identity of the output that wrote
 * it (`tidemarkPipeline`, `tidemarkTopic`, `tidemarkPartition`, `tidemarkEpoch`, `tidemarkSeq`).
 */
export function dynamoOutput<T>(
  options: DynamoOutputOptions<T>,
): OutputDescriptor<T, DynamoEntry, DynamoWrite> {
  const resolved = resolve(options);
  const marshalling: marshallOptions = {
    removeUndefinedValues: true,
    ...options.marshallOptions,
    ...MARSHALL_FIXED,
  };
  const toWrite: (value: T, ctx: EmitContext) => DynamoWrite = options.item
    ? ((item) => (value: T, ctx: EmitContext) => ({ put: item(value, ctx) }))(options.item)
    : options.write!;
  return {
    kind: 'dynamodb',
    // One sink per container serves every DynamoDB output: an epoch's writes to all of them share
    // its transactions (each part carries its own options).
    sinkId: 'dynamodb',
    encode: (value: T, ctx: EmitContext): DynamoEntry =>
      encodeDynamoWrite(toWrite(value, ctx), ctx, resolved.key, marshalling),
    decode: (entry: DynamoEntry) => decodeDynamoEntry(entry),
    async createSink(env: SinkEnvironment) {
      const { DynamoOutputSink } = await import('./DynamoOutputSink.ts');
      return new DynamoOutputSink(env, { client: resolved.client });
    },
    options: resolved,
  };
}
