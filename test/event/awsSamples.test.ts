/**
 * AWS's own sample events (fixtures/README.md): they must parse, and their binary key (22 bytes that
 * are not UTF-8) must not stop a processor that does not key its state by it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { defineProcessor, type Processor } from '../../lib/checkpoint/processor.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { parseEvent } from '../../lib/event/parseEvent.ts';
import { isRecordDefect, type KafkaRecord } from '../../lib/event/types.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { type StateDescriptors, taskValueState, valueState } from '../../lib/state/descriptors.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8'));

const SAMPLES = [
  { file: 'msk-aws-sample.json', eventSource: 'aws:kafka', arn: /^arn:aws:kafka:sa-east-1:/ },
  { file: 'self-managed-kafka-aws-sample.json', eventSource: 'SelfManagedKafka', arn: undefined },
] as const;

const KEY = Buffer.from('69b70310582188928b9a7a0f411b2db95597cb3d76df', 'hex');

function run<S extends StateDescriptors>(processor: Processor<S>, event: unknown) {
  const stores = { snapshots: new MemorySnapshotStore(), commits: new MemoryCommitStore() };
  const config = loadConfig({}, { bucket: 'b', table: 't', pipeline: 'samples', poisonPolicy: 'quarantine' });
  const engine = new EpochEngine({ processor, config, ...stores });
  return {
    summary: engine.processEvent(event),
    state: () => inspectTask(stores, { pipeline: 'samples', topic: 'mytopic', partition: 0 }),
  };
}

describe("AWS's sample events", () => {
  for (const sample of SAMPLES) {
    it(`parses ${sample.file}: its binary key, its value and its header, exactly`, () => {
      const parsed = parseEvent(fixture(sample.file));
      expect(parsed.eventSource).toBe(sample.eventSource);
      if (sample.arn) expect(parsed.eventSourceArn).toMatch(sample.arn);
      else expect(parsed.eventSourceArn).toBeUndefined();
      expect(parsed.tasks.map((t) => [t.topic, t.partition, t.records.length])).toEqual([['mytopic', 0, 1]]);
      const r = parsed.tasks[0]!.records[0]!;
      expect(isRecordDefect(r)).toBe(false);
      const record = r as KafkaRecord;
      expect(record).toMatchObject({ offset: 15n, timestamp: 1545084650987, timestampType: 'CREATE_TIME' });
      expect(record.key).toEqual(KEY);
      expect(() => new TextDecoder('utf-8', { fatal: true }).decode(record.key!)).toThrow();
      expect(record.value!.toString('utf8')).toBe('Hello, this is a test.');
      expect(record.headers.map(([n, b]) => [n, b.toString('utf8')])).toEqual([['headerKey', 'headerValue']]);
      expect(record.size).toBe(22 + 22);
    });

    it(`runs ${sample.file} through the engine: task state applies it, keyed state by its key sets it aside`, async () => {
      const counting = defineProcessor({
        state: { seen: taskValueState<number>() },
        process(_record, { state }) {
          state.seen.set((state.seen.get() ?? 0) + 1);
        },
      });
      const taskOnly = run(counting, fixture(sample.file));
      expect(await taskOnly.summary).toMatchObject({ applied: 1, quarantined: 0, epochsCommitted: 1 });
      expect((await taskOnly.state()).state.seen).toEqual({ '': 1 });

      const ownKey = defineProcessor({
        state: { bytes: valueState<number>() },
        keyOf: (record) => record.key?.toString('base64') ?? null,
        process(record, { state }) {
          state.bytes.set(record.size);
        },
      });
      const keyed = run(ownKey, fixture(sample.file));
      expect(await keyed.summary).toMatchObject({ applied: 1, quarantined: 0 });
      expect((await keyed.state()).state.bytes).toEqual({ [KEY.toString('base64')]: 44 });

      const byUtf8Key = defineProcessor({
        state: { bytes: valueState<number>() },
        process(record, { state }) {
          state.bytes.set(record.size);
        },
      });
      const poison = run(byUtf8Key, fixture(sample.file));
      expect(await poison.summary).toMatchObject({ applied: 0, quarantined: 1 });
    });
  }
});
