/**
 * The one core both adapters (plain wrapper and middy middleware) share: configuration resolved at
 * cold start, the stores, the epoch engine with its warm cache, and telemetry. Built once per
 * container, at module load, so a missing setting fails the cold start with a message naming it.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { type BatchSummary, EpochEngine, type InvocationContext } from '../checkpoint/epochEngine.ts';
import { combineObservers, type EngineObserver } from '../checkpoint/observer.ts';
import type { NoOutputs, Processor } from '../checkpoint/processor.ts';
import { loadConfig, type TidemarkConfig } from '../config/config.ts';
import { isTickEvent } from '../config/definitions.ts';
import { ConfigurationError } from '../errors.ts';
import { SERVICE_NAME } from '../observability/metricNames.ts';
import { createTelemetry, type InvocationInfo, type Telemetry } from '../observability/powertoolsObserver.ts';
import type { SinkProvider } from '../output/router.ts';
import type { OutputDescriptors } from '../output/types.ts';
import type { StateDescriptors } from '../state/descriptors.ts';
import { createRuntimeStores, type Stores } from '../store/runtimeStores.ts';

export interface TidemarkOptions {
  /** Settings given in code; environment variables take precedence (see lib/config/config.ts). */
  config?: Partial<TidemarkConfig>;
  /** Environment to read settings from. Default: `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Stores to use instead of the configured ones (tests, benchmarks). */
  stores?: Stores;
  /** SDK clients for the default stores (e.g. with request counting middleware). */
  clients?: { s3?: S3Client; dynamodb?: DynamoDBClient };
  /** An extra observer, called after the built-in telemetry. */
  observer?: EngineObserver;
  /** Powertools logs and metrics. Default: on. */
  telemetry?: boolean;
  /**
   * Your own Powertools `Logger` and `Metrics` (e.g. shared with the rest of your handler). Tidemark
   * adds its keys (pipeline, request id, task) and its metrics (namespace `Tidemark` unless yours
   * sets one, dimension `Pipeline`) to them. Default: its own.
   */
  logger?: Logger;
  metrics?: Metrics;
  /** Builds the sinks of the processor's outputs (default: each output's own; `TestDriver` uses memory sinks). */
  sinks?: SinkProvider;
  /** Wall clock (ms since the epoch) for commit times. Default `Date.now`. */
  now?: () => number;
}

export interface TidemarkRuntime<
  S extends StateDescriptors = StateDescriptors,
  O extends OutputDescriptors = NoOutputs,
> {
  readonly config: TidemarkConfig;
  readonly engine: EpochEngine<S, O>;
  readonly telemetry: Telemetry | undefined;
  /** Processes one ESM invocation. Resolves with a summary, or rejects with a typed error. */
  invoke(event: unknown, context?: InvocationContext): Promise<BatchSummary>;
}

export function createRuntime<S extends StateDescriptors, O extends OutputDescriptors = NoOutputs>(
  processor: Processor<S, O>,
  options: TidemarkOptions = {},
): TidemarkRuntime<S, O> {
  let config: TidemarkConfig;
  try {
    config = loadConfig(options.env ?? process.env, {
      ...processor.config,
      ...(processor.poisonPolicy ? { poisonPolicy: processor.poisonPolicy } : {}),
      ...options.config,
    });
  } catch (err) {
    if (err instanceof ConfigurationError) {
      // Make the cold-start failure readable in CloudWatch before the runtime reports it.
      new Logger({ serviceName: SERVICE_NAME }).error('Tidemark configuration error', {
        setting: err.setting,
        message: err.message,
      });
    }
    throw err;
  }
  const telemetry =
    options.telemetry === false
      ? undefined
      : createTelemetry(config.pipeline, {
          logger: options.logger,
          metrics: options.metrics,
          now: options.now,
        });
  // Snapshots on S3; commit items in the configured commit store (DynamoDB unless TIDEMARK_COMMIT_STORE
  // says otherwise), whose driver loads and connects on first use and is kept across invocations.
  const stores = options.stores ?? createRuntimeStores(config, options.clients);
  const engine = new EpochEngine({
    processor,
    config,
    ...stores,
    observer: combineObservers(telemetry?.observer, options.observer),
    env: options.env ?? process.env,
    ...(options.sinks ? { sinks: options.sinks } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return {
    config,
    engine,
    telemetry,
    async invoke(event, context = {}) {
      telemetry?.invocationStarted(context as InvocationInfo);
      try {
        // A scheduled tick (docs/time.md#idle-partitions), else an ESM batch.
        const summary = isTickEvent(event)
          ? await engine.processTick(context)
          : await engine.processEvent(event, context);
        telemetry?.invocationSucceeded(summary);
        return summary;
      } catch (err) {
        telemetry?.invocationFailed(err);
        throw err;
      } finally {
        telemetry?.flush();
      }
    },
  };
}
