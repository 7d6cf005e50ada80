import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KcatError, KcatNotFoundError } from '../../harness/kafka/errors.ts';
import { type KafkaMock, startKafkaMock } from '../../harness/kafka/kafkaMock.ts';
import { parseKcatJson, readCommittedWithKcat } from '../../harness/kafka/kcat.ts';

const BUILD_TIMEOUT_MS = 600_000;

describe('readCommittedWithKcat', () => {
  let mock: KafkaMock;

  beforeAll(async () => {
    mock = await startKafkaMock({ brokers: 1, topics: { records: 2 } });
    const kafka = new Kafka({
      clientId: 'kcat-test',
      brokers: [...mock.brokers],
      logLevel: logLevel.NOTHING,
    });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: 'records',
      messages: [
        { partition: 0, key: 'k1', value: 'héllo "quoted"\n', headers: { a: '1', b: ['x', 'y'] } },
        { partition: 0, key: null, value: null },
        {
          partition: 0,
          key: Buffer.from([0xff, 0x00, 0x41]),
          value: Buffer.from([0xc3, 0x28, 0x0a, 0x5c]),
          headers: { raw: Buffer.from([0xfe, 0x01]) },
        },
        { partition: 1, key: 'k2', value: 'second partition' },
      ],
    });
    await producer.disconnect();
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await mock?.stop();
  });

  it('returns every record with its key, value and headers byte for byte, by partition and offset', async () => {
    const records = await readCommittedWithKcat({ brokers: mock.brokers, topic: 'records' });
    expect(records.map((r) => [r.partition, r.offset])).toEqual([
      [0, 0n],
      [0, 1n],
      [0, 2n],
      [1, 0n],
    ]);
    const [text, tombstone, binary, other] = records;
    expect(text!.key).toEqual(Buffer.from('k1'));
    expect(text!.value!.toString('utf8')).toBe('héllo "quoted"\n');
    expect(text!.headers.map((h) => [h.name, h.value?.toString('utf8')])).toEqual([
      ['a', '1'],
      ['b', 'x'],
      ['b', 'y'],
    ]);
    expect(tombstone!.key).toBeNull();
    expect(tombstone!.value).toBeNull();
    expect(binary!.key).toEqual(Buffer.from([0xff, 0x00, 0x41]));
    expect(binary!.value).toEqual(Buffer.from([0xc3, 0x28, 0x0a, 0x5c]));
    expect(binary!.headers).toEqual([{ name: 'raw', value: Buffer.from([0xfe, 0x01]) }]);
    expect(other).toMatchObject({ topic: 'records', partition: 1, value: Buffer.from('second partition') });
    expect(typeof other!.timestamp).toBe('number');
  });

  it('reads only the partitions asked for', async () => {
    const records = await readCommittedWithKcat({ brokers: mock.brokers, topic: 'records', partitions: [1] });
    expect(records.map((r) => r.value?.toString())).toEqual(['second partition']);
  });

  it('names the Debian package when kcat is missing', async () => {
    const err = await readCommittedWithKcat({
      brokers: mock.brokers,
      topic: 'records',
      bin: '/nonexistent/kcat',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KcatNotFoundError);
    expect((err as KcatNotFoundError).debianPackage).toBe('kcat');
    expect((err as Error).message).toMatch(/apt-get install -y kcat/);
  });

  it('fails with a typed error when kcat fails', async () => {
    // `false` exits with status 1 whatever its arguments.
    await expect(
      readCommittedWithKcat({ brokers: mock.brokers, topic: 'records', bin: 'false' }),
    ).rejects.toBeInstanceOf(KcatError);
  });
});

describe('parseKcatJson', () => {
  it('keeps int64 offsets exact', () => {
    const line =
      '{"topic":"t","partition":3,"offset":9223372036854775806,"tstype":"create","ts":1,"broker":1,"key":null,"payload":"v"}\n';
    const [record] = parseKcatJson(Buffer.from(line, 'latin1'));
    expect(record!.offset).toBe(9_223_372_036_854_775_806n);
    expect(record!.partition).toBe(3);
  });

  it('refuses output that is not kcat JSON', () => {
    expect(() => parseKcatJson(Buffer.from('% ERROR: something\n'))).toThrow(KcatError);
  });
});
