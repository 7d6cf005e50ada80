import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { EpochEngine } from '../../lib/checkpoint/epochEngine.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { pipelineStatus } from '../../lib/ops/status.ts';
import { MemoryCommitStore, MemorySnapshotStore } from '../../lib/store/memory/memoryStores.ts';
import { FakeKafka } from './fakes.ts';

async function setup() {
  const snapshots = new MemorySnapshotStore();
  const commits = new MemoryCommitStore();
  const config = loadConfig(
    {},
    { bucket: 'b', table: 't', pipeline: 'balances', poisonPolicy: 'quarantine' },
  );
  const engine = new EpochEngine({ processor: balances, config, snapshots, commits });
  await engine.processEvent(
    mskEvent([
      deposit('orders', 1, 10, 'a', 1),
      deposit('orders', 1, 11, null, 1), // quarantined: no key
      deposit('orders', 0, 3, 'b', 2),
    ]),
  );
  await engine.processEvent(mskEvent([deposit('orders', 0, 4, 'b', 2)]));
  return { snapshots, commits };
}

describe('pipelineStatus', () => {
  it('lists every task with its epoch, offset, snapshot size, last commit and quarantined count', async () => {
    const s = await setup();
    const st = await pipelineStatus(s, { pipeline: 'balances' });
    expect(st.group).toBeUndefined();
    const c0 = (await s.commits.read({ pipeline: 'balances', topic: 'orders', partition: 0 }))!;
    expect(st.tasks).toEqual([
      {
        topic: 'orders',
        partition: 0,
        epoch: 2,
        committedOffset: '5',
        snapshotBytes: c0.chain.reduce((n, r) => n + r.bytes, 0),
        chainLength: c0.chain.length,
        updatedAt: c0.updatedAt,
        applied: 2,
        quarantined: 0,
      },
      expect.objectContaining({ partition: 1, epoch: 1, committedOffset: '12', quarantined: 1, applied: 1 }),
    ]);
    expect(st.tasks[0]!.snapshotBytes).toBeGreaterThan(0);
  });

  it('adds the group offsets, the log bounds and the lag when given Kafka, including partitions never committed', async () => {
    const s = await setup();
    const kafka = new FakeKafka().addTopic('orders', 3, 20n, 2n);
    await kafka.setGroupOffsets('balances', [{ topic: 'orders', partition: 0, offset: 5n }]);
    kafka.members = [{ memberId: 'm', clientId: 'c', clientHost: '/h' }];
    const st = await pipelineStatus(s, { pipeline: 'balances', kafka });
    expect(st.group).toEqual({ id: 'balances', state: 'Stable', members: kafka.members });
    expect(st.tasks.map((t) => [t.partition, t.epoch, t.kafka])).toEqual([
      [0, 2, { groupOffset: '5', earliest: '2', end: '20', lag: '15' }],
      [1, 1, { groupOffset: null, earliest: '2', end: '20', lag: '18' }],
      [2, 0, { groupOffset: null, earliest: '2', end: '20', lag: '18' }],
    ]);
  });
});
