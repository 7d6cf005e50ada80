// Lambda entry point of the balances example with outputs (examples/balancesWithOutputs.ts): each
// applied record's running total to the Kafka topic `balance-updates` and to a DynamoDB table.
// Settings: TIDEMARK_BUCKET, TIDEMARK_TABLE, TIDEMARK_PIPELINE (default "balances"),
// TIDEMARK_KAFKA_OUTPUT_*, TIDEMARK_DYNAMODB_OUTPUT_TABLE; see docs/configuration.md.

import { balancesWithOutputs } from '../examples/balancesWithOutputs.ts';
import { createKafkaHandler } from '../lib/handler/createKafkaHandler.ts';

export const handler = createKafkaHandler(balancesWithOutputs);
