/**
 * Settings of the example app (`cdk/bin/tidemark-balances.ts`): CDK context (`-c key=value`) first,
 * then environment variables. With none given the app still synthesizes, offline, against a
 * placeholder MSK cluster ARN that points nowhere (deploying it would fail when the event source
 * mapping is created): pass a real cluster to deploy.
 */

/** A fake MSK cluster ARN (account 123456789012 is the documentation account; the uuid is zeros). */
export const PLACEHOLDER_CLUSTER_ARN =
  'arn:aws:kafka:us-east-1:123456789012:cluster/tidemark-placeholder/00000000-0000-0000-0000-000000000000-1';

/** Every setting: its context key, its environment variable, and what it means. */
export const SETTINGS = {
  stackName: { env: 'TIDEMARK_DEPLOY_STACK_NAME', help: 'stack name (default TidemarkBalances)' },
  pipelineId: {
    env: 'TIDEMARK_DEPLOY_PIPELINE_ID',
    help: 'pipeline id and consumer group (default balances)',
  },
  topic: { env: 'TIDEMARK_DEPLOY_TOPIC', help: 'topic of deposit records (default balances)' },
  mskClusterArn: { env: 'TIDEMARK_DEPLOY_MSK_CLUSTER_ARN', help: 'Amazon MSK cluster ARN' },
  bootstrapServers: {
    env: 'TIDEMARK_DEPLOY_BOOTSTRAP_SERVERS',
    help: 'self-managed Kafka brokers, comma-separated host:port (instead of mskClusterArn)',
  },
  secretArn: {
    env: 'TIDEMARK_DEPLOY_SECRET_ARN',
    help: 'complete ARN of the Secrets Manager secret with the Kafka credentials (MSK: SASL/SCRAM instead of IAM)',
  },
  secretKeyArn: {
    env: 'TIDEMARK_DEPLOY_SECRET_KEY_ARN',
    help: "ARN of the secret's customer-managed KMS key",
  },
  authentication: {
    env: 'TIDEMARK_DEPLOY_AUTHENTICATION',
    help: 'SASL_SCRAM_512_AUTH (default), SASL_SCRAM_256_AUTH, BASIC_AUTH or CLIENT_CERTIFICATE_TLS_AUTH',
  },
  subnetIds: {
    env: 'TIDEMARK_DEPLOY_SUBNET_IDS',
    help: 'self-managed brokers reachable only in a VPC: comma-separated subnets for the pollers',
  },
  securityGroupId: {
    env: 'TIDEMARK_DEPLOY_SECURITY_GROUP_ID',
    help: 'security group for the pollers (with subnetIds)',
  },
  alarmTopicArn: { env: 'TIDEMARK_DEPLOY_ALARM_TOPIC_ARN', help: 'SNS topic notified of alarms' },
  account: {
    env: 'CDK_DEFAULT_ACCOUNT',
    help: "account of the stack (default: the CLI's current account, if any)",
  },
  region: {
    env: 'CDK_DEFAULT_REGION',
    help: "region of the stack (default: the MSK cluster's region, else the CLI's current region, if any)",
  },
} as const;

export type SettingName = keyof typeof SETTINGS;

type Authentication =
  | 'SASL_SCRAM_512_AUTH'
  | 'SASL_SCRAM_256_AUTH'
  | 'BASIC_AUTH'
  | 'CLIENT_CERTIFICATE_TLS_AUTH';
const AUTHENTICATIONS: readonly Authentication[] = [
  'SASL_SCRAM_512_AUTH',
  'SASL_SCRAM_256_AUTH',
  'BASIC_AUTH',
  'CLIENT_CERTIFICATE_TLS_AUTH',
];

export interface ClusterSettings {
  readonly kind: 'msk' | 'self-managed';
  /** MSK only. */
  readonly clusterArn?: string;
  /** Self-managed only. */
  readonly bootstrapServers?: string[];
  readonly secretArn?: string;
  readonly secretKeyArn?: string;
  readonly authentication?: Authentication;
  readonly vpc?: { subnetIds: string[]; securityGroupId: string };
  /** True when no cluster was given and the placeholder ARN stands in. */
  readonly placeholder: boolean;
}

export interface BalancesSettings {
  readonly stackName: string;
  readonly pipelineId: string;
  readonly topic: string;
  readonly cluster: ClusterSettings;
  readonly alarmTopicArn?: string;
  readonly account?: string;
  readonly region?: string;
}

const list = (s: string | undefined) =>
  s
    ?.split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '') ?? [];

function regionOfArn(arn: string | undefined): string | undefined {
  const region = arn?.split(':')[3];
  return region ? region : undefined;
}

/**
 * Reads the settings. `context` looks a key up in the CDK context (values given with `-c` are
 * strings); `env` is the process environment.
 */
export function readBalancesSettings(
  context: (key: string) => unknown,
  env: Readonly<Record<string, string | undefined>> = process.env,
): BalancesSettings {
  const get = (name: SettingName): string | undefined => {
    const v = context(name);
    if (v !== undefined && v !== null && String(v).trim() !== '') return String(v).trim();
    const e = env[SETTINGS[name].env];
    return e !== undefined && e.trim() !== '' ? e.trim() : undefined;
  };
  const mskClusterArn = get('mskClusterArn');
  const bootstrapServers = list(get('bootstrapServers'));
  if (mskClusterArn && bootstrapServers.length > 0) {
    throw new Error(
      'give either mskClusterArn (Amazon MSK) or bootstrapServers (self-managed Kafka), not both',
    );
  }
  const rawAuth = get('authentication');
  if (rawAuth !== undefined && !(AUTHENTICATIONS as readonly string[]).includes(rawAuth)) {
    throw new Error(`authentication must be one of ${AUTHENTICATIONS.join(', ')}, got ${rawAuth}`);
  }
  const authentication = rawAuth as Authentication | undefined;
  const secretArn = get('secretArn');
  const secretKeyArn = get('secretKeyArn');
  let cluster: ClusterSettings;
  if (bootstrapServers.length > 0) {
    const subnetIds = list(get('subnetIds'));
    const securityGroupId = get('securityGroupId');
    const inVpc = subnetIds.length > 0 || securityGroupId !== undefined;
    if (inVpc && (subnetIds.length === 0 || !securityGroupId)) {
      throw new Error('subnetIds and securityGroupId go together');
    }
    if (!inVpc && !secretArn) {
      throw new Error(
        'self-managed Kafka reached over the internet needs secretArn (or give subnetIds and securityGroupId)',
      );
    }
    cluster = {
      kind: 'self-managed',
      bootstrapServers,
      secretArn,
      secretKeyArn,
      authentication,
      vpc: inVpc ? { subnetIds, securityGroupId: securityGroupId! } : undefined,
      placeholder: false,
    };
  } else {
    if (
      authentication !== undefined &&
      authentication !== 'SASL_SCRAM_512_AUTH' &&
      authentication !== 'CLIENT_CERTIFICATE_TLS_AUTH'
    ) {
      throw new Error(
        `Amazon MSK takes SASL_SCRAM_512_AUTH or CLIENT_CERTIFICATE_TLS_AUTH, got ${authentication}`,
      );
    }
    cluster = {
      kind: 'msk',
      clusterArn: mskClusterArn ?? PLACEHOLDER_CLUSTER_ARN,
      secretArn,
      secretKeyArn,
      authentication,
      placeholder: mskClusterArn === undefined,
    };
  }
  return {
    stackName: get('stackName') ?? 'TidemarkBalances',
    pipelineId: get('pipelineId') ?? 'balances',
    topic: get('topic') ?? 'balances',
    cluster,
    alarmTopicArn: get('alarmTopicArn'),
    account: get('account'),
    // An MSK event source mapping must live in the cluster's region.
    region:
      (String(context('region') ?? '').trim() || undefined) ?? regionOfArn(mskClusterArn) ?? get('region'),
  };
}
