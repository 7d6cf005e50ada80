import { MalformedEventError } from '../errors.ts';
import {
  EVENT_SOURCES,
  type KafkaEvent,
  type KafkaEventSource,
  type KafkaRecord,
  type ParsedEvent,
  type RecordDefect,
  type SchemaMetadata,
  type TaskBatch,
  TIMESTAMP_TYPES,
  type TimestampType,
} from './types.ts';

const INT64_MAX = (1n << 63n) - 1n;
const NO_HEADERS: ReadonlyArray<readonly [string, Buffer]> = Object.freeze([]);

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

/**
 * Parses an offset into an int64. Real events carry JSON numbers; numbers beyond 2^53 have already
 * lost precision in JSON.parse, so they are refused rather than silently misordered (use
 * `parseEventJson` on the raw text, or deliver offsets as decimal strings, to keep them exact).
 */
export function parseOffset(v: unknown, path: string): bigint {
  let n: bigint;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number') {
    if (!Number.isInteger(v))
      throw new MalformedEventError(path, `offset must be an integer, got ${describe(v)}`);
    if (!Number.isSafeInteger(v)) {
      throw new MalformedEventError(
        path,
        `offset ${v} is beyond 2^53 and lost precision as a JSON number; deliver it as a decimal string`,
      );
    }
    n = BigInt(v);
  } else if (typeof v === 'string' && /^\d{1,19}$/.test(v)) n = BigInt(v);
  else throw new MalformedEventError(path, `offset must be a non-negative int64, got ${describe(v)}`);
  if (n < 0n || n > INT64_MAX) throw new MalformedEventError(path, `offset ${n} is outside the int64 range`);
  return n;
}

function decodeBase64(v: unknown): Buffer | null | string {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') return `must be a base64 string or null, got ${describe(v)}`;
  const n = v.length;
  if (n % 4 !== 0) return 'is not valid base64';
  const buf = Buffer.from(v, 'base64');
  // Node's decoder skips characters outside the alphabet (and accepts the URL-safe '-' and '_'):
  // a valid string decodes to exactly 3 bytes per 4 characters, minus padding, so a skipped
  // character shows in the length. What it does not skip is looked for in one pass: '-', '_', '='
  // anywhere but in the padding, and characters beyond ASCII (the decoder reads a code unit by its
  // low byte, so 'Ł', U+0141, passes as 'A'). Much cheaper than a regular expression over every value.
  const padding = n === 0 ? 0 : v.charCodeAt(n - 1) === 61 ? (v.charCodeAt(n - 2) === 61 ? 2 : 1) : 0;
  if (buf.length !== (n / 4) * 3 - padding) return 'is not valid base64';
  for (let i = n - padding - 1; i >= 0; i--) {
    const c = v.charCodeAt(i);
    if (c === 45 || c === 95 || c === 61 || c > 127) return 'is not valid base64';
  }
  return buf;
}

function decodeHeaders(v: unknown): ReadonlyArray<readonly [string, Buffer]> | string {
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) return NO_HEADERS;
  if (!Array.isArray(v)) return `headers must be an array, got ${describe(v)}`;
  const out: Array<readonly [string, Buffer]> = [];
  for (let i = 0; i < v.length; i++) {
    const h: unknown = v[i];
    if (!isObject(h)) return `headers[${i}] must be a one-key object, got ${describe(h)}`;
    const names = Object.keys(h);
    // A header whose value is null: the ESM drops its name with its value and delivers `{}`.
    // Nothing of it is left to hand over; the record's other headers keep their order.
    if (names.length === 0) continue;
    if (names.length !== 1) return `headers[${i}] must have exactly one key, has ${names.length}`;
    const name = names[0]!;
    const bytes = h[name];
    if (!Array.isArray(bytes))
      return `headers[${i}].${name} must be an array of bytes, got ${describe(bytes)}`;
    const buf = Buffer.allocUnsafe(bytes.length);
    for (let j = 0; j < bytes.length; j++) {
      const b: unknown = bytes[j];
      if (typeof b !== 'number' || !Number.isInteger(b) || b < -128 || b > 255) {
        return `headers[${i}].${name}[${j}] must be a byte (-128..255), got ${describe(b)}`;
      }
      // Java bytes are signed: -61 is 0xc3.
      buf[j] = b & 0xff;
    }
    out.push([name, buf]);
  }
  return out.length === 0 ? NO_HEADERS : out;
}

function schemaMetadata(v: unknown, field: string): SchemaMetadata | undefined | string {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || typeof v.dataFormat !== 'string') {
    return `${field} must be an object with a string dataFormat`;
  }
  const schemaId = v.schemaId;
  if (schemaId !== undefined && typeof schemaId !== 'string' && typeof schemaId !== 'number') {
    return `${field}.schemaId must be a string`;
  }
  return { dataFormat: v.dataFormat, schemaId: schemaId === undefined ? '' : String(schemaId) };
}

/**
 * Decodes one record whose identity is already validated. Returns a `RecordDefect` when a field
 * other than topic/partition/offset is wrong: the record can then be quarantined by offset.
 */
function defectOf(raw: Json, topic: string, partition: number, offset: bigint, reason: string): RecordDefect {
  return { topic, partition, offset, reason, raw };
}

function decodeRecord(
  raw: Json,
  topic: string,
  partition: number,
  offset: bigint,
): KafkaRecord | RecordDefect {
  // (Hot path: nothing allocated but the record, unless it is defective.)
  const { timestamp, timestampType } = raw;
  if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) {
    return defectOf(raw, topic, partition, offset, `timestamp must be a number, got ${describe(timestamp)}`);
  }
  if (typeof timestampType !== 'string' || !(TIMESTAMP_TYPES as readonly string[]).includes(timestampType)) {
    return defectOf(
      raw,
      topic,
      partition,
      offset,
      `timestampType must be one of ${TIMESTAMP_TYPES.join(', ')}, got ${describe(timestampType)}`,
    );
  }
  const key = decodeBase64(raw.key);
  if (typeof key === 'string') return defectOf(raw, topic, partition, offset, `key ${key}`);
  const value = decodeBase64(raw.value);
  if (typeof value === 'string') return defectOf(raw, topic, partition, offset, `value ${value}`);
  const headers = decodeHeaders(raw.headers);
  if (typeof headers === 'string') return defectOf(raw, topic, partition, offset, headers);
  const keySchemaMetadata = schemaMetadata(raw.keySchemaMetadata, 'keySchemaMetadata');
  if (typeof keySchemaMetadata === 'string')
    return defectOf(raw, topic, partition, offset, keySchemaMetadata);
  const valueSchemaMetadata = schemaMetadata(raw.valueSchemaMetadata, 'valueSchemaMetadata');
  if (typeof valueSchemaMetadata === 'string')
    return defectOf(raw, topic, partition, offset, valueSchemaMetadata);
  return {
    topic,
    partition,
    offset,
    timestamp,
    timestampType: timestampType as TimestampType,
    key,
    value,
    headers,
    keySchemaMetadata,
    valueSchemaMetadata,
    size: (key?.length ?? 0) + (value?.length ?? 0),
  };
}

function compareOffsets(a: { offset: bigint }, b: { offset: bigint }): number {
  return a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0;
}

/**
 * Validates and decodes a Kafka ESM event. Structural problems (not an ESM event, a record whose
 * topic, partition or offset cannot be trusted) throw `MalformedEventError`, non-retriable. A record
 * with a sound identity but a bad payload field (bad base64, odd header bytes, …) is returned as a
 * `RecordDefect` in offset order, so the poison-record policy decides its fate.
 */
export function parseEvent(event: unknown): ParsedEvent {
  if (!isObject(event)) throw new MalformedEventError('$', `event must be an object, got ${describe(event)}`);
  const source = event.eventSource;
  if (typeof source !== 'string' || !(EVENT_SOURCES as readonly string[]).includes(source)) {
    throw new MalformedEventError(
      '$.eventSource',
      `expected one of ${EVENT_SOURCES.join(', ')}, got ${describe(source)} (is this a Kafka event source mapping?)`,
    );
  }
  const arn = event.eventSourceArn;
  if (arn !== undefined && arn !== null && typeof arn !== 'string') {
    throw new MalformedEventError('$.eventSourceArn', `must be a string, got ${describe(arn)}`);
  }
  const groups = event.records;
  if (!isObject(groups))
    throw new MalformedEventError('$.records', `must be an object, got ${describe(groups)}`);

  const tasks: TaskBatch[] = [];
  const seenTasks = new Set<string>();
  let recordCount = 0;
  for (const groupKey of Object.keys(groups)) {
    const gpath = `$.records[${JSON.stringify(groupKey)}]`;
    const dash = groupKey.lastIndexOf('-');
    const topic = dash > 0 ? groupKey.slice(0, dash) : '';
    const partText = dash > 0 ? groupKey.slice(dash + 1) : '';
    if (!topic || !/^\d{1,10}$/.test(partText)) {
      throw new MalformedEventError(gpath, 'record group key must be "<topic>-<partition>"');
    }
    const partition = Number(partText);
    const list = groups[groupKey];
    if (!Array.isArray(list))
      throw new MalformedEventError(gpath, `must be an array of records, got ${describe(list)}`);
    const taskId = `${topic}\u0000${partition}`;
    if (seenTasks.has(taskId))
      throw new MalformedEventError(gpath, `topic-partition ${groupKey} appears twice`);
    seenTasks.add(taskId);

    const decoded: Array<KafkaRecord | RecordDefect> = new Array(list.length);
    // Whether offsets ascend, checked as they are read: on the numbers the event holds while they
    // are numbers (comparing bigints costs several times more), on the bigints otherwise.
    let sorted = true;
    let previousNumber = -1; // NaN when the previous offset was not a JSON number
    let previous = -1n;
    for (let i = 0; i < list.length; i++) {
      // Paths are built only for an error (a string per record would cost more than the checks).
      const raw: unknown = list[i];
      if (!isObject(raw))
        throw new MalformedEventError(`${gpath}[${i}]`, `record must be an object, got ${describe(raw)}`);
      if (raw.topic !== topic) {
        throw new MalformedEventError(
          `${gpath}[${i}].topic`,
          `expected ${JSON.stringify(topic)}, got ${describe(raw.topic)}`,
        );
      }
      if (raw.partition !== partition) {
        throw new MalformedEventError(
          `${gpath}[${i}].partition`,
          `expected ${partition}, got ${describe(raw.partition)}`,
        );
      }
      const o = raw.offset;
      let offset: bigint;
      if (typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) {
        offset = BigInt(o);
        if (sorted) sorted = Number.isNaN(previousNumber) ? previous < offset : previousNumber < o;
        previousNumber = o;
      } else {
        offset = parseOffset(o, `${gpath}[${i}].offset`);
        if (sorted) sorted = previous < offset;
        previousNumber = Number.NaN;
      }
      previous = offset;
      decoded[i] = decodeRecord(raw, topic, partition, offset);
    }
    // Lambda delivers each partition in order; do not rely on it (sorted above).
    let duplicatesInEvent = 0;
    let records = decoded;
    if (!sorted) {
      records = [...decoded].sort(compareOffsets);
      const unique: Array<KafkaRecord | RecordDefect> = [];
      for (const r of records) {
        if (unique.length > 0 && unique[unique.length - 1]!.offset === r.offset) duplicatesInEvent++;
        else unique.push(r);
      }
      records = unique;
    }
    recordCount += records.length;
    if (records.length > 0 || duplicatesInEvent > 0)
      tasks.push({ topic, partition, records, duplicatesInEvent });
  }
  return {
    eventSource: source as KafkaEventSource,
    eventSourceArn: typeof arn === 'string' ? arn : undefined,
    tasks,
    recordCount,
  };
}

/**
 * Parses the raw JSON text of an event, keeping every `offset` exact even beyond 2^53 (JSON.parse
 * source-text access). For local tools and tests that hold the payload as text; Lambda itself
 * hands the handler an already-parsed object.
 */
export function parseEventJson(text: string): KafkaEvent {
  type ReviverContext = { source?: string };
  const reviver = function (this: unknown, key: string, value: unknown, context?: ReviverContext): unknown {
    if (key === 'offset' && typeof value === 'number' && !Number.isSafeInteger(value) && context?.source) {
      return context.source;
    }
    return value;
  };
  return JSON.parse(text, reviver as (key: string, value: unknown) => unknown) as KafkaEvent;
}
