/**
 * Minimal keys: what the keyring stores and what the daemon holds is the smallest key that means
 * the same thing, like GnuPG's `--export-options export-minimal`.
 *
 * Why: anyone who relays a public key can append signatures to it without changing its
 * fingerprint. openpgp.js re-verifies a key's self-signatures whenever it judges the key
 * (getSigningKey, getExpirationTime, isRevoked) and caches only successful verifications, so 800
 * garbage copies of a self-signature cost about a second of CPU on every datagram that names the
 * key, and anyone can send such datagrams. Two defences, both here:
 *
 * - `checkKeyLimits` counts packets before any signature is verified (cheap even for a 3,000
 *   signature key) and refuses keys above KEY_LIMITS with KEY_INVALID and a hint;
 * - `minimalKey` keeps the primary key, its valid revocations and newest valid direct-key
 *   signature, for each user id its newest valid self-certification (user ids without one, and
 *   revoked user ids, are dropped), for each subkey its valid revocations and newest valid
 *   binding (for a signing subkey, one whose embedded back-signature verifies too; subkeys
 *   without one are dropped). Third-party certifications and user attributes are dropped. Every
 *   signature kept has verified once, and openpgp.js remembers that, so judging the key later
 *   costs no signature verification at all. The fingerprint is unchanged.
 *
 * Revocations are checked without a date (as openpgp.js does for hard revocations), so a revoked
 * key or subkey stays revoked in the minimal key.
 */
import type * as openpgp from 'openpgp';
import { ConfigError } from '../protocol/errors.js';
import { pgp, pgpConfig } from './inspect.js';

/** Caps on a key given to the keyring (SPEC.md §5, "Enrolled keys"). */
export const KEY_LIMITS = Object.freeze({
  userIds: 32,
  subkeys: 16,
  /** Signatures by the key itself (self-certifications, bindings, revocations, direct-key). */
  selfSignatures: 256,
});

const MINIMAL_HINT = 'export a minimal key: gpg --armor --export-options export-minimal --export FPR';

/** Signatures openpgp.js would verify when judging the key (third-party ones are not). */
export function selfSignatureCount(key: openpgp.Key): number {
  let n = key.revocationSignatures.length + directSignatures(key).length;
  for (const u of key.users) n += u.selfCertifications.length + u.revocationSignatures.length;
  for (const s of key.subkeys) n += s.bindingSignatures.length + s.revocationSignatures.length;
  return n;
}

/**
 * KEY_INVALID when the key has more user ids, subkeys or self-signatures than KEY_LIMITS (a key
 * refusal, exit code 3 like every other; the message names the limit).
 */
export function checkKeyLimits(key: openpgp.Key, what = 'the key'): void {
  const too = (field: string, n: number, max: number) =>
    new ConfigError('KEY_INVALID', `${what} has ${n} ${field}; at most ${max} are accepted`, {
      field,
      hint: MINIMAL_HINT,
    });
  const users = key.users.length;
  if (users > KEY_LIMITS.userIds) throw too('user ids', users, KEY_LIMITS.userIds);
  if (key.subkeys.length > KEY_LIMITS.subkeys) throw too('subkeys', key.subkeys.length, KEY_LIMITS.subkeys);
  const sigs = selfSignatureCount(key);
  if (sigs > KEY_LIMITS.selfSignatures) throw too('self-signatures', sigs, KEY_LIMITS.selfSignatures);
}

type Sig = openpgp.SignaturePacket;
type KeyPacket = openpgp.PublicKeyPacket | openpgp.SecretKeyPacket;
type SubkeyPacket = openpgp.PublicSubkeyPacket | openpgp.SecretSubkeyPacket;
/** Present at run time, missing from openpgp.js's .d.ts. */
const directSignatures = (key: openpgp.Key): Sig[] =>
  (key as unknown as { directSignatures: Sig[] }).directSignatures;
// the `dataToVerify` shapes openpgp.js uses internally (typed loosely in its .d.ts)
type Signed = Parameters<Sig['verify']>[2];

async function verifies(
  sig: Sig,
  by: KeyPacket | SubkeyPacket,
  type: openpgp.enums.signature,
  data: object,
  at: Date | null,
  config: openpgp.Config,
): Promise<boolean> {
  try {
    await sig.verify(by, type, data as Signed, at as Date, false, config);
    return true;
  } catch {
    return false;
  }
}

const newestFirst = (sigs: readonly Sig[]): Sig[] =>
  [...sigs].sort((a, b) => (b.created?.getTime() ?? 0) - (a.created?.getTime() ?? 0));

async function newestValid(sigs: readonly Sig[], ok: (s: Sig) => Promise<boolean>): Promise<Sig | undefined> {
  for (const s of newestFirst(sigs)) if (await ok(s)) return s;
  return undefined;
}

async function allValid(sigs: readonly Sig[], ok: (s: Sig) => Promise<boolean>): Promise<Sig[]> {
  const out: Sig[] = [];
  for (const s of sigs) if (await ok(s)) out.push(s);
  return out;
}

/**
 * The minimal form of `key` as of `now` (same fingerprint, same kind: public or private).
 * Checks KEY_LIMITS first, so an oversized key is refused before any signature is verified.
 */
export async function minimalKey<K extends openpgp.Key>(key: K, now: Date, what = 'the key'): Promise<K> {
  checkKeyLimits(key, what);
  const pg = await pgp();
  const config = await pgpConfig();
  const S = pg.enums.signature;
  const primary = key.keyPacket;
  const list = new pg.PacketList<openpgp.AnyKeyPacket | openpgp.UserIDPacket | Sig>();
  list.push(primary);

  const self = { key: primary };
  list.push(
    ...(await allValid(key.revocationSignatures, (s) =>
      verifies(s, primary, S.keyRevocation, self, null, config),
    )),
  );
  const direct = await newestValid(
    directSignatures(key).filter((s) => s.signatureType === S.key),
    (s) => verifies(s, primary, S.key, self, now, config),
  );
  if (direct) list.push(direct);

  for (const user of key.users) {
    if (!user.userID) continue; // user attributes (photo ids) are not kept
    const data = { userID: user.userID, key: primary };
    const revoked = await allValid(user.revocationSignatures, (s) =>
      verifies(s, primary, S.certRevocation, data, null, config),
    );
    if (revoked.length > 0) continue;
    const cert = await newestValid(user.selfCertifications, (s) =>
      verifies(s, primary, S.certGeneric, data, now, config),
    );
    if (!cert) continue;
    list.push(user.userID, cert);
  }

  for (const sub of key.subkeys) {
    const packet = sub.keyPacket as SubkeyPacket;
    const data = { key: primary, bind: packet };
    const binding = await newestValid(sub.bindingSignatures, async (s) => {
      if (!(await verifies(s, primary, S.subkeyBinding, data, now, config))) return false;
      const signs = ((s.keyFlags?.[0] ?? 0) & pg.enums.keyFlags.signData) !== 0;
      if (!signs) return true;
      // a signing subkey needs its back-signature; one that fails would be re-verified per use
      return (
        s.embeddedSignature !== null &&
        (await verifies(s.embeddedSignature, packet, S.keyBinding, data, now, config))
      );
    });
    if (!binding) continue;
    const revocations = await allValid(sub.revocationSignatures, (s) =>
      verifies(s, primary, S.subkeyRevocation, data, null, config),
    );
    list.push(packet, ...revocations, binding);
  }

  const out = key.isPrivate() ? new pg.PrivateKey(list) : new pg.PublicKey(list);
  if (out.getFingerprint() !== key.getFingerprint()) {
    throw new ConfigError('KEY_INVALID', `${what}: minimizing changed the fingerprint`);
  }
  return out as unknown as K;
}
