// The Lambda entry point: an Amazon MSK or self-managed Kafka event source mapping invokes it.
// Settings (bucket, table, pipeline) come from the environment the CDK construct sets.
import { createKafkaHandler } from 'tidemark';
import { processor } from './processor.ts';

export const handler = createKafkaHandler(processor);
