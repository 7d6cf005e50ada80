// Lambda entry point of the windowed example: per-account spend per minute (examples/spend.ts),
// from the Kafka ESM and from the scheduled ticks (docs/time.md#idle-partitions).
// Settings: TIDEMARK_BUCKET, TIDEMARK_TABLE, TIDEMARK_PIPELINE (default "spend"), TIDEMARK_KAFKA_OUTPUT_*; see docs/configuration.md.

import { spend } from '../examples/spend.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';

export const handler = createKafkaHandler(spend);
