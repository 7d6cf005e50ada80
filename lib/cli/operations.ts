/**
 * The operator commands of docs/operations.md: `status`, `savepoint create|list|delete|restore`,
 * `export` and `bootstrap`. Thin layers over lib/ops (which tests call directly).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { type Command, Option } from 'commander';
import { DEFAULTS } from '../config/config.ts';
import { ENV } from '../config/env.ts';
import { bootstrapState, parseOffsets } from '../ops/bootstrap.ts';
import { exportState } from '../ops/exportState.ts';
import { createKafkaOps, type KafkaOps, kafkaClientConfig, quietKafkajsWarnings } from '../ops/kafka.ts';
import { createSavepoint, deleteSavepoint, listSavepoints, restoreSavepoint } from '../ops/savepoints.ts';
import { pipelineStatus } from '../ops/status.ts';
import {
  cliStores,
  type KafkaFlags,
  kafkaConnection,
  kafkaOptions,
  partitionArg,
  retainedCheckpointsOption,
  type StoreFlags,
  storeOptions,
  UsageError,
} from './options.ts';

interface PrefixFlag {
  prefix: string;
}

function prefixOption(cmd: Command): Command {
  return cmd.addOption(
    new Option('--prefix <prefix>', 'key prefix of the pipeline’s objects')
      .env(ENV.prefix)
      .default(DEFAULTS.prefix),
  );
}

function stores(opts: StoreFlags) {
  return cliStores(opts);
}

/** Runs `fn` with a Kafka connection when brokers were given (closed afterwards). */
async function withKafka<T>(flags: KafkaFlags, fn: (kafka: KafkaOps | undefined) => Promise<T>): Promise<T> {
  const conn = kafkaConnection(flags);
  if (conn) quietKafkajsWarnings();
  const kafka = conn ? createKafkaOps(kafkaClientConfig(conn)) : undefined;
  try {
    return await fn(kafka);
  } finally {
    await kafka?.close();
  }
}

const out = (s: string) => process.stdout.write(s);

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function addOperationCommands(program: Command): void {
  kafkaOptions(
    storeOptions(
      program
        .command('status')
        .description(
          "every task's epoch, committed offset, snapshot size, last commit and quarantined records; with --brokers, the consumer group's offsets and lag",
        )
        .requiredOption('--pipeline <id>', 'pipeline id')
        .option('--group <id>', 'consumer group of the event source mapping (default: the pipeline id)')
        .option('--topic <topic>', 'also show this topic’s partitions (repeatable)', collect)
        .option('--json', 'print JSON'),
    ),
    'Kafka bootstrap brokers, host:port,… (adds group offsets, end offsets and lag)',
  ).action(
    async (
      opts: StoreFlags & KafkaFlags & { pipeline: string; group?: string; topic?: string[]; json?: boolean },
    ) => {
      const s = stores(opts);
      await s.commits.probe();
      const st = await withKafka(opts, (kafka) =>
        pipelineStatus(s, {
          pipeline: opts.pipeline,
          ...(kafka ? { kafka } : {}),
          ...(opts.group ? { group: opts.group } : {}),
          ...(opts.topic ? { topics: opts.topic } : {}),
        }),
      );
      if (opts.json) {
        out(`${JSON.stringify(st)}\n`);
        return;
      }
      if (st.group) {
        const members = st.group.members.map((m) => `${m.clientId}@${m.clientHost}`).join(', ');
        out(`consumer group ${st.group.id}: ${st.group.state}${members ? ` (members: ${members})` : ''}\n`);
      }
      if (st.tasks.length === 0) out(`pipeline ${opts.pipeline} has no task with a checkpoint\n`);
      const rows = st.tasks.map((t) => [
        `${t.topic}-${t.partition}`,
        String(t.epoch),
        t.committedOffset ?? '-',
        String(t.snapshotBytes),
        t.updatedAt ?? '-',
        String(t.quarantined),
        ...(st.group ? [t.kafka?.groupOffset ?? '-', t.kafka?.end ?? '-', t.kafka?.lag ?? '-'] : []),
      ]);
      const head = [
        'task',
        'epoch',
        'offset',
        'snapshot bytes',
        'last commit',
        'quarantined',
        ...(st.group ? ['group offset', 'end offset', 'lag'] : []),
      ];
      if (rows.length > 0) out(table([head, ...rows]));
    },
  );

  const sp = program.command('savepoint').description('named, retained copies of every task checkpoint');

  kafkaOptions(
    prefixOption(
      storeOptions(
        sp
          .command('create')
          .description('copy every task’s current checkpoint into a named savepoint that GC never removes')
          .requiredOption('--pipeline <id>', 'pipeline id')
          .requiredOption('--name <name>', 'savepoint name, unique in the pipeline')
          .option(
            '--topic <topic>',
            'only this topic (repeatable; default: every topic with checkpoints)',
            collect,
          )
          .option('--json', 'print JSON'),
      ),
    ),
    'Kafka bootstrap brokers: record each topic’s exact partition layout (recommended)',
  ).action(
    async (
      opts: StoreFlags &
        KafkaFlags &
        PrefixFlag & { pipeline: string; name: string; topic?: string[]; json?: boolean },
    ) => {
      const s = stores(opts);
      await Promise.all([s.commits.probe(), s.snapshots.probe()]);
      const meta = await withKafka(opts, async (kafka) => {
        let layout: Record<string, number> | undefined;
        if (kafka) {
          let topics = opts.topic;
          if (!topics) {
            const seen = new Set<string>();
            for await (const c of s.commits.list(opts.pipeline)) seen.add(c.topic);
            topics = [...seen];
          }
          layout = {};
          for (const t of topics) layout[t] = (await kafka.partitions(t)).length;
        }
        return createSavepoint(s, {
          prefix: opts.prefix,
          pipeline: opts.pipeline,
          name: opts.name,
          ...(opts.topic ? { topics: opts.topic } : {}),
          ...(layout ? { layout } : {}),
        });
      });
      if (opts.json) {
        out(`${JSON.stringify(meta)}\n`);
        return;
      }
      const topics = Object.entries(meta.topics)
        .map(([t, n]) => `${t} (${n} partitions)`)
        .join(', ');
      out(
        `savepoint ${meta.name} of ${meta.pipeline}: ${meta.tasks} task(s) of ${topics}, ${meta.bytes} bytes, layout from ${meta.layoutSource}\n`,
      );
    },
  );

  storeOptions(
    sp
      .command('list')
      .description("a pipeline's savepoints, oldest first")
      .requiredOption('--pipeline <id>', 'pipeline id')
      .option('--json', 'print JSON'),
  ).action(async (opts: StoreFlags & { pipeline: string; json?: boolean }) => {
    const s = stores(opts);
    await s.commits.probe();
    const list = await listSavepoints(s.savepoints, opts.pipeline);
    if (opts.json) {
      out(`${JSON.stringify(list)}\n`);
      return;
    }
    if (list.length === 0) out(`pipeline ${opts.pipeline} has no savepoint\n`);
    const rows = list.map((m) => [
      m.name,
      m.status,
      m.createdAt,
      String(m.tasks),
      String(m.bytes),
      Object.entries(m.topics)
        .map(([t, n]) => `${t}:${n}`)
        .join(','),
    ]);
    if (rows.length > 0)
      out(table([['name', 'status', 'created', 'tasks', 'bytes', 'topics:partitions'], ...rows]));
  });

  prefixOption(
    storeOptions(
      sp
        .command('delete')
        .description('delete a savepoint and its objects')
        .requiredOption('--pipeline <id>', 'pipeline id')
        .requiredOption('--name <name>', 'savepoint name'),
    ),
  ).action(async (opts: StoreFlags & PrefixFlag & { pipeline: string; name: string }) => {
    const s = stores(opts);
    const r = await deleteSavepoint(s, { prefix: opts.prefix, pipeline: opts.pipeline, name: opts.name });
    out(`deleted savepoint ${opts.name} of ${opts.pipeline} (${r.objects} object(s))\n`);
  });

  kafkaOptions(
    prefixOption(
      storeOptions(
        sp
          .command('restore')
          .description(
            'make a savepoint the current checkpoint of every task and rewind the consumer group to its offsets',
          )
          .requiredOption('--pipeline <id>', 'pipeline id')
          .requiredOption('--name <name>', 'savepoint name')
          .option('--group <id>', 'consumer group of the event source mapping (default: the pipeline id)')
          .option(
            '--function <name>',
            'disable this function’s event source mapping for the restore (Lambda API), enable it again afterwards',
          )
          .option('--wait-seconds <n>', 'how long to wait for the mapping and the group', partitionArg, 300)
          .option('--dry-run', 'check everything and print the plan; change nothing')
          .option('--json', 'print JSON')
          .addOption(retainedCheckpointsOption()),
      ),
    ),
    'Kafka bootstrap brokers, host:port,… (required)',
  ).action(
    async (
      opts: StoreFlags &
        KafkaFlags &
        PrefixFlag & {
          pipeline: string;
          name: string;
          group?: string;
          function?: string;
          waitSeconds: number;
          dryRun?: boolean;
          json?: boolean;
          retainedCheckpoints?: number;
        },
    ) => {
      if (!opts.brokers)
        throw new UsageError('savepoint restore needs --brokers (or TIDEMARK_KAFKA_BROKERS)');
      const s = stores(opts);
      await Promise.all([s.commits.probe(), s.snapshots.probe()]);
      // The Lambda API client is loaded only when it is used.
      const eventSources = opts.function
        ? new (await import('../store/lambda/LambdaEventSourceControl.ts')).LambdaEventSourceControl()
        : undefined;
      try {
        const r = await withKafka(opts, (kafka) =>
          restoreSavepoint(s, kafka!, {
            prefix: opts.prefix,
            pipeline: opts.pipeline,
            name: opts.name,
            group: opts.group ?? opts.pipeline,
            ...(opts.function ? { functionName: opts.function, eventSources } : {}),
            dryRun: opts.dryRun ?? false,
            waitMs: opts.waitSeconds * 1000,
            retainedCheckpoints: opts.retainedCheckpoints,
            log: opts.json ? undefined : (line) => out(`${line}\n`),
          }),
        );
        if (opts.json) {
          out(`${JSON.stringify(r)}\n`);
          return;
        }
        const rows = r.tasks.map((t) => [
          `${t.topic}-${t.partition}`,
          t.action === 'restore' ? `savepoint epoch ${t.savepointEpoch}` : 'empty (never started)',
          `${t.currentOffset ?? '-'} → ${t.offset}`,
          r.dryRun ? `${t.currentEpoch} → ${t.currentEpoch + 1}` : `${t.currentEpoch} → ${t.newEpoch}`,
        ]);
        out(table([['task', 'state', 'offset', 'epoch'], ...rows]));
        out(
          r.dryRun
            ? 'dry run: nothing was changed\n'
            : `restored savepoint ${opts.name}: consumer group ${r.group} rewound${
                r.mapping
                  ? `, event source mapping ${r.mapping.uuid} ${r.mapping.reEnabled ? 're-enabled' : 'left disabled (it was disabled before)'}`
                  : '; enable the event source mapping again'
              }\n`,
        );
      } finally {
        eventSources?.destroy();
      }
    },
  );

  storeOptions(
    program
      .command('export')
      .description("a pipeline's (or one task's) state as JSON lines, with checkpoint metadata")
      .requiredOption('--pipeline <id>', 'pipeline id')
      .option('--topic <topic>', 'only this topic')
      .option('--partition <n>', 'only this partition', partitionArg)
      .option('--savepoint <name>', 'export this savepoint instead of the current checkpoints')
      .option('--output <file>', 'write to this file (default: standard output)'),
  ).action(
    async (
      opts: StoreFlags & {
        pipeline: string;
        topic?: string;
        partition?: number;
        savepoint?: string;
        output?: string;
      },
    ) => {
      const s = stores(opts);
      await Promise.all([s.commits.probe(), s.snapshots.probe()]);
      const target = opts.output ? createWriteStream(opts.output) : process.stdout;
      const r = await exportState(
        s,
        {
          pipeline: opts.pipeline,
          ...(opts.topic !== undefined ? { topic: opts.topic } : {}),
          ...(opts.partition !== undefined ? { partition: opts.partition } : {}),
          ...(opts.savepoint !== undefined ? { savepoint: opts.savepoint } : {}),
        },
        target,
      );
      if (opts.output) {
        target.end();
        await finished(target);
        process.stderr.write(`exported ${r.tasks} task(s), ${r.entries} entries to ${opts.output}\n`);
      }
    },
  );

  prefixOption(
    storeOptions(
      program
        .command('bootstrap')
        .description(
          "create a pipeline's initial checkpoints from JSON lines (the export format) and offsets",
        )
        .requiredOption('--input <file>', 'JSON lines, as written by tidemark export')
        .option('--pipeline <id>', 'pipeline to create (default: the one named in the file)')
        .option(
          '--offsets <list>',
          'committed offsets, topic:partition=offset,… (override the file; tasks only listed here start empty)',
        )
        .addOption(retainedCheckpointsOption()),
    ),
  ).action(
    async (
      opts: StoreFlags &
        PrefixFlag & { input: string; pipeline?: string; offsets?: string; retainedCheckpoints?: number },
    ) => {
      const s = stores(opts);
      await Promise.all([s.commits.probe(), s.snapshots.probe()]);
      const open = () =>
        createInterface({ input: createReadStream(opts.input), crlfDelay: Number.POSITIVE_INFINITY });
      const r = await bootstrapState(s, open, {
        prefix: opts.prefix,
        ...(opts.pipeline ? { pipeline: opts.pipeline } : {}),
        ...(opts.offsets ? { offsets: parseOffsets(opts.offsets) } : {}),
        retainedCheckpoints: opts.retainedCheckpoints,
      });
      for (const t of r.tasks) {
        out(
          `created ${t.topic}-${t.partition}: epoch 1, offset ${t.committedOffset}, ${t.entries} entries (${t.bytes} bytes)\n`,
        );
      }
      out(`bootstrapped ${r.tasks.length} task(s) of pipeline ${r.pipeline}\n`);
    },
  );
}

/** Left-aligned columns. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
