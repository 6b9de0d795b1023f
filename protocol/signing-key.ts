/**
 * Is this key packet valid for signing at this time (SPEC.md §3, §7 step 9), and if a signature
 * failed, why: the answer, cached per parsed key object. Pure: the time and the openpgp.js config
 * are parameters; the cache holds only what the key's own certifications already decide.
 */
import * as openpgp from 'openpgp';
import type { ErrorCode } from './errors.js';

/**
 * The key packet of `key` (primary or subkey) whose fingerprint is `fingerprint`, if it is valid
 * for signing (bindings, flags, not expired or revoked) at `at`; else it throws. The full check
 * (several signature verifications) runs once per key object and fingerprint, then is reused
 * until the key or subkey would expire: the certifications inside a parsed key never change, and
 * a new keyring record means a new key object. A failed check is remembered too, for a minute:
 * anyone can send datagrams naming an enrolled key's fingerprint, and each would otherwise pay
 * the full check again.
 */
const NEGATIVE_TTL_MS = 60_000;
const validity = new WeakMap<
  openpgp.PublicKey,
  Map<
    string,
    | { packet: openpgp.PublicKeyPacket | openpgp.PublicSubkeyPacket; until: number }
    | { error: unknown; until: number }
  >
>();
export async function validSigningKey(
  key: openpgp.PublicKey,
  fingerprint: string,
  at: Date,
  config: openpgp.Config,
): Promise<openpgp.PublicKeyPacket | openpgp.PublicSubkeyPacket> {
  let perKey = validity.get(key);
  if (!perKey) {
    perKey = new Map();
    validity.set(key, perKey);
  }
  const hit = perKey.get(fingerprint);
  if (hit && at.getTime() < hit.until) {
    if ('error' in hit) throw hit.error;
    return hit.packet;
  }
  let signing: Awaited<ReturnType<openpgp.PublicKey['getSigningKey']>>;
  try {
    const named = [key, ...key.getSubkeys()].find((k) => k.getFingerprint().toUpperCase() === fingerprint);
    if (!named) throw new Error('the enrolled key has no key packet with the issuer fingerprint');
    signing = await key.getSigningKey(named.getKeyID(), at, undefined, config);
    // key ids may collide inside one key: openpgp.js picks by key id, we insist on the fingerprint
    if (signing.getFingerprint().toUpperCase() !== fingerprint) {
      throw new Error('the key valid for signing under that key id is another key');
    }
  } catch (error) {
    perKey.set(fingerprint, { error, until: at.getTime() + NEGATIVE_TTL_MS });
    throw error;
  }
  const own =
    signing === key
      ? await key.getExpirationTime(undefined, config)
      : await (signing as openpgp.Subkey).getExpirationTime(at, config);
  const primary = await key.getExpirationTime(undefined, config);
  const ends = (x: Date | number | null): number =>
    x instanceof Date ? x.getTime() : Number.POSITIVE_INFINITY;
  // recheck at least hourly, so a clock jump cannot keep a stale answer for long
  const until = Math.min(ends(own), ends(primary), at.getTime() + 3_600_000);
  const packet = signing.keyPacket as openpgp.PublicKeyPacket | openpgp.PublicSubkeyPacket;
  perKey.set(fingerprint, { packet, until });
  return packet;
}

/** Why a signature by `key` failed: the key's state if that explains it, else a bad signature. */
export async function keyStateCode(
  key: openpgp.PublicKey,
  at: Date,
  config: openpgp.Config,
): Promise<ErrorCode> {
  try {
    if (await key.isRevoked(undefined, undefined, at, config)) return 'KEY_REVOKED';
    const exp = await key.getExpirationTime(undefined, config);
    if (exp instanceof Date && exp.getTime() <= at.getTime()) return 'KEY_EXPIRED';
  } catch {
    // a key that cannot even be evaluated is not usable: report the signature as invalid
  }
  return 'SIG_INVALID';
}
