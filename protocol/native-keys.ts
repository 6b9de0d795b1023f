/**
 * Reading the two keys of the default profile for native-seal.ts: a v4 Ed25519 own key and a v4
 * server key with one Curve25519 ECDH subkey, of the plain shape (primary key, one user id with
 * one self-certification, one subkey with one binding signature). The checks are those
 * openpgp.js would make before signing or encrypting with such keys (native-seal.ts lists them);
 * anything else returns null and the caller uses openpgp.js. Pure: `now` is a parameter.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, verify } from 'node:crypto';
import {
  AES256,
  CV25519_OID,
  DER,
  ECDH,
  ED25519_OID,
  EDDSA_LEGACY,
  FEATURE_SEIPDV2,
  FLAG_ENCRYPT,
  FLAG_SIGN,
  HASHES,
  KDF_HASHES,
  KNOWN_SUBPACKETS,
  type Packet,
  pad32,
  readMpi,
  readPackets,
  dearmor,
  signatureDigest,
  TAG,
  WRAPS,
} from './native-packets.js';

/** What signs: the own key's primary Ed25519 key. */
export interface NativeSigner {
  readonly fingerprint: string;
  readonly keyId: Uint8Array;
  readonly fingerprintBytes: Uint8Array;
  readonly privateKey: KeyObject;
}

/** What the knock is encrypted to: the server key's Curve25519 ECDH subkey. */
export interface NativeRecipient {
  /** The server key's primary fingerprint. */
  readonly fingerprint: string;
  readonly subkeyId: Uint8Array;
  readonly publicKey: KeyObject;
  /** RFC 6637 §8 KDF "param": OID, algorithm, KDF parameters, "Anonymous Sender    ", fingerprint. */
  readonly param: Uint8Array;
  readonly kdfHash: string;
  readonly wrap: { cipher: string; keyLen: number };
}

interface KeyPacket {
  readonly algorithm: number;
  readonly created: number;
  /** The public key packet body (what fingerprints and signatures hash). */
  readonly publicBody: Uint8Array;
  /** The native 32-byte point (after the 0x40 prefix). */
  readonly point: Uint8Array;
  readonly kdf?: { hash: number; cipher: number };
  readonly fingerprint: Uint8Array;
  /** After the public part: the secret part of a secret key packet. */
  readonly rest: Uint8Array;
}

function readKeyPacket(body: Uint8Array): KeyPacket | null {
  if (body.length < 6 || body[0] !== 4) return null;
  const created = Buffer.from(body.subarray(1, 5)).readUInt32BE();
  const algorithm = body[5] as number;
  const oidLen = body[6] ?? 0;
  const oid = body.subarray(7, 7 + oidLen);
  const want = algorithm === EDDSA_LEGACY ? ED25519_OID : algorithm === ECDH ? CV25519_OID : null;
  if (!want || !Buffer.from(oid).equals(want)) return null;
  const q = readMpi(body, 7 + oidLen);
  if (!q || q.value.length !== 33 || q.value[0] !== 0x40) return null;
  let end = q.end;
  let kdf: KeyPacket['kdf'];
  if (algorithm === ECDH) {
    if (body[end] !== 3 || body[end + 1] !== 1) return null;
    kdf = { hash: body[end + 2] as number, cipher: body[end + 3] as number };
    end += 4;
  }
  const publicBody = body.subarray(0, end);
  return {
    algorithm,
    created,
    publicBody,
    point: q.value.subarray(1),
    ...(kdf ? { kdf } : {}),
    fingerprint: createHash('sha1').update(keyHashPrefix(publicBody)).update(publicBody).digest(),
    rest: body.subarray(end),
  };
}

function keyHashPrefix(publicBody: Uint8Array): Uint8Array {
  return Uint8Array.of(0x99, publicBody.length >> 8, publicBody.length & 0xff);
}

interface Subpackets {
  created?: number;
  expiresAfter?: number;
  keyExpiresAfter?: number;
  flags?: number;
  features?: number;
  preferredSymmetric?: number[];
  issuerFingerprint?: Uint8Array;
  issuerKeyId?: Uint8Array;
}

/** Reads a subpacket area into `into`; false on malformed or unknown critical subpackets. */
function readSubpackets(area: Uint8Array, into: Subpackets, hashed: boolean): boolean {
  let i = 0;
  while (i < area.length) {
    const o = area[i++] as number;
    let len: number;
    if (o < 192) len = o;
    else if (o < 255) len = ((o - 192) << 8) + (area[i++] ?? Number.NaN) + 192;
    else {
      if (i + 4 > area.length) return false;
      len = Buffer.from(area.subarray(i, i + 4)).readUInt32BE();
      i += 4;
    }
    if (!Number.isFinite(len) || len < 1 || i + len > area.length) return false;
    const type = (area[i] as number) & 0x7f;
    const critical = ((area[i] as number) & 0x80) !== 0;
    const d = Buffer.from(area.subarray(i + 1, i + len));
    i += len;
    if (!KNOWN_SUBPACKETS.has(type)) {
      if (critical) return false;
      continue;
    }
    // only the hashed area is trusted for anything but the issuer
    if (!hashed && type !== 16 && type !== 33) continue;
    if (type === 20 && critical) return false;
    if ((type === 2 || type === 3 || type === 9) && d.length !== 4) return false;
    if (type === 2) into.created = d.readUInt32BE();
    else if (type === 3) into.expiresAfter = d.readUInt32BE();
    else if (type === 9) into.keyExpiresAfter = d.readUInt32BE();
    else if (type === 27) into.flags = d[0] ?? 0;
    else if (type === 30) into.features = d[0] ?? 0;
    else if (type === 11) into.preferredSymmetric = [...d];
    else if (type === 33) into.issuerFingerprint = d.subarray(1);
    else if (type === 16) into.issuerKeyId = d;
  }
  return true;
}

interface Signature {
  readonly type: number;
  readonly hash: string;
  /** Version through the end of the hashed subpackets: what the trailer counts. */
  readonly hashedPart: Uint8Array;
  readonly left16: Uint8Array;
  readonly r: Uint8Array;
  readonly s: Uint8Array;
  readonly sub: Subpackets;
}

function readSignature(body: Uint8Array): Signature | null {
  if (body.length < 6 || body[0] !== 4 || body[2] !== EDDSA_LEGACY) return null;
  const hash = HASHES[body[3] as number];
  if (!hash) return null;
  const hashedLen = ((body[4] as number) << 8) | (body[5] as number);
  const hashedEnd = 6 + hashedLen;
  if (hashedEnd + 2 > body.length) return null;
  const unhashedLen = ((body[hashedEnd] as number) << 8) | (body[hashedEnd + 1] as number);
  const unhashedEnd = hashedEnd + 2 + unhashedLen;
  if (unhashedEnd + 2 > body.length) return null;
  const sub: Subpackets = {};
  if (!readSubpackets(body.subarray(6, hashedEnd), sub, true)) return null;
  if (!readSubpackets(body.subarray(hashedEnd + 2, unhashedEnd), sub, false)) return null;
  const r = readMpi(body, unhashedEnd + 2);
  const s = r && readMpi(body, r.end);
  if (!r || !s || s.end !== body.length || r.value.length > 32 || s.value.length > 32) return null;
  return {
    type: body[1] as number,
    hash,
    hashedPart: body.subarray(0, hashedEnd),
    left16: body.subarray(unhashedEnd, unhashedEnd + 2),
    r: r.value,
    s: s.value,
    sub,
  };
}

// public keys as JWK: node:crypto imports these about ten times faster than DER (measured 17-30
// vs 250-300 µs); private keys stay DER, where the key is exactly the bytes given
function okpPublic(crv: 'Ed25519' | 'X25519', point: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv, x: Buffer.from(point).toString('base64url') },
    format: 'jwk',
  });
}

function ed25519Public(point: Uint8Array): KeyObject {
  return okpPublic('Ed25519', point);
}

/** A signature by `signer` (the primary key) over `prefix`, valid and in force at `now`. */
function validSelfSignature(
  sig: Signature,
  signer: KeyPacket,
  signerKey: KeyObject,
  prefix: readonly Uint8Array[],
  now: number,
): boolean {
  const fpr = sig.sub.issuerFingerprint;
  const kid = sig.sub.issuerKeyId;
  if (fpr && !Buffer.from(fpr).equals(signer.fingerprint)) return false;
  if (kid && !Buffer.from(kid).equals(signer.fingerprint.subarray(12))) return false;
  const created = sig.sub.created;
  if (created === undefined || created > now) return false;
  if (sig.sub.expiresAfter && created + sig.sub.expiresAfter <= now) return false;
  const digest = signatureDigest(sig.hash, prefix, sig.hashedPart);
  if (digest[0] !== sig.left16[0] || digest[1] !== sig.left16[1]) return false;
  return verify(null, digest, signerKey, Buffer.concat([pad32(sig.r), pad32(sig.s)]));
}

interface PlainKey {
  readonly primary: KeyPacket;
  readonly primaryKey: KeyObject;
  readonly cert: Signature;
  readonly subkey: KeyPacket;
  readonly binding: Signature;
}

/** Primary, one user id with its self-certification, one subkey with its binding, all valid at `now`. */
function readPlainKey(armored: string, kind: 'PUBLIC' | 'PRIVATE', now: number): PlainKey | null {
  const bin = dearmor(armored, kind);
  const pkts = bin && readPackets(bin);
  if (!pkts || pkts.length !== 5) return null;
  const [p0, p1, p2, p3, p4] = pkts as [Packet, Packet, Packet, Packet, Packet];
  const secret = kind === 'PRIVATE';
  if (p0.tag !== (secret ? TAG.SECRET_KEY : TAG.PUBLIC_KEY) || p1.tag !== TAG.USER_ID) return null;
  if (p2.tag !== TAG.SIGNATURE || p3.tag !== (secret ? TAG.SECRET_SUBKEY : TAG.PUBLIC_SUBKEY)) return null;
  if (p4.tag !== TAG.SIGNATURE) return null;
  const primary = readKeyPacket(p0.body);
  const subkey = readKeyPacket(p3.body);
  const cert = readSignature(p2.body);
  const binding = readSignature(p4.body);
  if (!primary || primary.algorithm !== EDDSA_LEGACY || !subkey || !cert || !binding) return null;
  if (cert.type < 0x10 || cert.type > 0x13 || binding.type !== 0x18) return null;
  if (primary.created > now || subkey.created > now) return null;
  const primaryKey = ed25519Public(primary.point);
  const pre = keyHashPrefix(primary.publicBody);
  const uid = p1.body;
  const uidPrefix = Uint8Array.of(
    0xb4,
    (uid.length >>> 24) & 0xff,
    (uid.length >>> 16) & 0xff,
    (uid.length >>> 8) & 0xff,
    uid.length & 0xff,
  );
  if (!validSelfSignature(cert, primary, primaryKey, [pre, primary.publicBody, uidPrefix, uid], now))
    return null;
  const subPre = keyHashPrefix(subkey.publicBody);
  const bindingPrefix = [pre, primary.publicBody, subPre, subkey.publicBody];
  if (!validSelfSignature(binding, primary, primaryKey, bindingPrefix, now)) return null;
  // expiry: of the primary key (its self-certification says) and of the subkey (its binding says)
  const exp = cert.sub.keyExpiresAfter;
  if (exp && primary.created + exp <= now) return null;
  const subExp = binding.sub.keyExpiresAfter;
  if (subExp && subkey.created + subExp <= now) return null;
  return { primary, primaryKey, cert, subkey, binding };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();

/** The own key's primary Ed25519 key for signing, if the armored secret key is of the plain shape. */
export function parseNativeSigner(armoredSecretKey: string, now: Date): NativeSigner | null {
  const k = readPlainKey(armoredSecretKey, 'PRIVATE', Math.floor(now.getTime() / 1000));
  if (!k) return null;
  // the primary key signs: it may, and the subkey may not (openpgp.js would prefer a signing subkey)
  if (((k.cert.sub.flags ?? 0) & FLAG_SIGN) === 0 || ((k.binding.sub.flags ?? 0) & FLAG_SIGN) !== 0)
    return null;
  // the secret part: not protected (S2K usage 0), the seed as an MPI, its two-octet checksum
  const rest = k.primary.rest;
  if (rest[0] !== 0) return null;
  const seed = readMpi(rest, 1);
  if (!seed || seed.value.length > 32 || seed.end + 2 !== rest.length) return null;
  let sum = 0;
  for (const b of rest.subarray(1, seed.end)) sum = (sum + b) & 0xffff;
  if (sum !== (((rest[seed.end] as number) << 8) | (rest[seed.end + 1] as number))) return null;
  const privateKey = createPrivateKey({
    key: Buffer.concat([DER.ed25519Pkcs8, pad32(seed.value)]),
    format: 'der',
    type: 'pkcs8',
  });
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x ?? '';
  if (!Buffer.from(x, 'base64url').equals(k.primary.point)) return null;
  return {
    fingerprint: hex(k.primary.fingerprint),
    keyId: k.primary.fingerprint.subarray(12),
    fingerprintBytes: k.primary.fingerprint,
    privateKey,
  };
}

/** The server key's ECDH subkey for encryption, if the armored public key is of the plain shape. */
export function parseNativeRecipient(armoredPublicKey: string, now: Date): NativeRecipient | null {
  const k = readPlainKey(armoredPublicKey, 'PUBLIC', Math.floor(now.getTime() / 1000));
  if (!k || k.subkey.algorithm !== ECDH || !k.subkey.kdf) return null;
  if (((k.binding.sub.flags ?? 0) & FLAG_ENCRYPT) === 0) return null;
  // openpgp.js would pick SEIPDv2 for a key that asks for it, and AES-256 only if it is preferred
  if (((k.cert.sub.features ?? 0) & FEATURE_SEIPDV2) !== 0) return null;
  if (!k.cert.sub.preferredSymmetric || k.cert.sub.preferredSymmetric[0] !== AES256) return null;
  const kdfHash = KDF_HASHES[k.subkey.kdf.hash];
  const wrap = WRAPS[k.subkey.kdf.cipher];
  if (!kdfHash || !wrap) return null;
  const publicKey = okpPublic('X25519', k.subkey.point);
  const param = Buffer.concat([
    Uint8Array.of(CV25519_OID.length),
    CV25519_OID,
    Uint8Array.of(ECDH, 3, 1, k.subkey.kdf.hash, k.subkey.kdf.cipher),
    Buffer.from('Anonymous Sender    ', 'latin1'),
    k.subkey.fingerprint,
  ]);
  return {
    fingerprint: hex(k.primary.fingerprint),
    subkeyId: k.subkey.fingerprint.subarray(12),
    publicKey,
    param,
    kdfHash,
    wrap,
  };
}
