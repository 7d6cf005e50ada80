/**
 * Epoch cutting and the time reserve: when an epoch ends, and whether another one may start.
 *
 * An epoch ends after `epochMaxRecords` records or once its records reach `epochMaxBytes`, or early
 * when the invocation's remaining time falls below the reserve needed to checkpoint: max(the
 * configured `timeReserveMs`, 3 × the slowest checkpoint this container saw recently, the latter
 * capped at half the time the invocation had when the task began). No epoch starts below the
 * reserve. So a timeout loses at most one epoch of work, and each invocation gets to checkpoint.
 */
import type { TidemarkConfig } from '../config/config.ts';

/** How often (in records) a running epoch looks at the clock: records take microseconds, the reserve seconds. */
const CLOCK_CHECK_MASK = 15;

export class EpochBudget {
  /** Slowest recent checkpoint (decaying by 10 % per checkpoint). */
  private slowCheckpointMs = 0;

  private readonly config: Pick<TidemarkConfig, 'timeReserveMs' | 'epochMaxRecords' | 'epochMaxBytes'>;

  constructor(config: Pick<TidemarkConfig, 'timeReserveMs' | 'epochMaxRecords' | 'epochMaxBytes'>) {
    this.config = config;
  }

  /**
   * Time an epoch needs in hand to checkpoint safely. `ceilingMs` caps what was learned from slow
   * checkpoints (never the configured floor): the engine passes half the time the invocation had
   * when the task began, so that a few slow checkpoints (outputs waiting on a slow delivery, a busy
   * store) can never make the reserve larger than an invocation, which would fail every later
   * invocation of the container at once without applying a record.
   */
  reserveMs(ceilingMs = Number.POSITIVE_INFINITY): number {
    return Math.max(this.config.timeReserveMs, Math.min(3 * this.slowCheckpointMs, ceilingMs));
  }

  /** Whether a running epoch of `records` records and `bytes` bytes may take one more record. */
  mayExtend(records: number, bytes: number, remaining: () => number, reserveMs: number): boolean {
    if (records >= this.config.epochMaxRecords || bytes >= this.config.epochMaxBytes) return false;
    return records === 0 || (records & CLOCK_CHECK_MASK) !== 0 || remaining() >= reserveMs;
  }

  /** Records how long a checkpoint took (it sizes the reserve of later epochs). */
  checkpointTook(ms: number): void {
    this.slowCheckpointMs = Math.max(ms, this.slowCheckpointMs * 0.9);
  }
}
