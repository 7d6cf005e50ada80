/**
 * Reads a topic independently of kafkajs, with kcat (librdkafka's command-line client, the Debian
 * package `kcat`) as a `read_committed` consumer: a second opinion on what a transactional writer
 * made visible, from a client that shares no code with kafkajs.
 *
 * kcat reads each partition from its start to its last stable offset and exits (`-e`): the result
 * is what a read_committed consumer sees at that moment, every committed and non-transactional
 * record before the first open transaction of each partition, nothing of an aborted one.
 */
import { spawn } from 'node:child_process';
import { killWithParent } from '../processGuard.ts';
import { KcatError, KcatNotFoundError } from './errors.ts';

export interface KcatHeader {
  name: string;
  /** `null` for a header without a value. */
  value: Buffer | null;
}

export interface KcatRecord {
  topic: string;
  partition: number;
  offset: bigint;
  /** `null` for a record without a key. */
  key: Buffer | null;
  /** `null` for a tombstone. */
  value: Buffer | null;
  /** In the record's order; repeated names are kept. */
  headers: KcatHeader[];
  /** Milliseconds since the epoch (the record's timestamp). */
  timestamp: number;
}

export interface KcatReadOptions {
  /** Bootstrap addresses, `host:port`. */
  brokers: readonly string[];
  topic: string;
  /** Partitions to read. Default: all of the topic's partitions. */
  partitions?: readonly number[];
  /** The kcat binary. Default: `KCAT_BIN`, else `kcat` on PATH. */
  bin?: string;
  /** kcat is stopped and the read fails after this long. Default 30,000 ms. */
  timeoutMs?: number;
}

/** Envelope of one record in kcat's `-J` output. */
interface KcatJson {
  topic: string;
  partition: number;
  ts: number;
  key: string | null;
  payload: string | null;
  headers?: (string | null)[];
}

/**
 * kcat writes keys, values and header values into its JSON output byte for byte, escaping only
 * quotes, backslashes and control characters: decoded as latin1, each character of a JSON string
 * is one byte of the original.
 */
function bytes(s: string | null | undefined): Buffer | null {
  return s === null || s === undefined ? null : Buffer.from(s, 'latin1');
}

/** Parses kcat's `-J` output (one JSON object per line). */
export function parseKcatJson(output: Buffer): KcatRecord[] {
  const records: KcatRecord[] = [];
  for (const line of output.toString('latin1').split('\n')) {
    if (!line.trim()) continue;
    // The offset is an int64: taken from the text, not from JSON.parse's float. Topic names
    // cannot contain quotes, so the first "offset" key is the envelope's.
    const offset = /"offset":(\d+)/.exec(line)?.[1];
    let json: KcatJson;
    try {
      json = JSON.parse(line) as KcatJson;
    } catch (err) {
      throw new KcatError(`kcat printed a line that is not JSON: ${line.slice(0, 200)}`, { cause: err });
    }
    if (offset === undefined) throw new KcatError(`kcat printed a record without an offset: ${line}`);
    const headers: KcatHeader[] = [];
    const flat = json.headers ?? [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      headers.push({ name: bytes(flat[i])?.toString('utf8') ?? '', value: bytes(flat[i + 1]) });
    }
    records.push({
      topic: json.topic,
      partition: json.partition,
      offset: BigInt(offset),
      key: bytes(json.key),
      value: bytes(json.payload),
      headers,
      timestamp: json.ts,
    });
  }
  return records;
}

/**
 * Reads `topic` with kcat under `isolation.level=read_committed`, from the start of each
 * partition to its last stable offset. Records come sorted by partition, then offset.
 * Throws `KcatNotFoundError` when kcat is not installed and `KcatError` when it fails.
 */
export async function readCommittedWithKcat(options: KcatReadOptions): Promise<KcatRecord[]> {
  const bin = options.bin ?? process.env.KCAT_BIN ?? 'kcat';
  const timeoutMs = options.timeoutMs ?? 30_000;
  const only = options.partitions === undefined ? undefined : new Set(options.partitions);
  const args = [
    '-C',
    '-b',
    options.brokers.join(','),
    '-t',
    options.topic,
    ...(only?.size === 1 ? ['-p', String([...only][0])] : []),
    '-o',
    'beginning',
    '-e', // exit once every partition is read to its end (its last stable offset)
    '-q',
    '-J',
    '-X',
    'isolation.level=read_committed',
  ];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const release = killWithParent(child);
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const status = await new Promise<number | null>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new KcatNotFoundError(bin, { cause: err })
          : new KcatError(`cannot run ${bin}: ${err.message}`, { cause: err }),
      ),
    );
    child.once('close', (code) => resolve(code));
  }).finally(() => {
    clearTimeout(timer);
    release();
  });
  if (timedOut) throw new KcatError(`kcat did not finish reading ${options.topic} within ${timeoutMs} ms`);
  if (status !== 0) {
    throw new KcatError(`kcat exited with status ${status} reading ${options.topic}: ${stderr.trim()}`);
  }
  return parseKcatJson(Buffer.concat(out))
    .filter((r) => only === undefined || only.has(r.partition))
    .sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
}
