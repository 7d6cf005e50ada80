/**
 * Fuzzing the event intake: malformed events and records (missing and wrongly typed fields, bad
 * base64, huge and empty values, null keys, odd header bytes, unknown event sources, anything at
 * all) must end in a `MalformedEventError` (the event) or a record defect (one record, to be
 * quarantined) — never another exception, never a record that breaks the parsed event's contract.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MalformedEventError } from '../../lib/errors.ts';
import { parseEvent, parseEventJson } from '../../lib/event/parseEvent.ts';
import { isRecordDefect, type ParsedEvent } from '../../lib/event/types.ts';
import {
  describeError,
  esmEvent,
  FUZZ_RUNS,
  fuzzParameters,
  groupSpecs,
  mutate,
  mutation,
  weirdValue,
} from '../helpers/fuzz.ts';

const INT64_MAX = (1n << 63n) - 1n;

/** Parses, allowing only MalformedEventError to escape; checks the contract of what it returns. */
function parseChecked(event: unknown): ParsedEvent | MalformedEventError {
  let parsed: ParsedEvent;
  try {
    parsed = parseEvent(event);
  } catch (e) {
    if (e instanceof MalformedEventError) {
      if (e.retriable) throw new Error('MalformedEventError must not be retriable');
      return e;
    }
    throw new Error(`parseEvent threw ${describeError(e)}`);
  }
  const seen = new Set<string>();
  let count = 0;
  for (const t of parsed.tasks) {
    const id = `${t.topic}\u0000${t.partition}`;
    if (seen.has(id)) throw new Error(`task ${t.topic}-${t.partition} appears twice`);
    seen.add(id);
    if (!Number.isSafeInteger(t.partition) || t.partition < 0)
      throw new Error(`bad partition ${t.partition}`);
    let previous = -1n;
    for (const r of t.records) {
      if (r.topic !== t.topic || r.partition !== t.partition) throw new Error('record outside its task');
      if (typeof r.offset !== 'bigint' || r.offset < 0n || r.offset > INT64_MAX)
        throw new Error(`bad offset ${String(r.offset)}`);
      if (r.offset <= previous) throw new Error('records not in strictly increasing offset order');
      previous = r.offset;
      if (isRecordDefect(r)) {
        if (typeof r.reason !== 'string' || r.reason === '') throw new Error('defect without a reason');
        continue;
      }
      if (r.key !== null && !Buffer.isBuffer(r.key)) throw new Error('key is neither bytes nor null');
      if (r.value !== null && !Buffer.isBuffer(r.value)) throw new Error('value is neither bytes nor null');
      if (!Number.isFinite(r.timestamp)) throw new Error('timestamp is not a finite number');
      if (r.size !== (r.key?.length ?? 0) + (r.value?.length ?? 0))
        throw new Error('size is not key + value bytes');
      for (const [name, bytes] of r.headers) {
        if (typeof name !== 'string' || !Buffer.isBuffer(bytes))
          throw new Error('header is not [name, bytes]');
      }
    }
    count += t.records.length;
  }
  if (count !== parsed.recordCount) throw new Error('recordCount disagrees with the records');
  return parsed;
}

describe(`parseEvent under fuzzing (${FUZZ_RUNS} inputs per property)`, () => {
  it('parses every valid event completely', () => {
    fc.assert(
      fc.property(groupSpecs(), fc.constantFrom('aws:kafka', 'SelfManagedKafka'), (groups, source) => {
        const parsed = parseChecked(esmEvent(groups, source));
        expect(parsed).not.toBeInstanceOf(MalformedEventError);
        const records = (parsed as ParsedEvent).tasks.flatMap((t) => t.records);
        expect(records.filter(isRecordDefect)).toEqual([]);
        expect(records).toHaveLength(groups.reduce((n, g) => n + g.records.length, 0));
      }),
      fuzzParameters(),
    );
  });

  it('ends every mutated event in a typed error or a well-formed parse', () => {
    fc.assert(
      fc.property(groupSpecs(), fc.array(mutation, { minLength: 1, maxLength: 4 }), (groups, mutations) => {
        parseChecked(mutate(esmEvent(groups), mutations));
      }),
      fuzzParameters(),
    );
  });

  it('ends anything at all, as the event or as one of its records, in a typed error or a well-formed parse', () => {
    fc.assert(
      fc.property(weirdValue, fc.boolean(), groupSpecs(), (value, asRecord, groups) => {
        if (!asRecord) {
          parseChecked(value);
          return;
        }
        const event = esmEvent(groups) as { records: Record<string, unknown[]> };
        const first = Object.values(event.records)[0]!;
        first.splice(first.length >> 1, 0, value);
        const result = parseChecked(event);
        // A record that is not even an object has no identity to quarantine by: the event is refused.
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          expect(result).toBeInstanceOf(MalformedEventError);
        }
      }),
      fuzzParameters(),
    );
  });

  it('keeps int64 offsets exact through raw JSON text, mutated or not', () => {
    fc.assert(
      fc.property(groupSpecs(), fc.bigInt({ min: 0n, max: INT64_MAX - 100n }), (groups, base) => {
        const text = JSON.stringify(esmEvent(groups)).replace(
          /"offset":(\d+)/g,
          (_m, o: string) => `"offset":${base + BigInt(o)}`,
        );
        const parsed = parseChecked(parseEventJson(text));
        expect(parsed).not.toBeInstanceOf(MalformedEventError);
        const offsets = (parsed as ParsedEvent).tasks.flatMap((t) => t.records.map((r) => r.offset));
        const expected = groups.flatMap((g) => g.records.map((r) => base + BigInt(r.offset)));
        const order = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
        // Beyond 2^53 the raw text keeps them exact (decimal strings): never a rounded number.
        expect(offsets.sort(order)).toEqual(expected.sort(order));
      }),
      fuzzParameters(),
    );
  });
});
