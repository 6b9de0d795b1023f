/**
 * The supervisor of the isolated capture mode (pcap.ts): one child process (pcap-child.ts) holds
 * the libpcap handle and streams records over a pipe. This starts it, credits frames back to it
 * (server/limits.ts CREDIT_WINDOW), and when it dies after a good start (`cap` aborts when a named
 * device goes down) reports that through onError and starts a new one with backoff until the
 * device is back. The frames themselves are pcap.ts's: `recordSink` reads them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { ConfigError } from '../../protocol/errors.js';
import { CAPTURE_CHILD_SCRIPT as CHILD } from './child-args.js';
import type { PcapCapture, PcapCaptureStats, RecordEvents } from './pcap.js';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 2_000;
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 5_000;

export interface SupervisorDeps {
  readonly device: string;
  /** The child's arguments (child-args.ts captureChildArgs), built at each start. */
  readonly childArgs: () => string[];
  readonly stats: PcapCaptureStats;
  /** Reads the records of one capture process (pcap.ts); `source` names the process. */
  readonly recordSink: (source: object, on: RecordEvents) => (chunk: Buffer) => void;
  readonly checkDevice: () => void;
  readonly openError: (message: string, cause?: unknown) => ConfigError;
  readonly report: (err: unknown) => void;
}

export function supervisedCapture(d: SupervisorDeps): PcapCapture {
  const { device, stats, report, openError } = d;
  let child: ChildProcess | undefined;
  let wanted = false;
  let paused = false;
  /** Frames read from the current child and not yet credited back to it (see server/limits.ts CREDIT_WINDOW). */
  let owed = 0;
  const credit = (): void => {
    if (owed === 0 || paused || !child?.stdin?.writable) return;
    child.stdin.write(Buffer.alloc(owed));
    owed = 0;
  };
  let restartTimer: NodeJS.Timeout | undefined;
  let backoff = RESTART_MIN_MS;

  /** Spawns a child; resolves once it has the device open, rejects if it cannot. */
  const launch = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const c = spawn(process.execPath, [CHILD, ...d.childArgs()], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      child = c;
      owed = 0;
      if (paused) c.stdout?.pause();
      let ready = false;
      let stderrTail = '';
      let childError: string | undefined;
      const timer = setTimeout(() => {
        c.kill('SIGKILL');
        reject(openError('the capture process did not start in time'));
      }, START_TIMEOUT_MS);
      c.stderr?.setEncoding('utf8');
      c.stderr?.on('data', (s: string) => {
        stderrTail = (stderrTail + s).slice(-2000);
      });
      c.stdin?.on('error', () => {});
      const sink = d.recordSink(c, {
        onReady() {
          if (ready) return;
          ready = true;
          backoff = RESTART_MIN_MS;
          clearTimeout(timer);
          resolve();
        },
        onError(message) {
          childError = message;
        },
        onBadStream() {
          c.kill('SIGKILL');
        },
        onFrames(n) {
          owed += n;
          if (child === c) credit();
        },
      });
      c.stdout?.on('data', sink);
      c.on('error', (err) => {
        clearTimeout(timer);
        if (!ready) reject(openError(err.message, err));
      });
      // 'close', not 'exit': by then stdout is drained and an ERROR record has been read.
      c.on('close', (code, signal) => {
        clearTimeout(timer);
        if (child === c) child = undefined;
        const why = childError ?? (signal ? `signal ${signal}` : `exit code ${code}`);
        if (!ready) {
          reject(openError(childError ?? `capture process ended (${why}) ${stderrTail.trim()}`.trim()));
          return;
        }
        if (!wanted) return;
        report(
          new ConfigError('IO', `pcap: capture process for "${device}" ended (${why}); restarting`, {
            field: 'interface',
          }),
        );
        scheduleRestart();
      });
    });

  const scheduleRestart = (): void => {
    if (!wanted || restartTimer) return;
    const delay = backoff;
    backoff = Math.min(RESTART_MAX_MS, backoff * 2);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!wanted) return;
      launch().then(
        () => {
          stats.restarts++;
        },
        (err: unknown) => {
          if (!wanted) return;
          report(err);
          scheduleRestart();
        },
      );
    }, delay);
  };

  return {
    stats,
    pause() {
      paused = true;
      child?.stdout?.pause();
    },
    resume() {
      paused = false;
      child?.stdout?.resume();
      credit();
    },
    async start() {
      if (wanted) return;
      d.checkDevice();
      wanted = true;
      try {
        await launch();
      } catch (err) {
        wanted = false;
        throw err;
      }
    },
    async stop() {
      wanted = false;
      if (restartTimer) clearTimeout(restartTimer);
      restartTimer = undefined;
      const c = child;
      if (!c) return;
      child = undefined;
      await new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        const kill = setTimeout(() => c.kill('SIGKILL'), STOP_TIMEOUT_MS);
        c.once('close', () => {
          clearTimeout(kill);
          resolve();
        });
        c.stdin?.end();
      });
    },
  };
}
