/**
 * Pointing a pipeline's commit store at an existing database (docs/stores.md): PostgreSQL or
 * MySQL/MariaDB (RDS, Aurora, through RDS Proxy or not) or Redis (MemoryDB, ElastiCache). The
 * construct puts the function in the database's VPC, wires the `TIDEMARK_COMMIT_STORE` and
 * `TIDEMARK_DB_*` settings, bundles that store's driver only, and grants exactly what connecting
 * needs: reading the credentials secret, or `rds-db:connect` as one database user.
 */
import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import type { ISecurityGroup, IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import { ManagedPolicy, PolicyStatement, type Role } from 'aws-cdk-lib/aws-iam';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { IConstruct } from 'constructs';
import { ENV, type RedisDurability } from '../lib/config/env.ts';

/** Where the function finds the CA bundle of RDS certificates on Lambda's Node.js runtimes. */
export const LAMBDA_RDS_CA_BUNDLE = '/var/runtime/ca-cert.pem';

/**
 * The esbuild `define` that keeps the other stores' drivers out of the bundle (read by
 * lib/store/stores.ts).
 */
export const BUNDLED_COMMIT_STORE_DEFINE = 'process.env.TIDEMARK_BUNDLED_COMMIT_STORE';

export interface TidemarkCommitDatabase {
  /** `postgres` (PostgreSQL, Aurora PostgreSQL), `mysql` (MySQL, MariaDB, Aurora MySQL) or `redis`. */
  readonly engine: 'postgres' | 'mysql' | 'redis';
  /**
   * Connection URL without a password: `postgres://tidemark@proxy.example:5432/app`,
   * `mysql://tidemark@db.example:3306/app`, `rediss://cluster.example:6379`.
   * @default - host, port and database from `secret`
   */
  readonly url?: string;
  /**
   * Secret holding the credentials (RDS JSON form: `username`, `password`, and `host`, `port`,
   * `dbname` for what the URL lacks); the function may read it (and decrypt it with its key).
   * @default - none (`iamAuth`, or a server without a password)
   */
  readonly secret?: ISecret;
  /**
   * RDS IAM authentication (PostgreSQL and MySQL on RDS, Aurora or RDS Proxy): the function gets
   * `rds-db:connect` as `user` on the instance, cluster or proxy whose resource id this is
   * (`db-…`, `cluster-…`, `prx-…`). The URL must name the same user.
   * @default - none
   */
  readonly iamAuth?: { readonly resourceId: string; readonly user: string };
  /** The VPC of the database. */
  readonly vpc: IVpc;
  /**
   * Subnets the function's network interfaces go in (they need a route to S3 and, with a secret,
   * Secrets Manager: VPC endpoints or a NAT).
   * @default - the VPC's private subnets with egress
   */
  readonly vpcSubnets?: SubnetSelection;
  /** Security groups of the function; the database's must allow them in. */
  readonly securityGroups: ISecurityGroup[];
  /**
   * `TIDEMARK_DB_TLS`: `require`, `no-verify` or `off`.
   * @default 'require'
   */
  readonly tls?: 'require' | 'no-verify' | 'off';
  /**
   * `TIDEMARK_DB_PREFIX`: prefix of the tables (or Redis keys).
   * @default 'tidemark'
   */
  readonly prefix?: string;
  /** Redis only, and required there: what its durability is (`TIDEMARK_REDIS_DURABILITY`, docs/stores.md). */
  readonly redisDurability?: RedisDurability;
  /**
   * Redis only: the cluster protocol (MemoryDB, ElastiCache cluster mode).
   * @default false
   */
  readonly redisCluster?: boolean;
}

/** Environment variables the construct sets when a database is the commit store. */
export const DATABASE_ENV = [
  ENV.commitStore,
  ENV.dbUrl,
  ENV.dbSecret,
  ENV.dbIamAuth,
  ENV.dbTls,
  ENV.dbPrefix,
  ENV.redisDurability,
  ENV.redisCluster,
] as const;

export function checkCommitDatabase(db: TidemarkCommitDatabase): void {
  if (!db.url && !db.secret) throw new Error('commitDatabase needs a url, or a secret naming the host');
  if (db.engine === 'redis' && !db.redisDurability) {
    throw new Error(
      'commitDatabase on Redis needs redisDurability (memorydb, elasticache-sync or accept-loss): see docs/stores.md',
    );
  }
  if (db.engine !== 'redis' && (db.redisDurability || db.redisCluster)) {
    throw new Error('redisDurability and redisCluster apply to the redis engine only');
  }
  if (db.iamAuth && db.engine === 'redis')
    throw new Error('iamAuth is for PostgreSQL and MySQL (RDS, Aurora, RDS Proxy)');
  if (db.iamAuth && db.tls === 'off') throw new Error('iamAuth needs TLS');
  if (db.securityGroups.length === 0) throw new Error('commitDatabase needs at least one security group');
  if (db.prefix !== undefined && !/^[a-z][a-z0-9_]{0,39}$/.test(db.prefix)) {
    throw new Error(
      `commitDatabase.prefix must match [a-z][a-z0-9_]{0,39}, got ${JSON.stringify(db.prefix)}`,
    );
  }
}

/** The function's settings for the database. */
export function commitDatabaseEnvironment(db: TidemarkCommitDatabase): Record<string, string> {
  return {
    [ENV.commitStore]: db.engine,
    ...(db.url ? { [ENV.dbUrl]: db.url } : {}),
    ...(db.secret ? { [ENV.dbSecret]: db.secret.secretArn } : {}),
    ...(db.iamAuth ? { [ENV.dbIamAuth]: 'true' } : {}),
    ...(db.tls ? { [ENV.dbTls]: db.tls } : {}),
    ...(db.prefix ? { [ENV.dbPrefix]: db.prefix } : {}),
    ...(db.redisDurability ? { [ENV.redisDurability]: db.redisDurability } : {}),
    ...(db.redisCluster ? { [ENV.redisCluster]: 'true' } : {}),
  };
}

/** Reading the secret, or connecting as the IAM user: nothing else. */
export function grantCommitDatabase(role: Role, db: TidemarkCommitDatabase): void {
  const stack = Stack.of(role);
  // The function's network interfaces in the VPC (CDK adds this policy only to roles it creates).
  role.addManagedPolicy(
    ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'),
  );
  db.secret?.grantRead(role);
  // A secret under a customer-managed key: decrypting it, only through Secrets Manager.
  if (db.secret?.encryptionKey) {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'CommitDatabaseSecretKey',
        actions: ['kms:Decrypt'],
        resources: [db.secret.encryptionKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.amazonaws.com` } },
      }),
    );
  }
  if (db.iamAuth) {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'CommitDatabaseConnect',
        actions: ['rds-db:connect'],
        resources: [
          stack.formatArn({
            service: 'rds-db',
            resource: 'dbuser',
            resourceName: `${db.iamAuth.resourceId}/${db.iamAuth.user}`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
  }
}

/** Lambda's managed VPC access policy (network interfaces), which the function needs in a VPC. */
export function acknowledgeVpcAccessPolicy(scope: IConstruct): void {
  Validations.of(scope).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
    reason:
      'A function in a VPC needs to create, describe and delete its network interfaces; the AWS managed AWSLambdaVPCAccessExecutionRole is the standard, minimal grant for that and touches no data.',
  });
}
