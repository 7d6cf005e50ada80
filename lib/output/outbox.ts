/**
 * The outbox codec: an epoch's encoded outputs, persisted before its commit (inline in the commit
 * item or as an object) and delivered after it.
 *
 *     offset  size  field
 *     0       4     magic "TDOB"
 *     4       2     format version (uint16 LE) = 1
 *     6       2     flags (uint16 LE): bit 0 = body compressed with zstd
 *     8       4     header length H (uint32 LE)
 *     12      H     header: UTF-8 JSON (task identity, epoch, committed offset, outputs and counts)
 *     12+H    4     stored body length B (uint32 LE)
 *     16+H    B     body: MessagePack array, one [seqs, entries] pair per output in header order
 *     16+H+B  4     CRC-32 of every byte before it (uint32 LE)
 *
 * Decoding refuses, with `OutboxCorruptError`, anything that is not exactly what was written, or that
 * belongs to another task or epoch than the commit item referencing it.
 */
import { crc32, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
// `msgpackr/pack`, not `msgpackr`: the package's main entry probes for its native string extractor
// when it loads (a native addon no bundled function ships), a cold-start cost for nothing.
import { Packr } from 'msgpackr/pack';
import type { TaskId } from '../checkpoint/stores.ts';
import { ConfigurationError, OutboxCorruptError } from '../errors.ts';
import type { OutputDescriptors, OutputPart } from './types.ts';

const MAGIC = 0x424f4454; // "TDOB" read as uint32 LE
const VERSION = 1;
const FLAG_ZSTD = 1;
/** Bodies smaller than this are not worth compressing. */
const COMPRESS_ABOVE = 512;

interface OutboxHeader {
  pipeline: string;
  topic: string;
  partition: number;
  epoch: number;
  committedOffset: string;
  outputs: Array<{ name: string; count: number }>;
}

const PACK_OPTIONS = {
  useRecords: true,
  moreTypes: false,
  int64AsType: 'bigint',
  useBigIntExtension: true,
} as const;

export interface EncodedOutbox {
  body: Buffer;
  count: number;
  checksum: string;
}

/** Encodes an epoch's outputs. */
export function encodeOutbox(
  task: TaskId,
  epoch: number,
  committedOffset: bigint,
  parts: readonly OutputPart[],
): EncodedOutbox {
  const header: OutboxHeader = {
    pipeline: task.pipeline,
    topic: task.topic,
    partition: task.partition,
    epoch,
    committedOffset: committedOffset.toString(),
    outputs: parts.map((p) => ({ name: p.name, count: p.entries.length })),
  };
  const raw = new Packr(PACK_OPTIONS).pack(
    parts.map((p) => [p.entries.map((e) => e.seq), p.entries.map((e) => e.entry)]),
  );
  const compress = raw.length > COMPRESS_ABOVE;
  const stored = compress ? zstdCompressSync(raw) : raw;
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const body = Buffer.alloc(16 + headerBytes.length + stored.length + 4);
  body.writeUInt32LE(MAGIC, 0);
  body.writeUInt16LE(VERSION, 4);
  body.writeUInt16LE(compress ? FLAG_ZSTD : 0, 6);
  body.writeUInt32LE(headerBytes.length, 8);
  headerBytes.copy(body, 12);
  body.writeUInt32LE(stored.length, 12 + headerBytes.length);
  stored.copy(body, 16 + headerBytes.length);
  const crc = crc32(body.subarray(0, body.length - 4));
  body.writeUInt32LE(crc, body.length - 4);
  return {
    body,
    count: parts.reduce((n, p) => n + p.entries.length, 0),
    checksum: crc.toString(16).padStart(8, '0'),
  };
}

/**
 * Decodes an outbox and checks it is the one expected (`task`, `epoch`); outputs are matched to the
 * processor's declarations by name (an output the processor no longer declares is a configuration
 * error: its committed outputs would be lost).
 */
export function decodeOutbox(
  bytes: Uint8Array,
  expected: { task: TaskId; epoch: number; checksum: string },
  descriptors: OutputDescriptors,
): { committedOffset: bigint; parts: OutputPart[] } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string, cause?: unknown): never => {
    throw new OutboxCorruptError(
      `outbox of ${expected.task.topic}-${expected.task.partition} epoch ${expected.epoch}: ${why}`,
      {
        cause,
      },
    );
  };
  if (b.length < 20) fail('too short');
  if (b.readUInt32LE(0) !== MAGIC) fail('bad magic');
  if (b.readUInt16LE(4) !== VERSION) fail(`unknown format version ${b.readUInt16LE(4)}`);
  const crc = crc32(b.subarray(0, b.length - 4));
  if (crc !== b.readUInt32LE(b.length - 4)) fail('checksum mismatch');
  if (crc.toString(16).padStart(8, '0') !== expected.checksum)
    fail('not the committed outbox (checksum differs)');
  const h = b.readUInt32LE(8);
  if (12 + h + 4 > b.length - 4) fail('truncated header');
  let header: OutboxHeader;
  try {
    header = JSON.parse(b.subarray(12, 12 + h).toString('utf8')) as OutboxHeader;
  } catch (err) {
    return fail('undecodable header', err);
  }
  const t = expected.task;
  if (
    header.pipeline !== t.pipeline ||
    header.topic !== t.topic ||
    header.partition !== t.partition ||
    header.epoch !== expected.epoch
  ) {
    fail(`belongs to ${header.pipeline}/${header.topic}-${header.partition} epoch ${header.epoch}`);
  }
  const len = b.readUInt32LE(12 + h);
  if (16 + h + len !== b.length - 4) fail('body length mismatch');
  let columns: Array<[number[], unknown[]]>;
  try {
    const stored = b.subarray(16 + h, 16 + h + len);
    const raw = b.readUInt16LE(6) & FLAG_ZSTD ? zstdDecompressSync(stored) : stored;
    columns = new Packr(PACK_OPTIONS).unpack(raw) as Array<[number[], unknown[]]>;
  } catch (err) {
    return fail('undecodable body', err);
  }
  if (!Array.isArray(columns) || columns.length !== header.outputs.length) fail('body does not match header');
  const parts = header.outputs.map((o, i): OutputPart => {
    const descriptor = descriptors[o.name];
    if (!descriptor) {
      throw new ConfigurationError(
        'processor.outputs',
        `the committed outbox of ${t.topic}-${t.partition} epoch ${expected.epoch} holds ${o.count} output(s) for '${o.name}', which the processor no longer declares; declare it again until they are delivered`,
      );
    }
    const [seqs, entries] = columns[i]!;
    if (seqs.length !== o.count || entries.length !== o.count) fail(`output '${o.name}': count mismatch`);
    return { name: o.name, descriptor, entries: seqs.map((seq, j) => ({ seq, entry: entries[j] })) };
  });
  return { committedOffset: BigInt(header.committedOffset), parts };
}
