/**
 * The server side: state directory layout, `init`, the allowlist of enrolled keys, and the calls
 * the daemon makes at start and reload.
 *
 * State dir (default /etc/spa, 0700):
 *   server.key          armored private key, 0600, created exclusively (optionally passphrase-protected)
 *   server.asc          armored public key, 0644: what users import
 *   keyring.json        the allowlist, 0600, `{ version: 1, keys: { <FPR>: KeyRecord } }`
 *   keyring.json.lock   held while a writer updates keyring.json
 *
 * Load trust once, verify many: `loadAllowlist` validates the whole file and builds immutable maps
 * (record by fingerprint, record by every signing fingerprint) without parsing any key, so start
 * is fast with 10,000 keys and a signer lookup is one map access. Keys are parsed on first use by
 * `publicKeyOf`, reduced to their minimal form (minimize.ts) and cached by fingerprint and
 * armored text. Writers replace the file by rename, so a
 * daemon watching the directory sees each change whole (watch the directory, not the file: the
 * inode changes on every write).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import { ConfigError } from '../protocol/errors.js';
import { writeFileExclusive } from './atomic.js';
import { type GeneratedKey, generateKeyPair, type KeyType } from './generate.js';
import { type KeyInfo, pgp, pgpConfig } from './inspect.js';
import { type Candidate, matchQuery, notFound, pickOne } from './lookup.js';
import { type AllowlistFile, allowlistFileSchema, FILE_VERSION, type KeyRecord } from './schema.js';
import { parseStoreText, updateStore } from './store.js';

export const DEFAULT_STATE_DIR = '/etc/spa';
export const ALLOWLIST_FILE = 'keyring.json';
export const SERVER_KEY_FILE = 'server.key';
export const SERVER_PUBLIC_FILE = 'server.asc';

export function resolveStateDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? (env.SPA_STATE_DIR || DEFAULT_STATE_DIR);
}
export const allowlistPath = (stateDir: string) => join(stateDir, ALLOWLIST_FILE);
export const serverKeyPath = (stateDir: string) => join(stateDir, SERVER_KEY_FILE);
export const serverPublicKeyPath = (stateDir: string) => join(stateDir, SERVER_PUBLIC_FILE);

export interface Allowlist {
  readonly records: ReadonlyMap<string, KeyRecord>;
  /** Every signing fingerprint (primary and signing subkeys) to its record. */
  readonly bySigner: ReadonlyMap<string, KeyRecord>;
}

function notInitialised(stateDir: string): ConfigError {
  return new ConfigError('NOT_FOUND', `no allowlist in ${stateDir} (${ALLOWLIST_FILE} is missing)`, {
    hint: `create it with: spa-keys init --state-dir ${stateDir}`,
  });
}

/** Reads and validates keyring.json (no lock: writers replace it atomically). */
export async function readAllowlistFile(stateDir: string): Promise<AllowlistFile> {
  const path = allowlistPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notInitialised(stateDir);
    throw e;
  }
  return parseStoreText(text, allowlistFileSchema, path);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/**
 * The allowlist as immutable maps. Throws KEYRING_CORRUPT naming the field path for a bad file,
 * NOT_FOUND when the state dir was never initialised.
 */
export async function loadAllowlist(stateDir: string): Promise<Allowlist> {
  const file = await readAllowlistFile(stateDir);
  const records = new Map<string, KeyRecord>();
  const bySigner = new Map<string, KeyRecord>();
  for (const r of Object.values(file.keys)) {
    deepFreeze(r);
    records.set(r.fingerprint, r);
    for (const s of r.signingFingerprints) bySigner.set(s, r);
  }
  return { records, bySigner };
}

const keyCache = new Map<string, { key: Promise<openpgp.PublicKey>; failedAt?: number }>();
const KEY_CACHE_MAX = 20_000;
/** A record whose key was refused is tried again after this long (its text does not change). */
const KEY_RETRY_MS = 60_000;

/**
 * The record's public key in minimal form (minimize.ts), parsed once per fingerprint + armored
 * text. The daemon never holds more than that: a stored key over KEY_LIMITS (hand-edited, or
 * written before enrollment checked) is refused with KEY_INVALID, and the refusal is
 * remembered for KEY_RETRY_MS, so datagrams naming it cost a map lookup, not a parse.
 */
export function publicKeyOf(record: KeyRecord, now: () => number = Date.now): Promise<openpgp.PublicKey> {
  const id = `${record.fingerprint}:${createHash('sha256').update(record.publicKey).digest('hex')}`;
  const hit = keyCache.get(id);
  if (hit && (hit.failedAt === undefined || now() - hit.failedAt < KEY_RETRY_MS)) return hit.key;
  const entry: { key: Promise<openpgp.PublicKey>; failedAt?: number } = {
    key: (async () => {
      const pg = await pgp();
      const where = `keys.${record.fingerprint}.publicKey`;
      const key = await pg.readKey({ armoredKey: record.publicKey, config: await pgpConfig() });
      if (key.isPrivate()) {
        throw new ConfigError('KEYRING_CORRUPT', `${where} holds a secret key`);
      }
      if (key.getFingerprint().toUpperCase() !== record.fingerprint) {
        throw new ConfigError(
          'KEYRING_CORRUPT',
          `${where}: the armored key has fingerprint ${key.getFingerprint().toUpperCase()}`,
        );
      }
      const { minimalKey } = await import('./minimize.js');
      return minimalKey(key as openpgp.PublicKey, new Date(now()), where);
    })(),
  };
  entry.key.catch(() => {
    entry.failedAt = now();
  });
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(id, entry);
  return entry.key;
}

export interface InitOptions {
  type?: KeyType;
  passphrase?: string | undefined;
  /** User id of the server key; default `spa server <hostname>`. */
  name?: string;
}

export interface InitResult {
  readonly fingerprint: string;
  readonly publicKeyPath: string;
  readonly privateKeyPath: string;
  readonly allowlistPath: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Creates the state dir (0700), the server key pair and an empty allowlist. Never overwrites. */
export async function initServer(stateDir: string, opts: InitOptions = {}): Promise<InitResult> {
  const paths = [serverKeyPath(stateDir), serverPublicKeyPath(stateDir), allowlistPath(stateDir)];
  for (const p of paths) {
    if (await exists(p)) {
      throw new ConfigError('EXISTS', `${p} already exists; refusing to overwrite`, {
        hint: 'the server is already initialised; export its public key with: spa-keys export-server',
      });
    }
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const { hostname } = await import('node:os');
  const gen: GeneratedKey = await generateKeyPair({
    type: opts.type ?? 'curve25519',
    userId: { name: opts.name ?? `spa server ${hostname()}` },
    passphrase: opts.passphrase,
  });
  const [keyPath, pubPath, listPath] = paths as [string, string, string];
  await writeFileExclusive(keyPath, gen.privateKeyArmored, 0o600);
  await writeFileExclusive(pubPath, gen.publicKeyArmored, 0o644);
  const empty: AllowlistFile = { version: FILE_VERSION, keys: {} };
  await writeFileExclusive(listPath, `${JSON.stringify(empty, null, 2)}\n`, 0o600);
  return {
    fingerprint: gen.fingerprint,
    publicKeyPath: pubPath,
    privateKeyPath: keyPath,
    allowlistPath: listPath,
  };
}

/** The server's private key, decrypted. KEY_PASSPHRASE when a passphrase is needed or wrong. */
export async function loadServerKey(stateDir: string, passphrase?: string): Promise<openpgp.PrivateKey> {
  const pg = await pgp();
  const path = serverKeyPath(stateDir);
  let armored: string;
  try {
    armored = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError('NOT_FOUND', `no server key at ${path}`, {
        hint: `create it with: spa-keys init --state-dir ${stateDir}`,
      });
    }
    throw e;
  }
  let key: openpgp.PrivateKey;
  try {
    key = await pg.readPrivateKey({ armoredKey: armored, config: await pgpConfig() });
  } catch (e) {
    throw new ConfigError('KEY_INVALID', `${path}: not a private key (${(e as Error).message})`, {
      cause: e,
    });
  }
  if (key.isDecrypted()) return key;
  if (passphrase === undefined) {
    throw new ConfigError('KEY_PASSPHRASE', `${path} is passphrase-protected`, {
      hint: 'give the passphrase (spad --passphrase-file F)',
    });
  }
  try {
    return await pg.decryptKey({ privateKey: key, passphrase, config: await pgpConfig() });
  } catch (e) {
    throw new ConfigError('KEY_PASSPHRASE', `cannot decrypt ${path}: wrong passphrase?`, { cause: e });
  }
}

export interface NewRecordPolicy {
  username: string;
  sources: 'any' | string[];
  openPorts: string[];
  requireSourceAddress: boolean;
  defaultTimeout: number;
  maxTimeout: number;
  expiresAt: string | null;
  command: KeyRecord['command'];
  /** undefined: not enrolled for fwknop knocks (the default). */
  fwknop?: KeyRecord['fwknop'];
  forward?: string[];
  reply?: boolean;
}

/** A record for a key described by `inspectKey`, with `publicKey` the armored public key. */
export function buildRecord(info: KeyInfo, publicKey: string, policy: NewRecordPolicy, now: Date): KeyRecord {
  return {
    fingerprint: info.fingerprint,
    username: policy.username,
    publicKey,
    signingFingerprints: [...info.signingFingerprints],
    userIds: [...info.userIds],
    algorithm: info.algorithm,
    createdAt: now.toISOString(),
    enabled: true,
    expiresAt: policy.expiresAt,
    sources: policy.sources === 'any' ? 'any' : [...policy.sources],
    openPorts: [...policy.openPorts],
    requireSourceAddress: policy.requireSourceAddress,
    defaultTimeout: policy.defaultTimeout,
    maxTimeout: policy.maxTimeout,
    command: policy.command,
    ...(policy.fwknop ? { fwknop: { ...policy.fwknop } } : {}),
    ...(policy.forward && policy.forward.length > 0 ? { forward: [...policy.forward] } : {}),
    ...(policy.reply === true ? { reply: true } : {}),
  };
}

function update<R>(stateDir: string, fn: (f: AllowlistFile) => R | Promise<R>): Promise<R> {
  return updateStore(allowlistPath(stateDir), allowlistFileSchema, 0o600, fn, {
    missing: () => notInitialised(stateDir),
  });
}

export function existsError(r: KeyRecord): ConfigError {
  return new ConfigError('EXISTS', `key ${r.fingerprint} is already enrolled for ${r.username}`, {
    hint: `see it with: spa-keys show ${r.fingerprint}\nto change it, remove it first: spa-keys remove ${r.fingerprint}`,
  });
}

/** Adds a record; EXISTS when the key (or one of its signing keys) is already enrolled. */
export async function addRecord(stateDir: string, record: KeyRecord): Promise<void> {
  await update(stateDir, (f) => {
    const same = f.keys[record.fingerprint];
    if (same) throw existsError(same);
    for (const r of Object.values(f.keys)) {
      const shared = r.signingFingerprints.find((s) => record.signingFingerprints.includes(s));
      if (shared) {
        throw new ConfigError('EXISTS', `signing key ${shared} is already enrolled under ${r.fingerprint}`, {
          hint: `remove that record first: spa-keys remove ${r.fingerprint}`,
        });
      }
    }
    f.keys[record.fingerprint] = record;
  });
}

export function recordCandidate(r: KeyRecord): Candidate {
  return {
    fingerprint: r.fingerprint,
    subkeyFingerprints: r.signingFingerprints,
    names: [r.username],
    userIds: r.userIds,
  };
}

const EMPTY_HINT = 'no keys are enrolled yet; add one with: spa-keys add';

/** Records matching a fingerprint, long key id or username (never a user id substring). */
export function findRecords(file: AllowlistFile, query: string): KeyRecord[] {
  return matchQuery(Object.values(file.keys), query, recordCandidate, { userIdSubstring: false });
}

export function findOneRecord(file: AllowlistFile, query: string): KeyRecord {
  return pickOne(Object.values(file.keys), query, recordCandidate, {
    what: 'enrolled key',
    userIdSubstring: false,
    emptyHint: EMPTY_HINT,
  });
}

/**
 * Enables or disables every record matching `query` (a username with several keys: all of them,
 * which is what an admin wants when a person leaves). Returns the records changed or matched.
 */
export async function setEnabled(stateDir: string, query: string, enabled: boolean): Promise<KeyRecord[]> {
  return update(stateDir, (f) => {
    const matches = findRecords(f, query);
    if (matches.length === 0) {
      throw notFound(query, 'enrolled key', Object.values(f.keys).map(recordCandidate), EMPTY_HINT);
    }
    for (const m of matches) {
      const r = f.keys[m.fingerprint];
      if (r) r.enabled = enabled;
    }
    return matches.map((m) => ({ ...m, enabled }));
  });
}

/** Removes exactly one record, by its fingerprint. */
export async function removeRecord(stateDir: string, fingerprint: string): Promise<KeyRecord> {
  return update(stateDir, (f) => {
    const r = f.keys[fingerprint];
    if (!r) {
      throw notFound(fingerprint, 'enrolled key', Object.values(f.keys).map(recordCandidate), EMPTY_HINT);
    }
    delete f.keys[fingerprint];
    return r;
  });
}
