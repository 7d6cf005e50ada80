/**
 * `tidemark/kafka`: outputs delivered to Kafka exactly once (docs/outputs.md#kafka). Importing this
 * entry point does not load kafkajs; the sink loads it when it first delivers.
 */
export {
  KAFKA_OUTPUT_DEFAULTS,
  KAFKA_SASL_MECHANISMS,
  type KafkaClusterOptions,
  type KafkaOutputEntry,
  type KafkaOutputHeaders,
  type KafkaOutputOptions,
  type KafkaSaslMechanism,
  kafkaOutput,
  OUTPUT_ID_HEADER,
  type ResolvedKafkaCluster,
  type ResolvedKafkaOutputOptions,
} from './kafkaOutput.ts';
export { type MarkerSlot, markerSlotOf, transactionalIdOf } from './marker.ts';
