/**
 * Sealing a knock with node:crypto alone, for the default key profile only: a v4 Ed25519
 * (EdDSALegacy) own key and a v4 server key with one Curve25519 ECDH subkey, both of the plain
 * shape spa-keys and GnuPG make (primary key, one user id with one self-certification, one
 * subkey with one binding signature). Loading openpgp.js is most of a knock's start-up (its
 * module alone evaluates AES and deflate tables and curve parameters); this path never loads it.
 *
 * It writes what openpgp.js's `encrypt({ signingKeys, encryptionKeys })` writes for these keys
 * (SPEC.md §3): PKESK v3 (ECDH, RFC 6637: X25519, KDF, AES key wrap), then SEIPD v1 (AES-256
 * CFB with an MDC) holding a one-pass signature, the literal payload and a v4 binary signature
 * (SHA-512, hashed: creation time, a random salt notation as openpgp.js adds, issuer
 * fingerprint; unhashed: issuer key id). Test: test/interop/native-seal.test.ts (open() and gpg
 * both accept every knock shape).
 *
 * The key checks are those openpgp.js would make before signing or encrypting with such keys:
 * the self-certification and the subkey binding signatures verify, nothing is created in the
 * future, no key or signature has expired, the flags allow signing (own primary key) and
 * encryption (server subkey). Anything else, including any key of another shape, a revocation,
 * a passphrase-protected key, an unknown critical subpacket or a server key that asks for
 * SEIPDv2, makes `parseNativeSigner`/`parseNativeRecipient` return null, and the caller uses
 * openpgp.js, which then decides (and reports expired or revoked keys as before).
 *
 * Pure: no I/O, no clock, no randomness of its own (the caller passes `now` and the random bytes).
 * The packet format is native-packets.ts's, the reading of the keys native-keys.ts's.
 */
import {
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  sign,
} from 'node:crypto';
import type { NativeRecipient, NativeSigner } from './native-keys.js';
import {
  AES256,
  DER,
  ECDH,
  EDDSA_LEGACY,
  mpi,
  packet,
  SALT_NOTATION,
  SHA512,
  signatureDigest,
  subpacket,
  u32,
} from './native-packets.js';

// the client loads this one module for the default path (client/knock.ts)
export {
  type NativeRecipient,
  type NativeSigner,
  parseNativeRecipient,
  parseNativeSigner,
} from './native-keys.js';

/** Fresh random bytes for one knock (the caller draws them from a CSPRNG). */
export interface SealRandom {
  /** 32: the AES-256 session key. */
  readonly sessionKey: Uint8Array;
  /** 32: the ephemeral X25519 private key. */
  readonly ephemeral: Uint8Array;
  /** 16: the CFB prefix. */
  readonly prefix: Uint8Array;
  /** 32: the signature's salt notation (openpgp.js's length for SHA-512). */
  readonly salt: Uint8Array;
}

function checkRandom(r: SealRandom): void {
  const sizes: Array<[keyof SealRandom, number]> = [
    ['sessionKey', 32],
    ['ephemeral', 32],
    ['prefix', 16],
    ['salt', 32],
  ];
  for (const [k, n] of sizes) if (r[k].length !== n) throw new RangeError(`${k}: ${n} random bytes expected`);
}

/** The sealed knock: PKESK v3 + SEIPD v1 around OPS, literal (the payload) and signature. */
export function nativeSeal(
  payload: Uint8Array,
  signer: NativeSigner,
  recipient: NativeRecipient,
  now: Date,
  random: SealRandom,
): Uint8Array {
  checkRandom(random);
  const t = Math.floor(now.getTime() / 1000);
  const literal = packet(11, Buffer.concat([Uint8Array.of(0x62, 0), u32(t), payload]));
  const ops = packet(
    4,
    Buffer.concat([Uint8Array.of(3, 0x00, SHA512, EDDSA_LEGACY), signer.keyId, Uint8Array.of(1)]),
  );
  const name = Buffer.from(SALT_NOTATION, 'utf8');
  const notation = Buffer.concat([
    Uint8Array.of(0, 0, 0, 0, name.length >> 8, name.length & 0xff, 0, random.salt.length),
    name,
    random.salt,
  ]);
  const hashed = Buffer.concat([
    subpacket(2, u32(t)),
    subpacket(20, notation),
    subpacket(33, Buffer.concat([Uint8Array.of(4), signer.fingerprintBytes])),
  ]);
  const hashedPart = Buffer.concat([
    Uint8Array.of(4, 0x00, EDDSA_LEGACY, SHA512, hashed.length >> 8, hashed.length & 0xff),
    hashed,
  ]);
  const digest = signatureDigest('sha512', [payload], hashedPart);
  const rs = sign(null, digest, signer.privateKey);
  const unhashed = subpacket(16, signer.keyId);
  const signature = packet(
    2,
    Buffer.concat([
      hashedPart,
      Uint8Array.of(unhashed.length >> 8, unhashed.length & 0xff),
      unhashed,
      digest.subarray(0, 2),
      mpi(rs.subarray(0, 32)),
      mpi(rs.subarray(32)),
    ]),
  );
  const plaintext = Buffer.concat([ops, literal, signature]);

  // SEIPD v1: CFB (zero IV) over prefix, its last two octets again, the packets, and the MDC packet
  const prefix = Buffer.concat([random.prefix, random.prefix.subarray(14)]);
  const mdcHeader = Uint8Array.of(0xd3, 0x14);
  const mdc = createHash('sha1').update(prefix).update(plaintext).update(mdcHeader).digest();
  const cfb = createCipheriv('aes-256-cfb', random.sessionKey, Buffer.alloc(16));
  const encrypted = Buffer.concat([
    cfb.update(Buffer.concat([prefix, plaintext, mdcHeader, mdc])),
    cfb.final(),
  ]);
  const seipd = packet(18, Buffer.concat([Uint8Array.of(1), encrypted]));

  // PKESK v3, ECDH (RFC 6637): X25519 with an ephemeral key, KDF, AES key wrap of the session key
  const eph = createPrivateKey({
    key: Buffer.concat([DER.x25519Pkcs8, random.ephemeral]),
    format: 'der',
    type: 'pkcs8',
  });
  const ephPoint = Buffer.from(createPublicKey(eph).export({ format: 'jwk' }).x ?? '', 'base64url');
  const shared = diffieHellman({ privateKey: eph, publicKey: recipient.publicKey });
  const kek = createHash(recipient.kdfHash)
    .update(Uint8Array.of(0, 0, 0, 1))
    .update(shared)
    .update(recipient.param)
    .digest()
    .subarray(0, recipient.wrap.keyLen);
  let sum = 0;
  for (const b of random.sessionKey) sum = (sum + b) & 0xffff;
  const m = Buffer.concat([Uint8Array.of(AES256), random.sessionKey, Uint8Array.of(sum >> 8, sum & 0xff)]);
  const pad = 8 - (m.length % 8);
  const padded = Buffer.concat([m, Buffer.alloc(pad, pad)]);
  const kw = createCipheriv(recipient.wrap.cipher, kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
  const wrapped = Buffer.concat([kw.update(padded), kw.final()]);
  const pkesk = packet(
    1,
    Buffer.concat([
      Uint8Array.of(3),
      recipient.subkeyId,
      Uint8Array.of(ECDH),
      mpi(Buffer.concat([Uint8Array.of(0x40), ephPoint])),
      Uint8Array.of(wrapped.length),
      wrapped,
    ]),
  );
  return new Uint8Array(Buffer.concat([pkesk, seipd]));
}
