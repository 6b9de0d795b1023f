/**
 * Restricted commands (SPEC.md §9.5). The policy step has already turned the command into its
 * argv (protocol/command.ts: words of a small ASCII set split on single spaces, so the regex saw
 * exactly `argv.join(' ')`) and matched it; this file runs that argv as it is, with no second
 * parse:
 *  - execFile semantics, NO shell, as the run-as user and its primary group, with an empty
 *    environment plus a fixed PATH, cwd `/`, stdin closed, in a new session and process group;
 *  - through util-linux prlimit(1), which sets rlimits on itself and execs the argv (same pid):
 *    no core dumps, CPU seconds = time limit + grace, at most COMMAND_NPROC processes for the
 *    run-as uid, COMMAND_AS_BYTES of address space per process. Node's spawn has no rlimit
 *    option; without prlimit the command does not start (logged as could not start);
 *  - a time limit sends SIGTERM to the whole session (the command's process group and every
 *    process of its session in another group, found in /proc), SIGKILL 2 s later; when the
 *    command's own process exits, whatever it left in its session is killed at once. A
 *    descendant that calls setsid() leaves the session and is not reached (SECURITY.md "Command
 *    argv confusion");
 *  - at most N run at once per user; the slot is taken before any await and given back on every
 *    path (lookup, grant or spawn failing, or the command ending);
 *  - stdout/stderr are kept up to a cap (the rest is read and discarded, so a chatty command
 *    cannot grow spad's memory) and go to the audit log with exit status and duration;
 *  - optional ports are opened for the source around the command and closed when it ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { formatAccessList } from '../protocol/access.js';
import { formatAddress } from '../protocol/address.js';
import { PolicyError } from '../protocol/errors.js';
import type { Decision } from '../protocol/policy.js';
import type { Audit } from './audit.js';
import type { Firewall } from './firewall/types.js';
import type { UserCommandRunner } from './act.js';
import { COMMAND_AS_BYTES, COMMAND_NPROC, KILL_GRACE_MS, OUTPUT_CAP_BYTES } from './limits.js';

/**
 * After the command's process has exited and its session was killed, how long its output pipes may
 * stay open (held by a descendant that left the group) before spad stops reading them.
 */
export const PIPE_GRACE_MS = 1000;
export const COMMAND_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const PRLIMIT = '/usr/bin/prlimit';

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

/** prlimit(1) arguments that bound a command with this time limit; the argv follows `--`. */
export function rlimitArgs(timeoutSeconds: number): string[] {
  const cpu = timeoutSeconds + Math.ceil(KILL_GRACE_MS / 1000);
  // one value sets soft and hard limit alike, so the command cannot raise them again
  return ['--core=0', `--cpu=${cpu}`, `--nproc=${COMMAND_NPROC}`, `--as=${COMMAND_AS_BYTES}`, '--'];
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

export interface UserCommandRunnerOptions {
  audit: Audit;
  maxPerUser: number;
  firewall: () => Firewall;
  lookup?: (name: string) => Promise<Account | null>;
  /** prlimit(1) to run commands through; default PRLIMIT. */
  prlimit?: string;
}

type CommandDecision = Extract<Decision, { kind: 'command' }>;
type Ctx = Parameters<UserCommandRunner['run']>[1];

export function createCommandRunner(
  opts: UserCommandRunnerOptions,
): UserCommandRunner & { running(): number; settled(): Promise<void> } {
  const active = new Map<string, number>();
  const inflight = new Set<Promise<void>>();
  const lookup = opts.lookup ?? lookupAccount;
  const track = (p: Promise<void>): void => {
    inflight.add(p);
    void p.then(() => inflight.delete(p));
  };

  /** Takes one of the user's slots; the returned function gives it back, once. */
  function takeSlot(user: string): () => void {
    const n = active.get(user) ?? 0;
    if (n >= opts.maxPerUser) {
      throw new PolicyError(
        'CMD_BUSY',
        `command: ${n} already running for this user (limit ${opts.maxPerUser})`,
      );
    }
    active.set(user, n + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (active.get(user) ?? 1) - 1;
      if (left > 0) active.set(user, left);
      else active.delete(user);
    };
  }

  return {
    running: () => [...active.values()].reduce((a, b) => a + b, 0),
    settled: async () => {
      await Promise.all(inflight);
    },
    async run(decision: CommandDecision, ctx: Ctx) {
      // taken before the first await, so concurrent knocks cannot all pass the check
      const release = takeSlot(ctx.user);
      let handedOver = false;
      try {
        const account = await lookup(decision.runAs);
        if (!account) {
          throw new PolicyError(
            'CMD_USER_UNKNOWN',
            `command: run-as user '${decision.runAs}' does not exist`,
            {
              field: 'runAs',
            },
          );
        }
        const address = formatAddress(decision.address);
        const fw = opts.firewall();
        if (decision.ports.length > 0) {
          await fw.grant({
            source: address,
            ports: decision.ports,
            timeoutSeconds: decision.timeoutSeconds + 5,
          });
        }
        const closePorts = (): Promise<void> =>
          decision.ports.length
            ? fw.grant({ source: address, ports: decision.ports, timeoutSeconds: 1 }).catch(() => {})
            : Promise.resolve();
        const logEnd = (fields: Record<string, unknown>): void =>
          opts.audit.log('command', {
            ...ctx,
            command: decision.command,
            runAs: decision.runAs,
            uid: account.uid,
            ...fields,
            ...(decision.ports.length ? { ports: formatAccessList(decision.ports) } : {}),
          });
        let child: ChildProcess;
        try {
          child = spawn(opts.prlimit ?? PRLIMIT, [...rlimitArgs(decision.timeoutSeconds), ...decision.argv], {
            uid: account.uid,
            gid: account.gid,
            cwd: '/',
            env: { PATH: COMMAND_PATH, LANG: 'C.UTF-8' },
            stdio: ['ignore', 'pipe', 'pipe'],
            shell: false,
            detached: true, // setsid(): its own session and process group, which the limits kill
          });
        } catch (e) {
          // EPERM, EINVAL, an out-of-range uid: spawn throws instead of emitting 'error'
          logEnd({
            exit: null,
            signal: null,
            timedOut: false,
            ms: 0,
            detail: `could not start: ${(e as Error).message}`,
          });
          track(closePorts());
          return;
        }
        handedOver = true;
        track(
          supervise(child, decision.timeoutSeconds, logEnd).then(() => {
            release();
            return closePorts();
          }),
        );
      } finally {
        if (!handedOver) release();
      }
    },
  };
}

/**
 * The processes whose session id is `sid`, from /proc (field 6 of /proc/PID/stat, counted after
 * the parenthesised command name, which may itself contain spaces and parentheses); none where
 * there is no /proc. The command is started with setsid(), so its session id is its pid, and
 * setpgid() cannot move a process out of its session.
 */
export function sessionMembers(sid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^[1-9][0-9]*$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after the name: state, ppid, pgrp, session
    if (Number(fields[3]) === sid) out.push(Number(name));
  }
  return out;
}

/**
 * Waits for a started command: time limit (SIGTERM, then SIGKILL, to the whole session), output
 * caps, and the kill of whatever the command left in its session when it exits. Resolves once the
 * audit line is written.
 */
function supervise(
  child: ChildProcess,
  timeoutSeconds: number,
  logEnd: (fields: Record<string, unknown>) => void,
): Promise<void> {
  const started = Date.now();
  const out = new Capped();
  const err = new Capped();
  const pid = child.pid;
  let timedOut = false;
  const killGroup = (sig: NodeJS.Signals): void => {
    // The group and session id stay allocated while any member lives, so they cannot name
    // someone else's group or session while there is anything of ours left to kill.
    if (!pid) return;
    try {
      process.kill(-pid, sig);
    } catch {
      /* already gone */
    }
    // a descendant that moved to a group of its own with setpgid() is still in the session
    for (const p of sessionMembers(pid)) {
      try {
        process.kill(p, sig);
      } catch {
        /* already gone */
      }
    }
  };
  const term = setTimeout(() => {
    timedOut = true;
    killGroup('SIGTERM');
  }, timeoutSeconds * 1000);
  const kill = setTimeout(() => killGroup('SIGKILL'), timeoutSeconds * 1000 + KILL_GRACE_MS);
  let pipes: NodeJS.Timeout | undefined;
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  return new Promise<void>((resolve) => {
    let exit: { code: number | null; signal: NodeJS.Signals | null } = { code: null, signal: null };
    let ended = false;
    const finish = (spawnError?: Error): void => {
      if (ended) return;
      ended = true;
      clearTimeout(term);
      clearTimeout(kill);
      clearTimeout(pipes);
      logEnd({
        exit: exit.code,
        signal: exit.signal,
        timedOut,
        ms: Date.now() - started,
        stdout: out.text(),
        stderr: err.text(),
        outputBytes: out.total + err.total,
        ...(spawnError ? { detail: `could not start: ${spawnError.message}` } : {}),
      });
      resolve();
    };
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // the command is over: its leftovers (background children, ones that ignore SIGTERM) go too
      killGroup('SIGKILL');
      clearTimeout(term);
      clearTimeout(kill);
      pipes = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, PIPE_GRACE_MS);
    });
    child.on('error', (e) => {
      // never started (e.g. prlimit missing); once running, errors are about kill() and ignorable
      if (child.pid === undefined) finish(e);
    });
    child.on('close', () => finish());
  });
}
