// Lambda entry point of the balances example (Amazon MSK or self-managed Kafka ESM).
// Settings: TIDEMARK_BUCKET, TIDEMARK_TABLE, TIDEMARK_PIPELINE (default "balances"); see docs/configuration.md.

import { balances } from '../examples/balances.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';

export const handler = createKafkaHandler(balances);
