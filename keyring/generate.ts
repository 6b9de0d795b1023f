/**
 * Key pair generation for `spa-keys init` (server) and `spa-keys gen` (client).
 *
 * `curve25519` (default) is a v4 key, Ed25519 primary + Curve25519 (cv25519) encryption subkey,
 * the "legacy" algorithm ids, because GnuPG 2.2 (Debian 12) reads neither v6 keys nor the
 * RFC 9580 Ed25519/X25519 ids, and users exchange keys with gpg. `rsa4096` is a v4 RSA key with
 * an RSA encryption subkey. `curve25519-v6` is an RFC 9580 v6 key, for setups without GnuPG 2.2.
 */
import { ConfigError } from '../protocol/errors.js';
import { normalizeFingerprint, pgp, pgpConfig } from './inspect.js';

export const KEY_TYPES = ['curve25519', 'rsa4096', 'curve25519-v6'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export interface GeneratedKey {
  readonly fingerprint: string;
  readonly privateKeyArmored: string;
  readonly publicKeyArmored: string;
}

export interface GenerateOptions {
  type: KeyType;
  userId: { name?: string; email?: string; comment?: string };
  /** Encrypts the secret key material when given (non-empty). */
  passphrase?: string | undefined;
  date?: Date;
}

export async function generateKeyPair(opts: GenerateOptions): Promise<GeneratedKey> {
  const pg = await pgp();
  const config = await pgpConfig();
  if (opts.passphrase !== undefined && opts.passphrase.length === 0) {
    throw new ConfigError('USAGE', 'the passphrase is empty');
  }
  const base = {
    userIDs: [opts.userId],
    format: 'armored' as const,
    keyExpirationTime: 0,
    ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
    ...(opts.date ? { date: opts.date } : {}),
  };
  let res: { privateKey: string; publicKey: string };
  switch (opts.type) {
    case 'curve25519':
      res = await pg.generateKey({
        ...base,
        type: 'ecc',
        curve: 'curve25519Legacy',
        config: { ...config, v6Keys: false },
      });
      break;
    case 'rsa4096':
      res = await pg.generateKey({
        ...base,
        type: 'rsa',
        rsaBits: 4096,
        config: { ...config, v6Keys: false },
      });
      break;
    case 'curve25519-v6':
      res = await pg.generateKey({ ...base, type: 'curve25519', config: { ...config, v6Keys: true } });
      break;
  }
  const key = await pg.readKey({ armoredKey: res.publicKey, config });
  return {
    fingerprint: normalizeFingerprint(key.getFingerprint()),
    privateKeyArmored: res.privateKey,
    publicKeyArmored: res.publicKey,
  };
}
