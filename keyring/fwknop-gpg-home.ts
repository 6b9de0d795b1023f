/**
 * The users' keys for `spa-keys import-fwknop`, from a GnuPG home (fwknopd's GPG_HOME_DIR): the
 * keys gpg lists there, and one exported as armored text (`gpg --export`, export-minimal). gpg is
 * run without a shell, with a time limit.
 */
import { execFile } from 'node:child_process';
import { ConfigError } from '../protocol/errors.js';

export const DEFAULT_GPG_HOME = '/root/.gnupg';

/** A public key exported from a GnuPG home, named by what gpg listed. */
export interface GpgKeyListing {
  /** Primary fingerprint, uppercase. */
  readonly fingerprint: string;
  /** Primary and subkey fingerprints, uppercase. */
  readonly fingerprints: readonly string[];
}

/** What import needs from GnuPG; tests may pass their own. */
export interface GpgSource {
  list(home: string): Promise<readonly GpgKeyListing[]>;
  exportKey(home: string, fingerprint: string): Promise<string>;
}

function run(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'gpg',
      ['--batch', '--no-tty', ...args],
      { maxBuffer: 16 << 20, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new ConfigError(
              'IO',
              `gpg ${args.slice(0, 3).join(' ')}: ${stderr.trim().split('\n').at(-1) ?? err.message}`,
            ),
          );
        else resolve(stdout);
      },
    );
  });
}

export const systemGpg: GpgSource = {
  async list(home) {
    const out = await run(['--homedir', home, '--with-colons', '--fixed-list-mode', '--list-keys']);
    const keys: Array<{ fingerprint: string; fingerprints: string[] }> = [];
    let expectFpr: 'pub' | 'sub' | null = null;
    for (const l of out.split('\n')) {
      const f = l.split(':');
      if (f[0] === 'pub' || f[0] === 'sub') expectFpr = f[0];
      else if (f[0] === 'fpr' && expectFpr) {
        const fpr = (f[9] ?? '').toUpperCase();
        if (expectFpr === 'pub') keys.push({ fingerprint: fpr, fingerprints: [fpr] });
        else keys.at(-1)?.fingerprints.push(fpr);
        expectFpr = null;
      } else if (f[0] !== 'uid' && f[0] !== 'grp') expectFpr = null;
    }
    return keys;
  },
  exportKey(home, fingerprint) {
    return run([
      '--homedir',
      home,
      '--armor',
      '--export-options',
      'export-minimal',
      '--export',
      `${fingerprint}!`,
    ]);
  },
};
