/** Helpers of the snapshot codec's tests. */
import { crc32 } from 'node:zlib';
import { expect } from 'vitest';
import { SnapshotCorruptError } from '../../lib/errors.ts';

/** Runs `fn`, which must throw a `SnapshotCorruptError`, and returns that error. */
export function corrupt(fn: () => unknown): SnapshotCorruptError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SnapshotCorruptError);
    return err as SnapshotCorruptError;
  }
  throw new Error('expected SnapshotCorruptError');
}

/** Rewrites a snapshot's trailing checksum to match its bytes (after a test edited them). */
export function resealed(bytes: Buffer): Buffer {
  bytes.writeUInt32LE(crc32(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
  return bytes;
}
