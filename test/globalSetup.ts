import type { TestProject } from 'vitest/node';
import { type LocalStack, startLocalStack } from '../harness/localStack.ts';
import { type DatabaseServers, startDatabaseServers } from '../harness/servers/databases.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    localEnv: Record<string, string>;
  }
}

let stack: LocalStack | undefined;
let databases: DatabaseServers | undefined;

/**
 * Starts DynamoDB Local, the S3 server, PostgreSQL, MariaDB and Redis once for the whole run (always
 * stopped afterwards; each dies with the run even if it is killed).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [s, d] = await Promise.allSettled([
    startLocalStack({ bucket: 'tidemark-test', table: 'tidemark-test' }),
    startDatabaseServers(),
  ]);
  if (s.status === 'fulfilled') stack = s.value;
  if (d.status === 'fulfilled') databases = d.value;
  if (s.status === 'rejected' || d.status === 'rejected') {
    await Promise.allSettled([stack?.stop(), databases?.stop()]);
    throw s.status === 'rejected' ? s.reason : (d as PromiseRejectedResult).reason;
  }
  project.provide('localEnv', { ...stack!.env, ...databases!.env });
  return async () => {
    await Promise.allSettled([stack?.stop(), databases?.stop()]);
  };
}
