/**
 * The one core both adapters (plain wrapper and middy middleware) share: configuration resolved at
 * cold start, the stores, the epoch engine with its warm cache, and telemetry. Built once per
 * container, at module load, so a missing setting fails the cold start with a message naming it.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { type BatchSummary, EpochEngine, type InvocationContext } from '../checkpoint/epochEngine.ts';
import { combineObservers, type EngineObserver } from '../checkpoint/observer.ts';
import type { Processor } from '../checkpoint/processor.ts';
import { loadConfig, type TidemarkConfig } from '../config/config.ts';
import { ConfigurationError } from '../errors.ts';
import { SERVICE_NAME } from '../observability/metricNames.ts';
import { createTelemetry, type InvocationInfo, type Telemetry } from '../observability/powertoolsObserver.ts';
import type { StateDescriptors } from '../state/descriptors.ts';
import { createAwsStores, type Stores } from '../store/stores.ts';

export interface TidemarkOptions {
  /** Settings given in code; environment variables take precedence (see lib/config/config.ts). */
  config?: Partial<TidemarkConfig>;
  /** Environment to read settings from. Default: `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Stores to use instead of S3 + DynamoDB (tests, benchmarks). */
  stores?: Stores;
  /** SDK clients for the default stores (e.g. with request counting middleware). */
  clients?: { s3?: S3Client; dynamodb?: DynamoDBClient };
  /** An extra observer, called after the built-in telemetry. */
  observer?: EngineObserver;
  /** Powertools logs and metrics. Default: on. */
  telemetry?: boolean;
}

export interface TidemarkRuntime<S extends StateDescriptors = StateDescriptors> {
  readonly config: TidemarkConfig;
  readonly engine: EpochEngine<S>;
  readonly telemetry: Telemetry | undefined;
  /** Processes one ESM invocation. Resolves with a summary, or rejects with a typed error. */
  invoke(event: unknown, context?: InvocationContext): Promise<BatchSummary>;
}

export function createRuntime<S extends StateDescriptors>(
  processor: Processor<S>,
  options: TidemarkOptions = {},
): TidemarkRuntime<S> {
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
  const telemetry = options.telemetry === false ? undefined : createTelemetry(config.pipeline);
  const stores =
    options.stores ??
    createAwsStores({
      bucket: config.bucket,
      table: config.table,
      s3: options.clients?.s3,
      dynamodb: options.clients?.dynamodb,
    });
  const engine = new EpochEngine({
    processor,
    config,
    ...stores,
    observer: combineObservers(telemetry?.observer, options.observer),
  });
  return {
    config,
    engine,
    telemetry,
    async invoke(event, context = {}) {
      telemetry?.invocationStarted(context as InvocationInfo);
      try {
        const summary = await engine.processEvent(event, context);
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
