/**
 * Session-key decryption for v4 ECDH over Curve25519 (RFC 6637 as used by GnuPG's cv25519 and
 * openpgp.js's curve25519Legacy, our default server key) with node:crypto's synchronous X25519,
 * instead of openpgp.js's WebCrypto path. Measured: openpgp.js spends ~1.8 ms per knock here,
 * mostly in WebCrypto key imports and thread-pool hops; this takes well under a tenth of that.
 *
 * It mirrors openpgp.js step by step (X25519 → KDF → AES key unwrap → PKCS#5 → checksum), and
 * it is safe to get wrong: a wrong session key fails the encrypted data's integrity check, so a
 * bug here could only refuse knocks, never accept a forged one. Tests compare it with openpgp.js
 * on many packets. Keys of any other kind use openpgp.js as before (`prepareEcdh` returns null).
 */
import {
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
} from 'node:crypto';
import type * as openpgp from 'openpgp';

const ECDH = 18;
const CURVE25519_OID = '2b060104019755010501';
const HASHES: Readonly<Record<number, string>> = { 8: 'sha256', 9: 'sha384', 10: 'sha512' };
const WRAPS: Readonly<Record<number, { cipher: string; keyLen: number }>> = {
  7: { cipher: 'id-aes128-wrap', keyLen: 16 },
  8: { cipher: 'id-aes192-wrap', keyLen: 24 },
  9: { cipher: 'id-aes256-wrap', keyLen: 32 },
};
const SESSION_KEY_BYTES: Readonly<Record<number, number>> = { 7: 16, 8: 24, 9: 32 };
const SYMMETRIC_NAMES: Readonly<Record<number, openpgp.enums.symmetricNames>> = {
  7: 'aes128',
  8: 'aes192',
  9: 'aes256',
};
const WRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

export interface EcdhKey {
  readonly privateKey: KeyObject;
  /** KDF "param" of RFC 6637 §8: curve OID, algorithm, KDF parameters, "Anonymous Sender    ", fingerprint. */
  readonly param: Uint8Array;
  readonly hash: string;
  readonly wrap: { cipher: string; keyLen: number };
}

// The shapes openpgp.js keeps on a v4 ECDH secret key packet and on a PKESK (typed loosely there).
interface EcdhKeyPacket {
  version: number;
  algorithm: number;
  publicParams: {
    oid: { write(): Uint8Array; toHex(): string };
    Q: Uint8Array;
    kdfParams: { hash: number; cipher: number; write(): Uint8Array };
  };
  privateParams: { d: Uint8Array } | null;
  getFingerprintBytes(): Uint8Array;
}
interface EcdhPkesk {
  version: number;
  publicKeyAlgorithm: number;
  encrypted: { V: Uint8Array; C: { data: Uint8Array } };
}

const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

/** The fast-path key for a decrypted secret key packet, or null when it is not v4 ECDH/Curve25519. */
export function prepareEcdh(packet: unknown): EcdhKey | null {
  const p = packet as EcdhKeyPacket;
  if (p.version !== 4 || p.algorithm !== ECDH || !p.privateParams) return null;
  const { oid, Q, kdfParams } = p.publicParams;
  const hash = HASHES[kdfParams.hash];
  const wrap = WRAPS[kdfParams.cipher];
  if (oid.toHex() !== CURVE25519_OID || !hash || !wrap || Q.length !== 33 || Q[0] !== 0x40) return null;
  // the secret scalar is stored big-endian (as an MPI, leading zeros dropped); X25519 wants little-endian
  const d = p.privateParams.d;
  const be = new Uint8Array(32);
  be.set(d.subarray(Math.max(0, d.length - 32)), 32 - Math.min(32, d.length));
  const le = be.reverse();
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: b64url(le), x: b64url(Q.subarray(1)) },
    format: 'jwk',
  });
  const param = Buffer.concat([
    oid.write(),
    Uint8Array.of(ECDH),
    kdfParams.write(),
    Buffer.from('Anonymous Sender    ', 'latin1'),
    p.getFingerprintBytes(),
  ]);
  return { privateKey, param, hash, wrap };
}

function unpadPkcs5(m: Buffer): Buffer {
  const n = m[m.length - 1] ?? 0;
  if (n < 1 || n > m.length) throw new Error('invalid padding');
  for (let i = m.length - n; i < m.length; i++) if (m[i] !== n) throw new Error('invalid padding');
  return m.subarray(0, m.length - n);
}

/** Decrypts a v3 PKESK's session key with `key`; throws on any mismatch (like openpgp.js). */
export function decryptEcdhSessionKey(key: EcdhKey, pkesk: unknown): openpgp.SessionKey {
  const p = pkesk as EcdhPkesk;
  if (p.version !== 3 || p.publicKeyAlgorithm !== ECDH) throw new Error('not a v3 ECDH session key packet');
  const { V, C } = p.encrypted;
  if (V.length !== 33 || V[0] !== 0x40) throw new Error('ephemeral point encoding');
  const ephemeral = createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: b64url(V.subarray(1)) },
    format: 'jwk',
  });
  const shared = diffieHellman({ privateKey: key.privateKey, publicKey: ephemeral });
  if (shared.every((b) => b === 0)) throw new Error('low-order point');
  let last: unknown;
  // as openpgp.js: the plain KDF input, then two workarounds for keys made by old buggy clients
  // (leading zeros stripped by old Go crypto, trailing zeros stripped by old OpenPGP.js)
  for (const z of [shared, stripLeadingZeros(shared), stripTrailingZeros(shared)]) {
    try {
      const kek = createHash(key.hash)
        .update(Uint8Array.of(0, 0, 0, 1))
        .update(z)
        .update(key.param)
        .digest()
        .subarray(0, key.wrap.keyLen);
      const d = createDecipheriv(key.wrap.cipher, kek, WRAP_IV);
      const m = unpadPkcs5(Buffer.concat([d.update(C.data), d.final()]));
      const algo = m[0] ?? 0;
      const name = SYMMETRIC_NAMES[algo];
      const sk = m.subarray(1, m.length - 2);
      if (!name || sk.length !== SESSION_KEY_BYTES[algo]) throw new Error('session key algorithm or length');
      let sum = 0;
      for (const b of sk) sum = (sum + b) & 0xffff;
      if (sum !== m.readUInt16BE(m.length - 2)) throw new Error('session key checksum');
      return { data: new Uint8Array(sk), algorithm: name };
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

function stripLeadingZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

function stripTrailingZeros(b: Buffer): Buffer {
  let i = b.length;
  while (i > 0 && b[i - 1] === 0) i--;
  return b.subarray(0, i);
}
