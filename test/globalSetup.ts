import type { TestProject } from 'vitest/node';
import { type LocalStack, startLocalStack } from '../harness/localStack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    localEnv: Record<string, string>;
  }
}

let stack: LocalStack | undefined;

/** Starts DynamoDB Local and the S3 server once for the whole run (always stopped afterwards). */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  stack = await startLocalStack({ bucket: 'tidemark-test', table: 'tidemark-test' });
  project.provide('localEnv', stack.env);
  return async () => {
    await stack?.stop();
  };
}
