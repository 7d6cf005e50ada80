/**
 * Fuzzing the engine through the handler (memory stores): malformed events and records must end in
 * a typed error or a quarantine, and must never change the state unexpectedly. With labelled
 * record-level mutations the expected state is known exactly (a plain fold of the valid records);
 * with anything-goes mutations, a refused event must leave the stores untouched and an accepted
 * one must leave every checkpoint loadable.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import type { TaskId } from '../../lib/checkpoint/stores.ts';
import { BatchFailedError, MalformedEventError, TidemarkError } from '../../lib/errors.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';
import {
  describeError,
  esmEvent,
  FUZZ_RUNS,
  FUZZ_TIMEOUT_MS,
  type FuzzGroupSpec,
  fuzzParameters,
  groupSpecs,
  mutate,
  mutation,
  weirdValue,
} from '../helpers/fuzz.ts';

const PIPELINE = 'fz';
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function setup() {
  const snapshots = new MemorySnapshotStore();
  const commits = new MemoryCommitStore();
  const env = { TIDEMARK_BUCKET: 'b', TIDEMARK_TABLE: 't', TIDEMARK_PIPELINE: PIPELINE };
  const container = () =>
    createKafkaHandler(balances, { env, stores: { snapshots, commits }, telemetry: false });
  const snapshotOfStores = () => ({
    commits: structuredClone([...commits.items].sort(([a], [b]) => a.localeCompare(b))),
    objects: [...snapshots.objects.keys()].sort(),
  });
  return { snapshots, commits, container, snapshotOfStores };
}

/** Warm-up records (offsets 0-9) for each task, so every fuzzed batch meets existing state. */
function warmUp(groups: FuzzGroupSpec[]): FuzzGroupSpec[] {
  return groups.map((g) => ({
    topic: g.topic,
    partition: g.partition,
    records: Array.from({ length: 10 }, (_, i) => ({
      offset: i,
      key: ['a', 'b', 'c'][i % 3]!,
      amount: i * 7 - 20,
      headers: [],
    })),
  }));
}

/** What a labelled mutation does to one record, and what the engine must make of it. */
type Label = 'as-is' | 'defect' | 'poison' | 'odd-valid';
type RecordMutation = (r: Record<string, unknown>) => void;
const set =
  (field: string, value: unknown): RecordMutation =>
  (r) => {
    r[field] = value;
  };
const drop =
  (field: string): RecordMutation =>
  (r) => {
    delete r[field];
  };
const recordMutations: Array<{ label: Label; apply: RecordMutation }> = [
  { label: 'as-is', apply: () => {} },
  { label: 'defect', apply: set('key', '%%%=') },
  { label: 'defect', apply: set('value', 'abc') },
  { label: 'defect', apply: set('headers', [{ h: [300] }]) },
  { label: 'defect', apply: set('headers', [{ h: [-129] }]) },
  { label: 'defect', apply: set('headers', [{ h: [1.5] }]) },
  { label: 'defect', apply: set('headers', 'x') },
  { label: 'defect', apply: set('headers', [{ a: [1], b: [2] }]) },
  { label: 'defect', apply: set('headers', [{ h: 'AQI=' }]) },
  { label: 'defect', apply: set('timestamp', 'now') },
  { label: 'defect', apply: set('timestamp', Number.NaN) },
  { label: 'defect', apply: drop('timestamp') },
  { label: 'defect', apply: set('timestampType', 'OTHER') },
  { label: 'defect', apply: set('keySchemaMetadata', 5) },
  { label: 'poison', apply: set('key', null) },
  { label: 'poison', apply: drop('key') },
  { label: 'poison', apply: set('value', b64('not json')) },
  { label: 'poison', apply: set('value', b64('')) },
  { label: 'poison', apply: set('value', b64('{"amount":1.5}')) },
  { label: 'poison', apply: set('value', b64('{"amount":"1"}')) },
  { label: 'poison', apply: set('value', b64('{"amount":1e300}')) },
  { label: 'poison', apply: set('value', b64('null')) },
  // A key that is not UTF-8: the default key function refuses it rather than merge distinct keys.
  { label: 'poison', apply: set('key', Buffer.from([0xff, 0xfe]).toString('base64')) },
  { label: 'odd-valid', apply: set('headers', [{ h: [-128, 0, 127, 128, 255] }, { h: [] }]) },
  { label: 'odd-valid', apply: set('key', b64('')) },
  { label: 'odd-valid', apply: set('timestampType', 'LOG_APPEND_TIME') },
  { label: 'odd-valid', apply: set('keySchemaMetadata', { dataFormat: 'AVRO', schemaId: 7 }) },
  {
    label: 'odd-valid',
    apply: (r) => {
      r.offset = String(r.offset);
    },
  },
  {
    // A large value (no setting cuts an epoch or spills anything at this size: what matters is that a
    // big record is decoded and applied like a small one; 20 KB keeps each run cheap).
    label: 'odd-valid',
    apply: (r) => {
      if (typeof r.value === 'string') {
        const body = JSON.parse(Buffer.from(r.value, 'base64').toString('utf8')) as object;
        r.value = b64(JSON.stringify({ ...body, pad: 'x'.repeat(20_000) }));
      }
    },
  },
];

interface Applied {
  offset: number;
  account: string | null;
  amount: number | null;
  quarantined: boolean;
}

/** The oracle: balances per account after these records in offset order (each applied once). */
function fold(records: Applied[]): Record<string, { balance: number; count: number }> {
  const out = new Map<string, { balance: number; count: number }>();
  for (const r of [...records].sort((a, b) => a.offset - b.offset)) {
    if (r.quarantined || r.account === null) continue;
    if (r.amount === null) {
      out.delete(r.account);
      continue;
    }
    const cur = out.get(r.account) ?? { balance: 0, count: 0 };
    out.set(r.account, { balance: cur.balance + r.amount, count: cur.count + 1 });
  }
  return Object.fromEntries(out);
}

const idOf = (g: { topic: string; partition: number }): TaskId => ({
  pipeline: PIPELINE,
  topic: g.topic,
  partition: g.partition,
});

describe(`the engine under fuzzing (${FUZZ_RUNS} inputs per property)`, { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('quarantines every defective or poison record, applies the rest exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(
        groupSpecs({ minOffset: 10 }),
        fc.array(fc.nat(recordMutations.length - 1), { minLength: 30, maxLength: 30 }),
        async (groups, picks) => {
          const s = setup();
          const warm = warmUp(groups);
          await s.container()(esmEvent(warm));
          const event = esmEvent(groups) as { records: Record<string, Array<Record<string, unknown>>> };
          const expected = new Map<string, Applied[]>();
          let quarantined = 0;
          let i = 0;
          for (const g of groups) {
            const label = `${g.topic}-${g.partition}`;
            const applied: Applied[] = warm
              .find((w) => w.topic === g.topic && w.partition === g.partition)!
              .records.map((r) => ({
                offset: r.offset,
                account: r.key,
                amount: r.amount,
                quarantined: false,
              }));
            event.records[label]!.forEach((raw, j) => {
              const spec = g.records[j]!;
              const m = recordMutations[picks[i++ % picks.length]!]!;
              m.apply(raw);
              let account = spec.key;
              if (m.label === 'odd-valid' && raw.key === b64('')) account = '';
              const q = m.label === 'defect' || m.label === 'poison' || account === null;
              if (q) quarantined++;
              applied.push({ offset: spec.offset, account, amount: spec.amount, quarantined: q });
            });
            expected.set(label, applied);
          }
          const summary = await s
            .container()(event)
            .catch((e: unknown) => {
              throw new Error(`the batch failed: ${describeError(e)}`);
            });
          expect(summary.quarantined).toBe(quarantined);
          for (const g of groups) {
            const r = await inspectTask(s, idOf(g));
            expect(r.committedOffset).toBe(String(g.records[g.records.length - 1]!.offset + 1));
            expect(r.state.account ?? {}).toEqual(fold(expected.get(`${g.topic}-${g.partition}`)!));
          }
        },
      ),
      fuzzParameters(),
    );
  });

  it('refuses malformed events without touching the stores, and never crashes untyped', async () => {
    await fc.assert(
      fc.asyncProperty(
        groupSpecs({ minOffset: 10 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        async (groups, mutations) => {
          const s = setup();
          await s.container()(esmEvent(warmUp(groups)));
          const before = s.snapshotOfStores();
          const outcome = await s
            .container()(mutate(esmEvent(groups), mutations))
            .then(
              () => 'ok' as const,
              (e: unknown) => e,
            );
          if (outcome === 'ok') {
            // Accepted: every checkpoint still loads through the verified path.
            for (const g of groups) await inspectTask(s, idOf(g));
            return;
          }
          if (!(outcome instanceof TidemarkError))
            throw new Error(`untyped rejection: ${describeError(outcome)}`);
          if (outcome instanceof BatchFailedError) {
            for (const f of outcome.failures) {
              if (!(f.error instanceof TidemarkError))
                throw new Error(`untyped task failure: ${describeError(f.error)}`);
            }
            return;
          }
          expect(outcome).toBeInstanceOf(MalformedEventError);
          expect(s.snapshotOfStores()).toEqual(before);
        },
      ),
      fuzzParameters(),
    );
  });

  it('refuses anything that is not an event with a typed error and no state change', async () => {
    await fc.assert(
      fc.asyncProperty(weirdValue, async (value) => {
        const s = setup();
        const groups: FuzzGroupSpec[] = [{ topic: 'orders', partition: 0, records: [] }];
        await s.container()(esmEvent(warmUp(groups)));
        const before = s.snapshotOfStores();
        const outcome = await s
          .container()(value)
          .then(
            () => 'ok' as const,
            (e: unknown) => e,
          );
        if (outcome === 'ok') return;
        if (!(outcome instanceof MalformedEventError))
          throw new Error(`expected MalformedEventError, got ${describeError(outcome)}`);
        expect(s.snapshotOfStores()).toEqual(before);
      }),
      fuzzParameters(),
    );
  });
});
