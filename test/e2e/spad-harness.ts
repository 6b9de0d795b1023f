/**
 * E2E helpers around the real binaries: `spa-keys` sets up a server state dir and a client home
 * the way an admin and a user would, `spad` runs inside the server namespace with its audit log
 * on stdout (parsed line by line), and knocks are sent from the client or attacker namespace by
 * the real `spa` client or, for replay tests, as raw bytes saved from an earlier knock.
 *
 *   <id>-client 198.51.100.2 / 2001:db8::2 ──┐
 *   <id>-attacker 198.51.100.3 / 2001:db8::3 ─┼── bridge ── <id>-server 198.51.100.1 / 2001:db8::1
 *                                            │               spad + echo service on tcp/22
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host } from '../../scripts/netns.js';

export const NODE = process.execPath;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = {
  spa: join(ROOT, 'client/cli.js'),
  spad: join(ROOT, 'server/cli.js'),
  'spa-keys': join(ROOT, 'keyring/cli.js'),
} as const;
export const SENDER = join(ROOT, 'test/e2e/fixtures/capture-sender.js');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a binary on the host (no namespace), for key management. Never rejects. */
export function cli(
  bin: keyof typeof BIN,
  args: readonly string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      NODE,
      [BIN[bin], ...args],
      { timeout: 60_000, env: { ...process.env, ...opts.env } },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
    child.stdin?.end(opts.input ?? '');
  });
}

export async function must(
  bin: keyof typeof BIN,
  args: readonly string[],
  opts: { input?: string } = {},
): Promise<string> {
  const r = await cli(bin, args, opts);
  if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface Keys {
  dir: string;
  stateDir: string;
  home: string;
  serverFingerprint: string;
  /** Enrolls another user; returns its home and fingerprint. */
  enroll(user: string, addArgs: readonly string[]): Promise<{ home: string; fingerprint: string }>;
  cleanup(): void;
}

/** A server state dir (spa-keys init) and a client home per user (gen + import server.asc). */
export async function setupKeys(): Promise<Keys> {
  const dir = mkdtempSync(join(tmpdir(), 'spa-e2e-'));
  const stateDir = join(dir, 'server');
  const init = await must('spa-keys', ['init', '--state-dir', stateDir]);
  const serverFingerprint = /fingerprint:\s*([0-9A-F]{40,64})/.exec(init)?.[1];
  if (!serverFingerprint) throw new Error(`no fingerprint in: ${init}`);
  const serverAsc = await must('spa-keys', ['export-server', '--state-dir', stateDir]);
  return {
    dir,
    stateDir,
    home: join(dir, 'alice'),
    serverFingerprint,
    async enroll(user, addArgs) {
      const home = join(dir, user);
      const pub = await must('spa-keys', ['gen', '--user', user, '--home', home]);
      await must('spa-keys', ['import', '-', '--home', home], { input: serverAsc });
      await must(
        'spa-keys',
        ['add', '--state-dir', stateDir, '--user', user, '--key', '-', '--yes', ...addArgs],
        { input: pub },
      );
      const list = JSON.parse(
        await must('spa-keys', ['show', user, '--state-dir', stateDir, '--json']),
      ) as Array<{ fingerprint: string }>;
      const fingerprint = list[0]?.fingerprint;
      if (!fingerprint) throw new Error(`no record for ${user}`);
      return { home, fingerprint };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface AuditLine {
  event: string;
  reason?: string;
  source?: string;
  user?: string;
  [k: string]: unknown;
}

export interface Spad {
  readonly proc: ChildProcess;
  readonly lines: AuditLine[];
  readonly stderr: () => string;
  /** Resolves with the first line (after `from`) matching `pred`, or rejects after `ms`. */
  waitFor(pred: (l: AuditLine) => boolean, ms?: number, from?: number): Promise<AuditLine>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export async function startSpad(host: Host, stateDir: string, args: readonly string[]): Promise<Spad> {
  // SPA_CPU_PROF_DIR: a V8 CPU profile of spad's monitor too (monitor-process.ts does its children)
  const prof = process.env.SPA_CPU_PROF_DIR;
  const flags = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
  const proc = host.spawn(NODE, [...flags, BIN.spad, '--state-dir', stateDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: AuditLine[] = [];
  let err = '';
  let buf = '';
  const waiters = new Set<() => void>();
  proc.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as AuditLine);
      } catch {
        lines.push({ event: 'unparsed', text: line });
      }
    }
    for (const w of waiters) w();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const waitFor = (pred: (l: AuditLine) => boolean, ms = 5000, from = 0): Promise<AuditLine> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = lines.slice(from).find(pred);
        if (hit) {
          cleanup();
          resolve(hit);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `spad: no matching audit line within ${ms} ms; last lines: ${JSON.stringify(lines.slice(-5))} stderr: ${err.slice(-500)}`,
          ),
        );
      }, ms);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(onLine);
      };
      const onLine = (): void => {
        check();
      };
      if (!check()) waiters.add(onLine);
    });
  const spad: Spad = {
    proc,
    lines,
    stderr: () => err,
    waitFor,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await waitFor((l) => l.event === 'start', 15_000);
  } catch (e) {
    await spad.kill();
    throw e;
  }
  return spad;
}

/** Sends raw bytes as one datagram from `from` to the SPA port. */
export async function sendRaw(from: Host, to: string, bytes: Uint8Array, port = 62201): Promise<void> {
  const r = await from.exec(NODE, [
    SENDER,
    '--to',
    to,
    '--port',
    String(port),
    '--count',
    '1',
    '--payload-hex',
    Buffer.from(bytes).toString('hex'),
  ]);
  if (r.code !== 0) throw new Error(`sender failed: ${r.stderr.trim()}`);
}

/** Runs the real `spa` client inside a namespace. */
export function spa(from: Host, args: readonly string[]): Promise<Run> {
  return from.exec(NODE, [BIN.spa, ...args], { timeoutMs: 30_000 });
}
