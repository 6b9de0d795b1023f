/**
 * Key inspection shared by the server allowlist and the client keystore: read one OpenPGP key
 * (armored or binary, from openpgp.js or a GnuPG export), describe it (fingerprint, algorithm,
 * user IDs, capabilities, expiry, revocation), and refuse keys that are weak or unusable for a
 * role, with a reason a person can act on.
 *
 * Capabilities are decided by openpgp.js itself (`getSigningKey` / `getEncryptionKey` per key id,
 * at the current time): flags, binding signatures, back-signatures, expiry and revocation are
 * judged exactly as they will be when the key is used, so a key we accept is a key that works.
 * A per-call config is passed everywhere; the global config is never touched.
 */
import type * as openpgp from 'openpgp';
import { ConfigError } from '../protocol/errors.js';
import { RSA_MIN_BITS } from '../protocol/limits.js';
import { openpgpConfig } from '../protocol/pgp-config.js';

export type KeyRole = 'client' | 'server';

export interface SubkeyInfo {
  readonly fingerprint: string;
  readonly algorithm: string;
  readonly bits: number | null;
  readonly canSign: boolean;
  readonly canEncrypt: boolean;
}

export interface KeyInfo {
  /** Primary key fingerprint, uppercase hex without spaces (40 hex v4, 64 hex v6). */
  readonly fingerprint: string;
  /** Long key id of the primary key, 16 uppercase hex. */
  readonly keyId: string;
  readonly version: number;
  readonly isPrivate: boolean;
  /** A secret key whose secret material is passphrase-protected (false for public keys). */
  readonly isEncrypted: boolean;
  /** Primary key algorithm, human text: `ed25519`, `rsa4096`, `nistp256`, ... */
  readonly algorithm: string;
  readonly bits: number | null;
  readonly subkeys: readonly SubkeyInfo[];
  /** Only the user ids with a valid self-certification and no revocation (certifiedUserIds). */
  readonly userIds: readonly string[];
  readonly canSign: boolean;
  readonly canEncrypt: boolean;
  /** Primary and every subkey valid for signing now, uppercase hex. */
  readonly signingFingerprints: readonly string[];
  readonly encryptionFingerprints: readonly string[];
  readonly createdAt: string;
  /** The key's own OpenPGP expiry (ISO), null when it never expires. */
  readonly expiresAt: string | null;
  readonly expired: boolean;
  readonly revoked: boolean;
  /** Why openpgp.js refuses the primary key now (no valid self-signature, ...), if it does. */
  readonly primaryProblem: string | null;
}

let pgpModule: Promise<typeof openpgp> | undefined;
/** openpgp.js, imported on first use so CLIs that do not need it start fast. */
export function pgp(): Promise<typeof openpgp> {
  pgpModule ??= import('openpgp');
  return pgpModule;
}

let fullConfig: openpgp.Config | undefined;
/** The project's openpgp.js config (protocol/pgp-config.ts), made once openpgp.js is loaded. */
export async function pgpConfig(): Promise<openpgp.Config> {
  fullConfig ??= openpgpConfig(await pgp());
  return fullConfig;
}

export function normalizeFingerprint(hex: string): string {
  return hex.replace(/\s+/g, '').toUpperCase();
}

/** Long key id of a fingerprint: last 8 bytes for v4, first 8 bytes for v6 (RFC 9580 §5.5.4). */
export function keyIdOfFingerprint(fpr: string): string {
  return fpr.length === 64 ? fpr.slice(0, 16) : fpr.slice(-16);
}

function bytesToText(input: string | Uint8Array): { armored: string } | { binary: Uint8Array } {
  if (typeof input === 'string') return { armored: input };
  // armored text given as bytes (a file read without an encoding)
  const head = Buffer.from(input.subarray(0, 64)).toString('latin1');
  if (/^\s*-----BEGIN PGP /.test(head)) return { armored: Buffer.from(input).toString('utf8') };
  return { binary: input };
}

/** Reads exactly one key. KEY_INVALID when the input holds none, several, or garbage. */
export async function parseKey(input: string | Uint8Array): Promise<openpgp.Key> {
  const pg = await pgp();
  const config = await pgpConfig();
  const src = bytesToText(input);
  let keys: openpgp.Key[];
  try {
    if ('armored' in src) {
      if (!src.armored.includes('-----BEGIN PGP')) {
        throw new ConfigError('KEY_INVALID', 'not an OpenPGP key: no armor header found', {
          hint: 'export the key with: gpg --armor --export KEYID',
        });
      }
      if (/-----BEGIN PGP (MESSAGE|SIGNATURE|SIGNED MESSAGE)-----/.test(src.armored)) {
        throw new ConfigError('KEY_INVALID', 'this is an OpenPGP message or signature, not a key');
      }
      keys = await pg.readKeys({ armoredKeys: src.armored, config });
    } else {
      keys = await pg.readKeys({ binaryKeys: src.binary, config });
    }
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError('KEY_INVALID', `cannot read the key: ${(e as Error).message}`, { cause: e });
  }
  if (keys.length !== 1 || !keys[0]) {
    throw new ConfigError('KEY_INVALID', `expected one key, found ${keys.length}`, {
      hint: 'export a single key: gpg --armor --export FINGERPRINT',
    });
  }
  // before any signature is verified: a key bloated with signatures is refused cheaply
  const { checkKeyLimits } = await import('./minimize.js');
  checkKeyLimits(keys[0]);
  return keys[0];
}

/**
 * The user ids the key's owner certified: a valid self-certification at `now` and no valid
 * revocation by the owner. Anyone can attach an unsigned user id to a key in transit (such as
 * "Root <root@...>" placed first); it is never shown, stored or used for a default username.
 */
export async function certifiedUserIds(key: openpgp.Key, now: Date = new Date()): Promise<string[]> {
  const config = await pgpConfig();
  const out: string[] = [];
  for (const user of key.users) {
    if (!user.userID) continue;
    try {
      await user.verify(now, config);
      out.push(user.userID.userID);
    } catch {
      // unsigned, revoked, or only invalid self-signatures
    }
  }
  return out;
}

function algorithmText(info: openpgp.AlgorithmInfo): string {
  const curve = (info as { curve?: string }).curve;
  switch (info.algorithm) {
    case 'rsaEncryptSign':
    case 'rsaSign':
    case 'rsaEncrypt':
      return `rsa${info.bits ?? ''}`;
    case 'eddsaLegacy':
      return curve === 'ed25519Legacy' ? 'ed25519' : `eddsa-${curve ?? 'unknown'}`;
    case 'ecdh':
      if (curve === 'curve25519Legacy') return 'cv25519';
      return `ecdh-${(curve ?? 'unknown').toLowerCase()}`;
    case 'ecdsa':
      return (curve ?? 'ecdsa').toLowerCase();
    default:
      return String(info.algorithm).toLowerCase();
  }
}

async function validFor(
  key: openpgp.Key,
  keyId: openpgp.KeyID,
  fpr: string,
  use: 'sign' | 'encrypt',
  now: Date,
  config: openpgp.Config,
): Promise<boolean> {
  try {
    const k =
      use === 'sign'
        ? await key.getSigningKey(keyId, now, undefined, config)
        : await key.getEncryptionKey(keyId, now, undefined, config);
    return k.getFingerprint() === fpr;
  } catch {
    return false;
  }
}

/** Describes a parsed key as of `now`. */
export async function describeKey(key: openpgp.Key, now: Date = new Date()): Promise<KeyInfo> {
  const config = await pgpConfig();
  const primaryFpr = key.getFingerprint();
  const info = key.getAlgorithmInfo();
  const signing: string[] = [];
  const encryption: string[] = [];
  if (await validFor(key, key.getKeyID(), primaryFpr, 'sign', now, config)) signing.push(primaryFpr);
  if (await validFor(key, key.getKeyID(), primaryFpr, 'encrypt', now, config)) encryption.push(primaryFpr);
  const subkeys: SubkeyInfo[] = [];
  for (const sk of key.subkeys) {
    const fpr = sk.getFingerprint();
    const canSign = await validFor(key, sk.getKeyID(), fpr, 'sign', now, config);
    const canEncrypt = await validFor(key, sk.getKeyID(), fpr, 'encrypt', now, config);
    if (canSign) signing.push(fpr);
    if (canEncrypt) encryption.push(fpr);
    const si = sk.getAlgorithmInfo();
    subkeys.push({
      fingerprint: normalizeFingerprint(fpr),
      algorithm: algorithmText(si),
      bits: si.bits ?? null,
      canSign,
      canEncrypt,
    });
  }
  let revoked = false;
  try {
    revoked = await key.isRevoked(undefined, undefined, now, config);
  } catch {
    revoked = false;
  }
  let expiresAt: string | null = null;
  let expired = false;
  try {
    const exp = await key.getExpirationTime(undefined, config);
    if (exp instanceof Date) {
      expiresAt = exp.toISOString();
      expired = exp.getTime() <= now.getTime();
    }
  } catch {
    // no valid self-signature: reported through primaryProblem
  }
  let primaryProblem: string | null = null;
  try {
    await key.verifyPrimaryKey(now, undefined, config);
  } catch (e) {
    primaryProblem = (e as Error).message;
    if (/expired/i.test(primaryProblem)) expired = true;
    if (/revoked/i.test(primaryProblem)) revoked = true;
  }
  const fingerprint = normalizeFingerprint(primaryFpr);
  const priv = key.isPrivate();
  const userIds = await certifiedUserIds(key, now);
  return {
    fingerprint,
    keyId: keyIdOfFingerprint(fingerprint),
    version: key.keyPacket.version,
    isPrivate: priv,
    isEncrypted: priv ? !(key as openpgp.PrivateKey).isDecrypted() : false,
    algorithm: algorithmText(info),
    bits: info.bits ?? null,
    subkeys,
    userIds,
    canSign: signing.length > 0,
    canEncrypt: encryption.length > 0,
    signingFingerprints: signing.map(normalizeFingerprint),
    encryptionFingerprints: encryption.map(normalizeFingerprint),
    createdAt: key.getCreationTime().toISOString(),
    expiresAt,
    expired,
    revoked,
    primaryProblem,
  };
}

/** Parses and describes one key. */
export async function inspectKey(input: string | Uint8Array, now: Date = new Date()): Promise<KeyInfo> {
  return describeKey(await parseKey(input), now);
}

/** RSA bit sizes below the floor, for the primary and every subkey. */
function weakness(key: KeyInfo): string | null {
  const parts: { what: string; algorithm: string; bits: number | null }[] = [
    { what: 'primary key', algorithm: key.algorithm, bits: key.bits },
    ...key.subkeys.map((s) => ({ what: `subkey ${s.fingerprint}`, algorithm: s.algorithm, bits: s.bits })),
  ];
  for (const p of parts) {
    if (p.algorithm.startsWith('rsa') && p.bits !== null && p.bits < RSA_MIN_BITS) {
      return `${p.what} is RSA with ${p.bits} bits; at least ${RSA_MIN_BITS} are required`;
    }
    if (p.algorithm === 'dsa' || p.algorithm === 'elgamal') {
      return `${p.what} uses ${p.algorithm.toUpperCase()}, which is not accepted`;
    }
  }
  return null;
}

/**
 * Throws when the key cannot serve `role`: KEY_WEAK for short RSA and obsolete algorithms,
 * KEY_INVALID for revoked, expired, not yet valid or missing the needed capability
 * (a client signs its knocks, a server decrypts them).
 */
export function checkUsable(info: KeyInfo, role: KeyRole): void {
  const who = `key ${info.fingerprint}`;
  if (info.revoked) {
    throw new ConfigError('KEY_INVALID', `${who} is revoked`, {
      hint: 'ask for a current key; a revoked key is never enrolled',
    });
  }
  if (info.expired) {
    throw new ConfigError(
      'KEY_INVALID',
      `${who} expired${info.expiresAt ? ` on ${info.expiresAt.slice(0, 10)}` : ''}`,
      { hint: 'extend it (gpg --quick-set-expire FPR 1y) and export it again, or make a new key' },
    );
  }
  const weak = weakness(info);
  if (weak) {
    throw new ConfigError('KEY_WEAK', `${who}: ${weak}`, {
      hint: 'make a new key: ed25519 (gpg --quick-gen-key ... future-default) or rsa3072+',
    });
  }
  if (info.primaryProblem) {
    throw new ConfigError('KEY_INVALID', `${who} is not usable: ${info.primaryProblem}`);
  }
  if (role === 'client' && !info.canSign) {
    throw new ConfigError('KEY_INVALID', `${who} has no signing-capable key valid now`, {
      hint: 'a client key signs its knocks: add a signing subkey (gpg --quick-add-key FPR ed25519 sign)',
    });
  }
  if (role === 'server' && !info.canEncrypt) {
    throw new ConfigError('KEY_INVALID', `${who} has no encryption-capable key valid now`, {
      hint: 'a server key decrypts knocks: it needs an encryption subkey (e.g. cv25519 or rsa encr)',
    });
  }
}

/** Throws KEY_SECRET_REFUSED for a secret key where a public key is expected. */
export function assertPublic(info: KeyInfo, what = 'this'): void {
  if (info.isPrivate) {
    throw new ConfigError('KEY_SECRET_REFUSED', `${what} is a SECRET key; it was not stored`, {
      hint: "give the user's PUBLIC key (gpg --armor --export FPR); a secret key never leaves its owner",
    });
  }
}

/** The algorithm line shown to people: `ed25519 (subkeys: cv25519)`. */
export function algorithmSummary(info: KeyInfo): string {
  if (info.subkeys.length === 0) return info.algorithm;
  return `${info.algorithm} (subkeys: ${info.subkeys.map((s) => s.algorithm).join(', ')})`;
}
