/**
 * The keys for `--gpg-home-dir` (gpg.ts), found by gpg in its home: read from `--with-colons
 * --fixed-list-mode` listings. Keys are named as for the keystore: fingerprint, long key id, or
 * user id text (gpg's own matching); short key ids are refused before gpg sees them. The server
 * key is never guessed: `--gpg-recv` (or a stanza's `gpg-recv`) is required; it may also be an
 * armored file (gpg `--recipient-file`) written as a path (with a `/` or `file:`,
 * keyring/lookup.ts `keyFilePath`): a bare word is never a file. The payload's server_fpr is the
 * server key's PRIMARY fingerprint.
 */
import { classifyQuery, fileNameHint, keyFilePath } from '../keyring/lookup.js';
import { ConfigError } from '../protocol/errors.js';
import { encryptionKeyIds } from './gpg-shape.js';
import { type GpgOptions, lastGpgLine, runGpg } from './gpg-run.js';

export interface GpgKey {
  /** Primary fingerprint, uppercase hex. */
  readonly fingerprint: string;
  readonly userIds: readonly string[];
  /** Field 12 of the pub/sec record: upper-case letters are the usable capabilities of the key. */
  readonly capabilities: string;
  /** Field 2: validity (r revoked, e expired, i invalid, d disabled, ...). */
  readonly validity: string;
  /** True when the primary record is `sec`. */
  readonly secret: boolean;
}

/** gpg's `--with-colons` user ids escape some bytes as \xNN. */
function unescapeColons(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

/**
 * A `uid` record the key's owner certified: not revoked, expired or invalid (field 2), and with a
 * self-signature date (field 6, empty when gpg found no valid self-signature, e.g. a user id
 * imported with --allow-non-selfsigned-uid). Others are never shown or used for a username.
 */
function certifiedUid(f: readonly string[]): boolean {
  return !['r', 'e', 'i'].includes(f[1] ?? '') && (f[5] ?? '') !== '';
}

/** Primary keys in `--with-colons --fixed-list-mode` output, with their first fpr and certified user ids. */
export function parseColons(text: string): GpgKey[] {
  const keys: {
    fingerprint: string;
    userIds: string[];
    capabilities: string;
    validity: string;
    secret: boolean;
  }[] = [];
  let cur: (typeof keys)[number] | null = null;
  let expectPrimaryFpr = false;
  for (const line of text.split(/\r?\n/)) {
    const f = line.split(':');
    const type = f[0];
    if (type === 'pub' || type === 'sec') {
      cur = {
        fingerprint: '',
        userIds: [],
        capabilities: f[11] ?? '',
        validity: f[1] ?? '',
        secret: type === 'sec',
      };
      keys.push(cur);
      expectPrimaryFpr = true;
    } else if (type === 'sub' || type === 'ssb') {
      expectPrimaryFpr = false;
    } else if (type === 'fpr' && cur && expectPrimaryFpr) {
      cur.fingerprint = (f[9] ?? '').toUpperCase();
      expectPrimaryFpr = false;
    } else if (type === 'uid' && cur && certifiedUid(f)) {
      cur.userIds.push(unescapeColons(f[9] ?? ''));
    }
  }
  return keys.filter((k) => /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/.test(k.fingerprint));
}

/** Keys in the gpg home matching `query` (all keys when undefined). */
export async function listGpgKeys(
  opts: GpgOptions,
  query: string | undefined,
  secret: boolean,
): Promise<GpgKey[]> {
  return parseColons(await listGpgColons(opts, query, secret));
}

/** The `--with-colons --fixed-list-mode` listing itself ('' when nothing matches `query`). */
async function listGpgColons(opts: GpgOptions, query: string | undefined, secret: boolean): Promise<string> {
  const args = ['--with-colons', '--fixed-list-mode', secret ? '--list-secret-keys' : '--list-keys'];
  if (query !== undefined) args.push('--', query);
  const r = await runGpg(opts, args);
  if (r.code !== 0) {
    if (/No (public|secret) key|not found/i.test(r.stderr) && query !== undefined) return '';
    throw new ConfigError('IO', `gpg --list-keys in ${opts.home} failed: ${lastGpgLine(r.stderr)}`, {
      hint: `check the gpg home: gpg --homedir ${opts.home} --list-keys`,
    });
  }
  return r.stdout.toString('utf8');
}

/**
 * What gpg is asked for: a fingerprint or long key id as normalised hex, user id text as typed.
 * Short key ids (8 hex) and v3 fingerprints (32 hex), which collide cheaply, are refused here,
 * before gpg (which accepts both) sees them.
 */
export function gpgQuery(query: string): string {
  const q = classifyQuery(query);
  if (q.kind === 'fingerprint') return q.fingerprint;
  if (q.kind === 'keyid') return q.keyId;
  const hex = query.trim().replace(/^0x/i, '').replace(/\s+/g, '');
  if (
    q.kind === 'shortid' ||
    (/^[0-9A-Fa-f]+$/.test(hex) && (hex.length === 32 || /^0x/i.test(query.trim())))
  ) {
    throw new ConfigError(
      'KEY_NOT_FOUND',
      `'${query.trim().slice(0, 80)}' looks like a short key id, which is not accepted`,
      {
        hint: 'use the full fingerprint or the 16-digit long key id (gpg --list-keys --keyid-format long)',
      },
    );
  }
  return query;
}

function describe(k: GpgKey): string {
  return `${k.fingerprint}  ${k.userIds[0] ?? ''}`.trimEnd();
}

function checkValidity(k: GpgKey, what: string): void {
  if (k.validity === 'r') throw new ConfigError('KEY_REVOKED', `${what} ${k.fingerprint} is revoked`);
  if (k.validity === 'e') throw new ConfigError('KEY_EXPIRED', `${what} ${k.fingerprint} has expired`);
  if (k.validity === 'i' || k.validity === 'd') {
    throw new ConfigError(
      'KEY_INVALID',
      `${what} ${k.fingerprint} is ${k.validity === 'i' ? 'invalid' : 'disabled'} in gpg`,
    );
  }
}

function one(
  matches: GpgKey[],
  query: string | undefined,
  what: string,
  home: string,
  emptyHint: string,
  flag: string,
): GpgKey {
  if (matches.length === 1 && matches[0]) return matches[0];
  if (matches.length === 0) {
    throw new ConfigError(
      'KEY_NOT_FOUND',
      query === undefined
        ? `no ${what} in the gpg home ${home}`
        : `no ${what} in the gpg home ${home} matches '${query.slice(0, 80)}'`,
      { hint: [query === undefined ? undefined : fileNameHint(query), emptyHint].filter(Boolean).join('\n') },
    );
  }
  const list = matches
    .slice(0, 10)
    .map((k) => `  ${describe(k)}`)
    .join('\n');
  throw new ConfigError(
    'KEY_AMBIGUOUS',
    query === undefined
      ? `${matches.length} candidate ${what}s in the gpg home ${home}; say which`
      : `'${query.slice(0, 80)}' matches ${matches.length} ${what}s in the gpg home; name one by fingerprint`,
    { hint: `use ${flag} FPR with one of:\n${list}` },
  );
}

export interface GpgRecipient {
  readonly fingerprint: string;
  readonly userIds: readonly string[];
  /** Key ids that may decrypt (gpg-shape.ts checks the knock names these and no other). */
  readonly keyIds: ReadonlySet<string>;
  /** How gpg is told to encrypt to it. */
  readonly args: readonly string[];
}

/** The server key: in the gpg home, or an armored file. */
export async function gpgServerKey(opts: GpgOptions, query: string | undefined): Promise<GpgRecipient> {
  const file = query === undefined ? null : keyFilePath(query);
  if (file !== null) {
    // gpg reads the file itself: check it first, as the keystore checks key files
    const { KEY_FILE_RULES, readCheckedFile } = await import('../keyring/file-safety.js');
    if ((await readCheckedFile(file, KEY_FILE_RULES)) === null) {
      throw new ConfigError('KEY_NOT_FOUND', `cannot read key file ${file}: no such file`);
    }
    const r = await runGpg(opts, ['--with-colons', '--fixed-list-mode', '--show-keys', '--', file]);
    const colons = r.code === 0 ? r.stdout.toString('utf8') : '';
    const keys = parseColons(colons);
    if (keys.length !== 1 || !keys[0]) {
      throw new ConfigError(
        'KEY_INVALID',
        keys.length > 1
          ? `${file} holds ${keys.length} keys; expected one`
          : `${file}: no OpenPGP key found (${lastGpgLine(r.stderr)})`,
      );
    }
    const k = keys[0];
    if (!k.capabilities.includes('E')) {
      throw new ConfigError(
        'KEY_INVALID',
        `server key ${k.fingerprint} in ${file} has no usable encryption key`,
      );
    }
    return {
      fingerprint: k.fingerprint,
      userIds: k.userIds,
      keyIds: encryptionKeyIds(colons, k.fingerprint),
      args: ['--recipient-file', file],
    };
  }
  if (query === undefined) throw await noServerKeyNamed(opts);
  const colons = await listGpgColons(opts, gpgQuery(query), false);
  const k = one(
    parseColons(colons),
    query,
    'server key',
    opts.home,
    `import the server's public key: gpg --homedir ${opts.home} --import server.asc, or give --gpg-recv FILE.asc`,
    '--gpg-recv',
  );
  checkValidity(k, 'server key');
  if (!k.capabilities.includes('E')) {
    throw new ConfigError('KEY_INVALID', `server key ${k.fingerprint} has no usable encryption key`);
  }
  return {
    fingerprint: k.fingerprint,
    userIds: k.userIds,
    keyIds: encryptionKeyIds(colons, k.fingerprint),
    args: ['--recipient', k.fingerprint],
  };
}

/**
 * The server key is never guessed (say, as the only public key without a secret: in a personal
 * keyring that is a friend's key). The error lists the keys that could be meant.
 */
async function noServerKeyNamed(opts: GpgOptions): Promise<ConfigError> {
  let list = '';
  try {
    const own = new Set((await listGpgKeys(opts, undefined, true)).map((k) => k.fingerprint));
    const cands = (await listGpgKeys(opts, undefined, false)).filter(
      (k) => !own.has(k.fingerprint) && k.capabilities.includes('E') && !/[reid]/.test(k.validity),
    );
    list = cands
      .slice(0, 10)
      .map((k) => `\n  ${describe(k)}`)
      .join('');
  } catch {
    list = '';
  }
  return new ConfigError('USAGE', '--gpg-home-dir needs --gpg-recv: say which server key to encrypt to', {
    field: '--gpg-recv',
    hint:
      `give its fingerprint: --gpg-recv FPR, or save it once: spa -n NAME --save-rc-stanza --gpg-recv FPR ...` +
      (list === '' ? '' : `\nkeys in the gpg home without a secret:${list}`),
  });
}

/** The signing key: a secret key (or card stub) in the gpg home. */
export async function gpgSignerKey(opts: GpgOptions, query: string | undefined): Promise<GpgKey> {
  if (query !== undefined && keyFilePath(query) !== null) {
    throw new ConfigError(
      'USAGE',
      `--gpg-sign: with --gpg-home-dir, the signing key must be in the gpg home, not a file`,
      {
        hint: `import it: gpg --homedir ${opts.home} --import ${query}`,
      },
    );
  }
  let keys = await listGpgKeys(opts, query === undefined ? undefined : gpgQuery(query), true);
  if (query === undefined)
    keys = keys.filter((k) => k.capabilities.includes('S') && !/[rei]/.test(k.validity));
  const k = one(
    keys,
    query,
    'secret signing key',
    opts.home,
    `create one (gpg --homedir ${opts.home} --quick-gen-key 'Name <you@example.org>' future-default) or import it`,
    '--gpg-sign',
  );
  checkValidity(k, 'signing key');
  if (!k.capabilities.includes('S')) {
    throw new ConfigError('KEY_INVALID', `key ${k.fingerprint} has no usable signing key`);
  }
  return k;
}
