/**
 * Files that hold a secret or decide whom a knock trusts are checked before they are used, as ssh
 * checks its keys and config (client/rc.ts applies the same rules to spa.rc). A file is refused:
 *
 * - when it is not a regular file;
 * - when another user owns it (only ours or root's are trusted);
 * - when group or others can write it: they could swap the server key or the settings;
 * - when its directory is owned by another user, or group or others can write it without the
 *   sticky bit: they could replace the file by renaming another over it;
 * - for a file that holds a secret (`secret`: passphrase files; keys.json when it holds an
 *   unencrypted secret key), when group or others can read it.
 *
 * The checks run on the open file descriptor (fstat), so the file checked is the file read. Errors
 * are one line, CONFIG_INVALID (exit 2), with a `chmod` hint; they name the file, never its bytes.
 */
import type { Stats } from 'node:fs';
import { type FileHandle, open, realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../protocol/errors.js';

export interface FileRules {
  /** What the file is, for messages: 'passphrase file', 'keystore'. */
  readonly what: string;
  /** Refuse when group or others can read it. */
  readonly secret: boolean;
  /** Refuse a larger file without reading it. */
  readonly maxBytes?: number;
  /** Hint for a file owned by another user. */
  readonly ownerHint?: string;
}

export interface CheckedFile {
  readonly data: Buffer;
  readonly stats: Stats;
}

const octal = (st: Stats): string => (st.mode & 0o777).toString(8);

function mine(uid: number): boolean {
  const me = process.getuid?.();
  return me === undefined || uid === me || uid === 0;
}

/** True when group or others may read the file. */
export function othersCanRead(st: Stats): boolean {
  return (st.mode & 0o044) !== 0;
}

/** The refusal for a secret that others can read; `why` says what makes it secret, if not `what`. */
export function readableSecretError(path: string, st: Stats, what: string, why?: string): ConfigError {
  return new ConfigError(
    'CONFIG_INVALID',
    `${what} ${path} is readable by others (mode ${octal(st)})${why === undefined ? '' : ` and ${why}`}`,
    { hint: `fix it with: chmod 600 ${path}` },
  );
}

/** Type, owner and write bits of an opened file (and read bits when `rules.secret`). */
export function checkFileStats(path: string, st: Stats, rules: FileRules): void {
  if (!st.isFile()) throw new ConfigError('CONFIG_INVALID', `${rules.what} ${path} is not a regular file`);
  if (!mine(st.uid)) {
    throw new ConfigError('CONFIG_INVALID', `${path} belongs to another user (uid ${st.uid})`, {
      hint: rules.ownerHint ?? `a ${rules.what} must be yours: copy it, then chmod 600 the copy`,
    });
  }
  if ((st.mode & 0o022) !== 0) {
    throw new ConfigError('CONFIG_INVALID', `${path} is writable by others (mode ${octal(st)})`, {
      hint: `fix it with: chmod 600 ${path}`,
    });
  }
  if (rules.secret && othersCanRead(st)) {
    throw readableSecretError(path, st, rules.what);
  }
}

/** The directory holding `path` (after symlinks): ours or root's, not writable by others unless sticky. */
export async function checkDirectoryOf(path: string): Promise<void> {
  let dir: string;
  try {
    dir = dirname(await realpath(path));
  } catch {
    return; // gone since it was opened: the read fails on its own
  }
  const st = await stat(dir);
  if (!mine(st.uid)) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `${dir} (holding ${path}) belongs to another user (uid ${st.uid})`,
      {
        hint: 'keep the file in a directory of your own',
      },
    );
  }
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `${dir} is writable by group or others (mode ${octal(st)}), so ${path} could be replaced`,
      { hint: `fix it with: chmod go-w ${dir}` },
    );
  }
}

/**
 * Opens, checks and reads `path`; null when it does not exist. Other read errors are IO errors
 * naming the file.
 */
export async function readCheckedFile(path: string, rules: FileRules): Promise<CheckedFile | null> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    const stats = await fh.stat();
    checkFileStats(path, stats, rules);
    await checkDirectoryOf(path);
    if (rules.maxBytes !== undefined && stats.size > rules.maxBytes) {
      throw new ConfigError(
        'LIMIT_EXCEEDED',
        `${rules.what} ${path}: ${stats.size} bytes, at most ${rules.maxBytes}`,
      );
    }
    return { data: await fh.readFile(), stats };
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError('IO', `cannot read ${rules.what} ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    await fh?.close();
  }
}

/** keys.json (client keystore): ours, not writable by others; see refuseReadableSecretKeys. */
export const KEYSTORE_RULES: FileRules = {
  what: 'keystore',
  secret: false,
  ownerHint: 'a keystore must be yours: use your own --home',
};

/** A key file named by path (`--gpg-recv ./server.asc`, `--gpg-sign ./me.asc`). */
export const KEY_FILE_RULES: FileRules = { what: 'key file', secret: false, maxBytes: 1024 * 1024 };

/** Longest passphrase file read. */
export const PASSPHRASE_FILE_MAX_BYTES = 64 * 1024;

/**
 * A passphrase file (`spa --key-passphrase-file`, `spad --passphrase-file`, `spa-keys init|gen
 * --passphrase-file`): checked as a secret, its content minus one trailing newline; refuses an
 * empty one.
 */
export async function readPassphraseFile(path: string): Promise<string> {
  const f = await readCheckedFile(path, {
    what: 'passphrase file',
    secret: true,
    maxBytes: PASSPHRASE_FILE_MAX_BYTES,
  });
  if (f === null) {
    throw new ConfigError('IO', `cannot read passphrase file ${path}: no such file`);
  }
  const pass = f.data.toString('utf8').replace(/\r?\n$/, '');
  if (pass.length === 0) throw new ConfigError('USAGE', `passphrase file ${path} is empty`);
  return pass;
}

/**
 * A keystore that group or others can read is refused when it holds a secret key that is not
 * passphrase-protected (one that is protected is readable as GnuPG's own files are). Keys are
 * only parsed in that case, so the usual 0600 file costs nothing here.
 */
export async function refuseReadableSecretKeys(
  path: string,
  st: Stats,
  armoredSecretKeys: readonly string[],
): Promise<void> {
  if (!othersCanRead(st) || armoredSecretKeys.length === 0) return;
  const { pgp, pgpConfig } = await import('./inspect.js');
  const pg = await pgp();
  const config = await pgpConfig();
  for (const armoredKey of armoredSecretKeys) {
    let unencrypted: boolean;
    try {
      unencrypted = (await pg.readPrivateKey({ armoredKey, config })).isDecrypted();
    } catch {
      unencrypted = true; // cannot tell: treat it as the worse case
    }
    if (unencrypted) throw readableSecretError(path, st, 'keystore', 'holds an unencrypted secret key');
  }
}
