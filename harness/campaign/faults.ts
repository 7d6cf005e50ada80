/**
 * Fault injection for the campaign. Everything here wraps what the engine talks to (the SDK
 * clients, the network, the user's processor, the Lambda context, the database commit stores, the
 * output sinks); nothing changes the engine.
 *
 * Store faults are SDK middleware placed *inside* the SDK's retry loop, one decision per request
 * attempt: the SDK may retry an injected 5xx, throttle, timeout or reset transparently, exactly as
 * it would in AWS. An outer middleware sees each call's final outcome, so every fired fault is
 * counted as absorbed (the SDK's retries hid it) or surfaced (the engine saw the error).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { liteDynamoRequests } from '../../lib/store/aws/dynamodb.ts';
import type { LiteAwsSettings } from '../../lib/store/aws/environment.ts';
import { liteS3Requests } from '../../lib/store/aws/s3.ts';
import type { AwsTransportOptions } from '../../lib/store/aws/transport.ts';
import { itemToCommit } from '../../lib/store/dynamodb/DynamoCommitStore.ts';
import type { DynamoRequests } from '../../lib/store/dynamodb/requests.ts';
import type { S3Requests } from '../../lib/store/s3/requests.ts';
import { FAULT_HEADER, type NetFault } from './proxy.ts';

export const FAULT_KINDS = [
  's3-error',
  'ddb-error',
  'ddb-throttle',
  'sdk-timeout',
  'net-reset-request',
  'net-reset-response',
  'net-stall',
  'latency',
  'crash-before-snapshot-put',
  'crash-after-snapshot-put',
  'crash-before-commit',
  'crash-after-commit',
  'crash-before-return',
  'crash-mid-epoch',
  'processor-transient',
  'time-budget',
  'zombie',
  // Outputs (harness/campaign/outputs.ts): the steps of a delivery, after the epoch committed.
  'crash-before-delivery',
  'crash-mid-delivery',
  'crash-after-delivery',
  'kafka-error',
  'kafka-lost-commit',
  'delivery-zombie',
  // Database commit stores (PostgreSQL, MySQL/MariaDB, Redis), at the store's interface.
  'db-error',
  'db-lost-response',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a store request does, from the engine's point of view. */
export const STORE_OPS = [
  'snapshot-put',
  'quarantine-put',
  'snapshot-get',
  'delete',
  'list',
  'commit-read',
  'commit-write',
  'probe',
  // Output deliveries: S3 output objects (data, then the manifest), DynamoDB delivery transactions
  // (after the commit), and the steps of a Kafka delivery (after each one).
  'output-data-put',
  'output-manifest-put',
  'output-head',
  'output-txn',
  'kafka-init',
  'kafka-marker',
  'kafka-send',
  'kafka-offsets',
  'kafka-commit',
  // The SQL sink's rows, in the commit's own transaction (after the compare-and-set).
  'sql-txn',
  'other',
] as const;
export type StoreOp = (typeof STORE_OPS)[number];

/** A fault aimed at the `nth` attempt of `op` for `task` in one invocation. */
export interface StoreFault {
  kind: FaultKind;
  op: StoreOp;
  /** Task label `<topic>-<partition>`. */
  task: string;
  nth: number;
  /** For latency: milliseconds. For errors: which flavour. */
  variant: number;
  fired: boolean;
  outcome?: 'absorbed' | 'surfaced';
}

/** A fault inside the user's function: thrown at the `nth` record this invocation applies for `task`. */
export interface ProcessorFault {
  kind: 'crash-mid-epoch' | 'processor-transient';
  task: string;
  nth: number;
  seen: number;
  fired: boolean;
}

/**
 * An attempt held (a zombie) until `resume` opens: right before its commit of `task` (`op`
 * `commit-write`: its snapshot written, inline or in S3; see commits.ts), or after a step of an
 * output delivery of `task` (after the commit: `kafka-send`, `output-data-put`, `output-txn`).
 */
export interface ZombieHold {
  task: string;
  op: StoreOp;
  reached: Gate;
  resume: Gate;
  /** The held attempt's snapshot key, when its snapshot went to S3 (an orphan once the retry commits). */
  key?: string;
  /** What the held attempt's commit for `task` got after it resumed. */
  commit?: 'won' | 'lost' | 'error';
}

export interface Gate {
  readonly wait: Promise<void>;
  open(): void;
  readonly opened: boolean;
}

export function gate(): Gate {
  let open = () => {};
  let opened = false;
  const wait = new Promise<void>((r) => {
    open = () => {
      opened = true;
      r();
    };
  });
  return {
    wait,
    open: () => open(),
    get opened() {
      return opened;
    },
  };
}

/** The error a dead container's requests fail with (the process is gone: never retried). */
export class SimulatedCrash extends Error {
  constructor(where: string) {
    super(`simulated crash: ${where}`);
    this.name = 'SimulatedCrash';
  }
}

/** What every request of the campaign tells the run-wide observer (for the orphan check). */
export interface RequestObserver {
  /** Snapshot keys referenced by a commit item the stores returned or accepted. */
  committedKeys: Set<string>;
  /** Snapshot keys read (GetObject) by any container. */
  snapshotReads: Map<string, number>;
  /** Faults that fired and then disappeared inside the SDK vs reached the engine. */
  onOutcome?(fault: StoreFault): void;
}

/** The per-container fault state: the container's plan for the current invocation. */
export class ContainerFaults {
  readonly id: number;
  dead = false;
  deathCause: string | undefined;
  /** Request id of the invocation the container runs (a container runs one at a time). */
  invocation = '';
  /** Resolves when the container dies. */
  readonly death: Promise<void>;
  private died: () => void = () => {};
  store: StoreFault[] = [];
  processor: ProcessorFault | undefined;
  zombie: ZombieHold | undefined;
  /** Store calls of this container not finished yet (a dead container's may still be on the wire). */
  inFlight = 0;
  /** Called when the last call in flight finishes. */
  onIdle: (() => void) | undefined;
  /**
   * A crash planned in the middle of a commit transaction (`crash-mid-delivery` at `sql-txn`): the
   * statement that kills the connection, among a commit's attached writes. The commit store's wrapper
   * kills the container when the commit carrying it fails.
   */
  midCommitCrash: { write: object; fault: StoreFault; label: string } | undefined;
  private counters = new Map<string, number>();

  constructor(id: number) {
    this.id = id;
    this.death = new Promise<void>((r) => {
      this.died = r;
    });
  }

  /** Arms a new invocation's plan (counters restart). */
  arm(store: StoreFault[], processor?: ProcessorFault, zombie?: ZombieHold, invocation = ''): void {
    this.store = store;
    this.processor = processor;
    this.zombie = zombie;
    this.invocation = invocation;
    this.midCommitCrash = undefined;
    this.counters.clear();
  }

  kill(where: string): void {
    if (!this.dead) this.deathCause = where;
    this.dead = true;
    this.died();
  }

  /** The error a request of this (dead) container fails with. */
  crashError(): SimulatedCrash {
    return new SimulatedCrash(`container ${this.id} is dead (${this.deathCause})`);
  }

  /** Counts an attempt of `op` on `task` and returns the fault to fire on it, if any. */
  next(op: StoreOp, task: string): StoreFault | undefined {
    const id = `${op}|${task}`;
    const n = (this.counters.get(id) ?? 0) + 1;
    this.counters.set(id, n);
    return this.store.find((f) => !f.fired && f.op === op && f.task === task && f.nth === n);
  }
}

interface Classified {
  op: StoreOp;
  task: string;
  key?: string;
}

function taskOfKey(key: string, marker: string): string {
  const i = key.indexOf(marker);
  if (i < 0) return '?';
  const [topic, partition] = key.slice(i + marker.length).split('/');
  return `${topic}-${partition}`;
}

/** Where the campaign's S3 outputs live (`<prefix>/`), so their requests are told from snapshots'. */
export interface ClassifyOptions {
  outputsPrefix?: string;
}

/** The task of a DynamoDB delivery transaction: its actions carry the sink's `:tTopic` and `:tPartition`. */
function taskOfOutputTransaction(items: ReadonlyArray<Record<string, unknown>>): string {
  for (const action of items) {
    const body = (action.Update ?? action.Put ?? action.Delete ?? action.ConditionCheck) as
      | { ExpressionAttributeValues?: Record<string, { S?: string; N?: string }> }
      | undefined;
    const v = body?.ExpressionAttributeValues;
    if (v?.[':tTopic']?.S !== undefined && v[':tPartition']?.N !== undefined)
      return `${v[':tTopic'].S}-${v[':tPartition'].N}`;
  }
  return '?';
}

function classify(
  command: string,
  input: Record<string, unknown>,
  options: ClassifyOptions = {},
): Classified {
  const outputs = options.outputsPrefix ? `${options.outputsPrefix}/` : undefined;
  switch (command) {
    case 'PutObjectCommand': {
      const key = String(input.Key);
      if (outputs && key.startsWith(outputs)) {
        return key.includes('/manifests/')
          ? { op: 'output-manifest-put', task: taskOfKey(key, '/manifests/'), key }
          : { op: 'output-data-put', task: taskOfKey(key, '/data/'), key };
      }
      return key.includes('/quarantine/')
        ? { op: 'quarantine-put', task: taskOfKey(key, '/quarantine/'), key }
        : { op: 'snapshot-put', task: taskOfKey(key, '/tasks/'), key };
    }
    case 'HeadObjectCommand': {
      const key = String(input.Key);
      if (!outputs || !key.startsWith(outputs)) return { op: 'other', task: '?' };
      const marker = key.includes('/manifests/') ? '/manifests/' : '/data/';
      return { op: 'output-head', task: taskOfKey(key, marker), key };
    }
    case 'GetObjectCommand': {
      const key = String(input.Key);
      return { op: 'snapshot-get', task: taskOfKey(key, '/tasks/'), key };
    }
    case 'DeleteObjectsCommand': {
      const objects = (input.Delete as { Objects?: Array<{ Key?: string }> } | undefined)?.Objects ?? [];
      return { op: 'delete', task: taskOfKey(objects[0]?.Key ?? '', '/tasks/') };
    }
    case 'ListObjectsV2Command':
      return { op: 'list', task: taskOfKey(`${String(input.Prefix)}/`, '/tasks/') };
    case 'GetItemCommand':
    case 'PutItemCommand': {
      const item = (command === 'GetItemCommand' ? input.Key : input.Item) as
        | Record<string, { S?: string }>
        | undefined;
      const pk = item?.pk?.S ?? '';
      const [, , topic, partition] = pk.split('#');
      return {
        op: command === 'GetItemCommand' ? 'commit-read' : 'commit-write',
        task: `${topic}-${partition}`,
      };
    }
    case 'TransactWriteItemsCommand': {
      // A commit with attached outputs (its first action is the commit item's Put), or a delivery
      // transaction of the DynamoDB output sink after the commit.
      const items = (input.TransactItems ?? []) as Array<Record<string, unknown>>;
      const first = (items[0]?.Put as { Item?: Record<string, { S?: string }> } | undefined)?.Item;
      const pk = first?.pk?.S ?? '';
      if (pk.startsWith('task#') && first?.sk?.S === 'commit') {
        const [, , topic, partition] = pk.split('#');
        return { op: 'commit-write', task: `${topic}-${partition}` };
      }
      return { op: 'output-txn', task: taskOfOutputTransaction(items) };
    }
    case 'HeadBucketCommand':
    case 'DescribeTableCommand':
      return { op: 'probe', task: '?' };
    default:
      return { op: 'other', task: '?' };
  }
}

/** SDK-shaped errors, as the SDK's deserializers and HTTP handler produce them. */
function sdkError(kind: FaultKind, variant: number): Error {
  const make = (name: string, status: number | undefined, message: string, extra: object = {}) =>
    Object.assign(new Error(`injected: ${message}`), {
      name,
      $fault: status !== undefined && status < 500 ? 'client' : 'server',
      $metadata: status === undefined ? {} : { httpStatusCode: status },
      ...extra,
    });
  switch (kind) {
    case 's3-error':
      return [
        make('InternalError', 500, 'We encountered an internal error. Please try again.'),
        make('ServiceUnavailable', 503, 'Service is unable to handle request.'),
        make('SlowDown', 503, 'Please reduce your request rate.'),
      ][variant % 3]!;
    case 'ddb-error':
      return make('InternalServerError', 500, 'Internal server error');
    case 'ddb-throttle':
      return [
        make('ThrottlingException', 400, 'Rate of requests exceeds the allowed throughput.'),
        make(
          'ProvisionedThroughputExceededException',
          400,
          'The level of configured provisioned throughput for the table was exceeded.',
        ),
      ][variant % 2]!;
    case 'sdk-timeout':
      return variant % 2 === 0
        ? make('TimeoutError', undefined, 'Connection timed out after 1500 ms')
        : make('Error', undefined, 'read ECONNRESET', { code: 'ECONNRESET' });
    default:
      return make('Error', undefined, kind);
  }
}

const NET: Partial<Record<FaultKind, NetFault>> = {
  'net-reset-request': 'reset-request',
  'net-reset-response': 'reset-response',
  'net-stall': 'stall',
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Snapshot keys of every chain (current and retained) a DynamoDB commit item references, read with
 * the store's own unmarshalling so the check follows the item format.
 */
export function chainKeysOfItem(item: unknown, into: Set<string>): void {
  if (item === undefined || item === null) return;
  let commit: ReturnType<typeof itemToCommit>;
  try {
    commit = itemToCommit(item as Parameters<typeof itemToCommit>[0]);
  } catch {
    return; // not a commit item (savepoints, partial items)
  }
  for (const chain of [commit.chain, ...commit.history.map((h) => h.chain)]) {
    for (const ref of chain) into.add(ref.key);
  }
}

/** The commit item a commit request writes (PutItem, or the first action of a TransactWriteItems). */
function committedItemOf(command: string, input: Record<string, unknown>): unknown {
  if (command === 'PutItemCommand') return input.Item;
  const first = ((input.TransactItems ?? []) as Array<{ Put?: { Item?: unknown } }>)[0];
  return first?.Put?.Item;
}

/** A lost commit race: the winner's item (ALL_OLD) when the store returned it. */
function conflictOf(err: unknown): { item: unknown } | undefined {
  const e = err as {
    name?: string;
    Item?: unknown;
    CancellationReasons?: Array<{ Code?: string; Item?: unknown }>;
  };
  if (e?.name === 'ConditionalCheckFailedException') return { item: e.Item };
  const first = e?.name === 'TransactionCanceledException' ? e.CancellationReasons?.[0] : undefined;
  if (first?.Code === 'ConditionalCheckFailed') return { item: first.Item };
  return undefined;
}

const FIRED = Symbol('campaignFaultsFired');

/**
 * One call of a store client, observed for the run (outside the client's retries): snapshot reads,
 * the snapshot keys commit items reference, and whether the faults fired inside it were absorbed by
 * the client's retries or surfaced.
 */
async function observeCall<T>(
  command: string,
  input: Record<string, unknown>,
  faults: ContainerFaults,
  observer: RequestObserver,
  options: ClassifyOptions,
  fired: StoreFault[],
  call: () => Promise<T>,
  itemOf: (out: T) => unknown,
): Promise<T> {
  const { op, key } = classify(command, input, options);
  if (op === 'snapshot-get' && key)
    observer.snapshotReads.set(key, (observer.snapshotReads.get(key) ?? 0) + 1);
  faults.inFlight++;
  try {
    const out = await call();
    for (const f of fired) f.outcome = 'absorbed';
    if (command === 'GetItemCommand') chainKeysOfItem(itemOf(out), observer.committedKeys);
    if (op === 'commit-write') chainKeysOfItem(committedItemOf(command, input), observer.committedKeys);
    return out;
  } catch (err) {
    for (const f of fired) f.outcome = 'surfaced';
    const conflict = op === 'commit-write' ? conflictOf(err) : undefined;
    if (conflict) chainKeysOfItem(conflict.item, observer.committedKeys);
    throw err;
  } finally {
    for (const f of fired) observer.onOutcome?.(f);
    if (--faults.inFlight === 0) faults.onIdle?.();
  }
}

/**
 * One attempt of a store request (inside the client's retries), with the container's next fault:
 * latency, a crash before or after the request, an SDK-shaped error instead of it, or a network
 * fault the proxy carries out (`send` marks the request with it).
 */
async function injectAttempt<T>(
  command: string,
  input: Record<string, unknown>,
  faults: ContainerFaults,
  options: ClassifyOptions,
  fired: StoreFault[] | undefined,
  send: (net?: NetFault) => Promise<T>,
): Promise<T> {
  if (faults.dead) throw faults.crashError();
  const { op, task, key } = classify(command, input, options);
  const z = faults.zombie;
  const holdHere = z && z.op === op && z.task === task && !z.reached.opened;
  const f = faults.next(op, task);
  let net: NetFault | undefined;
  if (f) {
    f.fired = true;
    fired?.push(f);
    net = NET[f.kind];
    switch (f.kind) {
      case 'latency':
        await sleep(f.variant);
        break;
      case 'crash-before-snapshot-put':
      case 'crash-before-commit':
      case 'crash-before-delivery':
        faults.kill(`${f.kind} ${task}`);
        throw new SimulatedCrash(`${f.kind} ${task}`);
      case 'crash-after-snapshot-put':
      case 'crash-after-commit':
      case 'crash-mid-delivery':
      case 'crash-after-delivery': {
        await send();
        faults.kill(`${f.kind} ${task}`);
        throw new SimulatedCrash(`${f.kind} ${task}`);
      }
      default:
        if (!net) throw sdkError(f.kind, f.variant);
    }
  }
  const out = await send(net);
  if (holdHere && z) {
    z.key = key;
    z.reached.open();
    await z.resume.wait;
  }
  return out;
}

/**
 * Installs the campaign's middleware on a container's two SDK clients: fault injection per attempt
 * (inside the SDK's retry loop) and observation per call (outside it).
 */
export function instrumentClients(
  clients: { s3: S3Client; dynamodb: DynamoDBClient },
  faults: ContainerFaults,
  observer: RequestObserver,
  options: ClassifyOptions = {},
): void {
  for (const client of [clients.s3, clients.dynamodb] as S3Client[]) {
    client.middlewareStack.add(
      (next, context) => (args) => {
        const c = context as { commandName?: string; [FIRED]?: StoreFault[] };
        const input = (args as unknown as { input: Record<string, unknown> }).input;
        const fired: StoreFault[] = [];
        c[FIRED] = fired;
        return observeCall(
          c.commandName ?? 'unknown',
          input,
          faults,
          observer,
          options,
          fired,
          () => next(args),
          (out) => (out.output as { Item?: unknown }).Item,
        );
      },
      { step: 'initialize', name: 'campaignObserver', priority: 'high' },
    );
    client.middlewareStack.add(
      (next, context) => (args) => {
        const c = context as { commandName?: string; [FIRED]?: StoreFault[] };
        const input = (args as unknown as { input: Record<string, unknown> }).input;
        const request = (args as { request?: { headers?: Record<string, string> } }).request;
        return injectAttempt(c.commandName ?? 'unknown', input, faults, options, c[FIRED], async (net) => {
          if (net && request?.headers) request.headers[FAULT_HEADER] = net;
          try {
            return await next(args);
          } finally {
            // The SDK reuses one request object across its attempts: the mark is for this one only.
            if (request?.headers) delete request.headers[FAULT_HEADER];
          }
        });
      },
      // After the retry and signing middleware: each SDK attempt passes here.
      { step: 'finalizeRequest', name: 'campaignFaults', priority: 'low' },
    );
  }
}

/**
 * The same for a container's lightweight clients (the Lambda bundle's): observation around each
 * call, and the transport's `interceptAttempt` hook for each attempt. Returns the two clients.
 */
export function instrumentedLiteClients(
  settings: { dynamodb: LiteAwsSettings; s3: LiteAwsSettings },
  faults: ContainerFaults,
  observer: RequestObserver,
  options: ClassifyOptions = {},
  transport: Pick<AwsTransportOptions, 'timeouts' | 'maxAttempts'> = {},
): { dynamodb: DynamoRequests; s3: S3Requests } {
  const calls = new AsyncLocalStorage<{ input: Record<string, unknown>; fired: StoreFault[] }>();
  const interceptAttempt: AwsTransportOptions['interceptAttempt'] = (operation, send) => {
    const call = calls.getStore();
    return injectAttempt(`${operation}Command`, call?.input ?? {}, faults, options, call?.fired, (net) =>
      send(net ? { [FAULT_HEADER]: net } : undefined),
    );
  };
  const observed = <R extends DynamoRequests | S3Requests>(inner: R): R =>
    ({
      client: inner.client,
      send: (operation: string, input: Record<string, unknown>) => {
        const fired: StoreFault[] = [];
        return observeCall(
          `${operation}Command`,
          input,
          faults,
          observer,
          options,
          fired,
          () =>
            calls.run({ input, fired }, () =>
              (inner.send as (o: string, i: unknown) => Promise<unknown>)(operation, input),
            ),
          (out) => (out as { Item?: unknown }).Item,
        );
      },
    }) as unknown as R;
  return {
    dynamodb: observed(liteDynamoRequests(settings.dynamodb, { ...transport, interceptAttempt })),
    s3: observed(liteS3Requests(settings.s3, { ...transport, interceptAttempt })),
  };
}
