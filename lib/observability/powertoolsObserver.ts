/**
 * Engine events → Powertools for AWS Lambda: structured JSON logs (Logger) and CloudWatch metrics in
 * Embedded Metric Format (Metrics). Every metric carries the dimensions `service` (= `tidemark`)
 * and `Pipeline`; the names are in `metricNames.ts`, which the CDK construct's alarms use too.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { EngineObserver } from '../checkpoint/observer.ts';
import type { TaskId } from '../checkpoint/stores.ts';
import { METRIC, METRICS_NAMESPACE, PIPELINE_DIMENSION, SERVICE_NAME } from './metricNames.ts';

export interface Telemetry {
  logger: Logger;
  metrics: Metrics;
  observer: EngineObserver;
}

function taskKeys(task: TaskId) {
  return { topic: task.topic, partition: task.partition };
}

function errorKeys(error: unknown) {
  return error instanceof Error
    ? {
        error: {
          name: error.name,
          message: error.message,
          retriable: (error as { retriable?: boolean }).retriable,
        },
      }
    : { error: String(error) };
}

/** Builds a Logger, a Metrics buffer and the observer that feeds them, for one pipeline. */
export function createTelemetry(pipeline: string, now: () => number = Date.now): Telemetry {
  const logger = new Logger({ serviceName: SERVICE_NAME, persistentKeys: { pipeline } });
  const metrics = new Metrics({
    namespace: METRICS_NAMESPACE,
    serviceName: SERVICE_NAME,
    defaultDimensions: { [PIPELINE_DIMENSION]: pipeline },
  });
  const observer: EngineObserver = {
    warmHit: () => metrics.addMetric(METRIC.warmCacheHits, MetricUnit.Count, 1),
    taskRestored: (i) => {
      metrics.addMetric(METRIC.restoreDuration, MetricUnit.Milliseconds, i.durationMs);
      logger.info('task state restored', {
        ...taskKeys(i.task),
        epoch: i.epoch,
        reason: i.reason,
        durationMs: Math.round(i.durationMs),
        bytes: i.bytes,
        stateKeys: i.stateKeys,
      });
    },
    duplicatesSkipped: (task, count) => {
      metrics.addMetric(METRIC.duplicatesSkipped, MetricUnit.Count, count);
      logger.debug('duplicates skipped', { ...taskKeys(task), count });
    },
    recordQuarantined: (task, record, error) => {
      metrics.addMetric(METRIC.recordsQuarantined, MetricUnit.Count, 1);
      logger.warn('record quarantined', {
        ...taskKeys(task),
        offset: record.offset.toString(),
        ...errorKeys(error),
      });
    },
    epochCommitted: (i) => {
      metrics.addMetric(METRIC.epochsCommitted, MetricUnit.Count, 1);
      metrics.addMetric(METRIC.recordsApplied, MetricUnit.Count, i.applied);
      metrics.addMetric(METRIC.checkpointDuration, MetricUnit.Milliseconds, i.checkpointMs);
      metrics.addMetric(METRIC.snapshotBytes, MetricUnit.Bytes, i.snapshotBytes);
      metrics.addMetric(METRIC.stateKeys, MetricUnit.Count, i.stateKeys);
      if (i.newestRecordTimestamp !== undefined) {
        metrics.addMetric(
          METRIC.recordAge,
          MetricUnit.Milliseconds,
          Math.max(0, now() - i.newestRecordTimestamp),
        );
      }
      logger.debug('epoch committed', {
        ...taskKeys(i.task),
        epoch: i.epoch,
        committedOffset: i.committedOffset.toString(),
        applied: i.applied,
        quarantined: i.quarantined,
        checkpointMs: Math.round(i.checkpointMs),
        snapshotBytes: i.snapshotBytes,
        snapshotKind: i.snapshotKind,
        stateKeys: i.stateKeys,
        changedKeys: i.changedKeys,
      });
    },
    commitConflict: (task, expectedEpoch, winnerEpoch) => {
      metrics.addMetric(METRIC.commitConflicts, MetricUnit.Count, 1);
      logger.warn('commit conflict: another attempt committed first; continuing from its checkpoint', {
        ...taskKeys(task),
        expectedEpoch,
        winnerEpoch,
      });
    },
    taskFailed: (task, error) =>
      logger.error('task not committed', { ...taskKeys(task), ...errorKeys(error) }),
    cleanupFailed: (task, keys, error) =>
      logger.warn('could not delete unretained snapshots', { ...taskKeys(task), keys, ...errorKeys(error) }),
  };
  return { logger, metrics, observer };
}
