/**
 * Routes an epoch's outputs to their sinks: which can commit inside the epoch's commit
 * (`Sink.attach`), and the delivery of the rest after it (`Sink.deliver`), one call per sink with
 * every output that sink serves. Sinks are built once per container, on first use.
 */
import { ConfigurationError, OutputDeliveryError, TidemarkError } from '../errors.ts';
import type {
  AttachedWrites,
  Delivery,
  OutputDescriptor,
  OutputPart,
  Sink,
  SinkEnvironment,
} from './types.ts';

/** Builds the sink of an output (default: the descriptor's own `createSink`). */
export type SinkProvider = (descriptor: OutputDescriptor, env: SinkEnvironment) => Sink | Promise<Sink>;

export const defaultSinkProvider: SinkProvider = (descriptor, env) => descriptor.createSink(env);

export class OutputRouter {
  private readonly sinks = new Map<string, Promise<Sink>>();

  private readonly env: SinkEnvironment;
  private readonly provider: SinkProvider;

  constructor(env: SinkEnvironment, provider: SinkProvider = defaultSinkProvider) {
    this.env = env;
    this.provider = provider;
  }

  /**
   * Runs each output's `check` (cold start): a misconfigured output fails the engine's construction,
   * naming the output. Skipped when a provider replaces the sinks (it decides what it can deliver).
   */
  check(descriptors: Readonly<Record<string, OutputDescriptor>>): void {
    if (this.provider !== defaultSinkProvider) return;
    for (const [name, descriptor] of Object.entries(descriptors)) {
      try {
        descriptor.check?.(this.env);
      } catch (err) {
        if (err instanceof ConfigurationError) {
          throw new ConfigurationError(err.setting, `output '${name}': ${err.message}`, { cause: err });
        }
        throw err;
      }
    }
  }

  private sink(descriptor: OutputDescriptor): Promise<Sink> {
    let sink = this.sinks.get(descriptor.sinkId);
    if (!sink) {
      sink = Promise.resolve().then(() => this.provider(descriptor, this.env));
      // A sink that failed to build is built again next time (the failure may be transient).
      sink.catch(() => this.sinks.delete(descriptor.sinkId));
      this.sinks.set(descriptor.sinkId, sink);
    }
    return sink;
  }

  /** The delivery split by sink: each sink's share of the parts. */
  private bySink(delivery: Delivery): Map<string, Delivery> {
    const out = new Map<string, OutputPart[]>();
    for (const p of delivery.parts) {
      const list = out.get(p.descriptor.sinkId) ?? [];
      list.push(p);
      out.set(p.descriptor.sinkId, list);
    }
    return new Map([...out].map(([id, parts]) => [id, { ...delivery, parts }]));
  }

  /**
   * Offers each sink its share before the commit. Returns the writes to attach to the commit (all
   * for the same store) and the parts left for the outbox.
   */
  async attach(delivery: Delivery): Promise<{ attached: AttachedWrites | undefined; rest: OutputPart[] }> {
    const rest: OutputPart[] = [];
    let attached: { store: string; writes: unknown[] } | undefined;
    for (const share of this.bySink(delivery).values()) {
      const sink = await this.sink(share.parts[0]!.descriptor);
      const writes = sink.attach?.(share);
      if (!writes) {
        rest.push(...share.parts);
        continue;
      }
      if (attached && attached.store !== writes.store) {
        throw new ConfigurationError(
          'processor.outputs',
          `outputs attach writes for two stores (${attached.store}, ${writes.store}) to one commit`,
        );
      }
      attached ??= { store: writes.store, writes: [] };
      attached.writes.push(...writes.writes);
    }
    // Keep the declared order (the outbox lists outputs in the order the processor declares them).
    const order = new Map(delivery.parts.map((p, i) => [p.name, i]));
    rest.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
    return { attached, rest };
  }

  /**
   * Delivers a committed delivery to every sink concurrently. Resolves with whether a sink needs the
   * outbox settled; rejects with the first failure (an `OutputDeliveryError` unless the sink threw a
   * `TidemarkError` of its own) once every sink has finished.
   */
  async deliver(delivery: Delivery): Promise<{ needsSettle: boolean }> {
    const shares = [...this.bySink(delivery)];
    let needsSettle = false;
    const results = await Promise.allSettled(
      shares.map(async ([sinkId, share]) => {
        const sink = await this.sink(share.parts[0]!.descriptor);
        if (sink.needsSettle) needsSettle = true;
        try {
          await sink.deliver(share);
        } catch (err) {
          throw err instanceof TidemarkError
            ? err
            : new OutputDeliveryError(sinkId, err instanceof Error ? err.message : String(err), {
                cause: err,
              });
        }
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return { needsSettle };
  }

  /** Closes every sink built so far. */
  async close(): Promise<void> {
    const sinks = await Promise.allSettled([...this.sinks.values()]);
    this.sinks.clear();
    await Promise.allSettled(
      sinks.flatMap((s) => (s.status === 'fulfilled' && s.value.close ? [s.value.close()] : [])),
    );
  }
}
