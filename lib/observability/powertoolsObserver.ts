/**
 * Engine events → Powertools for AWS Lambda: structured JSON logs (Logger) and CloudWatch metrics in
 * Embedded Metric Format (Metrics). Every metric carries the dimensions `service` (= `tidemark`)
 * and `Pipeline`; the names are in `metricNames.ts`, which the CDK construct's alarms use too.
 *
 * Every log line carries `pipeline` and, inside an invocation, the Lambda request id
 * (`function_request_id`); every line about a task carries `topic`, `partition` and `epoch`:
 * - restored, committed: the epoch of that checkpoint;
 * - record quarantined: the epoch the record belongs to (the one being built, last committed + 1);
 * - duplicates skipped, task not committed: the task's last committed epoch in this container;
 * - commit conflict: the epoch this attempt tried to commit, with the winner's epoch.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { BatchSummary } from '../checkpoint/epochEngine.ts';
import type { EngineObserver } from '../checkpoint/observer.ts';
import type { TaskId } from '../checkpoint/stores.ts';
import { isRetriable } from '../errors.ts';
import {
  METRIC,
  METRIC_UNIT,
  METRICS_NAMESPACE,
  type MetricName,
  PIPELINE_DIMENSION,
  SERVICE_NAME,
} from './metricNames.ts';

/** What the runtime passes in from the Lambda context (all optional outside Lambda). */
export interface InvocationInfo {
  awsRequestId?: string;
  functionName?: string;
  functionVersion?: string;
  invokedFunctionArn?: string;
  memoryLimitInMB?: string;
}

export interface Telemetry {
  logger: Logger;
  metrics: Metrics;
  observer: EngineObserver;
  /** Call before the engine runs: puts the request id (and function details) on every log line. */
  invocationStarted(context: InvocationInfo): void;
  /** Logs the batch summary. */
  invocationSucceeded(summary: BatchSummary): void;
  /** Logs the failure and counts it (`FailedBatches`). */
  invocationFailed(error: unknown): void;
  /** Writes the buffered metrics (one EMF document) to stdout, if there are any. */
  flush(): void;
}

/** Tasks whose last epoch is remembered for log lines; far above the engine's warm cache size. */
const EPOCHS_REMEMBERED = 4096;

function errorKeys(error: unknown) {
  return error instanceof Error
    ? {
        error: {
          name: error.name,
          message: error.message,
          retriable: isRetriable(error),
        },
      }
    : { error: String(error) };
}

/**
 * Builds a Logger, a Metrics buffer and the observer that feeds them, for one pipeline. A user's own
 * `logger` and `metrics` are used instead of new ones: Tidemark appends its keys and dimension.
 */
export function createTelemetry(
  pipeline: string,
  options: { logger?: Logger; metrics?: Metrics; now?: () => number } | (() => number) = {},
): Telemetry {
  const {
    logger: givenLogger,
    metrics: givenMetrics,
    now = Date.now,
  } = typeof options === 'function' ? { now: options } : options;
  const logger = givenLogger ?? new Logger({ serviceName: SERVICE_NAME });
  logger.appendPersistentKeys({ pipeline });
  const metrics =
    givenMetrics ??
    new Metrics({
      namespace: METRICS_NAMESPACE,
      serviceName: SERVICE_NAME,
    });
  metrics.setDefaultDimensions({ [PIPELINE_DIMENSION]: pipeline });
  const add = (name: MetricName, value: number) => metrics.addMetric(name, METRIC_UNIT[name], value);

  // The last epoch each task reached in this container (restored or committed), so that every task
  // log line can name its epoch. Least recently touched first; bounded.
  const epochs = new Map<string, number>();
  const taskKey = (task: TaskId) => `${task.topic}\u0000${task.partition}`;
  const lastEpoch = (task: TaskId) => epochs.get(taskKey(task)) ?? 0;
  const remember = (task: TaskId, epoch: number) => {
    const k = taskKey(task);
    epochs.delete(k);
    epochs.set(k, epoch);
    if (epochs.size > EPOCHS_REMEMBERED) epochs.delete(epochs.keys().next().value as string);
  };
  const taskKeys = (task: TaskId, epoch: number) => ({ topic: task.topic, partition: task.partition, epoch });

  const observer: EngineObserver = {
    warmHit: () => add(METRIC.warmCacheHits, 1),
    taskRestored: (i) => {
      remember(i.task, i.epoch);
      add(METRIC.restoreDuration, i.durationMs);
      logger.info('task state restored', {
        ...taskKeys(i.task, i.epoch),
        reason: i.reason,
        durationMs: Math.round(i.durationMs),
        bytes: i.bytes,
        stateKeys: i.stateKeys,
      });
    },
    duplicatesSkipped: (task, count) => {
      add(METRIC.duplicatesSkipped, count);
      logger.debug('duplicates skipped', { ...taskKeys(task, lastEpoch(task)), count });
    },
    recordQuarantined: (task, record, error) => {
      // Counted in RecordsQuarantined when the epoch commits (a lost race re-applies the record).
      logger.warn('record quarantined', {
        ...taskKeys(task, lastEpoch(task) + 1),
        offset: record.offset.toString(),
        ...errorKeys(error),
      });
    },
    timerQuarantined: (task, timer, error) => {
      add(METRIC.timersQuarantined, 1);
      logger.warn('timer quarantined', {
        ...taskKeys(task, lastEpoch(task) + 1),
        timer: { domain: timer.domain, timestamp: timer.timestamp, key: timer.key, tag: timer.tag },
        ...errorKeys(error),
      });
    },
    epochCommitted: (i) => {
      remember(i.task, i.epoch);
      add(METRIC.epochsCommitted, 1);
      if (i.outputs > 0) add(METRIC.outputsCommitted, i.outputs);
      add(METRIC.recordsApplied, i.applied);
      add(METRIC.recordsQuarantined, i.quarantined);
      add(METRIC.checkpointDuration, i.checkpointMs);
      add(METRIC.snapshotBytes, i.snapshotBytes);
      add(METRIC.stateKeys, i.stateKeys);
      if (i.newestRecordTimestamp !== undefined) {
        add(METRIC.recordAge, Math.max(0, now() - i.newestRecordTimestamp));
      }
      logger.debug('epoch committed', {
        ...taskKeys(i.task, i.epoch),
        committedOffset: i.committedOffset.toString(),
        applied: i.applied,
        quarantined: i.quarantined,
        checkpointMs: Math.round(i.checkpointMs),
        epochMs: Math.round(i.epochMs),
        snapshotBytes: i.snapshotBytes,
        snapshotKind: i.snapshotKind,
        stateKeys: i.stateKeys,
        changedKeys: i.changedKeys,
      });
    },
    outputsDelivered: (i) => {
      add(METRIC.outputsDelivered, i.outputs);
      add(METRIC.outputDeliveryDuration, i.durationMs);
      logger.debug('outputs delivered', {
        ...taskKeys(i.task, i.epoch),
        outputs: i.outputs,
        durationMs: Math.round(i.durationMs),
      });
    },
    commitConflict: (task, expectedEpoch, winnerEpoch) => {
      add(METRIC.commitConflicts, 1);
      logger.warn('commit conflict: another attempt committed first; continuing from its checkpoint', {
        ...taskKeys(task, expectedEpoch + 1),
        expectedEpoch,
        winnerEpoch,
      });
    },
    taskFailed: (task, error) =>
      logger.error('task not committed', { ...taskKeys(task, lastEpoch(task)), ...errorKeys(error) }),
    cleanupFailed: (task, keys, error) =>
      logger.warn('could not delete unretained snapshots', {
        ...taskKeys(task, lastEpoch(task)),
        keys,
        ...errorKeys(error),
      }),
  };

  return {
    logger,
    metrics,
    observer,
    invocationStarted(context) {
      // Sets function_request_id (and the function's name, version, ARN, memory, cold start).
      if (context.awsRequestId !== undefined || context.functionName !== undefined) {
        logger.addContext(context as Parameters<Logger['addContext']>[0]);
      }
    },
    invocationSucceeded(summary) {
      logger.info('batch committed', {
        records: summary.records,
        applied: summary.applied,
        duplicatesSkipped: summary.duplicatesSkipped,
        quarantined: summary.quarantined,
        epochsCommitted: summary.epochsCommitted,
        commitConflicts: summary.commitConflicts,
        tasks: summary.tasks.length,
      });
    },
    invocationFailed(error) {
      add(METRIC.failedBatches, 1);
      logger.error('batch failed; the event source mapping will retry it', {
        error: error instanceof Error ? { name: error.name, message: error.message } : String(error),
        retriable: isRetriable(error),
      });
    },
    flush() {
      // Powertools warns on stdout when asked to publish nothing: only publish when there is data.
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    },
  };
}
