/**
 * Test network: throw-away hosts in Linux network namespaces, joined by one bridge.
 *
 *              ns <id>-sw (bridge br0)
 *         ┌──────────┼───────────┬────────────┐
 *   <id>-server   <id>-client  <id>-attacker  (more hosts on request)
 *   198.51.100.1  198.51.100.2  198.51.100.3
 *   2001:db8::1   2001:db8::2   2001:db8::3
 *
 * Every host sees the others on eth0 (/24 and /64, no router). Names carry a per-run id so parallel
 * runs never meet; addresses come only from the documentation ranges and live only inside these
 * namespaces. `destroy()` removes everything and is safe to call twice; callers put it in a
 * `finally`/`after` so a failing test still cleans up. It first ends every process still running
 * in the namespaces (SIGTERM, then SIGKILL): a daemon, its capture child, a flooder, whoever
 * started them. SIGINT, SIGTERM and SIGHUP run the same `destroy()` (scripts/cleanup.ts), so an
 * interrupted demo, benchmark or test leaves neither namespaces nor processes behind; so do the
 * programs `run()` started. Needs root and iproute2.
 */
import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { onInterrupt } from './cleanup.js';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface Host {
  readonly name: string;
  /** network namespace name */
  readonly ns: string;
  readonly ipv4: string;
  readonly ipv6: string;
  /** Runs a program inside the namespace (no shell). Never rejects: look at `code`. */
  exec(
    cmd: string,
    args?: readonly string[],
    opts?: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv },
  ): Promise<ExecResult>;
  /** Starts a long-running program inside the namespace. */
  spawn(cmd: string, args?: readonly string[], opts?: SpawnOptions): ChildProcess;
}

export interface Topology {
  readonly id: string;
  readonly hosts: Readonly<Record<string, Host>>;
  readonly server: Host;
  readonly client: Host;
  readonly attacker: Host;
  destroy(): Promise<void>;
}

export function run(
  cmd: string,
  args: readonly string[] = [],
  opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        void release();
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
    const release = onInterrupt(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

async function must(cmd: string, args: readonly string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Why e2e tests cannot run here, or null when they can. */
export async function netnsUnavailable(): Promise<string | null> {
  if (!isRoot()) return 'needs root (network namespaces)';
  const r = await run('ip', ['netns', 'list']);
  if (r.code !== 0) return `iproute2 unusable: ${r.stderr.trim()}`;
  return null;
}

function makeHost(name: string, ns: string, ipv4: string, ipv6: string): Host {
  return {
    name,
    ns,
    ipv4,
    ipv6,
    exec: (cmd, args = [], opts = {}) => run('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    spawn: (cmd, args = [], opts = {}) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], opts),
  };
}

/**
 * Creates the topology. `extra` adds more hosts (e.g. ['internal']) at .4, .5, ...
 * The id is short because interface names are limited to 15 characters.
 */
export async function createTopology(extra: readonly string[] = []): Promise<Topology> {
  const id = `spa${randomBytes(3).toString('hex')}`;
  const sw = `${id}-sw`;
  const names = ['server', 'client', 'attacker', ...extra];
  const hosts: Record<string, Host> = {};
  const created: string[] = [];
  let closing = false;
  const removeAll = async (): Promise<void> => {
    await endProcessesIn(created);
    for (let ns = created.pop(); ns !== undefined; ns = created.pop())
      await run('ip', ['netns', 'delete', ns]);
  };
  const destroy = onInterrupt(async () => {
    closing = true;
    await removeAll();
  });
  // a signal may run destroy() while we are still adding: stop, and remove what came after it
  const add = async (ns: string): Promise<void> => {
    if (closing) throw new Error('createTopology: interrupted');
    await must('ip', ['netns', 'add', ns]);
    created.push(ns);
  };
  try {
    await add(sw);
    await must('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await must('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    await must('ip', ['-n', sw, 'link', 'set', 'lo', 'up']);
    for (const [i, name] of names.entries()) {
      const ns = `${id}-${name}`;
      const n = i + 1;
      await add(ns);
      const peer = `v${n}`;
      await must('ip', ['-n', sw, 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await must('ip', ['-n', sw, 'link', 'set', peer, 'master', 'br0', 'up']);
      const ipv4 = `198.51.100.${n}`;
      const ipv6 = `2001:db8::${n}`;
      await must('ip', ['-n', ns, 'addr', 'add', `${ipv4}/24`, 'dev', 'eth0']);
      await must('ip', ['-n', ns, 'addr', 'add', `${ipv6}/64`, 'dev', 'eth0', 'nodad']);
      await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      hosts[name] = makeHost(name, ns, ipv4, ipv6);
    }
    if (closing) throw new Error('createTopology: interrupted');
  } catch (err) {
    await destroy();
    await removeAll();
    throw err;
  }
  const get = (n: string): Host => {
    const h = hosts[n];
    if (!h) throw new Error(`no host ${n}`);
    return h;
  };
  return { id, hosts, server: get('server'), client: get('client'), attacker: get('attacker'), destroy };
}

/** Pids of the processes running in network namespace `ns` (`ip netns pids`). */
async function pidsIn(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns], { timeoutMs: 5000 });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

/**
 * Ends every process in these namespaces: SIGTERM (a daemon removes its rules and exits), up to
 * 2 s, then SIGKILL. Deleting a namespace alone would leave them running, unreachable.
 */
async function endProcessesIn(namespaces: readonly string[]): Promise<void> {
  const all = async (): Promise<number[]> => (await Promise.all(namespaces.map(pidsIn))).flat();
  for (const [sig, graceMs] of [
    ['SIGTERM', 2000],
    ['SIGKILL', 2000],
  ] as const) {
    const pids = await all();
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
    await waitFor(async () => (await all()).length === 0, graceMs, 50);
  }
}

/** Waits until `probe` resolves true, polling every `everyMs`, for at most `timeoutMs`. */
export async function waitFor(
  probe: () => Promise<boolean>,
  timeoutMs = 5000,
  everyMs = 20,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
