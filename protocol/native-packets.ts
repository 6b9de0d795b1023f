/**
 * The OpenPGP packet format as native-seal.ts and native-keys.ts need it (RFC 9580, SPEC.md §3):
 * armor, packet headers, MPIs, subpackets and the v4 signature digest, read and written with
 * node:crypto and Buffer alone, so the client's default path never loads openpgp.js. Pure.
 */
import { createHash } from 'node:crypto';

export const TAG = {
  SIGNATURE: 2,
  SECRET_KEY: 5,
  PUBLIC_KEY: 6,
  SECRET_SUBKEY: 7,
  USER_ID: 13,
  PUBLIC_SUBKEY: 14,
};
export const EDDSA_LEGACY = 22;
export const ECDH = 18;
export const ED25519_OID = Buffer.from('2b06010401da470f01', 'hex');
export const CV25519_OID = Buffer.from('2b060104019755010501', 'hex');
export const HASHES: Readonly<Record<number, string>> = {
  8: 'sha256',
  9: 'sha384',
  10: 'sha512',
  11: 'sha224',
};
export const KDF_HASHES: Readonly<Record<number, string>> = { 8: 'sha256', 9: 'sha384', 10: 'sha512' };
export const WRAPS: Readonly<Record<number, { cipher: string; keyLen: number }>> = {
  7: { cipher: 'id-aes128-wrap', keyLen: 16 },
  8: { cipher: 'id-aes192-wrap', keyLen: 24 },
  9: { cipher: 'id-aes256-wrap', keyLen: 32 },
};
export const AES256 = 9;
export const SHA512 = 10;
export const SALT_NOTATION = 'salt@notations.openpgpjs.org';
/** Subpackets whose meaning we know (RFC 9580 §5.2.3.7 ff.); an unknown one marked critical stops us. */
export const KNOWN_SUBPACKETS = new Set([2, 3, 4, 9, 11, 16, 20, 21, 22, 23, 25, 27, 30, 33, 34, 39]);
export const FLAG_SIGN = 0x02;
export const FLAG_ENCRYPT = 0x0c;
export const FEATURE_SEIPDV2 = 0x08;

export const DER = {
  ed25519Pkcs8: Buffer.from('302e020100300506032b657004220420', 'hex'),
  x25519Pkcs8: Buffer.from('302e020100300506032b656e04220420', 'hex'),
};

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

export function crc24(data: Uint8Array): Uint8Array {
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

export interface Packet {
  readonly tag: number;
  readonly body: Uint8Array;
}

/** The packets of a key, or null for partial lengths, old indeterminate lengths or truncation. */
export function readPackets(b: Uint8Array): Packet[] | null {
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
export function readMpi(b: Uint8Array, at: number): { value: Uint8Array; end: number } | null {
  if (at + 2 > b.length) return null;
  const bits = ((b[at] as number) << 8) | (b[at + 1] as number);
  const n = (bits + 7) >> 3;
  if (at + 2 + n > b.length) return null;
  const value = b.subarray(at + 2, at + 2 + n);
  // one spelling per number: the bit count matches the first octet
  if (n > 0 && 32 - Math.clz32(value[0] as number) !== bits - (n - 1) * 8) return null;
  return { value, end: at + 2 + n };
}

export function pad32(b: Uint8Array): Buffer {
  const out = Buffer.alloc(32);
  out.set(b, 32 - b.length);
  return out;
}

/** The digest a v4 signature signs, over `prefix` (what the signature type covers). */
export function signatureDigest(hash: string, prefix: readonly Uint8Array[], hashedPart: Uint8Array): Buffer {
  const h = createHash(hash);
  for (const p of prefix) h.update(p);
  const n = hashedPart.length;
  return h
    .update(hashedPart)
    .update(Uint8Array.of(4, 0xff, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff))
    .digest();
}

export function packet(tag: number, body: Uint8Array): Buffer {
  const n = body.length;
  let len: Uint8Array;
  if (n < 192) len = Uint8Array.of(n);
  else if (n < 8384) len = Uint8Array.of(((n - 192) >> 8) + 192, (n - 192) & 0xff);
  else len = Uint8Array.of(255, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  return Buffer.concat([Uint8Array.of(0xc0 | tag), len, body]);
}

export function mpi(value: Uint8Array): Buffer {
  let i = 0;
  while (i < value.length - 1 && value[i] === 0) i++;
  const v = value.subarray(i);
  const bits = v.length === 0 ? 0 : (v.length - 1) * 8 + (32 - Math.clz32(v[0] as number));
  return Buffer.concat([Uint8Array.of(bits >> 8, bits & 0xff), v]);
}

export function subpacket(type: number, data: Uint8Array): Buffer {
  if (data.length + 1 >= 192) throw new RangeError('subpacket too long');
  return Buffer.concat([Uint8Array.of(data.length + 1, type), data]);
}

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
