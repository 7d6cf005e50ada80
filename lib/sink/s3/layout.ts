/**
 * Where the S3 output sink writes, and what (no I/O here; the sink and the reader share it):
 *
 *     <prefix>/<pipeline>/<output>/data/<topic>/<partition>/<epoch, 12 digits>-<layout>-<part, 5 digits>.jsonl[.gz]
 *     <prefix>/<pipeline>/<output>/manifests/<topic>/<partition>/<epoch, 12 digits>.json
 *
 * `<output>` is the output's declared name (URI-encoded). Every key is a function of the task, the
 * epoch and the part number, and every byte of an object a function of the epoch's committed
 * outbox and the output's options: a retry, a restored container or a zombie writes the same
 * objects with the same bytes. Zero-padded numbers make a listing come out in epoch order.
 * `<layout>` (8 hex digits) fingerprints the options that shape the content (`maxObjectBytes`,
 * `withIds`): a redelivery after a deploy that changed them writes other keys (left unreferenced,
 * as the manifest of the first delivery wins) instead of meeting objects it cannot reproduce.
 *
 * A data object holds JSON lines (each ending in `\n`), gzip-compressed when asked. Its content is
 * split into parts by uncompressed size, at line boundaries, so the split is deterministic too.
 * The manifest, written last, is what commits the objects for readers.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { TaskId } from '../../checkpoint/stores.ts';
import { type OutputId, outputIdString } from '../../output/types.ts';

export const MANIFEST_FORMAT = 'tidemark.s3-output.manifest';
export const MANIFEST_VERSION = 1;

/** Object metadata (`x-amz-meta-…`) of data objects and manifests. */
export const META = {
  /** SHA-256 (hex) of the uncompressed content: what "identical" means on a retry. */
  sha256: 'tidemark-sha256',
  records: 'tidemark-records',
  firstId: 'tidemark-first-id',
  lastId: 'tidemark-last-id',
  /** Manifests: SHA-256 (hex) of the epoch's serialized values (see `outputsSha256`). */
  outputsSha256: 'tidemark-outputs-sha256',
} as const;

export interface S3OutputLocation {
  readonly prefix: string;
  readonly pipeline: string;
  /** The output's declared name. */
  readonly output: string;
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** `<prefix>/<pipeline>/<output>/`. */
export function outputRoot(loc: S3OutputLocation): string {
  return `${loc.prefix}/${loc.pipeline}/${encodeURIComponent(loc.output)}/`;
}

/** Where the manifests of an output (or of one of its tasks) are listed. */
export function manifestPrefix(loc: S3OutputLocation, task?: { topic: string; partition?: number }): string {
  const base = `${outputRoot(loc)}manifests/`;
  if (!task) return base;
  return task.partition === undefined ? `${base}${task.topic}/` : `${base}${task.topic}/${task.partition}/`;
}

export function manifestKey(loc: S3OutputLocation, task: Omit<TaskId, 'pipeline'>, epoch: number): string {
  return `${manifestPrefix(loc, task)}${pad(epoch, 12)}.json`;
}

export function dataKey(
  loc: S3OutputLocation,
  task: Omit<TaskId, 'pipeline'>,
  epoch: number,
  part: number,
  options: Pick<ObjectOptions, 'gzip' | 'maxObjectBytes' | 'withIds'>,
): string {
  return `${outputRoot(loc)}data/${task.topic}/${task.partition}/${pad(epoch, 12)}-${layoutTag(options)}-${pad(part, 5)}.jsonl${options.gzip ? '.gz' : ''}`;
}

/** 8 hex digits that change with the options that shape an object's content. */
export function layoutTag(options: Pick<ObjectOptions, 'maxObjectBytes' | 'withIds'>): string {
  return sha256Hex(
    Buffer.from(`v1;maxObjectBytes=${options.maxObjectBytes};withIds=${options.withIds}`),
  ).slice(0, 8);
}

/** What a manifest says about one data object. */
export interface S3OutputObject {
  readonly key: string;
  /** Stored size (compressed when gzip). */
  readonly bytes: number;
  readonly records: number;
  /** `pipeline/topic/partition/epoch/seq` of its first and last line. */
  readonly firstId: string;
  readonly lastId: string;
  /** SHA-256 (hex) of the uncompressed JSON lines. */
  readonly sha256: string;
}

/** A per-epoch manifest: the committed objects of one output for one task-epoch, in order. */
export interface S3OutputManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly version: typeof MANIFEST_VERSION;
  readonly pipeline: string;
  readonly output: string;
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  /** The input offset the epoch committed through (next offset to read), a decimal string. */
  readonly committedOffset: string;
  /** `jsonl` or `jsonl.gz`. */
  readonly encoding: 'jsonl' | 'jsonl.gz';
  /** Each line is `{"id":"<output id>","value":<value>}` instead of the value alone. */
  readonly withIds: boolean;
  readonly records: number;
  readonly firstId: string;
  readonly lastId: string;
  /** SHA-256 (hex) of the epoch's serialized values, independent of the objects' layout. */
  readonly outputsSha256: string;
  readonly objects: readonly S3OutputObject[];
}

/** One data object as the sink will write it. */
export interface PlannedObject {
  readonly part: number;
  readonly body: Buffer;
  readonly records: number;
  readonly firstId: string;
  readonly lastId: string;
  readonly sha256: string;
}

export interface ObjectOptions {
  readonly gzip: boolean;
  readonly gzipLevel: number;
  readonly maxObjectBytes: number;
  readonly withIds: boolean;
}

/**
 * The data objects of one output's share of a task-epoch: lines in emit order, cut into parts of at
 * most `maxObjectBytes` uncompressed (a single longer line gets a part of its own). Deterministic:
 * the same entries and options give the same bytes (gzip with a fixed header: no name, no time).
 */
export function planObjects(
  task: TaskId,
  epoch: number,
  entries: ReadonlyArray<{ seq: number; entry: unknown }>,
  options: ObjectOptions,
): PlannedObject[] {
  const out: PlannedObject[] = [];
  let lines: string[] = [];
  let size = 0;
  let first = '';
  let last = '';
  const flush = () => {
    if (lines.length === 0) return;
    const content = Buffer.from(lines.join(''), 'utf8');
    out.push({
      part: out.length,
      body: options.gzip ? gzipSync(content, { level: options.gzipLevel }) : content,
      records: lines.length,
      firstId: first,
      lastId: last,
      sha256: sha256Hex(content),
    });
    lines = [];
    size = 0;
  };
  for (const e of entries) {
    const id = outputIdString({ ...task, epoch, seq: e.seq } satisfies OutputId);
    const value = e.entry as string;
    const line = options.withIds ? `{"id":${JSON.stringify(id)},"value":${value}}\n` : `${value}\n`;
    const bytes = Buffer.byteLength(line, 'utf8');
    if (lines.length > 0 && size + bytes > options.maxObjectBytes) flush();
    if (lines.length === 0) first = id;
    lines.push(line);
    size += bytes;
    last = id;
  }
  flush();
  return out;
}

/**
 * SHA-256 of the epoch's serialized values, each followed by `\n`: what the outputs are, whatever
 * the options that lay them out in objects (`maxObjectBytes`, `withIds`, `gzip`).
 */
export function outputsSha256(entries: ReadonlyArray<{ entry: unknown }>): string {
  const h = createHash('sha256');
  for (const e of entries) h.update(`${e.entry as string}\n`, 'utf8');
  return h.digest('hex');
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The manifest's bytes: JSON with a fixed key order (the interface's), one object per line for
 * readability, so the same objects always give the same manifest.
 */
export function encodeManifest(m: S3OutputManifest): Buffer {
  const head = {
    format: m.format,
    version: m.version,
    pipeline: m.pipeline,
    output: m.output,
    topic: m.topic,
    partition: m.partition,
    epoch: m.epoch,
    committedOffset: m.committedOffset,
    encoding: m.encoding,
    withIds: m.withIds,
    records: m.records,
    firstId: m.firstId,
    lastId: m.lastId,
    outputsSha256: m.outputsSha256,
  };
  const objects = m.objects.map((o) =>
    JSON.stringify({
      key: o.key,
      bytes: o.bytes,
      records: o.records,
      firstId: o.firstId,
      lastId: o.lastId,
      sha256: o.sha256,
    }),
  );
  const text = `${JSON.stringify(head).slice(0, -1)},"objects":[\n${objects.join(',\n')}\n]}\n`;
  return Buffer.from(text, 'utf8');
}
