/**
 * The real `FirewallExec`: execFile with an argv array, no shell, a fixed small environment and
 * a time limit. `netns` runs every command inside a named network namespace (`ip netns exec NS`)
 * so tests and benchmarks never touch the host's own ruleset.
 */
import { execFile } from 'node:child_process';
import { ConfigError } from '../../protocol/errors.js';
import type { CommandResult, FirewallExec } from './types.js';

export interface ExecRunnerOptions {
  /** Network namespace name (as in /run/netns). */
  netns?: string;
  /** Per command, default 10 s. */
  timeoutMs?: number;
}

const NETNS_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

/** The validated namespace name, if any. */
export function runnerNetns(opts: ExecRunnerOptions): string | undefined {
  const { netns } = opts;
  if (netns !== undefined && !NETNS_RE.test(netns)) {
    throw new ConfigError('CONFIG_INVALID', 'netns: not a namespace name', { field: 'netns' });
  }
  return netns;
}

/** The environment every firewall command gets. */
export function runnerEnv(): NodeJS.ProcessEnv {
  return { ...ENV };
}

export function execRunner(opts: ExecRunnerOptions = {}): FirewallExec {
  const netns = runnerNetns(opts);
  const timeout = opts.timeoutMs ?? 10_000;
  return {
    run(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
      const [file, argv] = netns === undefined ? [cmd, args] : ['ip', ['netns', 'exec', netns, cmd, ...args]];
      return new Promise((resolve) => {
        const child = execFile(
          file,
          argv,
          { timeout, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, env: ENV, windowsHide: true },
          (err, stdout, stderr) => {
            let code = 0;
            if (err) code = typeof err.code === 'number' ? err.code : -1;
            resolve({
              code,
              stdout: String(stdout),
              stderr: err && code === -1 ? `${stderr}${err.message}` : String(stderr),
            });
          },
        );
        child.stdin?.on('error', () => undefined);
        child.stdin?.end(input ?? '');
      });
    },
  };
}
