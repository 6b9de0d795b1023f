/**
 * An optional faster transport for the nftables backend: one long-lived `nft -i` process instead
 * of one `nft -f -` process per change. Spawning nft costs a few milliseconds (fork, exec,
 * dynamic linking, reading the ruleset cache); a line written to a running `nft -i` costs well
 * under one. scripts/bench-firewall.ts prints both.
 *
 * How it stays correct:
 * - Each script is sent as ONE line (its commands joined with `; `): nft runs a line as one
 *   transaction, so a grant is still all-or-nothing.
 * - After the line we send a marker word that is not a command (`spa_sync_<n>`). nft answers it
 *   with a syntax error that echoes the marker on stderr; since nft handles lines in order, what
 *   arrived on stderr before that echo is exactly the output of our line: empty means success.
 * - Only `nft -f -` scripts go through the shell; listings (`nft -j list ...`) are spawned as
 *   usual. If the shell dies, hangs past the time limit or was never startable, the script is
 *   run once more by spawning `nft -f -`. Every script the backend sends is safe to apply twice
 *   (adds are idempotent, deletes are preceded by adds), so a retry never does harm. After three
 *   failures in a row the shell is given up for good and every script is spawned.
 * - nft's line editor keeps every line in its history: the process is replaced every
 *   RESTART_EVERY scripts so that memory stays bounded, and HOME points nowhere so no history
 *   file is written when it exits.
 * - The process is unref'd: it never keeps the daemon alive, and it exits on EOF when we do.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { type ExecRunnerOptions, execRunner, runnerEnv, runnerNetns } from './runner.js';
import { Serial } from './serial.js';
import type { CommandResult, FirewallExec } from './types.js';

export interface NftShellRunner extends FirewallExec {
  /** Ends the `nft -i` process; a later call starts a new one. */
  close(): void;
  /** pid of the running `nft -i` (or of `ip netns exec` wrapping it), for tests. */
  readonly pid: number | undefined;
}

export const RESTART_EVERY = 1000;
const GIVE_UP_AFTER = 3;

/** One script line; `null` when it cannot be sent as one line. */
export function scriptLine(script: string): string | null {
  const lines = script
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (lines.length === 0) return null;
  const line = lines.join('; ');
  return line.length > 60_000 ? null : line;
}

type Shell = ChildProcessByStdio<Writable, null, Readable>;

export function nftShellRunner(opts: ExecRunnerOptions = {}): NftShellRunner {
  const fallback = execRunner(opts);
  const netns = runnerNetns(opts);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const serial = new Serial();
  let shell: Shell | null = null;
  let err = '';
  let wake: (() => void) | null = null;
  let seq = 0;
  let served = 0;
  let failures = 0;

  const start = (): Shell => {
    const [file, argv] =
      netns === undefined ? ['nft', ['-i']] : ['ip', ['netns', 'exec', netns, 'nft', '-i']];
    const child = spawn(file, argv, {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...runnerEnv(), HOME: '/nonexistent' },
    });
    child.unref();
    (child.stdin as Writable & { unref?: () => void }).unref?.();
    (child.stderr as Readable & { unref?: () => void }).unref?.();
    err = '';
    served = 0;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err += d;
      wake?.();
    });
    child.stdin.on('error', () => undefined);
    child.on('error', () => undefined);
    child.on('exit', () => {
      if (shell === child) shell = null;
      wake?.();
    });
    return child;
  };

  const close = (): void => {
    if (shell) {
      shell.kill('SIGKILL');
      shell = null;
    }
  };

  /** null when the shell failed (not nft refusing the script). */
  const viaShell = (line: string): Promise<CommandResult | null> => {
    const child = shell ?? start();
    shell = child;
    const marker = `spa_sync_${++seq}`;
    const echo = `\n${marker}\n`;
    return new Promise((resolve) => {
      const done = (r: CommandResult | null) => {
        clearTimeout(timer);
        wake = null;
        if (r === null) close();
        resolve(r);
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      wake = () => {
        if (shell !== child) return done(null);
        const at = `\n${err}`.indexOf(echo);
        if (at === -1) return;
        // the marker's own error block: "Error: syntax error ...\n<marker>\n   ^\n"
        const afterEcho = at + echo.length - 1;
        const caretEnd = err.indexOf('\n', afterEcho);
        if (caretEnd === -1) return;
        const blockStart = err.lastIndexOf('Error:', Math.max(0, at - 1));
        const ours = err.slice(0, Math.max(0, blockStart)).trim();
        err = err.slice(caretEnd + 1);
        done({ code: /\bError\b/.test(ours) ? 1 : 0, stdout: '', stderr: ours });
      };
      child.stdin.write(`${line}\n${marker}\n`);
    });
  };

  return {
    run(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
      const line = input === undefined ? null : scriptLine(input);
      if (cmd !== 'nft' || args.length !== 2 || args[0] !== '-f' || args[1] !== '-' || line === null) {
        return fallback.run(cmd, args, input);
      }
      if (failures >= GIVE_UP_AFTER) return fallback.run(cmd, args, input);
      return serial.run(async () => {
        if (served >= RESTART_EVERY) close();
        const r = await viaShell(line);
        served++;
        if (r) {
          failures = 0;
          return r;
        }
        failures++;
        return fallback.run(cmd, args, input);
      });
    },
    close,
    get pid() {
      return shell?.pid;
    },
  };
}
