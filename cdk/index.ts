// `tidemark/cdk`: the constructs that deploy a Tidemark pipeline (aws-cdk-lib and constructs are
// peer dependencies of this entry point).
export type { TidemarkCommitDatabase } from './commitDatabase.ts';
export type { KafkaSource, KafkaVpcAccess, MskSource, SelfManagedKafkaSource } from './kafkaSource.ts';
export { TidemarkIceberg, type TidemarkIcebergProps } from './tidemarkIceberg.ts';
export {
  type TidemarkAlarms,
  type TidemarkAlarmThresholds,
  TidemarkMonitoring,
  type TidemarkMonitoringProps,
  tidemarkMetric,
} from './tidemarkMonitoring.ts';
export type {
  KafkaOutputAuthentication,
  TidemarkDynamoOutputs,
  TidemarkFunctionVpc,
  TidemarkKafkaOutputs,
  TidemarkOutputs,
  TidemarkS3Outputs,
} from './tidemarkOutputs.ts';
export { TidemarkPipeline, type TidemarkPipelineProps } from './tidemarkPipeline.ts';
export { TidemarkStorage, type TidemarkStorageProps } from './tidemarkStorage.ts';
export { TidemarkTicks, type TidemarkTicksProps } from './tidemarkTicks.ts';
