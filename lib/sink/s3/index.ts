/**
 * The S3 output sink (`tidemark/s3`): JSON lines objects at deterministic keys and a per-epoch
 * manifest, exactly once per committed epoch; and the reader that follows the manifests. See
 * docs/outputs.md#s3.
 */
export {
  dataKey,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  manifestKey,
  manifestPrefix,
  outputRoot,
  type S3OutputLocation,
  type S3OutputManifest,
  type S3OutputObject,
} from './layout.ts';
export {
  listS3OutputManifests,
  type ReadS3OutputsOptions,
  readS3Outputs,
  type S3OutputRecord,
} from './reader.ts';
export {
  type ResolvedS3OutputOptions,
  S3_OUTPUT_DEFAULTS,
  type S3OutputOptions,
  s3Output,
} from './s3Output.ts';
