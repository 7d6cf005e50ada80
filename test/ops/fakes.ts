import type { EventSourceControl, EventSourceMappingInfo } from '../../lib/ops/eventSources.ts';
import type {
  GroupMember,
  GroupOffset,
  KafkaOps,
  PartitionOffsets,
  TopicPartitionOffset,
} from '../../lib/ops/kafka.ts';

/** An in-memory Kafka cluster as the operator commands see it, recording what they did. */
export class FakeKafka implements KafkaOps {
  readonly topics = new Map<string, PartitionOffsets[]>();
  readonly offsets = new Map<string, Map<string, bigint>>();
  members: GroupMember[] = [];
  readonly calls: string[] = [];

  addTopic(topic: string, partitions: number, high = 1_000n, low = 0n): this {
    this.topics.set(
      topic,
      Array.from({ length: partitions }, (_, partition) => ({ partition, low, high })),
    );
    return this;
  }

  async describeGroup(groupId: string) {
    this.calls.push(`describe ${groupId}`);
    return {
      state: this.members.length > 0 ? 'Stable' : this.offsets.has(groupId) ? 'Empty' : 'Dead',
      members: this.members,
    };
  }
  async partitions(topic: string) {
    const t = this.topics.get(topic);
    if (!t) throw new Error(`topic ${topic} does not exist`);
    return t.map((p) => p.partition);
  }
  async topicOffsets(topic: string) {
    return this.topics.get(topic) ?? [];
  }
  async groupOffsets(groupId: string, topics: readonly string[]): Promise<GroupOffset[]> {
    const out: GroupOffset[] = [];
    for (const topic of topics) {
      for (const p of this.topics.get(topic) ?? []) {
        out.push({
          topic,
          partition: p.partition,
          offset: this.offsets.get(groupId)?.get(`${topic}:${p.partition}`) ?? null,
        });
      }
    }
    return out;
  }
  async setGroupOffsets(groupId: string, offsets: readonly TopicPartitionOffset[]) {
    if (this.members.length > 0) throw new Error('group is not empty');
    this.calls.push(`set-offsets ${groupId}`);
    const g = this.offsets.get(groupId) ?? new Map();
    for (const o of offsets) g.set(`${o.topic}:${o.partition}`, o.offset);
    this.offsets.set(groupId, g);
  }
  async close() {}
}

/** A Lambda API stand-in: mappings change state one poll after an update, like the real one does later. */
export class FakeEventSources implements EventSourceControl {
  readonly mappings = new Map<string, EventSourceMappingInfo & { functionName: string }>();
  readonly calls: string[] = [];
  /** Called on every disable: e.g. the pollers leave the group. */
  onDisabled?: () => void;

  add(m: EventSourceMappingInfo & { functionName: string }): this {
    this.mappings.set(m.uuid, m);
    return this;
  }
  async list(functionName: string) {
    return [...this.mappings.values()].filter((m) => m.functionName === functionName);
  }
  async get(uuid: string) {
    const m = this.mappings.get(uuid);
    if (!m) throw new Error(`no mapping ${uuid}`);
    const snapshot = { ...m };
    if (m.state === 'Disabling') {
      m.state = 'Disabled';
      this.onDisabled?.();
    }
    if (m.state === 'Enabling') m.state = 'Enabled';
    return snapshot;
  }
  async setEnabled(uuid: string, enabled: boolean) {
    this.calls.push(`${enabled ? 'enable' : 'disable'} ${uuid}`);
    const m = this.mappings.get(uuid)!;
    m.state = enabled ? 'Enabling' : 'Disabling';
  }
}
