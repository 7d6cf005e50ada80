/**
 * Runs the benchmarks of a profile and gathers every figure in one JSON-safe result. The caller
 * provides the local servers (the CLI starts its own; the CI smoke test uses the test run's).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { DEFAULTS } from '../lib/config/config.ts';
import { createS3Client } from '../lib/store/clients.ts';
import { S3SnapshotStore } from '../lib/store/s3/S3SnapshotStore.ts';
import { AWS_LATENCY_PROFILES, type AwsLatencyResult, runAwsLatency } from './awsLatency.ts';
import { COLD_START_PROFILES, type ColdStartResult, runColdStart } from './coldStart.ts';
import { type CostOptions, type CostResult, costModel } from './costModel.ts';
import { evaluateGoals, type GoalCheck } from './goals.ts';
import { type IcebergBenchOptions, type IcebergBenchResult, runIcebergBench } from './iceberg.ts';
import { MEMORY_PROFILES, type MemoryResult, runMemory } from './memory.ts';
import { OUTPUTS_PROFILES, type OutputsBenchResult, outputGoals, runOutputsBench } from './outputs.ts';
import { type OverheadOptions, type OverheadResult, runOverhead } from './overhead.ts';
import { type RequestsOptions, type RequestsResult, type RequestsTarget, runRequests } from './requests.ts';
import { runStateSize, type StateSizeOptions, type StateSizeResult } from './stateSize.ts';

export const SECTIONS = [
  'overhead',
  'requests',
  'state',
  'cost',
  'iceberg',
  'outputs',
  'aws',
  'coldstart',
  'memory',
] as const;
export type Section = (typeof SECTIONS)[number];

export type ProfileName = 'full' | 'quick' | 'smoke';

export interface Profile {
  overhead: OverheadOptions;
  requests: RequestsOptions;
  state: StateSizeOptions;
  cost: CostOptions;
  iceberg: IcebergBenchOptions;
}

const SEED = 20_261_123;
const COST: CostOptions = { memoryMb: 1024, batchRecords: 10_000 };

export const PROFILES: Record<ProfileName, Profile> = {
  full: {
    overhead: {
      epochSizes: [100, 1_000, 10_000],
      records: 200_000,
      batchRecords: 10_000,
      accounts: 10_000,
      repeats: 5,
      seed: SEED,
    },
    requests: {
      tidemarkRecords: 1_000_000,
      coldRecords: 1_000_000,
      baselineRecords: 20_000,
      partitions: 8,
      batchRecords: 10_000,
      accounts: 10_000,
      repeats: 3,
      seed: SEED,
    },
    state: {
      keyCounts: [10_000, 100_000, 1_000_000],
      changedFraction: 0.01,
      deltasInChain: DEFAULTS.compactAfterDeltas,
      repeats: 5,
      compression: DEFAULTS.compression,
      seed: SEED,
    },
    cost: COST,
    iceberg: { tasks: 8, epochs: 25, rowsPerEpoch: 1_000, commitEvery: 5, repeats: 3 },
  },
  quick: {
    overhead: {
      epochSizes: [100, 1_000, 10_000],
      records: 100_000,
      batchRecords: 10_000,
      accounts: 10_000,
      repeats: 3,
      seed: SEED,
    },
    requests: {
      tidemarkRecords: 200_000,
      coldRecords: 100_000,
      baselineRecords: 4_000,
      partitions: 8,
      batchRecords: 10_000,
      accounts: 10_000,
      repeats: 2,
      seed: SEED,
    },
    state: {
      keyCounts: [10_000, 100_000, 1_000_000],
      changedFraction: 0.01,
      deltasInChain: DEFAULTS.compactAfterDeltas,
      repeats: 2,
      compression: DEFAULTS.compression,
      seed: SEED,
    },
    cost: COST,
    iceberg: { tasks: 4, epochs: 10, rowsPerEpoch: 1_000, commitEvery: 5, repeats: 1 },
  },
  /** A few seconds: exercises every code path on tiny sizes (CI). Its figures mean nothing. */
  smoke: {
    overhead: {
      epochSizes: [10, 100],
      records: 400,
      batchRecords: 200,
      accounts: 50,
      repeats: 1,
      seed: SEED,
    },
    requests: {
      tidemarkRecords: 800,
      coldRecords: 400,
      baselineRecords: 40,
      partitions: 2,
      batchRecords: 200,
      accounts: 50,
      repeats: 1,
      seed: SEED,
    },
    state: {
      keyCounts: [500],
      changedFraction: 0.01,
      deltasInChain: 2,
      repeats: 1,
      compression: 'zstd',
      seed: SEED,
    },
    cost: { ...COST, batchRecords: 200 },
    iceberg: { tasks: 2, epochs: 2, rowsPerEpoch: 50, commitEvery: 1, repeats: 1 },
  },
};

export interface MachineInfo {
  cpuModel: string;
  cpus: number;
  memoryGiB: number;
  os: string;
  node: string;
  /** 1, 5 and 15 minute load averages when the run started (other work on a shared machine). */
  loadAverageAtStart: number[];
  /** The same when it finished (absent in runs before it was recorded). */
  loadAverageAtEnd?: number[];
}

export interface BenchResult {
  schema: 1;
  profile: ProfileName;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  commit: string;
  engineDefaults: {
    snapshotMode: string;
    compression: string;
    compactAfterDeltas: number;
    compactDeltaRatio: number;
  };
  sections: Section[];
  overhead?: OverheadResult;
  requests?: RequestsResult;
  stateSize?: StateSizeResult;
  cost?: CostResult;
  iceberg?: IcebergBenchResult;
  outputs?: OutputsBenchResult;
  awsLatency?: AwsLatencyResult;
  coldStart?: ColdStartResult;
  memory?: MemoryResult;
  goals: GoalCheck[];
  /** Where a rendered result differs from one run as measured (a section taken from another run). */
  notes?: string[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

export async function runBenchmarks(options: {
  profile: ProfileName;
  sections?: readonly Section[];
  target: RequestsTarget;
  /** Overrides of the profile (e.g. the Lambda memory size of the cost model). */
  cost?: Partial<CostOptions>;
  log?: (line: string) => void;
}): Promise<BenchResult> {
  const log = options.log ?? (() => {});
  const profile = PROFILES[options.profile];
  const sections = options.sections ?? SECTIONS;
  const started = new Date();
  const machine = machineInfo();
  const result: BenchResult = {
    schema: 1,
    profile: options.profile,
    startedAt: started.toISOString(),
    finishedAt: '',
    durationSeconds: 0,
    machine,
    commit: gitCommit(),
    engineDefaults: {
      snapshotMode: DEFAULTS.snapshotMode,
      compression: DEFAULTS.compression,
      compactAfterDeltas: DEFAULTS.compactAfterDeltas,
      compactDeltaRatio: DEFAULTS.compactDeltaRatio,
    },
    sections: [...sections],
    goals: [],
  };
  if (sections.includes('overhead')) {
    log('== 1. overhead (in-memory stores)');
    result.overhead = await runOverhead(profile.overhead, log);
  }
  if (sections.includes('requests') || sections.includes('cost')) {
    log('== 2. durable requests (DynamoDB Local + S3 server)');
    result.requests = await runRequests(profile.requests, options.target, log);
  }
  if (sections.includes('state')) {
    log('== 3. state size (S3 server)');
    const s3 = createS3Client(options.target.env);
    try {
      const store = new S3SnapshotStore({ client: s3, bucket: options.target.bucket });
      result.stateSize = await runStateSize(profile.state, store, options.target.runId, log);
    } finally {
      s3.destroy();
    }
  }
  if (sections.includes('cost') && result.requests) {
    log('== 4. cost model');
    result.cost = costModel(result.requests, { ...profile.cost, ...options.cost });
  }
  if (sections.includes('iceberg')) {
    log('== 5. Iceberg output (DynamoDB Local + S3 server)');
    result.iceberg = await runIcebergBench(profile.iceberg, options.target, log);
  }
  if (sections.includes('outputs')) {
    log('== 6. outputs: state only against state plus each sink (DynamoDB Local + S3 server + local Kafka)');
    result.outputs = await runOutputsBench(OUTPUTS_PROFILES[options.profile], options.target, log);
  }
  if (sections.includes('aws')) {
    log('== 7. AWS-latency profile (DynamoDB Local + S3 server behind a latency proxy)');
    result.awsLatency = await runAwsLatency(AWS_LATENCY_PROFILES[options.profile], options.target, log);
  }
  if (sections.includes('coldstart')) {
    log('== 8. cold start (the bundle the CDK construct builds)');
    result.coldStart = runColdStart(COLD_START_PROFILES[options.profile], options.target, log);
  }
  if (sections.includes('memory')) {
    log('== 9. memory per million keys');
    result.memory = runMemory(MEMORY_PROFILES[options.profile], log);
  }
  result.goals = [...evaluateGoals(result), ...outputGoals(result.outputs)];
  const finished = new Date();
  result.machine.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
  result.finishedAt = finished.toISOString();
  result.durationSeconds = Math.round((finished.getTime() - started.getTime()) / 100) / 10;
  return result;
}
