/**
 * The monitor's side of the privilege split: it starts and supervises the unprivileged
 * processes (SECURITY.md "Privilege separation").
 *
 * - capture (pcap mode only): server/capture/pcap-child.ts, started through setpriv(1) as the
 *   verifier user with CAP_NET_RAW alone (libpcap needs nothing more to open a packet socket),
 *   no-new-privs. Its stdout is handed straight to the verifier as fd 0 and its stdin as fd 4
 *   (the verifier's credits, server/limits.ts CREDIT_WINDOW): frames never pass through the monitor.
 * - verifier: server/verifier.ts, through setpriv as the verifier user with every capability
 *   set empty (bounding set included) and no-new-privs, cwd its own directory. fd 1 → monitor
 *   (ipc.ts lines, bounded here), fd 3 ← monitor (init, reload, accepted, stop).
 *
 * Both are restarted together when either exits or the verifier stops talking (no line for
 * STALL_MS; it sends counters every second), with a back-off from 250 ms doubling to 5 s. The
 * firewall is not touched meanwhile: protections and grants live in the kernel. How each process
 * is stripped of privilege (account, directory, setpriv) is privdrop.ts's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../protocol/errors.js';
import type { Audit } from './audit.js';
import { CAPTURE_CHILD_SCRIPT } from './capture/child-args.js';
import { encodeLine, LineSplitter, MAX_LINE_BYTES, type MonitorMessage } from './ipc.js';
import {
  type Account,
  dropTo,
  openDirectoryPath,
  processInfo,
  type ProcessInfo,
  setprivPath,
} from './privdrop.js';
import type { VerifierPeer } from './monitor.js';
import { NO_OPTIMIZER } from './v8-flags.js';

const VERIFIER_SCRIPT = fileURLToPath(new URL('./verifier.js', import.meta.url));
export const STALL_MS = 3000;
const START_TIMEOUT_MS = 15_000;
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 5000;
/** A verifier that ran this long resets the back-off. */
const HEALTHY_MS = 10_000;

export interface SupervisorOptions {
  /** argv of pcap-child.ts (after its path) in pcap mode; null with --udp-server. */
  captureArgs: string[] | null;
  /** Whom the children run as; null when spad itself is not root (nothing to drop: tests). */
  account: Account | null;
  /** The verifier's own directory (its cwd, entered by the verifier itself). */
  cwd: string;
  /** The init message for a new verifier (built at each start: current allowlist and replay entries). */
  init: () => MonitorMessage;
  /** Each line from the verifier, with the handlers of this verifier's ready/fatal/counters. */
  onLine: (line: string, peer: VerifierPeer) => void;
  onOversize: (bytes: number) => void;
  /** Counters from the verifier of this generation (a new number after each restart). */
  onCounters: (msg: Parameters<NonNullable<VerifierPeer['onCounters']>>[0], generation: number) => void;
  audit: Audit;
}

/**
 * The line of a child's stderr that says what went wrong: the last one that is not part of a
 * stack trace or node's closing version banner (an uncaught exception ends with both).
 */
export function lastWords(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('at ') && !/^Node\.js v\d/.test(l) && !/^[\^{}]+$/.test(l));
  // an error's own line (`Error: ...`, `spad verifier: ...`) over the fields node prints after it
  return lines.findLast((l) => /^(\w*Error\b|spad verifier:)/.test(l)) ?? lines.at(-1) ?? '';
}

interface Generation {
  verifier: ChildProcess;
  capture: ChildProcess | null;
  startedAt: number;
  lastLine: number;
  ready: boolean;
  stderr: string;
  exited: number;
}

export class VerifierSupervisor {
  private gen: Generation | null = null;
  private wanted = false;
  private backoff = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private downSince = 0;
  private generations = 0;
  restarts = 0;

  constructor(private readonly opts: SupervisorOptions) {}

  /** Starts the first verifier; resolves once it captures, rejects (ConfigError IO) if it cannot. */
  async start(): Promise<void> {
    this.wanted = true;
    try {
      await this.launch(true);
    } catch (err) {
      this.wanted = false;
      throw err;
    }
    this.stallTimer = setInterval(() => this.checkStall(), 1000);
  }

  /** Writes messages to the verifier, several in one write. */
  send(...msgs: MonitorMessage[]): void {
    const fd3 = this.gen?.verifier.stdio[3] as NodeJS.WritableStream | undefined;
    fd3?.write(msgs.map(encodeLine).join(''));
  }

  processes(): ProcessInfo[] {
    const g = this.gen;
    const out = [processInfo('monitor', process.pid)];
    if (g?.verifier.pid) out.push(processInfo('verifier', g.verifier.pid));
    if (g?.capture?.pid) out.push(processInfo('capture', g.capture.pid));
    return out;
  }

  /**
   * Asks the verifier to stop capturing and finish what it has queued (its last decisions are
   * still acted on), then ends both processes; SIGKILL for one that takes more than 3 s.
   */
  async stop(): Promise<void> {
    this.wanted = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.stallTimer) clearInterval(this.stallTimer);
    const g = this.gen;
    if (!g) return;
    const gone = (c: ChildProcess | null): Promise<void> =>
      !c || c.exitCode !== null || c.signalCode !== null
        ? Promise.resolve()
        : new Promise((r) => c.once('close', () => r()));
    const within = async (c: ChildProcess | null, ms: number): Promise<void> => {
      const t = setTimeout(() => c?.kill('SIGKILL'), ms);
      await gone(c);
      clearTimeout(t);
    };
    this.send({ t: 'stop' });
    await within(g.verifier, 3000);
    g.capture?.stdin?.end();
    await within(g.capture, 2000);
    if (this.gen === g) this.gen = null;
  }

  private spawnAs(caps: 'none' | 'net_raw', script: string, args: string[], stdio: unknown[]): ChildProcess {
    const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
    const { account } = this.opts;
    // SPA_CPU_PROF_DIR (profiling only, docs/benchmarks.md): a V8 CPU profile of each child,
    // written there when it exits; the directory must be writable by the verifier's account
    const prof = process.env.SPA_CPU_PROF_DIR;
    const argv = [
      process.execPath,
      ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []),
      // the verifier without V8's optimizing compiler (program.ts says why); the capture
      // process keeps it: under a flood it runs its prefilter on every frame
      ...(script === VERIFIER_SCRIPT ? [NO_OPTIMIZER] : []),
      script,
      ...args,
    ];
    const [cmd, ...rest] = account ? [setprivPath(), ...dropTo(account, caps), ...argv] : argv;
    // cwd `/`: the chdir would run before setpriv drops to the account, as root without
    // CAP_DAC_OVERRIDE under the systemd unit, which cannot enter the account's 0700 directory.
    // The verifier enters its directory itself, through the fd it is given (verifier.ts --dir-fd).
    return spawn(cmd as string, rest, { stdio: stdio as never, env, cwd: '/' });
  }

  private launch(first = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (detail: string): void => {
        if (settled) return;
        settled = true;
        reject(new ConfigError('IO', detail));
      };
      let capture: ChildProcess | null = null;
      let verifier: ChildProcess;
      let dirFd: number | null = null;
      try {
        if (this.opts.captureArgs) {
          capture = this.spawnAs('net_raw', CAPTURE_CHILD_SCRIPT, this.opts.captureArgs, [
            'pipe',
            'pipe',
            'pipe',
          ]);
          capture.stdin?.on('error', () => {});
        }
        // fd 0: the capture's records; fd 4: the capture's stdin, for the verifier's credits;
        // fd 5: its own directory, which it enters itself (verifier.ts)
        dirFd = openDirectoryPath(this.opts.cwd);
        verifier = this.spawnAs('none', VERIFIER_SCRIPT, dirFd === null ? [] : ['--dir-fd', '5'], [
          capture?.stdout ?? 'ignore',
          'pipe',
          'pipe',
          'pipe',
          capture?.stdin ?? 'ignore',
          dirFd ?? 'ignore',
        ]);
      } catch (err) {
        if (dirFd !== null) closeSync(dirFd);
        capture?.kill('SIGKILL');
        fail((err as Error).message);
        return;
      }
      // the frames and credits are the verifier's: close our copies of both pipes before anything
      // is read from them (the capture then ends when the verifier does: end of its stdin)
      if (dirFd !== null) closeSync(dirFd);
      capture?.stdout?.destroy();
      capture?.stdin?.destroy();
      const g: Generation = {
        verifier,
        capture,
        startedAt: Date.now(),
        lastLine: Date.now(),
        ready: false,
        stderr: '',
        exited: 0,
      };
      this.gen = g;
      const startTimer = setTimeout(() => {
        fail('the verifier did not start in time');
        this.kill(g);
      }, START_TIMEOUT_MS);
      const generation = ++this.generations;
      const peer: VerifierPeer = {
        onCounters: (m) => this.opts.onCounters(m, generation),
        onReady: () => {
          if (g.ready) return;
          g.ready = true;
          clearTimeout(startTimer);
          if (this.downSince) {
            this.restarts++;
            this.opts.audit.log('verifier_restarted', {
              pid: verifier.pid,
              restarts: this.restarts,
              ms: Date.now() - this.downSince,
            });
            this.downSince = 0;
          }
          settled = true;
          resolve();
        },
        onFatal: (detail) => {
          g.stderr = detail;
          if (!g.ready) {
            clearTimeout(startTimer);
            fail(detail);
          }
        },
      };
      const split = new LineSplitter(
        MAX_LINE_BYTES,
        (line) => {
          g.lastLine = Date.now();
          this.opts.onLine(line, peer);
        },
        (n) => this.opts.onOversize(n),
      );
      verifier.stdout?.on('data', (c: Buffer) => split.push(c));
      for (const c of [verifier, capture]) {
        c?.stderr?.setEncoding('utf8');
        c?.stderr?.on('data', (s: string) => {
          g.stderr = (g.stderr + s).slice(-1000);
        });
        c?.on('error', (err) => {
          fail(err.message);
          this.kill(g);
        });
      }
      (verifier.stdio[3] as NodeJS.WritableStream | null)?.on('error', () => {});
      const onExit = (role: string) => (code: number | null, signal: NodeJS.Signals | null) => {
        const why = `${role} ${signal ? `killed by ${signal}` : `exited with code ${code}`}`;
        this.kill(g);
        g.exited++;
        if (g.exited < (capture ? 2 : 1)) return;
        clearTimeout(startTimer);
        const tail = lastWords(g.stderr);
        if (!g.ready) fail(tail || why);
        if (this.gen === g) this.gen = null;
        // a first start that fails is start()'s error; after that, every exit is restarted
        if (!this.wanted || (first && !g.ready)) return;
        this.down(`${why}${tail ? `: ${tail.slice(0, 300)}` : ''}`, g);
      };
      // 'close': its output is read to the end first (the last decisions count)
      verifier.on('close', onExit('verifier'));
      capture?.on('close', onExit('capture'));
      this.send(this.opts.init());
    });
  }

  /** Ends both processes of a generation (the other one follows when one dies). */
  private kill(g: Generation): void {
    if (g.verifier.exitCode === null && g.verifier.signalCode === null) g.verifier.kill('SIGKILL');
    if (g.capture && g.capture.exitCode === null && g.capture.signalCode === null) g.capture.kill('SIGKILL');
  }

  private checkStall(): void {
    const g = this.gen;
    if (!g?.ready) return;
    if (Date.now() - g.lastLine > STALL_MS) {
      g.stderr = `${g.stderr}\nstalled: no message for ${STALL_MS} ms`;
      this.kill(g);
    }
  }

  private down(why: string, g: Generation): void {
    if (!this.downSince) this.downSince = Date.now();
    if (Date.now() - g.startedAt >= HEALTHY_MS) this.backoff = RESTART_MIN_MS;
    const delay = this.backoff;
    this.backoff = Math.min(RESTART_MAX_MS, this.backoff * 2);
    this.opts.audit.log('verifier_exited', { detail: `${why}; restarting in ${delay} ms` });
    if (this.restartTimer) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.wanted) return;
      this.launch().catch((err: unknown) => {
        // a failed start ends in an exit, which schedules the next attempt
        void err;
      });
    }, delay);
  }
}
