import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { deposit, mskEvent, type TestRecord } from '../../harness/esm/mskEvent.ts';
import { HookedCommitStore } from '../../harness/faultyStores.ts';
import { foldBalances } from '../../harness/oracle.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { savepointPrefix } from '../../lib/checkpoint/layout.ts';
import type { CommitRecord } from '../../lib/checkpoint/stores.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { OperationError } from '../../lib/errors.ts';
import { collectGarbage } from '../../lib/ops/gc.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import {
  createSavepoint,
  deleteSavepoint,
  listSavepoints,
  restoreSavepoint,
} from '../../lib/ops/savepoints.ts';
import { MemorySavepointStore } from '../../lib/store/memory/MemorySavepointStore.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';
import { FakeEventSources, FakeKafka } from './fakes.ts';

const PIPELINE = 'balances';
const PREFIX = 'tidemark';

function setup(options: { retained?: number; inline?: boolean } = {}) {
  const snapshots = new MemorySnapshotStore();
  const commits = new HookedCommitStore(new MemoryCommitStore());
  const savepoints = new MemorySavepointStore();
  const config = loadConfig(
    {},
    {
      bucket: 'b',
      table: 't',
      pipeline: PIPELINE,
      retainedCheckpoints: options.retained ?? 2,
      compactAfterDeltas: 2,
      ...(options.inline === false ? { snapshotInlineMaxBytes: 0 } : {}),
    },
  );
  const engine = () => new EpochEngine({ processor: balances, config, snapshots, commits });
  return { snapshots, commits, savepoints, engine, stores: { snapshots, commits, savepoints } };
}

/** Batch i: for each partition, 4 deposits to 3 accounts (offsets i*4 … i*4+3). */
function batch(i: number, partitions = [0, 1], topic = 'orders'): TestRecord[] {
  return partitions.flatMap((p) =>
    [0, 1, 2, 3].map((j) => deposit(topic, p, i * 4 + j, `acct-${p}-${(i + j) % 3}`, i * 10 + j + 1)),
  );
}

function expectedState(records: TestRecord[], partition: number, topic = 'orders') {
  return Object.fromEntries(
    foldBalances(records.filter((r) => r.partition === partition && r.topic === topic)),
  );
}

async function stateOf(s: ReturnType<typeof setup>, partition: number, topic = 'orders') {
  return (await inspectTask(s, { pipeline: PIPELINE, topic, partition })).state.account ?? {};
}

describe('savepoint create, list, delete', () => {
  it('copies every task checkpoint under the savepoint prefix; the copies survive engine and pipeline GC', async () => {
    const s = setup();
    const e = s.engine();
    const sent: TestRecord[] = [];
    for (let i = 0; i < 3; i++) {
      sent.push(...batch(i));
      await e.processEvent(mskEvent(batch(i)));
    }
    const meta = await createSavepoint(s.stores, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'before-deploy',
    });
    expect(meta).toMatchObject({
      status: 'complete',
      tasks: 2,
      topics: { orders: 2 },
      layoutSource: 'commits',
    });
    const sp = (await s.savepoints.read(PIPELINE, 'before-deploy'))!;
    expect(sp.tasks.map((t) => [t.topic, t.partition, t.status, t.committedOffset])).toEqual([
      ['orders', 0, 'committed', 12n],
      ['orders', 1, 'committed', 12n],
    ]);
    const spObjects = [...s.snapshots.objects.keys()].filter((k) =>
      k.startsWith(savepointPrefix(PREFIX, PIPELINE, 'before-deploy')),
    );
    expect(spObjects.sort()).toEqual(sp.tasks.flatMap((t) => t.chain.map((r) => r.key)).sort());
    expect(meta.bytes).toBe(sp.tasks.flatMap((t) => t.chain).reduce((n, r) => n + r.bytes, 0));

    // Much more processing: every checkpoint the savepoint copied leaves the retention window.
    for (let i = 3; i < 9; i++) await e.processEvent(mskEvent(batch(i)));
    const gc = await collectGarbage(s, { prefix: PREFIX, pipeline: PIPELINE, minAgeMs: 0 });
    const sourceKeys = (await s.commits.read({ pipeline: PIPELINE, topic: 'orders', partition: 0 }))!.chain;
    expect(sourceKeys.length).toBeGreaterThan(0);
    for (const key of spObjects) expect(s.snapshots.objects.has(key)).toBe(true);
    expect(gc.deleted.some((k) => k.includes('/savepoints/'))).toBe(false);
    // and they still load, with the state of the moment the savepoint was taken
    const kafka = new FakeKafka().addTopic('orders', 2);
    await restoreSavepoint(s.stores, kafka, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'before-deploy',
      group: PIPELINE,
    });
    expect(await stateOf(s, 1)).toEqual(expectedState(sent, 1));

    expect((await listSavepoints(s.savepoints, PIPELINE)).map((m) => m.name)).toEqual(['before-deploy']);
    const del = await deleteSavepoint(s.stores, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'before-deploy',
    });
    expect(del.objects).toBe(spObjects.length);
    for (const key of spObjects) expect(s.snapshots.objects.has(key)).toBe(false);
    expect(await listSavepoints(s.savepoints, PIPELINE)).toEqual([]);
    await expect(
      deleteSavepoint(s.stores, { prefix: PREFIX, pipeline: PIPELINE, name: 'before-deploy' }),
    ).rejects.toThrow(/no savepoint before-deploy/);
  });

  it('writes the inline links of a checkpoint (carried in the commit item) as objects of its own', async () => {
    const s = setup({ retained: 2 });
    const e = s.engine();
    const sent: TestRecord[] = [];
    for (let i = 0; i < 2; i++) {
      sent.push(...batch(i));
      await e.processEvent(mskEvent(batch(i)));
    }
    const task = { pipeline: PIPELINE, topic: 'orders', partition: 0 };
    const source = (await s.commits.read(task))!;
    expect(source.chain.map((r) => r.inline !== undefined)).toEqual([true, true]);
    await createSavepoint(s.stores, { prefix: PREFIX, pipeline: PIPELINE, name: 'inline' });
    const entry = (await s.savepoints.read(PIPELINE, 'inline'))!.tasks.find((t) => t.partition === 0)!;
    expect(entry.chain.map((r) => r.inline)).toEqual([undefined, undefined]);
    for (const [i, r] of entry.chain.entries()) {
      expect(Buffer.from(s.snapshots.objects.get(r.key)!.body)).toEqual(
        Buffer.from(source.chain[i]!.inline!),
      );
      expect(r.key.startsWith(savepointPrefix(PREFIX, PIPELINE, 'inline'))).toBe(true);
    }
    // The commit item lets go of those links (they leave the retention window) …
    for (let i = 2; i < 8; i++) await e.processEvent(mskEvent(batch(i)));
    const now = (await s.commits.read(task))!;
    const held = new Set([now, ...now.history].flatMap((c) => c.chain.map((r) => r.key)));
    expect(source.chain.some((r) => held.has(r.key))).toBe(false);
    // … and the savepoint still restores the state of its moment.
    await restoreSavepoint(s.stores, new FakeKafka().addTopic('orders', 2), {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'inline',
      group: PIPELINE,
    });
    expect(await stateOf(s, 0)).toEqual(expectedState(sent, 0));
    expect(await stateOf(s, 1)).toEqual(expectedState(sent, 1));
  });

  it('refuses a taken name, an invalid name and a pipeline without checkpoints', async () => {
    const s = setup();
    await s.engine().processEvent(mskEvent(batch(0)));
    const opts = { prefix: PREFIX, pipeline: PIPELINE, name: 'sp1' };
    await createSavepoint(s.stores, opts);
    await expect(createSavepoint(s.stores, opts)).rejects.toThrow(/savepoint sp1 already exists/);
    await expect(createSavepoint(s.stores, { ...opts, name: 'a/b' })).rejects.toBeInstanceOf(OperationError);
    await expect(createSavepoint(s.stores, { ...opts, pipeline: 'empty', name: 'x' })).rejects.toThrow(
      /has no checkpoint/,
    );
  });

  it('records partitions that never committed as not started when the layout comes from Kafka', async () => {
    const s = setup();
    await s.engine().processEvent(mskEvent(batch(0, [0, 2])));
    const meta = await createSavepoint(s.stores, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'sp',
      layout: { orders: 4 },
    });
    expect(meta).toMatchObject({ layoutSource: 'kafka', topics: { orders: 4 }, tasks: 4 });
    const sp = (await s.savepoints.read(PIPELINE, 'sp'))!;
    expect(sp.tasks.map((t) => `${t.partition}:${t.status}`)).toEqual([
      '0:committed',
      '1:not-started',
      '2:committed',
      '3:not-started',
    ]);
    await expect(
      createSavepoint(s.stores, { prefix: PREFIX, pipeline: PIPELINE, name: 'sp2', layout: { orders: 2 } }),
    ).rejects.toThrow(/recreated/);
    expect(await s.savepoints.read(PIPELINE, 'sp2')).toBeUndefined();
  });

  it('starts a task capture again from the newer commit when the engine deleted the source objects meanwhile', async () => {
    const s = setup({ retained: 1, inline: false });
    const e = s.engine();
    await e.processEvent(mskEvent(batch(0)));
    const stale: CommitRecord[] = [];
    for await (const c of s.commits.list(PIPELINE)) stale.push(c);
    // Two more epochs: with one retained checkpoint, the stale chains' objects are gone.
    await e.processEvent(mskEvent(batch(1)));
    await e.processEvent(mskEvent(batch(2)));
    const staleKeys = stale.flatMap((c) => c.chain.map((r) => r.key));
    expect(staleKeys.some((k) => s.snapshots.objects.has(k))).toBe(false);
    const commits = {
      ...s.commits,
      kind: s.commits.kind,
      read: s.commits.read.bind(s.commits),
      commit: s.commits.commit.bind(s.commits),
      probe: s.commits.probe.bind(s.commits),
      async *list() {
        yield* stale;
      },
    };
    await createSavepoint({ ...s.stores, commits }, { prefix: PREFIX, pipeline: PIPELINE, name: 'sp' });
    const sp = (await s.savepoints.read(PIPELINE, 'sp'))!;
    expect(sp.tasks.map((t) => t.committedOffset)).toEqual([12n, 12n]);
  });

  it('removes what it wrote when a task cannot be captured', async () => {
    const s = setup({ inline: false });
    await s.engine().processEvent(mskEvent(batch(0)));
    const c = (await s.commits.read({ pipeline: PIPELINE, topic: 'orders', partition: 1 }))!;
    s.snapshots.objects.delete(c.chain[0]!.key);
    await expect(
      createSavepoint(s.stores, { prefix: PREFIX, pipeline: PIPELINE, name: 'broken' }),
    ).rejects.toThrow(/does not exist/);
    expect(await s.savepoints.read(PIPELINE, 'broken')).toBeUndefined();
    expect([...s.snapshots.objects.keys()].some((k) => k.includes('/savepoints/'))).toBe(false);
  });
});

describe('savepoint restore (fake Kafka and Lambda API)', () => {
  async function scenario() {
    const s = setup();
    const warm = s.engine();
    const sent: TestRecord[] = [];
    for (let i = 0; i < 3; i++) {
      sent.push(...batch(i));
      await warm.processEvent(mskEvent(batch(i)));
    }
    await createSavepoint(s.stores, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'sp',
      layout: { orders: 3 },
    });
    // "The bad deploy": more batches whose effects we want to undo by replaying them.
    for (let i = 3; i < 6; i++) await warm.processEvent(mskEvent(batch(i, [0, 1, 2])));
    const kafka = new FakeKafka().addTopic('orders', 3, 24n);
    return { s, warm, sent, kafka };
  }

  it('rewinds the group and the tasks; a warm container then re-consumes to the state of a never-interrupted run', async () => {
    const { s, warm, sent, kafka } = await scenario();
    const r = await restoreSavepoint(s.stores, kafka, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'sp',
      group: PIPELINE,
    });
    expect(r.tasks.map((t) => [t.partition, t.action, t.offset, t.currentEpoch, t.newEpoch])).toEqual([
      [0, 'restore', '12', 6, 7],
      [1, 'restore', '12', 6, 7],
      [2, 'reset', '0', 3, 4],
    ]);
    expect([...kafka.offsets.get(PIPELINE)!]).toEqual([
      ['orders:0', 12n],
      ['orders:1', 12n],
      ['orders:2', 0n],
    ]);
    expect(await stateOf(s, 0)).toEqual(expectedState(sent, 0));
    expect(await stateOf(s, 2)).toEqual({});
    // The pre-restore checkpoint stays retained (a restore can be rolled back).
    const c0 = (await s.commits.read({ pipeline: PIPELINE, topic: 'orders', partition: 0 }))!;
    expect(c0.history[0]).toMatchObject({ epoch: 6, committedOffset: 24n });
    // Re-consume from the group's offsets with the warm engine (its cache holds offset 24).
    const replay = [3, 4, 5].flatMap((i) => batch(i, [0, 1, 2]));
    const all = [...sent, ...replay];
    await warm.processEvent(
      mskEvent(replay.filter((x) => BigInt(x.offset) >= (x.partition === 2 ? 0n : 12n))),
    );
    for (const p of [0, 1, 2]) expect(await stateOf(s, p)).toEqual(expectedState(all, p));
  });

  it('refuses while the group has active members, and changes nothing', async () => {
    const { s, kafka } = await scenario();
    kafka.members = [{ memberId: 'm-1', clientId: 'esm-poller', clientHost: '/10.0.0.7' }];
    const before = await s.commits.read({ pipeline: PIPELINE, topic: 'orders', partition: 0 });
    await expect(
      restoreSavepoint(s.stores, kafka, { prefix: PREFIX, pipeline: PIPELINE, name: 'sp', group: PIPELINE }),
    ).rejects.toThrow(/active members: m-1 \(client esm-poller, host \/10.0.0.7\).*--function/);
    expect(await s.commits.read({ pipeline: PIPELINE, topic: 'orders', partition: 0 })).toEqual(before);
    expect(kafka.calls.filter((c) => c.startsWith('set-offsets'))).toEqual([]);
  });

  it('refuses another topic, a changed partition layout, lost records, a missing or incomplete savepoint', async () => {
    const { s, kafka, warm } = await scenario();
    const opts = { prefix: PREFIX, pipeline: PIPELINE, name: 'sp', group: PIPELINE };
    kafka.addTopic('orders', 4, 24n);
    await expect(restoreSavepoint(s.stores, kafka, opts)).rejects.toThrow(
      /orders has 4 partitions now; savepoint sp was taken with 3/,
    );
    kafka.addTopic('orders', 3, 24n, 13n);
    await expect(restoreSavepoint(s.stores, kafka, opts)).rejects.toThrow(/deleted by retention/);
    kafka.addTopic('orders', 3, 24n);
    await expect(restoreSavepoint(s.stores, kafka, { ...opts, name: 'nope' })).rejects.toThrow(
      /no savepoint nope in pipeline balances/,
    );
    await warm.processEvent(mskEvent([deposit('payments', 0, 0, 'x', 1)]));
    kafka.addTopic('payments', 1, 1n);
    await expect(restoreSavepoint(s.stores, kafka, opts)).rejects.toThrow(
      /tasks of topic payments, which savepoint sp does not cover/,
    );
    await s.savepoints.create({
      pipeline: PIPELINE,
      name: 'half',
      status: 'creating',
      createdAt: new Date().toISOString(),
      completedAt: null,
      topics: { orders: 3 },
      layoutSource: 'kafka',
      tasks: 0,
      bytes: 0,
    });
    await expect(restoreSavepoint(s.stores, kafka, { ...opts, name: 'half' })).rejects.toThrow(/incomplete/);
    expect(kafka.calls.filter((c) => c.startsWith('set-offsets'))).toEqual([]);
  });

  it('refuses a savepoint whose objects are not this pipeline’s, before changing anything', async () => {
    const { s, kafka } = await scenario();
    const sp = (await s.savepoints.read(PIPELINE, 'sp'))!;
    // The same savepoint registered under another pipeline id: its objects carry 'balances'.
    await s.savepoints.create({ ...sp.meta, pipeline: 'other' });
    for (const t of sp.tasks) await s.savepoints.putTask({ ...t, pipeline: 'other' });
    await expect(
      restoreSavepoint(s.stores, kafka, { prefix: PREFIX, pipeline: 'other', name: 'sp', group: 'other' }),
    ).rejects.toThrow(/pipeline is balances, the commit item says other/);
    expect(kafka.calls.filter((c) => c.startsWith('set-offsets'))).toEqual([]);
  });

  it('installs tasks moving forward before the group moves, and tasks moving back after it', async () => {
    const s = setup();
    const e = s.engine();
    await e.processEvent(mskEvent(batch(0)));
    const opts = { prefix: PREFIX, pipeline: PIPELINE, group: PIPELINE };
    await createSavepoint(s.stores, { ...opts, name: 'early', layout: { orders: 3 } });
    for (let i = 1; i < 3; i++) await e.processEvent(mskEvent(batch(i)));
    await createSavepoint(s.stores, { ...opts, name: 'late', layout: { orders: 3 } });
    const kafka = new FakeKafka().addTopic('orders', 3, 24n);
    await restoreSavepoint(s.stores, kafka, { ...opts, name: 'early' });
    kafka.calls.length = 0;
    s.commits.beforeCommit = (next) => {
      kafka.calls.push(`commit ${next.partition}`);
    };
    // Partitions 0 and 1 move forward (4 → 12); partition 2 never started (0 → 0).
    await restoreSavepoint(s.stores, kafka, { ...opts, name: 'late' });
    const seq = kafka.calls.filter((c) => !c.startsWith('describe'));
    expect(seq).toEqual(['commit 0', 'commit 1', `set-offsets ${PIPELINE}`, 'commit 2']);
  });

  it('with --function: disables the mapping, waits for Disabled and an empty group, restores, enables it again', async () => {
    const { s, kafka } = await scenario();
    const esm = new FakeEventSources().add({
      functionName: 'balances-fn',
      uuid: 'uuid-1',
      functionArn: 'arn:aws:lambda:us-east-1:1:function:balances-fn',
      state: 'Enabled',
      topics: ['orders'],
      consumerGroupId: PIPELINE,
    });
    kafka.members = [{ memberId: 'm-1', clientId: 'poller', clientHost: '/10.0.0.7' }];
    esm.onDisabled = () => {
      kafka.members = [];
    };
    const lines: string[] = [];
    const r = await restoreSavepoint(s.stores, kafka, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'sp',
      group: PIPELINE,
      functionName: 'balances-fn',
      eventSources: esm,
      pollIntervalMs: 1,
      log: (l) => lines.push(l),
    });
    expect(esm.calls).toEqual(['disable uuid-1', 'enable uuid-1']);
    expect(esm.mappings.get('uuid-1')!.state).toBe('Enabled');
    expect(r.mapping).toEqual({ uuid: 'uuid-1', reEnabled: true });
    expect(lines.join('\n')).toMatch(/disabling.*\n[\s\S]*enabling/);
    expect(kafka.offsets.get(PIPELINE)!.get('orders:0')).toBe(12n);
  });

  it('with --function: refuses a mapping of other topics or another group; a failed install leaves the mapping disabled', async () => {
    const { s, kafka } = await scenario();
    const esm = new FakeEventSources().add({
      functionName: 'fn',
      uuid: 'u',
      functionArn: 'arn',
      state: 'Enabled',
      topics: ['payments'],
      consumerGroupId: PIPELINE,
    });
    const opts = {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'sp',
      group: PIPELINE,
      functionName: 'fn',
      eventSources: esm,
      pollIntervalMs: 1,
    };
    await expect(restoreSavepoint(s.stores, kafka, opts)).rejects.toThrow(/consumes topic\(s\) payments/);
    await expect(restoreSavepoint(s.stores, kafka, { ...opts, group: 'g2' })).rejects.toThrow(
      /no Kafka event source mapping with consumer group g2.*group balances/,
    );
    esm.mappings.get('u')!.topics = ['orders'];
    s.commits.beforeCommit = (next) => {
      if (next.partition === 2) throw new Error('DynamoDB is down');
    };
    await expect(restoreSavepoint(s.stores, kafka, opts)).rejects.toThrow(
      /stopped while installing.*DynamoDB is down.*mapping u stays disabled.*run the same restore again/,
    );
    expect(esm.mappings.get('u')!.state).toBe('Disabled');
    // Running it again finishes the job.
    s.commits.beforeCommit = undefined;
    await restoreSavepoint(s.stores, kafka, opts);
    expect(esm.mappings.get('u')!.state).toBe('Disabled'); // it was not enabled by this run
  });

  it('restores into a table that lost the commit items (epoch 1, conditioned on no item)', async () => {
    const { s, sent, kafka } = await scenario();
    (s.commits.inner as MemoryCommitStore).items.clear();
    const r = await restoreSavepoint(s.stores, kafka, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'sp',
      group: PIPELINE,
    });
    expect(r.tasks.map((t) => [t.currentEpoch, t.newEpoch])).toEqual([
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
    const c0 = (await s.commits.read({ pipeline: PIPELINE, topic: 'orders', partition: 0 }))!;
    expect(c0).toMatchObject({ epoch: 1, committedOffset: 12n, history: [] });
    expect(
      c0.chain.every((ref) => ref.key.includes('/tasks/orders/0/') && /-sp[0-9a-f]+\./.test(ref.key)),
    ).toBe(true);
    // A cold engine carries on from the restored state.
    const replay = [3, 4, 5].flatMap((i) => batch(i, [0]));
    await s.engine().processEvent(mskEvent(replay));
    expect(await stateOf(s, 0)).toEqual(expectedState([...sent, ...replay], 0));
  });

  it('dry run checks everything and changes nothing', async () => {
    const { s, kafka } = await scenario();
    const before = await s.commits.read({ pipeline: PIPELINE, topic: 'orders', partition: 0 });
    const r = await restoreSavepoint(s.stores, kafka, {
      prefix: PREFIX,
      pipeline: PIPELINE,
      name: 'sp',
      group: PIPELINE,
      dryRun: true,
    });
    expect(r.dryRun).toBe(true);
    expect(r.tasks.map((t) => t.offset)).toEqual(['12', '12', '0']);
    expect(await s.commits.read({ pipeline: PIPELINE, topic: 'orders', partition: 0 })).toEqual(before);
    expect(kafka.offsets.size).toBe(0);
  });
});
