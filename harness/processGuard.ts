import { type ChildProcess, spawn } from 'node:child_process';

/**
 * Makes sure a child process dies with us, however we die (exit, Ctrl-C, crash, even SIGKILL): a
 * tiny detached shell holds a pipe from this process and kills the child when the pipe closes.
 * With `group: true` the whole process group of the child is killed (spawn the child with
 * `detached: true` so it leads its own group): for children that start children of their own,
 * like a build script. Returns a function that stops watching (call it after stopping the child
 * normally).
 */
export function killWithParent(child: ChildProcess, options: { group?: boolean } = {}): () => void {
  if (child.pid === undefined) return () => {};
  const target = options.group ? -child.pid : child.pid;
  const watchdog = spawn('sh', ['-c', `read _ ; kill -9 ${target} 2>/dev/null`], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.on('error', () => {});
  watchdog.unref();
  const pipe = watchdog.stdin;
  (pipe as unknown as { unref?: () => void } | null)?.unref?.();
  const onExit = () => {
    try {
      process.kill(target, 'SIGKILL');
    } catch {}
  };
  process.once('exit', onExit);
  return () => {
    process.removeListener('exit', onExit);
    // Closing the pipe without the child alive: the shell's kill finds nothing (exit code ignored).
    watchdog.kill('SIGKILL');
  };
}
