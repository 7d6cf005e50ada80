/**
 * `kafkaOutput` declarations and the marker decision, without a cluster: what a record becomes at
 * emit time (and which values fail the record), the names the sink uses, and the decision table of
 * `decideDelivery` row by row.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TaskId } from '../../../lib/checkpoint/stores.ts';
import { ConfigurationError, KafkaOutputMarkerError } from '../../../lib/errors.ts';
import { decodeOutbox, encodeOutbox } from '../../../lib/output/outbox.ts';
import type { OutputDescriptor } from '../../../lib/output/types.ts';
import { type KafkaOutputEntry, kafkaOutput, OUTPUT_ID_HEADER } from '../../../lib/sink/kafka/index.ts';
import {
  decideDelivery,
  MARKER_CLOCK_MARGIN_MS,
  type Marker,
  type MarkerPolicy,
  markerMetadata,
  markerSlotOf,
  parseMarker,
  transactionalIdOf,
} from '../../../lib/sink/kafka/marker.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const ctx = { pipeline: 'p', topic: 'in', partition: 3, offset: 17n, key: 'acct-1' };
const task: TaskId = { pipeline: 'p', topic: 'in', partition: 3 };
const utf8 = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('utf8'));

describe('kafkaOutput', () => {
  it('encodes the key (default: the state key), the JSON value, headers, partition and timestamp at emit time', () => {
    const out = kafkaOutput<{ n: number }>({
      topic: 'alerts',
      headers: () => ({ kind: 'alert', tags: ['a', Buffer.from([0xff])], skipped: undefined }),
      partition: (v) => v.n % 2,
      timestamp: () => new Date(1_700_000_000_123),
    });
    const [key, value, headers, partition, timestamp] = out.encode({ n: 3 }, ctx);
    expect(utf8(key)).toBe('acct-1');
    expect(utf8(value)).toBe('{"n":3}');
    expect(headers?.map(([n, v]) => [n, Buffer.from(v).toString('hex')])).toEqual([
      ['kind', Buffer.from('alert').toString('hex')],
      ['tags', Buffer.from('a').toString('hex')],
      ['tags', 'ff'],
    ]);
    expect(partition).toBe(1);
    expect(timestamp).toBe(1_700_000_000_123);
    expect(out.decode?.([key, value, headers, partition, timestamp])).toEqual({ n: 3 });
  });

  it('encodes entries that survive the outbox codec unchanged (a restored container delivers the same bytes)', () => {
    const out = kafkaOutput<{ n: number }>({
      topic: 't',
      headers: () => ({ a: 'x', b: [Buffer.from([1]), 'y'] }),
      partition: () => 3,
      timestamp: () => 1_700_000_000_123,
    });
    const entry = out.encode({ n: 1 }, ctx);
    const parts = [{ name: 'o', descriptor: out as OutputDescriptor, entries: [{ seq: 0, entry }] }];
    const enc = encodeOutbox(task, 1, 2n, parts);
    const [part] = decodeOutbox(
      enc.body,
      { task, epoch: 1, checksum: enc.checksum },
      { o: out as OutputDescriptor },
    ).parts;
    const back = part!.entries[0]!.entry as KafkaOutputEntry;
    const plain = (e: KafkaOutputEntry) =>
      JSON.stringify(e, (_, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
    expect(plain(back)).toBe(plain(entry));
  });

  it('writes a null key, a tombstone and raw bytes when asked; decode gives the bytes back', () => {
    const out = kafkaOutput<string | null>({
      topic: 't',
      key: () => null,
      value: (v) => (v === null ? null : Buffer.from(v, 'hex')),
    });
    const tombstone = out.encode(null, ctx);
    expect(tombstone[0]).toBeNull();
    expect(tombstone[1]).toBeNull();
    expect(out.decode?.(tombstone)).toBeNull();
    const bytes = out.encode('00ff', ctx);
    expect(out.decode?.(bytes)).toEqual(Buffer.from([0, 255]));
    // No state key: no record key either.
    expect(kafkaOutput({ topic: 't' }).encode(1, { ...ctx, key: null })[0]).toBeNull();
  });

  it('fails the record for values it cannot write', () => {
    const out = kafkaOutput<unknown>({ topic: 't', maxRecordBytes: 64 });
    expect(() => out.encode(undefined, ctx)).toThrow(TypeError);
    expect(() => out.encode(() => 1, ctx)).toThrow(TypeError);
    expect(() => out.encode(10n, ctx)).toThrow(TypeError); // JSON.stringify refuses bigints
    expect(() => out.encode('x'.repeat(100), ctx)).toThrow(/maxRecordBytes/);
    const reserved = kafkaOutput<number>({ topic: 't', headers: () => ({ [OUTPUT_ID_HEADER]: 'forged' }) });
    expect(() => reserved.encode(1, ctx)).toThrow(/not allowed/);
    const badHeader = kafkaOutput<number>({ topic: 't', headers: () => ({ n: 1 as unknown as string }) });
    expect(() => badHeader.encode(1, ctx)).toThrow(TypeError);
    for (const p of [-1, 1.5, Number.NaN, 2 ** 31]) {
      expect(() => kafkaOutput<number>({ topic: 't', partition: () => p }).encode(1, ctx)).toThrow(
        RangeError,
      );
    }
    expect(() => kafkaOutput<number>({ topic: 't', timestamp: () => -5 }).encode(1, ctx)).toThrow(RangeError);
    expect(() =>
      kafkaOutput<number>({ topic: 't', value: () => 5 as unknown as string }).encode(1, ctx),
    ).toThrow(TypeError);
  });

  it('refuses invalid declarations with a ConfigurationError naming the option', () => {
    const bad: Array<[string, () => unknown]> = [
      ['kafkaOutput.topic', () => kafkaOutput({ topic: 'a b' })],
      ['kafkaOutput.topic', () => kafkaOutput({ topic: '..' })],
      ['kafkaOutput.cluster.brokers', () => kafkaOutput({ topic: 't', cluster: { brokers: 'localhost' } })],
      ['kafkaOutput.cluster.brokers', () => kafkaOutput({ topic: 't', cluster: { brokers: [] } })],
      [
        'kafkaOutput.cluster.transactionTimeoutMs',
        () => kafkaOutput({ topic: 't', cluster: { transactionTimeoutMs: 900_001 } }),
      ],
      [
        'kafkaOutput.cluster.saslMechanism',
        () => kafkaOutput({ topic: 't', cluster: { saslMechanism: 'gssapi' as 'plain' } }),
      ],
      [
        'kafkaOutput.cluster.saslMechanism',
        () => kafkaOutput({ topic: 't', cluster: { saslMechanism: 'aws-iam', secret: 's' } }),
      ],
      [
        'kafkaOutput.cluster.transactionalIdPrefix',
        () => kafkaOutput({ topic: 't', cluster: { transactionalIdPrefix: 'a b' } }),
      ],
      ['kafkaOutput.cluster.markerTopic', () => kafkaOutput({ topic: 't', cluster: { markerTopic: '' } })],
      [
        'kafkaOutput.cluster.onMissingMarker',
        () => kafkaOutput({ topic: 't', cluster: { onMissingMarker: 'retry' as 'fail' } }),
      ],
      ['kafkaOutput.key', () => kafkaOutput({ topic: 't', key: 'k' as unknown as () => string })],
    ];
    for (const [setting, declare] of bad) {
      let error: unknown;
      try {
        declare();
      } catch (err) {
        error = err;
      }
      expect(error, setting).toBeInstanceOf(ConfigurationError);
      expect((error as ConfigurationError).setting).toBe(setting);
    }
  });

  it('shares one sink per transactional id prefix (one transaction for all topics of a cluster)', () => {
    const cluster = { brokers: 'b1:9092,b2:9092' };
    const a = kafkaOutput({ topic: 'a', cluster });
    const b = kafkaOutput({ topic: 'b', cluster: { brokers: ['b1:9092', 'b2:9092'] } });
    const other = kafkaOutput({
      topic: 'a',
      cluster: { brokers: 'x:9092', transactionalIdPrefix: 'other.' },
    });
    expect(a.sinkId).toBe('kafka:tidemark.');
    expect(b.sinkId).toBe(a.sinkId);
    expect(other.sinkId).toBe('kafka:other.');
    expect(a.kind).toBe('kafka');
  });
});

describe('Kafka sink names', () => {
  it('gives each task its transactional id and marker slot', () => {
    expect(transactionalIdOf('tidemark.', task)).toBe('tidemark.p.in.3');
    expect(markerSlotOf({ transactionalIdPrefix: 'tidemark.' }, task)).toEqual({
      groupId: 'tidemark.p.outputs',
      topic: 'in',
      partition: 3,
    });
    expect(markerSlotOf({ transactionalIdPrefix: 'x-', markerTopic: 'markers' }, task)).toEqual({
      groupId: 'x-p.outputs.in',
      topic: 'markers',
      partition: 3,
    });
  });

  it('reads markers: none, its own, and foreign ones', () => {
    expect(parseMarker('-1', null)).toEqual({ kind: 'absent' });
    expect(parseMarker('120', markerMetadata(7))).toEqual({ kind: 'epoch', epoch: 7, offset: 120n });
    expect(parseMarker('9223372036854775807', markerMetadata(2))).toEqual({
      kind: 'epoch',
      epoch: 2,
      offset: 9223372036854775807n,
    });
    expect(parseMarker('5', '')).toEqual({ kind: 'foreign', offset: 5n, metadata: '' });
    expect(parseMarker('5', 'tidemark:1:epoch=x')).toMatchObject({ kind: 'foreign' });
  });
});

describe('decideDelivery', () => {
  const policy: MarkerPolicy = { markerRetentionMs: 7 * 86_400_000, onMissingMarker: 'fail' };
  const now = Date.parse('2026-12-10T00:00:00Z');
  const delivery = (epoch: number, committedOffset: bigint, committedAt?: string) => ({
    task,
    epoch,
    committedOffset,
    ...(committedAt === undefined ? {} : { committedAt }),
  });
  const at = (msAgo: number) => new Date(now - msAgo).toISOString();
  const decide = (marker: Marker, d = delivery(5, 100n, at(1_000)), p = policy) =>
    decideDelivery(marker, d, p, now, 'tidemark.p.in.3');
  const error = (fn: () => unknown): KafkaOutputMarkerError => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(KafkaOutputMarkerError);
      expect((err as KafkaOutputMarkerError).retriable).toBe(false);
      return err as KafkaOutputMarkerError;
    }
    throw new Error('expected a KafkaOutputMarkerError');
  };

  it('skips an epoch the marker covers, by epoch and not by offset (a rollback moves offsets back)', () => {
    expect(decide({ kind: 'epoch', epoch: 6, offset: 40n })).toBe('skip'); // later epoch, lower offset
    expect(decide({ kind: 'epoch', epoch: 5, offset: 100n })).toBe('skip');
    expect(decide({ kind: 'epoch', epoch: 4, offset: 400n })).toBe('deliver'); // earlier epoch, higher offset
  });

  it('refuses a marker of the same epoch with another offset (another history of the pipeline)', () => {
    expect(error(() => decide({ kind: 'epoch', epoch: 5, offset: 99n })).reason).toBe('history');
  });

  it('refuses a marker it did not write', () => {
    expect(error(() => decide({ kind: 'foreign', offset: 100n, metadata: null })).reason).toBe('foreign');
  });

  it('delivers when the marker is absent and the epoch is younger than the retention (or of unknown age)', () => {
    const absent: Marker = { kind: 'absent' };
    expect(decide(absent)).toBe('deliver');
    expect(decide(absent, delivery(5, 100n))).toBe('deliver');
    expect(decide(absent, delivery(5, 100n, at(policy.markerRetentionMs - MARKER_CLOCK_MARGIN_MS - 1)))).toBe(
      'deliver',
    );
  });

  it('lets the operator decide when the marker of an older unsettled epoch is gone', () => {
    const absent: Marker = { kind: 'absent' };
    const old = delivery(5, 100n, at(policy.markerRetentionMs - MARKER_CLOCK_MARGIN_MS));
    const err = error(() => decide(absent, old));
    expect(err.reason).toBe('missing');
    expect(err.message).toContain('tidemark-id p/in/3/5/');
    expect(decide(absent, old, { ...policy, onMissingMarker: 'deliver' })).toBe('deliver');
    expect(decide(absent, old, { ...policy, onMissingMarker: 'skip' })).toBe('skip');
    // An older marker still proves the epoch was not delivered, however old the epoch is.
    expect(decide({ kind: 'epoch', epoch: 4, offset: 90n }, old)).toBe('deliver');
  });
});

describe('tidemark/kafka entry point', () => {
  it('declares outputs without loading kafkajs; the sink loads it when built', () => {
    // A fresh Node process: which CommonJS modules does each import load?
    const probe = (modulePath: string) =>
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { createRequire } from 'node:module';
           const m = await import(${JSON.stringify(modulePath)});
           if (m.kafkaOutput) m.kafkaOutput({ topic: 't' });
           const cache = createRequire(import.meta.url).cache;
           process.stdout.write(String(Object.keys(cache).some((k) => k.includes('/node_modules/kafkajs/'))));`,
        ],
        { cwd: ROOT, encoding: 'utf8' },
      );
    expect(probe(path.join(ROOT, 'lib/sink/kafka/index.ts'))).toBe('false');
    expect(probe(path.join(ROOT, 'lib/sink/kafka/KafkaOutputSink.ts'))).toBe('true');
  });
});
