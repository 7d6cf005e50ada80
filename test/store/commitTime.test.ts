/**
 * The commit item's time summary (watermark, next due time; docs/time.md) survives every commit
 * store's form: DynamoDB's attribute map and the JSON form of the database stores.
 */
import { describe, expect, it } from 'vitest';
import { decodeCommitRecord, encodeCommitRecord } from '../../lib/checkpoint/commitRecordJson.ts';
import type { CommitRecord } from '../../lib/checkpoint/stores.ts';
import { StoreError } from '../../lib/errors.ts';
import { commitToItem, itemToCommit } from '../../lib/store/dynamodb/DynamoCommitStore.ts';

const base: CommitRecord = {
  pipeline: 'p',
  topic: 't',
  partition: 0,
  epoch: 3,
  committedOffset: 42n,
  chain: [
    {
      key: 'x/tasks/t/0/000000000003-a.snap',
      bytes: 10,
      checksum: 'deadbeef',
      kind: 'full',
      epoch: 3,
      entries: 1,
    },
  ],
  updatedAt: '2024-01-01T00:00:00.000Z',
  quarantined: 0,
  applied: 42,
  attempt: 'a',
  history: [],
};

describe('commit item time summary', () => {
  it.each([
    [undefined],
    [{ watermark: -5, dueAt: 1_700_000_000_000 }],
    [{ watermark: 1_700_000_000_000 }],
    [{ dueAt: 0 }],
  ])('round-trips %j through DynamoDB attributes and the JSON form', (time) => {
    const c: CommitRecord = time ? { ...base, time } : base;
    expect(itemToCommit(commitToItem(c))).toEqual(c);
    expect(decodeCommitRecord(encodeCommitRecord(c))).toEqual(c);
  });

  it('refuses a malformed time attribute', () => {
    const item = commitToItem({ ...base, time: { dueAt: 1 } });
    expect(() => itemToCommit({ ...item, time: { M: { d: { N: '1.5' } } } })).toThrow(StoreError);
    expect(() => itemToCommit({ ...item, time: { S: 'x' } })).toThrow(StoreError);
  });
});
