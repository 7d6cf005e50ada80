/**
 * Control of a function's Kafka event source mapping (ESM), as `savepoint restore --function` needs
 * it: find the mapping that consumes with the pipeline's consumer group, disable it, wait until it is
 * Disabled, and enable it again afterwards. The Lambda API adapter is lib/store/lambda; tests use a
 * fake of `EventSourceControl`.
 */
import { OperationError } from '../errors.ts';

export interface EventSourceMappingInfo {
  uuid: string;
  functionArn: string;
  /** Creating, Enabling, Enabled, Disabling, Disabled, Updating, Deleting. */
  state: string;
  topics: string[];
  /** The mapping's consumer group: its custom `ConsumerGroupId`, else its UUID (Lambda's default). */
  consumerGroupId: string;
}

export interface EventSourceControl {
  /** The function's Kafka event source mappings (MSK and self-managed). */
  list(functionName: string): Promise<EventSourceMappingInfo[]>;
  get(uuid: string): Promise<EventSourceMappingInfo>;
  setEnabled(uuid: string, enabled: boolean): Promise<void>;
}

/** The one Kafka mapping of `functionName` that consumes with `groupId`; refuses none or several. */
export async function findMapping(
  control: EventSourceControl,
  functionName: string,
  groupId: string,
): Promise<EventSourceMappingInfo> {
  const all = await control.list(functionName);
  const matching = all.filter((m) => m.consumerGroupId === groupId);
  if (matching.length === 1) return matching[0]!;
  if (matching.length > 1) {
    throw new OperationError(
      `function ${functionName} has ${matching.length} Kafka event source mappings with consumer group ${groupId} (${matching.map((m) => m.uuid).join(', ')})`,
    );
  }
  const others = all.map((m) => `${m.uuid} (group ${m.consumerGroupId}, topics ${m.topics.join(',')})`);
  throw new OperationError(
    `function ${functionName} has no Kafka event source mapping with consumer group ${groupId}` +
      (others.length > 0 ? `; it has: ${others.join('; ')} (pass --group to choose)` : ''),
  );
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until `check` returns a value, or fails with `OperationError(what)` after the timeout. */
export async function pollUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  options: WaitOptions,
): Promise<T> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? sleepMs;
  const deadline = now() + options.timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (now() >= deadline) throw new OperationError(`${what}: still not done after ${options.timeoutMs} ms`);
    await sleep(options.intervalMs ?? 2_000);
  }
}

/** Disables or enables a mapping and waits until Lambda reports it Disabled or Enabled. */
export async function setMappingEnabled(
  control: EventSourceControl,
  uuid: string,
  enabled: boolean,
  wait: WaitOptions,
): Promise<EventSourceMappingInfo> {
  const target = enabled ? 'Enabled' : 'Disabled';
  const current = await control.get(uuid);
  if (current.state !== target) await control.setEnabled(uuid, enabled);
  return pollUntil(
    `event source mapping ${uuid} to become ${target}`,
    async () => {
      const m = await control.get(uuid);
      return m.state === target ? m : undefined;
    },
    wait,
  );
}
