import { describe, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { spend } from '../../examples/spend.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { pipelineStatus } from '../../lib/ops/status.ts';
import { TestDriver } from '../../lib/testing/index.ts';

const deposit = (account: string, amount: number, timestamp: number) => ({
  partition: 0,
  key: account,
  value: JSON.stringify({ amount }),
  timestamp,
});

describe('inspectTask and pipelineStatus: time and outputs', () => {
  it("show a task's watermark and its epoch's outbox", async () => {
    const d = new TestDriver(spend, { topic: 'deposits' });
    await d.send([deposit('a', 5, 1_000), deposit('a', 3, 59_999), deposit('b', 1, 70_000)]);
    const task = { pipeline: d.pipeline, topic: 'deposits', partition: 0 };
    const r = await inspectTask({ snapshots: d.snapshots, commits: d.commits }, task);
    // The largest timestamp seen minus 1 ms (examples/spend.ts).
    expect(r.time.watermark).toBe(new Date(69_999).toISOString());
    const commit = (await d.commits.read(task))!;
    // The window [0, 60 s) closed in this epoch: its result went out with the epoch.
    expect(d.outputs('windows')).toHaveLength(1);
    expect(r.outbox).toEqual(
      commit.outbox ? { outputs: commit.outbox.count, settled: commit.outbox.settled === true } : null,
    );
    const st = await pipelineStatus({ commits: d.commits }, { pipeline: d.pipeline });
    expect(st.tasks[0]?.time?.watermark).toBe(new Date(69_999).toISOString());
  });

  it('say none for a processor that uses no time and emits nothing', async () => {
    const d = new TestDriver(balances, { topic: 'orders' });
    await d.send([{ partition: 0, key: 'a', value: '{"amount":1}' }]);
    const r = await inspectTask(
      { snapshots: d.snapshots, commits: d.commits },
      { pipeline: d.pipeline, topic: 'orders', partition: 0 },
    );
    expect(r.time).toEqual({ watermark: null, dueAt: null });
    expect(r.outbox).toBeNull();
    const st = await pipelineStatus({ commits: d.commits }, { pipeline: d.pipeline });
    expect(st.tasks[0]?.time).toBeUndefined();
  });
});
