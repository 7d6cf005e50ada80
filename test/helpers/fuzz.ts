/**
 * Sizes of the fuzzers. `TIDEMARK_FUZZ_RUNS` sets the inputs per property (default: a CI size);
 * the full run sets it so that every property together sees at least 100,000 inputs. Seeds come
 * from the one place that sets them for every property (fastCheck.ts): `TIDEMARK_FC_SEED` replays
 * a failure, `TIDEMARK_FC_PATH` (fuzzers only) also skips to its shrunk counterexample.
 */
import fc from 'fast-check';
import { buildEvent, rawRecord } from '../../harness/esm/mskEvent.ts';
import { TidemarkError } from '../../lib/errors.ts';
import type { KafkaEvent, KafkaEventSource } from '../../lib/event/types.ts';

export const FUZZ_RUNS = Number(process.env.TIDEMARK_FUZZ_RUNS || 2_000);

/**
 * A test timeout that grows with the inputs per property (60 ms each, never below the suite's
 * default of 180 s): what a run costs the engine's properties on a loaded 2-core machine, so that a
 * larger `TIDEMARK_FUZZ_RUNS` does not end a property that is only slow.
 */
export const FUZZ_TIMEOUT_MS = Math.max(180_000, FUZZ_RUNS * 60);

export function fuzzParameters<T>(): fc.Parameters<T> {
  const path = process.env.TIDEMARK_FC_PATH;
  return {
    numRuns: FUZZ_RUNS,
    ...(path ? { path } : {}),
    // The counterexample and the seed go in the failure message; keep the report short.
    verbose: 0,
  };
}

/** Describes an error for a failure message: name, message, whether it is a Tidemark error. */
export function describeError(e: unknown): string {
  if (e instanceof Error)
    return `${e instanceof TidemarkError ? '' : 'UNTYPED '}${e.name}: ${e.message.slice(0, 300)}`;
  return `UNTYPED non-error: ${String(e)}`;
}

/** Values nothing expects: every JSON type, the non-JSON ones a direct invocation could pass, and extremes. */
export const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    undefined,
    true,
    false,
    0,
    -0,
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    2 ** 53,
    2 ** 63,
    -(2 ** 31),
    '',
    ' ',
    '0',
    '-1',
    '18446744073709551616',
    '9223372036854775808',
    '%%%=',
    'abc',
    '====',
    'AAAA====',
    '\u0000',
    '\uD800',
    [],
    [[]],
    {},
    { a: 1 },
    10n,
    'x'.repeat(1 << 20),
    Buffer.alloc(1 << 20, 0x41).toString('base64'),
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 40 }),
  fc.base64String({ maxLength: 40 }),
  fc.array(fc.integer({ min: -300, max: 300 }), { maxLength: 6 }),
  fc.jsonValue({ maxDepth: 2 }),
  fc.anything({ maxDepth: 2, withBigInt: true, withNullPrototype: true, withTypedArray: true }),
);

/** One record as the generators describe it before it is encoded as the ESM would. */
export interface FuzzRecordSpec {
  offset: number;
  /** Account id, or null for a null key. */
  key: string | null;
  /** Deposit amount, or null for a tombstone. */
  amount: number | null;
  headers: Array<Record<string, number[]>>;
}

export interface FuzzGroupSpec {
  topic: string;
  partition: number;
  records: FuzzRecordSpec[];
}

const FUZZ_CLUSTER_ARN = 'arn:aws:kafka:us-east-1:123456789012:cluster/fuzz/0000';

export const topicName = fc.constantFrom('orders', 'pay-ments.eu', 't', 'a-b-c', 'x_1');

export const recordSpec = (offset: number): fc.Arbitrary<FuzzRecordSpec> =>
  fc.record({
    offset: fc.constant(offset),
    key: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom('a', 'b', 'c', 'd', 'ünï', '') },
      fc.constant(null),
    ),
    amount: fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: -1_000_000, max: 1_000_000 }) },
      fc.constant(null),
    ),
    headers: fc.array(
      fc.dictionary(
        fc.constantFrom('h', 'trace', 'ünï'),
        fc.array(fc.integer({ min: -128, max: 255 }), { maxLength: 6 }),
        {
          minKeys: 1,
          maxKeys: 1,
        },
      ),
      { maxLength: 2 },
    ),
  });

/** Valid groups: distinct topic-partitions, each with unique offsets in increasing order. */
export const groupSpecs = (
  opts: { minOffset?: number; maxRecords?: number } = {},
): fc.Arbitrary<FuzzGroupSpec[]> =>
  fc
    .uniqueArray(fc.tuple(topicName, fc.nat(3)), {
      minLength: 1,
      maxLength: 3,
      selector: ([t, p]) => `${t}-${p}`,
    })
    .chain((tasks) =>
      fc.tuple(
        ...tasks.map(([topic, partition]) =>
          fc
            .uniqueArray(fc.integer({ min: opts.minOffset ?? 0, max: (opts.minOffset ?? 0) + 60 }), {
              minLength: 1,
              maxLength: opts.maxRecords ?? 8,
            })
            .chain((offsets) => fc.tuple(...[...offsets].sort((a, b) => a - b).map(recordSpec)))
            .map((records) => ({ topic, partition, records })),
        ),
      ),
    );

/** The ESM payload for these groups (base64 keys and values, signed header bytes). */
export function esmEvent(
  groups: FuzzGroupSpec[],
  eventSource: KafkaEventSource = 'aws:kafka',
): Record<string, unknown> {
  const event: KafkaEvent = buildEvent(
    { eventSource, eventSourceArn: FUZZ_CLUSTER_ARN, bootstrapServers: 'b-1.fuzz:9092' },
    groups.map((g) => ({
      topic: g.topic,
      partition: g.partition,
      records: g.records.map((r) =>
        rawRecord({
          topic: g.topic,
          partition: g.partition,
          offset: r.offset,
          timestamp: 1_700_000_000_000 + r.offset,
          key: r.key,
          value: r.amount === null ? null : { amount: r.amount },
          headers: r.headers,
        }),
      ),
    })),
  );
  return { ...event };
}

/** Where a mutation lands: a property of an object or an element of an array. */
type Slot = { parent: Record<string | number, unknown> | unknown[]; key: string | number };

function slots(value: unknown, out: Slot[] = []): Slot[] {
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push({ parent: value, key: i });
      slots(v, out);
    });
  } else if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const [k, v] of Object.entries(value)) {
      out.push({ parent: value as Record<string, unknown>, key: k });
      slots(v, out);
    }
  }
  return out;
}

export interface Mutation {
  at: number;
  op: 'set' | 'delete' | 'add' | 'duplicate';
  value: unknown;
  name: string;
}

export const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom('set', 'set', 'set', 'delete', 'add', 'duplicate'),
  value: weirdValue,
  name: fc.constantFrom(
    'extra',
    'offset',
    'topic',
    'key',
    'value',
    'headers',
    'records',
    'orders-0',
    '-1',
    'a-b',
    '__proto__',
  ),
});

/** Applies mutations to a deep copy of `event` (anywhere in it: envelope, groups, records, headers). */
export function mutate(
  event: Record<string, unknown>,
  mutations: readonly Mutation[],
): Record<string, unknown> {
  const copy = structuredClone(event);
  for (const m of mutations) {
    const all = slots(copy);
    if (all.length === 0) break;
    const s = all[m.at % all.length]!;
    const parent = s.parent as Record<string | number, unknown>;
    switch (m.op) {
      case 'set':
        parent[s.key] = m.value;
        break;
      case 'delete':
        if (Array.isArray(parent)) parent.splice(Number(s.key), 1);
        else delete parent[s.key];
        break;
      case 'add':
        if (Array.isArray(parent)) parent.push(m.value);
        else
          Object.defineProperty(parent, m.name, {
            value: m.value,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        break;
      case 'duplicate':
        if (Array.isArray(parent)) parent.push(structuredClone(parent[s.key] as object));
        break;
    }
  }
  return copy;
}
