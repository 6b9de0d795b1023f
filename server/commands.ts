/**
 * Restricted commands (SPEC.md §9.5). The policy step has already checked that the command
 * matches the user's anchored regex. Here, defence in depth, then execution:
 *  - the command is split into argv by a shell-words parser; any shell operator, redirection,
 *    substitution, glob or comment refuses it (CMD_NO_MATCH), even if a broad regex let it by;
 *  - it runs with execFile semantics: NO shell, as the run-as user and its primary group, with an
 *    empty environment plus a fixed PATH, cwd `/`, stdin closed;
 *  - a time limit sends SIGTERM, then SIGKILL 2 s later; at most N run at once per user;
 *  - stdout/stderr are kept up to a cap (the rest is read and discarded, so a chatty command
 *    cannot grow spad's memory) and go to the audit log with exit status and duration;
 *  - optional ports are opened for the source around the command and closed when it ends.
 */
import { spawn } from 'node:child_process';
import { parse as shellParse } from 'shell-quote';
import { formatAccessList } from '../protocol/access.js';
import { formatAddress } from '../protocol/address.js';
import { PolicyError } from '../protocol/errors.js';
import type { Decision } from '../protocol/policy.js';
import type { Audit } from './audit.js';
import type { Firewall } from './firewall/types.js';
import type { CommandRunner } from './pipeline.js';

export const OUTPUT_CAP_BYTES = 4096;
export const KILL_GRACE_MS = 2000;
export const COMMAND_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Account {
  uid: number;
  gid: number;
}

/** Looks a user up through NSS (getent), so LDAP/sssd users work as well as /etc/passwd ones. */
export function lookupAccount(name: string): Promise<Account | null> {
  return new Promise((resolve) => {
    const child = spawn('getent', ['passwd', name], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    child.on('error', () => resolve(null));
    child.on('close', (code) => {
      const f = out.split('\n')[0]?.split(':');
      if (code !== 0 || !f || f.length < 4 || f[0] !== name) return resolve(null);
      const uid = Number(f[2]);
      const gid = Number(f[3]);
      resolve(Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : null);
    });
  });
}

/** Shell words without a shell: only plain words survive; anything a shell would interpret refuses. */
export function splitCommand(command: string): string[] {
  const parts = shellParse(command, (key) => `$${key}`);
  const argv: string[] = [];
  for (const p of parts) {
    if (typeof p !== 'string') {
      throw new PolicyError('CMD_NO_MATCH', 'command: shell operators, globs and comments are not allowed', {
        field: 'command',
      });
    }
    argv.push(p);
  }
  if (/[$`]/.test(command)) {
    throw new PolicyError('CMD_NO_MATCH', 'command: substitutions ($, `) are not allowed', {
      field: 'command',
    });
  }
  if (argv.length === 0) throw new PolicyError('CMD_NO_MATCH', 'command: empty', { field: 'command' });
  return argv;
}

class Capped {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  total = 0;
  push(b: Buffer): void {
    this.total += b.length;
    if (this.kept >= OUTPUT_CAP_BYTES) return;
    const part = b.subarray(0, OUTPUT_CAP_BYTES - this.kept);
    this.chunks.push(Buffer.from(part));
    this.kept += part.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

export interface CommandRunnerOptions {
  audit: Audit;
  maxPerUser: number;
  firewall: () => Firewall;
  lookup?: (name: string) => Promise<Account | null>;
}

export function createCommandRunner(
  opts: CommandRunnerOptions,
): CommandRunner & { running(): number; settled(): Promise<void> } {
  const active = new Map<string, number>();
  const inflight = new Set<Promise<void>>();
  const lookup = opts.lookup ?? lookupAccount;
  return {
    running: () => [...active.values()].reduce((a, b) => a + b, 0),
    settled: async () => {
      await Promise.all(inflight);
    },
    async run(decision: Extract<Decision, { kind: 'command' }>, ctx) {
      const argv = splitCommand(decision.command);
      const account = await lookup(decision.runAs);
      if (!account) {
        throw new PolicyError('CMD_USER_UNKNOWN', `command: run-as user '${decision.runAs}' does not exist`, {
          field: 'runAs',
        });
      }
      const n = active.get(ctx.user) ?? 0;
      if (n >= opts.maxPerUser) {
        throw new PolicyError(
          'CMD_BUSY',
          `command: ${n} already running for this user (limit ${opts.maxPerUser})`,
        );
      }
      active.set(ctx.user, n + 1);
      const address = formatAddress(decision.address);
      const fw = opts.firewall();
      if (decision.ports.length > 0) {
        await fw.grant({
          source: address,
          ports: decision.ports,
          timeoutSeconds: decision.timeoutSeconds + 5,
        });
      }
      const started = Date.now();
      const out = new Capped();
      const err = new Capped();
      const child = spawn(argv[0] as string, argv.slice(1), {
        uid: account.uid,
        gid: account.gid,
        cwd: '/',
        env: { PATH: COMMAND_PATH, LANG: 'C.UTF-8' },
        stdio: ['ignore', 'pipe', 'pipe'],
        shell: false,
        detached: true, // its own process group, so the time limit reaches its children too
      });
      let timedOut = false;
      const killGroup = (sig: NodeJS.Signals): void => {
        try {
          if (child.pid) process.kill(-child.pid, sig);
        } catch {
          /* already gone */
        }
      };
      const term = setTimeout(() => {
        timedOut = true;
        killGroup('SIGTERM');
      }, decision.timeoutSeconds * 1000);
      const kill = setTimeout(() => killGroup('SIGKILL'), decision.timeoutSeconds * 1000 + KILL_GRACE_MS);
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      const done = new Promise<void>((resolve) => {
        const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
          clearTimeout(term);
          clearTimeout(kill);
          active.set(ctx.user, (active.get(ctx.user) ?? 1) - 1);
          opts.audit.log('command', {
            ...ctx,
            command: decision.command,
            runAs: decision.runAs,
            uid: account.uid,
            exit: code,
            signal,
            timedOut,
            ms: Date.now() - started,
            stdout: out.text(),
            stderr: err.text(),
            outputBytes: out.total + err.total,
            ...(spawnError ? { detail: `could not start: ${spawnError.message}` } : {}),
            ...(decision.ports.length ? { ports: formatAccessList(decision.ports) } : {}),
          });
          const close = decision.ports.length
            ? fw.grant({ source: address, ports: decision.ports, timeoutSeconds: 1 }).catch(() => {})
            : Promise.resolve();
          void close.then(() => resolve());
        };
        let ended = false;
        child.on('error', (e) => {
          if (ended) return;
          ended = true;
          finish(null, null, e);
        });
        child.on('close', (code, signal) => {
          if (ended) return;
          ended = true;
          finish(code, signal);
        });
      });
      inflight.add(done);
      void done.then(() => inflight.delete(done));
    },
  };
}
