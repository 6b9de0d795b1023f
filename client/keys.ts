/**
 * The client's keys for one knock: its own signing key and the server's public key, found in the
 * keystore (`<home>/keys.json`, written by `spa-keys`) with the same lookup rules and messages as
 * keyring/keystore.ts (full fingerprint, long key id, name, user id substring, or an armored file
 * when the argument is written as a path: keyring/lookup.ts `keyFilePath`).
 *
 * Why not just call keyring/keystore.ts: that module validates the whole file with zod, whose
 * import alone costs about 110 ms, a third of the client's time budget for a knock. Here the file
 * is read with a few structural checks; anything odd (and any query written as a file path) is
 * handed to keyring/keystore.ts, which gives the precise error or does the file reading. The
 * matching itself is keyring/lookup.ts's, shared.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import { KEYSTORE_RULES, readCheckedFile, refuseReadableSecretKeys } from '../keyring/file-safety.js';
import { pgp, pgpConfig } from '../keyring/inspect.js';
import { keyFilePath, resolveAmong } from '../keyring/lookup.js';
import { ConfigError } from '../protocol/errors.js';
import { USERNAME_RE } from '../protocol/limits.js';

export const KEYSTORE_FILE = 'keys.json';

/** `--home`, else $SPA_HOME, else ~/.spa (as keyring/keystore.ts resolveHome). */
export function resolveHome(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? (env.SPA_HOME || join(homedir(), '.spa'));
}

export interface OwnKey {
  readonly fingerprint: string;
  /** '' when the key came from a file and no username could be derived. */
  readonly username: string;
  readonly userIds: readonly string[];
  /** Possibly still passphrase-protected. */
  readonly key: openpgp.PrivateKey;
}

export interface ServerKey {
  readonly fingerprint: string;
  readonly userIds: readonly string[];
  readonly key: openpgp.PublicKey;
}

export interface OwnRec {
  fingerprint: string;
  username: string;
  secretKey: string;
  publicKey: string;
  userIds: string[];
}
export interface ServerRec {
  fingerprint: string;
  name?: string | undefined;
  publicKey: string;
  userIds: string[];
}
interface Store {
  path: string;
  own: OwnRec[];
  servers: ServerRec[];
}

const FPR_RE = /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/;

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
function isArmored(x: unknown, kind: 'PUBLIC' | 'PRIVATE'): x is string {
  return typeof x === 'string' && x.trimStart().startsWith(`-----BEGIN PGP ${kind} KEY BLOCK-----`);
}
function isStrings(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((s) => typeof s === 'string');
}

/** The records if the file has the expected shape, else null (then keystore.ts judges it). */
function quickShape(json: unknown): { own: OwnRec[]; servers: ServerRec[] } | null {
  if (!isObj(json) || json.version !== 1 || !isObj(json.own) || !isObj(json.servers)) return null;
  const own: OwnRec[] = [];
  for (const [k, r] of Object.entries(json.own)) {
    if (!isObj(r) || r.fingerprint !== k || !FPR_RE.test(k)) return null;
    if (typeof r.username !== 'string' || !USERNAME_RE.test(r.username)) return null;
    if (!isArmored(r.secretKey, 'PRIVATE') || !isArmored(r.publicKey, 'PUBLIC') || !isStrings(r.userIds))
      return null;
    own.push({
      fingerprint: k,
      username: r.username,
      secretKey: r.secretKey,
      publicKey: r.publicKey,
      userIds: r.userIds,
    });
  }
  const servers: ServerRec[] = [];
  for (const [k, r] of Object.entries(json.servers)) {
    if (!isObj(r) || r.fingerprint !== k || !FPR_RE.test(k)) return null;
    if (r.name !== undefined && typeof r.name !== 'string') return null;
    if (!isArmored(r.publicKey, 'PUBLIC') || !isStrings(r.userIds)) return null;
    servers.push({ fingerprint: k, name: r.name, publicKey: r.publicKey, userIds: r.userIds });
  }
  return { own, servers };
}

async function readStoreFast(home: string): Promise<Store> {
  const path = join(home, KEYSTORE_FILE);
  const checked = await readCheckedFile(path, KEYSTORE_RULES);
  if (checked === null) return { path, own: [], servers: [] };
  let json: unknown;
  try {
    json = JSON.parse(checked.data.toString('utf8'));
  } catch {
    json = undefined;
  }
  const quick = quickShape(json);
  if (quick) {
    await refuseReadableSecretKeys(
      path,
      checked.stats,
      quick.own.map((r) => r.secretKey),
    );
    return { path, ...quick };
  }
  // Not what spa-keys writes: let the full validator name the problem (it throws KEYRING_CORRUPT).
  const ks = await (await import('../keyring/keystore.js')).openKeystore(home);
  return {
    path,
    own: [...ks.own.values()].map((r) => ({ ...r })),
    servers: [...ks.servers.values()].map((r) => ({ ...r })),
  };
}

function listing(lines: string[]): string {
  return lines.map((l) => `  ${l}`.trimEnd()).join('\n');
}

/**
 * The keystore record of one's own key (see findOwnKey), without parsing the key. Not for a
 * query written as a file path (findOwnKey hands those to keyring/keystore.ts).
 */
export async function findOwnRecord(
  home: string,
  query?: string,
): Promise<{ store: { path: string }; rec: OwnRec }> {
  const store = await readStoreFast(home);
  const emptyHint = `no own key in ${store.path}; make one with: spa-keys gen --user NAME, or import one with: spa-keys import FILE`;
  let rec: OwnRec;
  if (query === undefined) {
    if (store.own.length === 0) throw new ConfigError('KEY_NOT_FOUND', 'no own key', { hint: emptyHint });
    if (store.own.length > 1) {
      throw new ConfigError('KEY_AMBIGUOUS', `${store.own.length} own keys are stored; say which to use`, {
        hint: `use --gpg-sign FPR with one of:\n${listing(store.own.map((r) => `${r.fingerprint}  ${r.username}  ${r.userIds[0] ?? ''}`))}`,
      });
    }
    rec = store.own[0] as OwnRec;
  } else {
    rec = await resolveAmong(store.own, query, (r) => [r.username], 'own key', emptyHint);
  }
  return { store, rec };
}

/** The keystore record of the server key (see findServerKey), without parsing the key. */
export async function findServerRecord(
  home: string,
  query?: string,
): Promise<{ store: { path: string }; rec: ServerRec }> {
  const store = await readStoreFast(home);
  const emptyHint = `no server key in ${store.path}; import the server's public key with: spa-keys import server.asc`;
  let rec: ServerRec;
  if (query === undefined) {
    if (store.servers.length === 0)
      throw new ConfigError('KEY_NOT_FOUND', 'no server key', { hint: emptyHint });
    if (store.servers.length > 1) {
      throw new ConfigError(
        'KEY_AMBIGUOUS',
        `${store.servers.length} server keys are stored; say which server to knock on`,
        {
          hint: `use --gpg-recv FPR (or a name) with one of:\n${listing(store.servers.map((r) => `${r.fingerprint}  ${r.name ?? ''}  ${r.userIds[0] ?? ''}`))}`,
        },
      );
    }
    rec = store.servers[0] as ServerRec;
  } else {
    rec = await resolveAmong(store.servers, query, (r) => (r.name ? [r.name] : []), 'server key', emptyHint);
  }
  return { store, rec };
}

/** One's own key: the only one when `query` is absent, else the one `query` names. */
export async function findOwnKey(home: string, query?: string): Promise<OwnKey> {
  if (query !== undefined && keyFilePath(query) !== null) {
    const r = await (await import('../keyring/keystore.js')).resolveOwnKey(home, query);
    return {
      fingerprint: r.record.fingerprint,
      username: r.record.username,
      userIds: r.record.userIds,
      key: r.key,
    };
  }
  const pg = await pgp();
  const { store, rec } = await findOwnRecord(home, query);
  let key: openpgp.PrivateKey;
  try {
    key = await pg.readPrivateKey({ armoredKey: rec.secretKey, config: await pgpConfig() });
  } catch (e) {
    throw new ConfigError('KEYRING_CORRUPT', `own key ${rec.fingerprint} in ${store.path} cannot be read`, {
      cause: e,
    });
  }
  return { fingerprint: rec.fingerprint, username: rec.username, userIds: rec.userIds, key };
}

/** The server's public key: the only one when `query` is absent, else the one `query` names. */
export async function findServerKey(home: string, query?: string): Promise<ServerKey> {
  if (query !== undefined && keyFilePath(query) !== null) {
    const r = await (await import('../keyring/keystore.js')).resolveServerKey(home, query);
    return { fingerprint: r.record.fingerprint, userIds: r.record.userIds, key: r.key };
  }
  const pg = await pgp();
  const { store, rec } = await findServerRecord(home, query);
  let key: openpgp.Key;
  try {
    key = await pg.readKey({ armoredKey: rec.publicKey, config: await pgpConfig() });
  } catch (e) {
    throw new ConfigError(
      'KEYRING_CORRUPT',
      `server key ${rec.fingerprint} in ${store.path} cannot be read`,
      { cause: e },
    );
  }
  return { fingerprint: rec.fingerprint, userIds: rec.userIds, key: key as openpgp.PublicKey };
}

/** A username for the payload: -U, else the one stored with the key. */
export function usernameFor(own: { username: string; fingerprint: string }, override?: string): string {
  const u = override ?? own.username;
  if (!u || !USERNAME_RE.test(u)) {
    throw new ConfigError('USERNAME_INVALID', `no username known for key ${own.fingerprint}`, {
      hint: 'give the name the server enrolled you under: -U NAME',
    });
  }
  return u;
}

/** The username stored with own key `fingerprint` in the keystore, if any (gpg mode's default). */
export async function ownUsername(home: string, fingerprint: string): Promise<string | undefined> {
  try {
    return (await readStoreFast(home)).own.find((r) => r.fingerprint === fingerprint)?.username;
  } catch {
    return undefined;
  }
}
