/**
 * IAM authentication to Amazon MSK: a SASL/OAUTHBEARER token signed with the caller's AWS
 * credentials (the default provider chain: environment, profile, SSO, instance role…) by AWS's
 * official signer package. Lives in lib/store because it is the AWS SDK's side of Kafka access.
 */
import { generateAuthToken } from 'aws-msk-iam-sasl-signer-js';

export interface MskIamToken {
  /** The OAUTHBEARER token (base64url of a presigned `kafka-cluster:Connect` request). */
  value: string;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

export async function mskIamToken(region: string): Promise<MskIamToken> {
  const r = await generateAuthToken({ region });
  return { value: r.token, expiresAt: r.expiryTime };
}
