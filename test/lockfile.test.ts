import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';

it('package-lock.json names every optional platform package, so npm ci works on any registry', () => {
  // See scripts/lock-platforms.mjs: run it after changing dependencies if this fails.
  expect(() =>
    execFileSync(process.execPath, ['scripts/lock-platforms.mjs', '--check'], {
      stdio: 'pipe',
      encoding: 'utf8',
    }),
  ).not.toThrow();
});
