/**
 * Fuzzing snapshots: corrupted objects (bit flips, truncation, extension, another task's or another
 * epoch's snapshot, random bytes, well-framed garbage) must end in a typed `SnapshotError` through
 * the decoder, the restore path and the engine — never an untyped crash, never a silently loaded
 * snapshot, never a state change.
 */
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { loadCheckpoint } from '../../lib/checkpoint/restore.ts';
import type { CheckpointSummary, SnapshotRef, TaskId } from '../../lib/checkpoint/stores.ts';
import { BatchFailedError, SnapshotCorruptError, SnapshotError } from '../../lib/errors.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import {
  decodeSnapshot,
  encodeSnapshot,
  type SnapshotMeta,
  snapshotChecksum,
} from '../../lib/state/snapshotCodec.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';
import { describeError, FUZZ_RUNS, fuzzParameters } from '../helpers/fuzz.ts';

const task: TaskId = { pipeline: 'fz', topic: 'orders', partition: 3 };

const stateArb = fc.dictionary(
  fc.string({ maxLength: 12 }),
  fc.oneof(
    fc.record({ balance: fc.integer(), count: fc.nat() }),
    fc.jsonValue({ maxDepth: 2 }),
    fc.bigInt(),
    fc.uint8Array({ maxLength: 16 }),
  ),
  { maxKeys: 12 },
);

interface Built {
  bytes: Buffer;
  ref: SnapshotRef;
  checkpoint: CheckpointSummary;
}

function build(
  state: Record<string, unknown>,
  identity: Partial<TaskId & { epoch: number; committedOffset: bigint }> = {},
  compression: 'zstd' | 'none' = 'zstd',
): Built {
  const epoch = identity.epoch ?? 4;
  const committedOffset = identity.committedOffset ?? 1234n;
  const meta: SnapshotMeta = {
    pipeline: identity.pipeline ?? task.pipeline,
    topic: identity.topic ?? task.topic,
    partition: identity.partition ?? task.partition,
    epoch,
    committedOffset,
    kind: 'full',
    baseEpoch: null,
    parentEpoch: null,
    attempt: 'a1b2c3',
    createdAt: '2026-01-01T00:00:00.000Z',
  };
  const entries = new Map(Object.entries(state));
  const bytes = encodeSnapshot(
    meta,
    [{ name: 'account', kind: 'value', scope: 'key', version: 1, entries }],
    compression,
  );
  const key = `tidemark/${meta.pipeline}/tasks/${meta.topic}/${meta.partition}/${String(epoch).padStart(12, '0')}-a1b2c3.snap`;
  const ref: SnapshotRef = {
    key,
    bytes: bytes.length,
    checksum: snapshotChecksum(bytes),
    kind: 'full',
    epoch,
    entries: entries.size,
  };
  return { bytes, ref, checkpoint: { epoch, committedOffset, chain: [ref], updatedAt: meta.createdAt } };
}

type Corruption =
  | { kind: 'flip'; bits: Array<[number, number]> }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; extra: Uint8Array }
  | { kind: 'other-task'; partition: number; topic: string }
  | { kind: 'other-epoch'; epoch: number }
  | { kind: 'other-offset'; offset: bigint };

const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    bits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({
    kind: fc.constant('other-task' as const),
    partition: fc.integer({ min: 0, max: 5 }),
    topic: fc.constantFrom('orders', 'payments'),
  }),
  fc.record({ kind: fc.constant('other-epoch' as const), epoch: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ kind: fc.constant('other-offset' as const), offset: fc.bigInt({ min: 0n, max: 5000n }) }),
);

/** The corrupted object, or undefined when the corruption happens to change nothing. */
function corrupt(state: Record<string, unknown>, original: Built, c: Corruption): Buffer | undefined {
  const b = Buffer.from(original.bytes);
  switch (c.kind) {
    case 'flip': {
      for (const [at, bit] of c.bits) b[at % b.length]! ^= 1 << bit;
      return b.equals(original.bytes) ? undefined : b;
    }
    case 'truncate':
      return b.subarray(0, c.at % b.length);
    case 'extend':
      return Buffer.concat([b, c.extra]);
    case 'other-task':
      if (c.partition === task.partition && c.topic === task.topic) return undefined;
      return build(state, { partition: c.partition, topic: c.topic }).bytes;
    case 'other-epoch':
      if (c.epoch === original.ref.epoch) return undefined;
      return build(state, { epoch: c.epoch }).bytes;
    case 'other-offset':
      if (c.offset === original.checkpoint.committedOffset) return undefined;
      return build(state, { committedOffset: c.offset }).bytes;
  }
}

function expectSnapshotError(e: unknown): void {
  if (!(e instanceof SnapshotError)) throw new Error(`expected a SnapshotError, got ${describeError(e)}`);
  expect(e.retriable).toBe(false);
}

describe(`snapshots under fuzzing (${FUZZ_RUNS} inputs per property)`, () => {
  it('refuses random bytes with SnapshotCorruptError only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.boolean(), (bytes, withMagic) => {
        const b = Buffer.from(bytes);
        if (withMagic && b.length >= 6) b.write('TDMK\u0001\u0000', 0, 'latin1');
        try {
          decodeSnapshot(b);
        } catch (e) {
          if (!(e instanceof SnapshotCorruptError))
            throw new Error(`decodeSnapshot threw ${describeError(e)}`);
          return;
        }
        throw new Error('random bytes decoded as a snapshot');
      }),
      fuzzParameters(),
    );
  });

  it('decodes tampered snapshots whose checksum was recomputed into a typed error or a value, never a crash', () => {
    fc.assert(
      fc.property(
        stateArb,
        fc.constantFrom('zstd', 'none') as fc.Arbitrary<'zstd' | 'none'>,
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }),
        (state, compression, edits) => {
          const b = Buffer.from(build(state, {}, compression).bytes);
          // Overwrite bytes anywhere but the trailer, then make the trailer match again.
          for (const [at, v] of edits) b[at % (b.length - 4)] = v;
          b.writeUInt32LE(crc32(b.subarray(0, b.length - 4)), b.length - 4);
          try {
            decodeSnapshot(b);
          } catch (e) {
            if (!(e instanceof SnapshotCorruptError))
              throw new Error(`decodeSnapshot threw ${describeError(e)}`);
          }
        },
      ),
      fuzzParameters(),
    );
  });

  it('never loads a corrupted, truncated, extended or foreign snapshot through the restore path', async () => {
    await fc.assert(
      fc.asyncProperty(stateArb, corruptionArb, async (state, c) => {
        const original = build(state);
        const bad = corrupt(state, original, c);
        fc.pre(bad !== undefined);
        const snapshots = new MemorySnapshotStore();
        await snapshots.put(original.ref.key, bad!);
        const loaded = await loadCheckpoint(snapshots, task, original.checkpoint, {}).then(
          () => 'loaded',
          (e: unknown) => e,
        );
        if (loaded === 'loaded') throw new Error(`a ${c.kind} snapshot was loaded`);
        expectSnapshotError(loaded);
      }),
      fuzzParameters(),
    );
  });

  it('fails the batch with a typed error and changes nothing when the committed snapshot is corrupted', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: -50, max: 50 })), {
          minLength: 1,
          maxLength: 12,
        }),
        corruptionArb,
        async (deposits, c) => {
          const snapshots = new MemorySnapshotStore();
          const commits = new MemoryCommitStore();
          // The snapshot an object of its own (not inline in the commit item): that is what gets corrupted.
          const env = {
            TIDEMARK_BUCKET: 'b',
            TIDEMARK_TABLE: 't',
            TIDEMARK_PIPELINE: task.pipeline,
            TIDEMARK_SNAPSHOT_INLINE_MAX_BYTES: '0',
          };
          const container = () =>
            createKafkaHandler(balances, { env, stores: { snapshots, commits }, telemetry: false });
          const records = deposits.map(([acct, amount], i) =>
            deposit(task.topic, task.partition, i, acct, amount),
          );
          await container()(mskEvent(records));
          const [key, object] = [...snapshots.objects][0]!;
          const committed = (await commits.read(task))!;
          const state = Object.fromEntries(
            deposits.map(([acct]) => [acct, { balance: 0, count: 0 }] as const),
          );
          const original: Built = {
            bytes: object.body,
            ref: committed.chain[0]!,
            checkpoint: committed,
          };
          const bad = corrupt(state, original, c);
          fc.pre(bad !== undefined);
          snapshots.objects.set(key, { body: bad!, lastModified: new Date() });
          const itemsBefore = structuredClone([...commits.items]);
          const keysBefore = [...snapshots.objects.keys()].sort();
          const next = [deposit(task.topic, task.partition, records.length, 'a', 1)];
          const err = await container()(mskEvent(next)).then(
            () => undefined,
            (e: unknown) => e,
          );
          if (!(err instanceof BatchFailedError))
            throw new Error(`expected BatchFailedError, got ${describeError(err)}`);
          for (const f of err.failures) expectSnapshotError(f.error);
          expect([...commits.items]).toEqual(itemsBefore);
          expect([...snapshots.objects.keys()].sort()).toEqual(keysBefore);
        },
      ),
      fuzzParameters(),
    );
  });
});
