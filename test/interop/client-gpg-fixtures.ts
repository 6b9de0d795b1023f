/**
 * Real GnuPG homes for the client interop tests: a temporary GNUPGHOME (and HOME, so nothing
 * touches the user's own ~/.gnupg), keys made by `gpg --quick-gen-key`, imports and exports, and
 * cleanup that kills the home's gpg-agent.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';

export function gpgAvailable(): boolean {
  return spawnSync('gpg', ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface GpgHome {
  readonly root: string;
  readonly dir: string;
  /** Runs gpg in this home; throws on a non-zero exit. Returns stdout. */
  gpg(args: readonly string[], input?: string | Uint8Array): string;
  /** Makes a key; returns its primary fingerprint. */
  genKey(userId: string, opts?: { algo?: string; passphrase?: string }): string;
  exportPublic(fpr: string): string;
  exportSecret(fpr: string, passphrase?: string): string;
  importArmored(armored: string): void;
  cleanup(): Promise<void>;
}

export async function makeGpgHome(prefix = 'spa-gpg-'): Promise<GpgHome> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  const dir = join(root, 'g');
  await mkdir(dir, { mode: 0o700 });
  const env = { ...process.env, HOME: root, GNUPGHOME: dir };
  const gpg = (args: readonly string[], input?: string | Uint8Array): string => {
    const r = spawnSync('gpg', ['--homedir', dir, '--batch', '--no-tty', ...args], {
      input: input ?? '',
      env,
      maxBuffer: 16 * 1024 * 1024,
      timeout: 60_000,
    });
    if (r.status !== 0)
      throw new Error(`gpg ${args.join(' ')} failed (${r.status}): ${r.stderr?.toString()}`);
    return r.stdout.toString();
  };
  const fprOf = (uid: string): string => {
    const out = gpg(['--with-colons', '--fixed-list-mode', '--list-keys', '--', uid]);
    const m = /^fpr:+([0-9A-F]{40,64}):/m.exec(out);
    if (!m?.[1]) throw new Error(`no fingerprint for ${uid}`);
    return m[1];
  };
  return {
    root,
    dir,
    gpg,
    genKey(userId, opts = {}) {
      gpg([
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        opts.passphrase ?? '',
        '--quick-gen-key',
        userId,
        opts.algo ?? 'future-default',
        'default',
        'never',
      ]);
      return fprOf(userId);
    },
    exportPublic: (fpr) => gpg(['--armor', '--export', fpr]),
    exportSecret: (fpr, passphrase) =>
      gpg([
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        passphrase ?? '',
        '--armor',
        '--export-secret-keys',
        fpr,
      ]),
    importArmored(armored) {
      gpg(['--import'], armored);
    },
    async cleanup() {
      spawnSync('gpgconf', ['--homedir', dir, '--kill', 'all'], { env, stdio: 'ignore' });
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A public key exported by gpg, read with openpgp.js (as the server's keyring would). */
export async function readPublic(armored: string): Promise<openpgp.PublicKey> {
  return (await openpgp.readKey({ armoredKey: armored })) as openpgp.PublicKey;
}
