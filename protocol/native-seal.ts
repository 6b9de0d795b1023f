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
 */
import {
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';

const TAG = { SIGNATURE: 2, SECRET_KEY: 5, PUBLIC_KEY: 6, SECRET_SUBKEY: 7, USER_ID: 13, PUBLIC_SUBKEY: 14 };
const EDDSA_LEGACY = 22;
const ECDH = 18;
const ED25519_OID = Buffer.from('2b06010401da470f01', 'hex');
const CV25519_OID = Buffer.from('2b060104019755010501', 'hex');
const HASHES: Readonly<Record<number, string>> = { 8: 'sha256', 9: 'sha384', 10: 'sha512', 11: 'sha224' };
const KDF_HASHES: Readonly<Record<number, string>> = { 8: 'sha256', 9: 'sha384', 10: 'sha512' };
const WRAPS: Readonly<Record<number, { cipher: string; keyLen: number }>> = {
  7: { cipher: 'id-aes128-wrap', keyLen: 16 },
  8: { cipher: 'id-aes192-wrap', keyLen: 24 },
  9: { cipher: 'id-aes256-wrap', keyLen: 32 },
};
const AES256 = 9;
const SHA512 = 10;
const SALT_NOTATION = 'salt@notations.openpgpjs.org';
/** Subpackets whose meaning we know (RFC 9580 §5.2.3.7 ff.); an unknown one marked critical stops us. */
const KNOWN_SUBPACKETS = new Set([2, 3, 4, 9, 11, 16, 20, 21, 22, 23, 25, 27, 30, 33, 34, 39]);
const FLAG_SIGN = 0x02;
const FLAG_ENCRYPT = 0x0c;
const FEATURE_SEIPDV2 = 0x08;

const DER = {
  ed25519Pkcs8: Buffer.from('302e020100300506032b657004220420', 'hex'),
  x25519Pkcs8: Buffer.from('302e020100300506032b656e04220420', 'hex'),
};

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

// ------------------------------------------------------------------------------ reading

/** The binary of one armored block of this kind, or null for anything unusual. */
export function dearmor(text: string, kind: 'PUBLIC' | 'PRIVATE'): Uint8Array | null {
  const lines = text.split(/\r?\n/).map((l) => l.trimEnd());
  const begin = lines.indexOf(`-----BEGIN PGP ${kind} KEY BLOCK-----`);
  const end = lines.indexOf(`-----END PGP ${kind} KEY BLOCK-----`);
  if (begin === -1 || end < begin) return null;
  let i = begin + 1;
  while (i < end && lines[i] !== '') {
    if (!/^[A-Za-z]+: /.test(lines[i] ?? '')) return null;
    i++;
  }
  let b64 = '';
  let crc: string | null = null;
  for (i++; i < end; i++) {
    const l = lines[i] ?? '';
    if (l.startsWith('=')) {
      if (crc !== null || i !== end - 1) return null;
      crc = l.slice(1);
    } else if (/^[A-Za-z0-9+/]*={0,2}$/.test(l)) {
      b64 += l;
    } else {
      return null;
    }
  }
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) return null;
  if (crc !== null && Buffer.from(crc24(bytes)).toString('base64') !== crc) return null;
  return new Uint8Array(bytes);
}

function crc24(data: Uint8Array): Uint8Array {
  let crc = 0xb704ce;
  for (const b of data) {
    crc ^= b << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return Uint8Array.of((crc >> 16) & 0xff, (crc >> 8) & 0xff, crc & 0xff);
}

interface Packet {
  readonly tag: number;
  readonly body: Uint8Array;
}

/** The packets of a key, or null for partial lengths, old indeterminate lengths or truncation. */
function readPackets(b: Uint8Array): Packet[] | null {
  const out: Packet[] = [];
  let i = 0;
  while (i < b.length) {
    const h = b[i++] as number;
    if (!(h & 0x80)) return null;
    let tag: number;
    let len: number;
    if (h & 0x40) {
      tag = h & 0x3f;
      const o = b[i++];
      if (o === undefined) return null;
      if (o < 192) len = o;
      else if (o < 224) len = ((o - 192) << 8) + (b[i++] ?? Number.NaN) + 192;
      else if (o === 255) {
        if (i + 4 > b.length) return null;
        len = Buffer.from(b.subarray(i, i + 4)).readUInt32BE();
        i += 4;
      } else return null;
    } else {
      tag = (h >> 2) & 0x0f;
      const n = [1, 2, 4][h & 3];
      if (n === undefined || i + n > b.length) return null;
      len = Buffer.from(b.subarray(i, i + n)).readUIntBE(0, n);
      i += n;
    }
    if (!Number.isFinite(len) || i + len > b.length) return null;
    out.push({ tag, body: b.subarray(i, i + len) });
    i += len;
  }
  return out;
}

/** An MPI at `at`: its value bytes (as written, no leading zero octets) and where it ends. */
function readMpi(b: Uint8Array, at: number): { value: Uint8Array; end: number } | null {
  if (at + 2 > b.length) return null;
  const bits = ((b[at] as number) << 8) | (b[at + 1] as number);
  const n = (bits + 7) >> 3;
  if (at + 2 + n > b.length) return null;
  const value = b.subarray(at + 2, at + 2 + n);
  // one spelling per number: the bit count matches the first octet
  if (n > 0 && 32 - Math.clz32(value[0] as number) !== bits - (n - 1) * 8) return null;
  return { value, end: at + 2 + n };
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

function pad32(b: Uint8Array): Buffer {
  const out = Buffer.alloc(32);
  out.set(b, 32 - b.length);
  return out;
}

/** The digest a v4 signature signs, over `prefix` (what the signature type covers). */
function signatureDigest(hash: string, prefix: readonly Uint8Array[], hashedPart: Uint8Array): Buffer {
  const h = createHash(hash);
  for (const p of prefix) h.update(p);
  const n = hashedPart.length;
  return h
    .update(hashedPart)
    .update(Uint8Array.of(4, 0xff, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff))
    .digest();
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

// ------------------------------------------------------------------------------ writing

function packet(tag: number, body: Uint8Array): Buffer {
  const n = body.length;
  let len: Uint8Array;
  if (n < 192) len = Uint8Array.of(n);
  else if (n < 8384) len = Uint8Array.of(((n - 192) >> 8) + 192, (n - 192) & 0xff);
  else len = Uint8Array.of(255, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  return Buffer.concat([Uint8Array.of(0xc0 | tag), len, body]);
}

function mpi(value: Uint8Array): Buffer {
  let i = 0;
  while (i < value.length - 1 && value[i] === 0) i++;
  const v = value.subarray(i);
  const bits = v.length === 0 ? 0 : (v.length - 1) * 8 + (32 - Math.clz32(v[0] as number));
  return Buffer.concat([Uint8Array.of(bits >> 8, bits & 0xff), v]);
}

function subpacket(type: number, data: Uint8Array): Buffer {
  if (data.length + 1 >= 192) throw new RangeError('subpacket too long');
  return Buffer.concat([Uint8Array.of(data.length + 1, type), data]);
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

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
