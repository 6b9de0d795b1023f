/**
 * Verifies a knock's signature by a v4 Ed25519 (EdDSALegacy) key, our default client key, with
 * node:crypto's synchronous Ed25519 and a key object kept per key packet, instead of openpgp.js's
 * `SignaturePacket.verify`, whose Ed25519 step imports the key into WebCrypto and hops to the
 * thread pool on every knock (spad's verifier and monitor each verify every knock).
 *
 * It makes every check openpgp.js 6's `SignaturePacket.verify` makes for a message signature, in
 * its order: issuer key id and algorithm match the key packet, the digest (over openpgp.js's own
 * `toHash` bytes) matches the two-octet prefix, the signature verifies, the creation time is not
 * after `at`, the signature has not expired, the hash is not rejected by the config (for
 * messages too), no unknown subpacket or notation is critical, there is no revocation key
 * class. Anything it does not cover (another algorithm, curve or version, a hash openpgp.js
 * refuses for EdDSA or that node:crypto does not name, streamed data) returns false, and the
 * caller runs openpgp.js's verify instead. A failed check throws, as openpgp.js does.
 */
import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import type * as openpgp from 'openpgp';

const EDDSA_LEGACY = 22;
const ED25519_OID = '2b06010401da470f01';
/** openpgp.js refuses hashes under 256 bits for EdDSA; these are the ones node:crypto names. */
const HASHES: Readonly<Record<number, string>> = {
  8: 'sha256',
  9: 'sha384',
  10: 'sha512',
  12: 'sha3-256',
  14: 'sha3-512',
};

// What openpgp.js keeps on these objects at run time (its .d.ts types some of it private).
interface KeyPacketShape {
  version: number;
  algorithm: number;
  publicParams: { oid?: { toHex(): string }; Q?: Uint8Array };
  getKeyID(): openpgp.KeyID;
}
interface SignatureShape {
  version: number;
  publicKeyAlgorithm: number;
  hashAlgorithm: number;
  signatureType: number;
  signedHashValue: Uint8Array;
  params: { r?: Uint8Array; s?: Uint8Array } | Promise<{ r?: Uint8Array; s?: Uint8Array }>;
  created: Date | null;
  issuerKeyID: openpgp.KeyID;
  unknownSubpackets: ReadonlyArray<{ type: number; critical: boolean }>;
  rawNotations: ReadonlyArray<{ name: string; critical: boolean }>;
  revocationKeyClass: number | null;
  getExpirationTime(): Date | number;
  toHash(signatureType: number, data: unknown, detached?: boolean): unknown;
}

const keyObjects = new WeakMap<object, KeyObject>();

function keyObject(packet: KeyPacketShape): KeyObject | null {
  const hit = keyObjects.get(packet);
  if (hit) return hit;
  const q = packet.publicParams.Q;
  if (!(q instanceof Uint8Array) || q.length !== 33 || q[0] !== 0x40) return null;
  // as JWK: node:crypto imports it about ten times faster than as DER
  const x = Buffer.from(q.subarray(1)).toString('base64url');
  const k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  keyObjects.set(packet, k);
  return k;
}

function pad32(b: Uint8Array): Buffer | null {
  if (b.length > 32) return null;
  const out = Buffer.alloc(32);
  out.set(b, 32 - b.length);
  return out;
}

/**
 * True when the signature was verified here; false when this path does not apply (then use
 * openpgp.js's `sig.verify`). Throws when the signature is not valid.
 */
export async function verifyEd25519Message(
  signature: openpgp.SignaturePacket,
  keyPacket: openpgp.PublicKeyPacket | openpgp.PublicSubkeyPacket,
  literal: openpgp.LiteralDataPacket,
  at: Date,
  config: openpgp.Config,
): Promise<boolean> {
  const sig = signature as unknown as SignatureShape;
  const key = keyPacket as unknown as KeyPacketShape;
  const hashName = HASHES[sig.hashAlgorithm];
  if (
    sig.version !== 4 ||
    key.version !== 4 ||
    key.algorithm !== EDDSA_LEGACY ||
    key.publicParams.oid?.toHex() !== ED25519_OID ||
    hashName === undefined
  ) {
    return false;
  }
  // binary (0) or text (1), as verifySigned has checked
  const toHash = sig.toHash(sig.signatureType, literal, false);
  if (!(toHash instanceof Uint8Array)) return false;
  const publicKey = keyObject(key);
  const params = await sig.params;
  const r = params.r && pad32(params.r);
  const s = params.s && pad32(params.s);
  if (!publicKey || !r || !s) return false;

  if (!sig.issuerKeyID.equals(key.getKeyID()))
    throw new Error('Signature was not issued by the given public key');
  if (sig.publicKeyAlgorithm !== key.algorithm) {
    throw new Error('Public key algorithm used to sign signature does not match issuer key algorithm.');
  }
  const digest = createHash(hashName).update(toHash).digest();
  if (sig.signedHashValue[0] !== digest[0] || sig.signedHashValue[1] !== digest[1]) {
    throw new Error('Signed digest did not match');
  }
  if (!verify(null, digest, publicKey, Buffer.concat([r, s])))
    throw new Error('Signature verification failed');
  if (sig.created && sig.created > at) throw new Error('Signature creation time is in the future');
  if (at >= sig.getExpirationTime()) throw new Error('Signature is expired');
  if (
    config.rejectHashAlgorithms.has(sig.hashAlgorithm) ||
    config.rejectMessageHashAlgorithms.has(sig.hashAlgorithm)
  ) {
    throw new Error('Insecure message hash algorithm');
  }
  for (const { type, critical } of sig.unknownSubpackets) {
    if (critical) throw new Error(`Unknown critical signature subpacket type ${type}`);
  }
  for (const { name, critical } of sig.rawNotations) {
    if (critical && !config.knownNotations.includes(name))
      throw new Error(`Unknown critical notation: ${name}`);
  }
  if (sig.revocationKeyClass !== null) {
    throw new Error(
      'This key is intended to be revoked with an authorized key, which OpenPGP.js does not support.',
    );
  }
  return true;
}
