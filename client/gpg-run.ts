/**
 * Running the real `gpg` for `--gpg-home-dir` (gpg.ts): without a shell, with the home and
 * `--batch --no-tty` always given, a time limit, and its output bounded.
 */
import { spawn } from 'node:child_process';
import { ConfigError } from '../protocol/errors.js';

export interface GpgOptions {
  /** The gpg binary (default 'gpg', found on PATH). */
  readonly exe: string;
  readonly home: string;
  /** For --pinentry-mode loopback; else gpg-agent asks (pinentry) or has it cached. */
  readonly passphraseFile?: string | undefined;
}

export const GPG_LIST_TIMEOUT_MS = 20_000;
/** Signing may wait for a PIN or a pinentry dialog. */
export const GPG_SEAL_TIMEOUT_MS = 120_000;
const OUTPUT_MAX = 4 * 1024 * 1024;

export interface GpgResult {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs gpg with `args` after the common options; never through a shell. */
export function runGpg(
  opts: Pick<GpgOptions, 'exe' | 'home'>,
  args: readonly string[],
  io: { input?: Uint8Array; timeoutMs?: number } = {},
): Promise<GpgResult> {
  const all = ['--homedir', opts.home, '--batch', '--no-tty', '--no-greeting', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(opts.exe, all, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, io.timeoutMs ?? GPG_LIST_TIMEOUT_MS);
    const collect = (into: Buffer[]) => (c: Buffer) => {
      size += c.length;
      if (size > OUTPUT_MAX) child.kill('SIGTERM');
      else into.push(c);
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') {
        reject(
          new ConfigError('IO', `cannot run ${opts.exe}: not found`, {
            cause: e,
            hint: 'install GnuPG (apt-get install gnupg), point --gpg-exe at it, or drop --gpg-home-dir',
          }),
        );
      } else reject(new ConfigError('IO', `cannot run ${opts.exe}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(
          new ConfigError(
            'IO',
            `${opts.exe} did not finish within ${Math.round((io.timeoutMs ?? GPG_LIST_TIMEOUT_MS) / 1000)} s`,
          ),
        );
        return;
      }
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.on('error', () => undefined); // gpg may exit before reading its input
    child.stdin.end(io.input ?? new Uint8Array(0));
  });
}

/** The last line gpg wrote on stderr, without its "gpg:" prefix, for an error message. */
export function lastGpgLine(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.replace(/^gpg:\s*/, '').trim())
    .filter((l) => l !== '');
  return (lines[lines.length - 1] ?? 'no message').slice(0, 200);
}
