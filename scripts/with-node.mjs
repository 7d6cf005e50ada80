#!/usr/bin/env node
// Usage: node scripts/with-node.mjs <command> [args...]
// Runs the command with a supported Node.js first on PATH (see toolchain.mjs), forwarding
// signals and the exit code. This is what makes `npm start` and `npm test` work on a machine
// whose own Node is older than the project needs.
import { spawn } from 'node:child_process';
import { supportedEnv } from './toolchain.mjs';

const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  process.stderr.write('usage: with-node.mjs <command> [args...]\n');
  process.exit(2);
}
const child = spawn(cmd, args, { stdio: 'inherit', env: supportedEnv() });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('error', (err) => {
  process.stderr.write(`with-node: cannot run ${cmd}: ${err.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
