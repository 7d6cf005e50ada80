/**
 * `npx tidemark …`: operator commands. Every command is a thin layer over `lib/ops` (which tests
 * call directly); bucket, table and endpoints come from the same environment variables the
 * function uses (TIDEMARK_BUCKET, TIDEMARK_TABLE, AWS_ENDPOINT_URL_*, AWS_REGION, credentials).
 */
import path from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULTS } from '../config/config.ts';
import { ENV } from '../config/env.ts';
import { TidemarkError } from '../errors.ts';
import { listCheckpoints, rollbackTask } from '../ops/checkpoints.ts';
import { collectGarbage } from '../ops/gc.ts';
import { inspectTask } from '../ops/inspect.ts';
import { createS3Client, dynamoEndpointOverride, s3EndpointOverride } from '../store/clients.ts';
import { ensureBucket } from '../store/provision.ts';
import { addOperationCommands } from './operations.ts';
import {
  cliStores,
  closeCliStores,
  partitionArg,
  requireSetting,
  retainedCheckpointsOption,
  type StoreFlags,
  storeOptions,
  UsageError,
} from './options.ts';
import { scaffold } from './scaffold.ts';

function describeError(err: unknown): string {
  if (err instanceof TidemarkError) {
    const cause = err.cause instanceof Error ? err.cause : undefined;
    const network =
      cause && /ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EHOSTUNREACH|socket/i.test(`${cause.message} ${cause.name}`);
    if (network) {
      const endpoints = [s3EndpointOverride(), dynamoEndpointOverride()].filter(Boolean).join(', ');
      return `${err.message}\n(cannot reach the service${endpoints ? `; endpoint overrides: ${endpoints}` : ''})`;
    }
    return err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

export function buildCli(): Command {
  const program = new Command('tidemark')
    .description('Tidemark operator commands')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  storeOptions(
    program
      .command('init')
      .description(
        'create the bucket and the commit store (DynamoDB table, or database tables: TIDEMARK_COMMIT_STORE) if they are missing (idempotent; for local use and users without CDK)',
      ),
  ).action(async (opts: StoreFlags) => {
    const bucket = requireSetting(opts.bucket, ENV.bucket, '--bucket');
    const stores = cliStores(opts);
    const s3 = createS3Client();
    try {
      const [b, c] = await Promise.all([ensureBucket(s3, bucket), stores.ensureCommitStore()]);
      process.stdout.write(`bucket ${bucket}: ${b}\n${c.resource}: ${c.result}\n`);
    } finally {
      s3.destroy();
    }
  });

  storeOptions(
    program
      .command('inspect')
      .description("print a task's committed checkpoint and its state")
      .requiredOption('--pipeline <id>', 'pipeline id')
      .requiredOption('--topic <topic>', 'Kafka topic')
      .requiredOption('--partition <n>', 'partition number', partitionArg)
      .option(
        '--json',
        'print one JSON object (pipeline, topic, partition, epoch, committedOffset, quarantined, state)',
      ),
  ).action(
    async (opts: StoreFlags & { pipeline: string; topic: string; partition: number; json?: boolean }) => {
      const stores = cliStores(opts);
      const r = await inspectTask(stores, {
        pipeline: opts.pipeline,
        topic: opts.topic,
        partition: opts.partition,
      });
      if (opts.json) {
        const { pipeline, topic, partition, epoch, committedOffset, quarantined, state } = r;
        process.stdout.write(
          `${JSON.stringify({ pipeline, topic, partition, epoch, committedOffset, quarantined, state })}\n`,
        );
        return;
      }
      const lines = [
        `task            ${r.pipeline} ${r.topic}-${r.partition}`,
        `epoch           ${r.epoch}`,
        `committedOffset ${r.committedOffset ?? '(none: never committed)'}`,
        `applied         ${r.applied}`,
        `quarantined     ${r.quarantined}`,
        `updatedAt       ${r.updatedAt ?? '-'}`,
        `snapshot        ${r.snapshot ? `${r.snapshot.keys.join(' + ')} (${r.snapshot.bytes} bytes, ${r.snapshot.entries} entries)` : '-'}`,
        `retained        ${r.retained.map((h) => `epoch ${h.epoch} @ ${h.committedOffset}`).join(', ') || '-'}`,
        `watermark       ${r.time.watermark ?? '-'}${r.time.dueAt ? ` (a tick has work from ${r.time.dueAt})` : ''}`,
        `outbox          ${r.outbox ? `${r.outbox.outputs} output(s) delivered after the commit${r.outbox.settled ? ', settled' : ''}` : '-'}`,
        'state',
        JSON.stringify(r.state, null, 2),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    },
  );

  storeOptions(
    program
      .command('checkpoints')
      .description("list a task's retained checkpoints (newest first)")
      .requiredOption('--pipeline <id>', 'pipeline id')
      .requiredOption('--topic <topic>', 'Kafka topic')
      .requiredOption('--partition <n>', 'partition number', partitionArg)
      .option('--json', 'print JSON'),
  ).action(
    async (opts: StoreFlags & { pipeline: string; topic: string; partition: number; json?: boolean }) => {
      const stores = cliStores(opts);
      await stores.commits.probe();
      const list = await listCheckpoints(stores.commits, {
        pipeline: opts.pipeline,
        topic: opts.topic,
        partition: opts.partition,
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(list)}\n`);
        return;
      }
      if (list.length === 0) process.stdout.write('no checkpoint: the task never committed\n');
      for (const c of list) {
        const chain = c.chain.map((r) => `${r.kind === 'full' ? 'F' : 'd'}${r.epoch}`).join('+');
        const bytes = c.chain.reduce((n, r) => n + r.bytes, 0);
        process.stdout.write(
          `${c.current ? '*' : ' '} epoch ${String(c.epoch).padEnd(8)} offset ${c.committedOffset.padEnd(20)} ${c.updatedAt}  ${chain} (${bytes} bytes)\n`,
        );
      }
    },
  );

  storeOptions(
    program
      .command('rollback')
      .description('make a retained checkpoint current again (fenced like any commit)')
      .requiredOption('--pipeline <id>', 'pipeline id')
      .requiredOption('--topic <topic>', 'Kafka topic')
      .requiredOption('--partition <n>', 'partition number', partitionArg)
      .requiredOption(
        '--to-epoch <n>',
        'epoch of a retained checkpoint (see `tidemark checkpoints`)',
        partitionArg,
      )
      .addOption(retainedCheckpointsOption()),
  ).action(
    async (
      opts: StoreFlags & {
        pipeline: string;
        topic: string;
        partition: number;
        toEpoch: number;
        retainedCheckpoints?: number;
      },
    ) => {
      const stores = cliStores(opts);
      const r = await rollbackTask(
        stores,
        { pipeline: opts.pipeline, topic: opts.topic, partition: opts.partition },
        opts.toEpoch,
        { retainedCheckpoints: opts.retainedCheckpoints },
      );
      process.stdout.write(
        `rolled back ${opts.topic}-${opts.partition}: epoch ${r.from.epoch} (offset ${r.from.committedOffset}) -> epoch ${r.to.epoch} = state of epoch ${r.to.restoredEpoch} (offset ${r.to.committedOffset})\n` +
          `records from offset ${r.to.committedOffset} on are applied again when delivered: rewind the consumer group to it for the ESM to re-deliver them\n`,
      );
    },
  );

  storeOptions(
    program
      .command('gc')
      .description("delete a pipeline's snapshot objects that no retained checkpoint references")
      .requiredOption('--pipeline <id>', 'pipeline id')
      .addOption(new Option('--prefix <prefix>', 'key prefix').env(ENV.prefix).default(DEFAULTS.prefix))
      .option(
        '--min-age-seconds <n>',
        'keep unreferenced objects younger than this (attempts may be about to commit them)',
        partitionArg,
        DEFAULTS.orphanMinAgeSeconds,
      )
      .option('--dry-run', 'list what would be deleted, delete nothing'),
  ).action(
    async (
      opts: StoreFlags & { pipeline: string; prefix: string; minAgeSeconds: number; dryRun?: boolean },
    ) => {
      const stores = cliStores(opts);
      await Promise.all([stores.commits.probe(), stores.snapshots.probe()]);
      const r = await collectGarbage(stores, {
        prefix: opts.prefix,
        pipeline: opts.pipeline,
        minAgeMs: opts.minAgeSeconds * 1000,
        dryRun: opts.dryRun,
      });
      for (const k of r.deleted) process.stdout.write(`${r.dryRun ? 'would delete' : 'deleted'} ${k}\n`);
      process.stdout.write(
        `${r.listed} object(s) listed, ${r.referenced} referenced by retained checkpoints, ${r.keptYoung} unreferenced but younger than ${opts.minAgeSeconds} s, ${r.deleted.length} ${r.dryRun ? 'to delete (dry run)' : 'deleted'}\n`,
      );
    },
  );

  addOperationCommands(program);

  program
    .command('new')
    .description(
      'create a project for a new pipeline: a processor, its TestDriver test, the Lambda handler, a CDK app, a README',
    )
    .argument('<dir>', 'the project directory (created; must be absent or empty)')
    .option('--pipeline <id>', "pipeline id (default: the directory's name)")
    .option('--tidemark <spec>', 'the tidemark dependency of the project (default: ^ this version)')
    .action((dir: string, opts: { pipeline?: string; tidemark?: string }) => {
      const r = scaffold({ dir, ...opts });
      process.stdout.write(
        `created pipeline ${r.pipeline} in ${r.dir}:\n${r.files.map((f) => `  ${f}`).join('\n')}\n\n` +
          `next: cd ${path.relative(process.cwd(), r.dir) || '.'} && npm install && npm test && npx cdk synth\n`,
      );
    });
  return program;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  try {
    await buildCli().parseAsync(argv);
    return 0;
  } catch (err) {
    process.stderr.write(`tidemark: ${describeError(err)}\n`);
    return err instanceof UsageError ? 2 : 1;
  } finally {
    await closeCliStores();
  }
}
