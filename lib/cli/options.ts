/** Options and argument parsers shared by the CLI's commands. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../config/config.ts';
import { ENV } from '../config/env.ts';
import {
  KAFKA_ENV,
  type KafkaConnectionOptions,
  parseBrokers,
  SASL_MECHANISMS,
  type SaslMechanism,
} from '../ops/kafka.ts';
import { type ConfiguredStores, createStores } from '../store/stores.ts';

/** A usage mistake (exit code 2), as opposed to a failed operation (exit code 1). */
export class UsageError extends Error {}

export function requireSetting(value: string | undefined, env: string, flag: string): string {
  if (!value) throw new UsageError(`missing ${flag} (or the ${env} environment variable)`);
  return value;
}

export function partitionArg(v: string): number {
  if (!/^\d{1,10}$/.test(v)) throw new InvalidArgumentError('must be a non-negative integer');
  return Number(v);
}

/** `--retained-checkpoints`: the pipeline's setting, for commands that install a checkpoint. */
export function retainedCheckpointsOption(): Option {
  return new Option(
    '--retained-checkpoints <n>',
    "checkpoints kept per task, the current one included (the pipeline's setting)",
  )
    .env(ENV.retainedCheckpoints)
    .argParser((v: string) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
      return n;
    });
}

export interface StoreFlags {
  bucket?: string;
  table?: string;
}

export function storeOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--bucket <name>', 'S3 bucket').env(ENV.bucket))
    .addOption(new Option('--table <name>', 'DynamoDB table').env(ENV.table));
}

/** Bucket and table; the table only with the DynamoDB commit store (`TIDEMARK_COMMIT_STORE`). */
export function required(opts: StoreFlags): { bucket: string; table: string } {
  const dynamodb = (process.env[ENV.commitStore]?.trim() || 'dynamodb') === 'dynamodb';
  return {
    bucket: requireSetting(opts.bucket, ENV.bucket, '--bucket'),
    table: dynamodb ? requireSetting(opts.table, ENV.table, '--table') : (opts.table ?? ''),
  };
}

const opened: ConfiguredStores[] = [];

/**
 * The stores of a command: snapshots in the bucket, commit items and savepoints in the commit store
 * the function uses (`TIDEMARK_COMMIT_STORE` and its `TIDEMARK_DB_*` settings, docs/stores.md).
 * Closed by `closeCliStores` when the command ends.
 */
export function cliStores(opts: StoreFlags): ConfiguredStores {
  const { bucket, table } = required(opts);
  const config = loadConfig({
    ...process.env,
    [ENV.bucket]: bucket,
    [ENV.table]: table,
    [ENV.pipeline]: 'cli',
  });
  const stores = createStores(config);
  opened.push(stores);
  return stores;
}

export async function closeCliStores(): Promise<void> {
  await Promise.allSettled(opened.splice(0).map((s) => s.close()));
}

export interface KafkaFlags {
  brokers?: string;
  ssl?: boolean;
  ca?: string;
  saslMechanism?: SaslMechanism;
  saslUsername?: string;
  saslPassword?: string;
  region?: string;
}

/** `--brokers` and the authentication options of every command that talks to Kafka. */
export function kafkaOptions(cmd: Command, brokersHelp: string): Command {
  return cmd
    .addOption(new Option('--brokers <list>', brokersHelp).env(KAFKA_ENV.brokers))
    .option('--ssl', 'connect with TLS')
    .option('--ca <file>', 'PEM file of the CA of the brokers’ certificates (implies --ssl)')
    .addOption(
      new Option('--sasl-mechanism <mechanism>', 'SASL authentication').choices([...SASL_MECHANISMS]),
    )
    .addOption(new Option('--sasl-username <name>', 'SASL/SCRAM or PLAIN user').env(KAFKA_ENV.username))
    .addOption(new Option('--sasl-password <secret>', 'SASL/SCRAM or PLAIN password').env(KAFKA_ENV.password))
    .addOption(new Option('--region <region>', 'AWS region of the MSK cluster (aws-iam)').env('AWS_REGION'));
}

/** The connection options, or undefined when no broker was given. */
export function kafkaConnection(flags: KafkaFlags): KafkaConnectionOptions | undefined {
  if (!flags.brokers) return undefined;
  return {
    brokers: parseBrokers(flags.brokers),
    ssl: flags.ssl ?? false,
    ...(flags.ca ? { caFile: flags.ca } : {}),
    ...(flags.saslMechanism ? { saslMechanism: flags.saslMechanism } : {}),
    ...(flags.saslUsername ? { saslUsername: flags.saslUsername } : {}),
    ...(flags.saslPassword ? { saslPassword: flags.saslPassword } : {}),
    ...(flags.region ? { region: flags.region } : {}),
  };
}
