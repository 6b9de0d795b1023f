/**
 * The client side: `<home>/keys.json` (home default ~/.spa, 0700; file 0600) holding one's own
 * key pairs and the public keys of the servers one knocks on. It is refused when another user
 * owns it, when others can write it or its directory, and when others can read it while it holds
 * an unencrypted secret key (file-safety.ts).
 *
 *   { version: 1, own: { <FPR>: OwnKeyRecord }, servers: { <FPR>: ServerKeyRecord } }
 *
 * Own secret keys are stored as armored; a passphrase-protected one stays encrypted (the client
 * asks for the passphrase at knock time). Lookups accept a full fingerprint, a long key id
 * (primary or subkey), a name, a user id substring, or the path of an armored key file (read and
 * parsed, not stored) when written as a path: with a `/` or a `file:` prefix (lookup.ts
 * `keyFilePath`); a bare word is never read from the current directory.
 */
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import { ConfigError } from '../protocol/errors.js';
import {
  KEY_FILE_RULES,
  KEYSTORE_RULES,
  othersCanRead,
  readableSecretError,
  readCheckedFile,
  refuseReadableSecretKeys,
} from './file-safety.js';
import { generateKeyPair, type KeyType } from './generate.js';
import { checkUsable, describeKey, type KeyInfo, parseKey, pgp, pgpConfig } from './inspect.js';
import { keyFilePath, resolveAmong } from './lookup.js';
import { minimalKey } from './minimize.js';
import { usernameFromUserId } from './policy.js';
import {
  FILE_VERSION,
  type KeystoreFile,
  keystoreFileSchema,
  type OwnKeyRecord,
  type ServerKeyRecord,
} from './schema.js';
import { parseStoreText, updateStore } from './store.js';

export const KEYSTORE_FILE = 'keys.json';

export function resolveHome(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? (env.SPA_HOME || join(homedir(), '.spa'));
}
export const keystorePath = (home: string) => join(home, KEYSTORE_FILE);

export interface Keystore {
  readonly path: string;
  readonly own: ReadonlyMap<string, OwnKeyRecord>;
  readonly servers: ReadonlyMap<string, ServerKeyRecord>;
}

const emptyKeystore = (): KeystoreFile => ({ version: FILE_VERSION, own: {}, servers: {} });

/** Reads and validates the keystore; an absent file is an empty keystore. */
export async function openKeystore(home: string): Promise<Keystore> {
  const path = keystorePath(home);
  const checked = await readCheckedFile(path, KEYSTORE_RULES);
  const f = checked
    ? parseStoreText(checked.data.toString('utf8'), keystoreFileSchema, path)
    : emptyKeystore();
  if (checked) {
    await refuseReadableSecretKeys(
      path,
      checked.stats,
      Object.values(f.own).map((r) => r.secretKey),
    );
  }
  return {
    path,
    own: new Map(Object.entries(f.own)),
    servers: new Map(Object.entries(f.servers)),
  };
}

async function updateKeystore<R>(home: string, fn: (f: KeystoreFile) => R | Promise<R>): Promise<R> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  // what someone else could have written is not built upon (the write itself makes the file 0600)
  await readCheckedFile(keystorePath(home), KEYSTORE_RULES);
  return updateStore(keystorePath(home), keystoreFileSchema, 0o600, fn, { empty: emptyKeystore });
}

export interface GenOptions {
  username: string;
  type?: KeyType;
  passphrase?: string | undefined;
  now?: Date;
}

/** Generates and stores an own key pair; returns the record and the armored public key. */
export async function generateOwnKey(
  home: string,
  opts: GenOptions,
): Promise<{ record: OwnKeyRecord; publicKeyArmored: string }> {
  const now = opts.now ?? new Date();
  const gen = await generateKeyPair({
    type: opts.type ?? 'curve25519',
    userId: { name: opts.username, comment: 'spa' },
    passphrase: opts.passphrase,
  });
  const info = await describeKey(await parseKey(gen.publicKeyArmored), now);
  const record: OwnKeyRecord = {
    fingerprint: gen.fingerprint,
    username: opts.username,
    secretKey: gen.privateKeyArmored,
    publicKey: gen.publicKeyArmored,
    userIds: [...info.userIds],
    createdAt: now.toISOString(),
  };
  await updateKeystore(home, (f) => {
    f.own[record.fingerprint] = record;
  });
  return { record, publicKeyArmored: gen.publicKeyArmored };
}

export type ImportResult =
  | { kind: 'own'; record: OwnKeyRecord; info: KeyInfo; usernameDerived: boolean }
  | { kind: 'server'; record: ServerKeyRecord; info: KeyInfo };

export interface ImportOptions {
  /** Username for an own (secret) key; default: derived from the user id's e-mail local part. */
  username?: string | undefined;
  /** Display name for a server key. */
  name?: string | undefined;
  now?: Date;
}

/**
 * Imports a server public key (must be able to encrypt) or one's own secret key (must be able to
 * sign; stays passphrase-protected if it is). EXISTS when already there.
 */
export async function importKey(
  home: string,
  input: string | Uint8Array,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const now = opts.now ?? new Date();
  const key = await minimalKey(await parseKey(input), now);
  const info = await describeKey(key, now);
  if (info.isPrivate) {
    checkUsable(info, 'client');
    const derived = usernameFromUserId(info.userIds[0]);
    const username = opts.username ?? derived;
    if (!username) {
      throw new ConfigError('USAGE', `cannot derive a username from the user id '${info.userIds[0] ?? ''}'`, {
        hint: 'give one: spa-keys import FILE --user NAME',
      });
    }
    const record: OwnKeyRecord = {
      fingerprint: info.fingerprint,
      username,
      secretKey: key.armor(),
      publicKey: key.toPublic().armor(),
      userIds: [...info.userIds],
      createdAt: now.toISOString(),
    };
    await updateKeystore(home, (f) => {
      if (f.own[record.fingerprint]) {
        throw new ConfigError('EXISTS', `own key ${record.fingerprint} is already imported`, {
          hint: 'see it with: spa-keys list --client',
        });
      }
      f.own[record.fingerprint] = record;
    });
    return { kind: 'own', record, info, usernameDerived: opts.username === undefined };
  }
  try {
    checkUsable(info, 'server');
  } catch (e) {
    if (e instanceof ConfigError && !info.canEncrypt && e.code === 'KEY_INVALID') {
      throw new ConfigError('KEY_INVALID', `${e.message}, so it cannot be a server key`, {
        hint: 'spa-keys import takes a server public key, or your own SECRET key (gpg --armor --export-secret-keys)',
      });
    }
    throw e;
  }
  const record: ServerKeyRecord = {
    fingerprint: info.fingerprint,
    ...(opts.name ? { name: opts.name } : {}),
    publicKey: key.armor(),
    userIds: [...info.userIds],
    addedAt: now.toISOString(),
  };
  await updateKeystore(home, (f) => {
    if (f.servers[record.fingerprint]) {
      throw new ConfigError('EXISTS', `server key ${record.fingerprint} is already imported`, {
        hint: 'see it with: spa-keys list --client',
      });
    }
    f.servers[record.fingerprint] = record;
  });
  return { kind: 'server', record, info };
}

/**
 * A key file named by path: checked as keys.json is (ours, not writable by others, nor its
 * directory), and refused when others can read it while it holds an unencrypted secret key.
 */
async function readKeyFile(p: string): Promise<openpgp.Key> {
  const f = await readCheckedFile(p, KEY_FILE_RULES);
  if (f === null) throw new ConfigError('KEY_NOT_FOUND', `cannot read key file ${p}: no such file`);
  const key = await parseKey(new Uint8Array(f.data));
  if (othersCanRead(f.stats) && key.isPrivate() && key.isDecrypted()) {
    throw readableSecretError(p, f.stats, 'key file', 'holds an unencrypted secret key');
  }
  return minimalKey(key, new Date(), p);
}

/**
 * One's own key: the only one when `query` is absent, else by fingerprint, long key id,
 * username, user id substring, or armored file path. The key may still be passphrase-protected
 * (`key.isDecrypted()`); the caller decrypts it.
 */
export async function resolveOwnKey(
  home: string,
  query?: string,
): Promise<{ record: OwnKeyRecord; key: openpgp.PrivateKey }> {
  const pg = await pgp();
  const ks = await openKeystore(home);
  const items = [...ks.own.values()];
  const file = query === undefined ? null : keyFilePath(query);
  if (file !== null) return ownFromFile(file);
  const emptyHint = `no own key in ${ks.path}; make one with: spa-keys gen --user NAME, or import one with: spa-keys import FILE`;
  let record: OwnKeyRecord;
  if (query === undefined) {
    if (items.length === 0) throw new ConfigError('KEY_NOT_FOUND', 'no own key', { hint: emptyHint });
    if (items.length > 1) {
      return resolveOwnKeyAmbiguous(items);
    }
    record = items[0] as OwnKeyRecord;
  } else {
    record = await resolveAmong(items, query, (r) => [r.username], 'own key', emptyHint);
  }
  const key = await pg.readPrivateKey({ armoredKey: record.secretKey, config: await pgpConfig() });
  return { record, key };
}

function resolveOwnKeyAmbiguous(items: OwnKeyRecord[]): never {
  const lines = items.map((r) => `  ${r.fingerprint}  ${r.username}  ${r.userIds[0] ?? ''}`.trimEnd());
  throw new ConfigError('KEY_AMBIGUOUS', `${items.length} own keys are stored; say which to use`, {
    hint: `use --gpg-sign FPR with one of:\n${lines.join('\n')}`,
  });
}

async function ownFromFile(path: string): Promise<{ record: OwnKeyRecord; key: openpgp.PrivateKey }> {
  const key = await readKeyFile(path);
  if (!key.isPrivate()) {
    throw new ConfigError('KEY_INVALID', `${path} holds a public key; signing needs your secret key`);
  }
  const info = await describeKey(key);
  checkUsable(info, 'client');
  const record: OwnKeyRecord = {
    fingerprint: info.fingerprint,
    username: usernameFromUserId(info.userIds[0]) ?? '',
    secretKey: key.armor(),
    publicKey: key.toPublic().armor(),
    userIds: [...info.userIds],
    createdAt: info.createdAt,
  };
  return { record, key };
}

/**
 * A server's public key by fingerprint, long key id (primary or subkey), name, user id
 * substring, or armored file path (read, checked, not stored).
 */
export async function resolveServerKey(
  home: string,
  query: string,
): Promise<{ record: ServerKeyRecord; key: openpgp.PublicKey }> {
  const pg = await pgp();
  const file = keyFilePath(query);
  if (file !== null) {
    const key = await readKeyFile(file);
    const info = await describeKey(key);
    checkUsable(info, 'server');
    const pub = key.isPrivate() ? key.toPublic() : (key as openpgp.PublicKey);
    const record: ServerKeyRecord = {
      fingerprint: info.fingerprint,
      publicKey: pub.armor(),
      userIds: [...info.userIds],
      addedAt: info.createdAt,
    };
    return { record, key: pub };
  }
  const ks = await openKeystore(home);
  const items = [...ks.servers.values()];
  const record = await resolveAmong(
    items,
    query,
    (r) => (r.name ? [r.name] : []),
    'server key',
    `no server key in ${ks.path}; import the server's public key with: spa-keys import server.asc`,
  );
  const key = await pg.readKey({ armoredKey: record.publicKey, config: await pgpConfig() });
  return { record, key: key as openpgp.PublicKey };
}
