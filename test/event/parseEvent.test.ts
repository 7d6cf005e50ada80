import { describe, expect, it } from 'vitest';
import { mskEvent, rawRecord } from '../../harness/esm/mskEvent.ts';
import { MalformedEventError } from '../../lib/errors.ts';
import { parseEvent, parseEventJson, parseOffset } from '../../lib/event/parseEvent.ts';
import { isRecordDefect, type KafkaRecord } from '../../lib/event/types.ts';

function only(event: unknown): Array<ReturnType<typeof parseEvent>['tasks'][number]['records'][number]> {
  const parsed = parseEvent(event);
  expect(parsed.tasks).toHaveLength(1);
  return [...parsed.tasks[0]!.records];
}

function malformed(event: unknown): MalformedEventError {
  try {
    parseEvent(event);
  } catch (err) {
    expect(err).toBeInstanceOf(MalformedEventError);
    expect((err as MalformedEventError).retriable).toBe(false);
    return err as MalformedEventError;
  }
  throw new Error('expected MalformedEventError');
}

describe('parseEvent', () => {
  it('parses an Amazon MSK event as AWS documents it', () => {
    const event = {
      eventSource: 'aws:kafka',
      eventSourceArn:
        'arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/751d2973-a626-431c-9d4e-d7975eb44dd7-2',
      bootstrapServers: 'b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092',
      records: {
        'mytopic-0': [
          {
            topic: 'mytopic',
            partition: 0,
            offset: 15,
            timestamp: 1545084650987,
            timestampType: 'CREATE_TIME',
            key: 'abcDEFghiJKLmnoPQRstuVWXyz1234==',
            value: 'SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==',
            headers: [{ headerKey: [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101] }],
          },
        ],
        'mytopic-1': [
          {
            topic: 'mytopic',
            partition: 1,
            offset: 7,
            timestamp: 1545084650990,
            timestampType: 'LOG_APPEND_TIME',
            key: null,
            value: null,
            headers: [],
          },
        ],
      },
    };
    const parsed = parseEvent(event);
    expect(parsed.eventSource).toBe('aws:kafka');
    expect(parsed.eventSourceArn).toContain('cluster/vpc-2priv-2pub');
    expect(parsed.recordCount).toBe(2);
    const [p0, p1] = parsed.tasks;
    const r0 = p0!.records[0] as KafkaRecord;
    expect(r0.offset).toBe(15n);
    expect(r0.value?.toString()).toBe('Hello, this is a test.');
    expect(r0.headers).toEqual([['headerKey', Buffer.from('headerValue')]]);
    const r1 = p1!.records[0] as KafkaRecord;
    expect(r1.key).toBeNull();
    expect(r1.value).toBeNull();
    expect(r1.timestampType).toBe('LOG_APPEND_TIME');
  });

  it('parses a self-managed Kafka event (no eventSourceArn)', () => {
    const parsed = parseEvent(mskEvent([{ offset: 1 }], 'SelfManagedKafka'));
    expect(parsed.eventSource).toBe('SelfManagedKafka');
    expect(parsed.eventSourceArn).toBeUndefined();
  });

  it('splits the group key on the last dash: topic names may contain dashes', () => {
    const parsed = parseEvent(mskEvent([{ topic: 'my-topic-v2', partition: 13, offset: 0 }]));
    expect(parsed.tasks[0]).toMatchObject({ topic: 'my-topic-v2', partition: 13 });
  });

  it('decodes header bytes as signed Java bytes, keeping repeated names in order', () => {
    const [r] = only(mskEvent([{ offset: 0, headers: [{ h: [104, -61, -85] }, { h: [-1, 0, 127, -128] }] }]));
    const rec = r as KafkaRecord;
    expect(rec.headers[0]![1].toString('utf8')).toBe('hë');
    expect([...rec.headers[1]![1]]).toEqual([255, 0, 127, 128]);
    expect(rec.headers.map(([n]) => n)).toEqual(['h', 'h']);
  });

  it('accepts a header whose value was null, delivered as {}: it is left out, the others keep their order', () => {
    const [r] = only(mskEvent([{ offset: 0, headers: [{ a: [1] }, {}, { b: [] }, {}] }]));
    expect(isRecordDefect(r!)).toBe(false);
    expect((r as KafkaRecord).headers.map(([n, b]) => [n, [...b]])).toEqual([
      ['a', [1]],
      ['b', []],
    ]);
    const [onlyNull] = only(mskEvent([{ offset: 1, headers: [{}] }]));
    expect((onlyNull as KafkaRecord).headers).toEqual([]);
  });

  it('accepts records without a timestamp (NO_TIMESTAMP_TYPE, timestamp -1)', () => {
    const [r] = only(mskEvent([{ offset: 0, timestampType: 'NO_TIMESTAMP_TYPE', timestamp: -1 }]));
    expect(isRecordDefect(r!)).toBe(false);
    expect(r).toMatchObject({ timestampType: 'NO_TIMESTAMP_TYPE', timestamp: -1 });
  });

  it('treats null and absent values as tombstones and null keys as null', () => {
    const event = mskEvent([{ offset: 0, key: null, value: null }]);
    const absent = { ...rawRecord({ offset: 1 }) };
    delete absent.value;
    delete absent.key;
    event.records['orders-0']!.push(absent);
    const records = only(event) as KafkaRecord[];
    expect(records.map((r) => [r.key, r.value])).toEqual([
      [null, null],
      [null, null],
    ]);
  });

  it('keeps schema-registry metadata', () => {
    const raw = {
      ...rawRecord({ offset: 0 }),
      valueSchemaMetadata: { dataFormat: 'AVRO', schemaId: '1234' },
    };
    const [r] = only({ eventSource: 'aws:kafka', records: { 'orders-0': [raw] } });
    expect((r as KafkaRecord).valueSchemaMetadata).toEqual({ dataFormat: 'AVRO', schemaId: '1234' });
  });

  it('sorts records by offset and drops duplicate offsets within one event', () => {
    const parsed = parseEvent(mskEvent([{ offset: 5 }, { offset: 3 }, { offset: 5 }, { offset: 4 }]));
    expect(parsed.tasks[0]!.records.map((r) => r.offset)).toEqual([3n, 4n, 5n]);
    expect(parsed.tasks[0]!.duplicatesInEvent).toBe(1);
  });

  it('sorts offsets given partly as numbers and partly as decimal strings, and keeps ascending ones as they are', () => {
    const mixed = parseEvent(
      mskEvent([{ offset: 7 }, { offset: '6' }, { offset: 9 }, { offset: '8' }, { offset: 2 }]),
    );
    expect(mixed.tasks[0]!.records.map((r) => r.offset)).toEqual([2n, 6n, 7n, 8n, 9n]);
    const dup = parseEvent(mskEvent([{ offset: '3' }, { offset: 3 }, { offset: 4 }]));
    expect(dup.tasks[0]!.records.map((r) => r.offset)).toEqual([3n, 4n]);
    expect(dup.tasks[0]!.duplicatesInEvent).toBe(1);
    const events = [
      [{ offset: 1 }, { offset: 1 }],
      [{ offset: '9' }, { offset: 10 }, { offset: '11' }],
    ];
    expect(parseEvent(mskEvent(events[0]!)).tasks[0]!.duplicatesInEvent).toBe(1);
    const ascending = parseEvent(mskEvent(events[1]!));
    expect(ascending.tasks[0]!.records.map((r) => r.offset)).toEqual([9n, 10n, 11n]);
    expect(ascending.tasks[0]!.duplicatesInEvent).toBe(0);
  });

  it('accepts non-contiguous offsets (compaction, transaction markers, filters)', () => {
    const parsed = parseEvent(mskEvent([{ offset: 10 }, { offset: 12 }, { offset: 40 }]));
    expect(parsed.tasks[0]!.records.map((r) => r.offset)).toEqual([10n, 12n, 40n]);
  });

  it('keeps int64 offsets beyond 2^53 exact when given as decimal strings or from raw JSON text', () => {
    const big = '9223372036854775806';
    const parsed = parseEvent(mskEvent([{ offset: big }]));
    expect(parsed.tasks[0]!.records[0]!.offset).toBe(9223372036854775806n);
    const text = JSON.stringify(mskEvent([{ offset: 1 }])).replace('"offset":1', '"offset":9007199254740993');
    const fromText = parseEvent(parseEventJson(text));
    expect(fromText.tasks[0]!.records[0]!.offset).toBe(9007199254740993n);
  });

  it('refuses offsets that lost precision, are negative, fractional or beyond int64', () => {
    expect(() => parseOffset(2 ** 53 + 2, 'x')).toThrow(/beyond 2\^53/);
    expect(() => parseOffset(-1, 'x')).toThrow(MalformedEventError);
    expect(() => parseOffset(1.5, 'x')).toThrow(MalformedEventError);
    expect(() => parseOffset('9223372036854775808', 'x')).toThrow(/int64/);
    expect(() => parseOffset('0x10', 'x')).toThrow(MalformedEventError);
  });

  it('names what is wrong in a malformed event', () => {
    expect(malformed(null).path).toBe('$');
    expect(malformed({ eventSource: 'aws:sqs', records: {} }).message).toMatch(/aws:kafka, SelfManagedKafka/);
    expect(malformed({ eventSource: 'aws:kafka', records: [] }).path).toBe('$.records');
    expect(malformed({ eventSource: 'aws:kafka', records: { orders: [] } }).message).toMatch(
      /<topic>-<partition>/,
    );
    expect(malformed({ eventSource: 'aws:kafka', records: { 'orders-0': {} } }).message).toMatch(/array/);
    const wrongTopic = mskEvent([{ offset: 0 }]);
    wrongTopic.records['orders-0']![0]!.topic = 'other';
    expect(malformed(wrongTopic).path).toBe('$.records["orders-0"][0].topic');
    const wrongPartition = mskEvent([{ offset: 0 }]);
    wrongPartition.records['orders-0']![0]!.partition = 1;
    expect(malformed(wrongPartition).path).toBe('$.records["orders-0"][0].partition');
    const noOffset = mskEvent([{ offset: 0 }]) as unknown as {
      records: Record<string, Array<Record<string, unknown>>>;
    };
    delete noOffset.records['orders-0']![0]!.offset;
    expect(malformed(noOffset).path).toBe('$.records["orders-0"][0].offset');
    expect(malformed({ eventSource: 'aws:kafka', records: { 'orders-0': [42] } }).path).toBe(
      '$.records["orders-0"][0]',
    );
  });

  it('returns a record defect (not an exception) when only the payload of a record is bad', () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['key is not valid base64', { key: 'not base64!' }],
      ['value must be a base64 string', { value: 12 }],
      // Strings of the right length that Node's decoder would take without a word.
      ['key is not valid base64', { key: 'a2V5' + 'LQ-_' }],
      ['value is not valid base64', { value: 'e30=e30=' }],
      ['value is not valid base64', { value: '\u0141QJD' }], // read as 'AQJD'
      ['key is not valid base64', { key: 'QUJD\u00e9QJD' }],
      ['value is not valid base64', { value: 'QU\u0141=' }],
      ['headers must be an array', { headers: { a: [1] } }],
      ['must be a byte', { headers: [{ a: [300] }] }],
      ['exactly one key', { headers: [{ a: [1], b: [2] }] }],
      ['timestamp must be a number', { timestamp: 'yesterday' }],
      ['timestampType', { timestampType: 'SOME_TIME' }],
      ['headers[0] must be a one-key object', { headers: [null] }],
      ['valueSchemaMetadata', { valueSchemaMetadata: 'AVRO' }],
    ];
    for (const [reason, patch] of cases) {
      const raw = { ...rawRecord({ offset: 7 }), ...patch };
      const [r] = only({ eventSource: 'aws:kafka', records: { 'orders-0': [raw] } });
      expect(isRecordDefect(r!), reason).toBe(true);
      expect((r as { reason: string }).reason).toContain(reason);
      expect(r!.offset).toBe(7n);
    }
  });
});
