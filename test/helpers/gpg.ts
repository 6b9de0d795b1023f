/**
 * Real GnuPG in throwaway homes, for interop tests and measurements. Each GpgHome is a fresh
 * directory (mode 0700) used as both GNUPGHOME and HOME, so nothing touches the user's own
 * keyring; `destroy()` stops its gpg-agent and removes it. gpg runs without a shell, in batch mode
 * with an empty passphrase through loopback pinentry.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Why gpg tests must be skipped, or null when `gpg` and `gpgconf` can run. */
export function gpgUnavailable(): string | null {
  for (const tool of ['gpg', 'gpgconf']) {
    const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
    if (r.error || r.status !== 0) return `${tool} is not installed (GnuPG interop tests need it)`;
  }
  return null;
}

export interface GpgResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** `[GNUPG:] ...` lines written to --status-fd, without the prefix. */
  readonly status: string[];
}

const BASE = ['--batch', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', '', '--status-fd', '2'];
/** Upper bound on one gpg run (RSA key generation is the slow case). */
const GPG_TIMEOUT_MS = 120_000;

export class GpgHome {
  readonly dir: string;

  constructor(label = 'gpg') {
    this.dir = mkdtempSync(join(tmpdir(), `spa-${label}-`));
    // mkdtemp creates 0700 already; gpg warns about anything looser
  }

  /** Runs gpg with this home; never throws on a non-zero exit (look at `code`). */
  run(args: readonly string[], input?: Uint8Array): Promise<GpgResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('gpg', [...BASE, ...args], {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          GNUPGHOME: this.dir,
          HOME: this.dir,
          LANG: 'C',
          LC_ALL: 'C',
        },
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: GPG_TIMEOUT_MS,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.on('error', reject);
      child.on('close', (code) => {
        const stderr = Buffer.concat(err).toString('utf8');
        const status = stderr
          .split('\n')
          .filter((l) => l.startsWith('[GNUPG:] '))
          .map((l) => l.slice('[GNUPG:] '.length));
        resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr, status });
      });
      child.stdin.end(input === undefined ? undefined : Buffer.from(input));
    });
  }

  /** Like run, but throws with gpg's stderr when it fails. */
  async ok(args: readonly string[], input?: Uint8Array): Promise<GpgResult> {
    const r = await this.run(args, input);
    if (r.code !== 0) throw new Error(`gpg ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r;
  }

  /** `gpg --quick-gen-key UID ALGO USAGE never`; returns the primary fingerprint. */
  async quickGenKey(uid: string, algo: string, usage: string): Promise<string> {
    const r = await this.ok(['--quick-gen-key', uid, algo, usage, 'never']);
    const line = r.status.find((l) => l.startsWith('KEY_CREATED '));
    const fpr = line?.split(' ')[2];
    if (!fpr) throw new Error(`gpg --quick-gen-key: no KEY_CREATED status line for ${uid}`);
    return fpr.toUpperCase();
  }

  /** ed25519 primary (sign) + cv25519 subkey (encrypt), as `future-default` means in gpg 2.2. */
  generateEd25519(uid: string): Promise<string> {
    return this.quickGenKey(uid, 'future-default', 'default');
  }

  /** RSA-3072 primary (certify, sign) plus an RSA-3072 encryption subkey. */
  async generateRsa3072(uid: string): Promise<string> {
    // with an explicit algorithm, quick-gen-key makes the primary key only
    const fpr = await this.quickGenKey(uid, 'rsa3072', 'default');
    await this.ok(['--quick-add-key', fpr, 'rsa3072', 'encr', 'never']);
    return fpr;
  }

  async exportPublic(fpr: string): Promise<string> {
    return (await this.ok(['--armor', '--export', fpr])).stdout.toString('utf8');
  }

  async exportSecret(fpr: string): Promise<string> {
    return (await this.ok(['--armor', '--export-secret-keys', fpr])).stdout.toString('utf8');
  }

  async importKey(armored: string): Promise<void> {
    await this.ok(['--import'], new TextEncoder().encode(armored));
  }

  /** Stops this home's agent and removes the directory; safe to call twice. */
  destroy(): void {
    spawnSync('gpgconf', ['--homedir', this.dir, '--kill', 'all'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', GNUPGHOME: this.dir, HOME: this.dir },
      stdio: 'ignore',
      timeout: 10_000,
    });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
