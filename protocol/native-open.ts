/**
 * The decryption half of open() (SPEC.md §7 steps 6-7) for the default profile, with node:crypto
 * and no openpgp.js message machinery: a v3 PKESK to our v4 ECDH/Curve25519 key (ecdh.ts), one
 * SEIPD v1 packet (AES, CFB, SHA-1 MDC), and inside it exactly a one-pass signature, a literal
 * data packet and a signature, each with a fixed length. openpgp.js's readMessage and decrypt
 * walk the same bytes through its stream layer, most of a knock's decryption cost; this returns
 * the same three packets, read by the same openpgp.js packet classes from the same bytes.
 *
 * It is a subset, never a second opinion: whenever a knock is anything else (another key or
 * cipher, SEIPD v2, compression, partial lengths, any other packet sequence, a packet its class
 * will not read), it returns null and open() takes the openpgp.js path, which decides. It
 * refuses by itself only where both paths must: the session key does not unwrap (the same
 * function openpgp.js's path calls, ecdh.ts), or the MDC does not match the decrypted data, both
 * DECRYPT_FAILED as there. Nothing from the plaintext is looked at before the MDC matched.
 */
import { createDecipheriv, createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { decryptEcdhSessionKey, type EcdhKey } from './ecdh.js';
import { VerifyError } from './errors.js';
import { type Header, readHeader } from './framing.js';

const TAG_PKESK = 1;
const TAG_OPS = 4;
const TAG_LITERAL = 11;
const TAG_SIGNATURE = 2;
const ECDH = 18;
const CIPHERS: Readonly<Record<string, string>> = {
  aes128: 'aes-128-cfb',
  aes192: 'aes-192-cfb',
  aes256: 'aes-256-cfb',
};
const BLOCK = 16;
const MDC_HEADER = [0xd3, 0x14] as const;
const MDC_BYTES = 22;

/** The packets inside the encryption, as openpgp.js's own classes read them. */
export interface NativeOpened {
  readonly onePass: openpgp.OnePassSignaturePacket;
  readonly literal: openpgp.LiteralDataPacket;
  readonly signature: openpgp.SignaturePacket;
}

/**
 * What nativeOpen found: the three packets; or, for a knock it does not handle, the session key
 * when it already unwrapped it (the openpgp.js path then uses it instead of unwrapping it again).
 */
export type NativeResult =
  | { readonly packets: NativeOpened }
  | { readonly packets: null; readonly sessionKey: openpgp.SessionKey | null };

export interface NativeKeys {
  readonly ecdhKeys: ReadonlyMap<string, EcdhKey>;
  readonly decryptionKeys: ReadonlyMap<string, unknown>;
}

/** Headers of consecutive packets filling `b` exactly, none partial; null for anything else. */
function packets(b: Uint8Array): Header[] | null {
  const out: Header[] = [];
  try {
    for (let at = 0; at < b.length;) {
      const h = readHeader(b, at);
      if (h.chunks.length !== 1) return null;
      out.push(h);
      at = h.bodyEnd;
    }
  } catch {
    return null;
  }
  return out;
}

/** The v3 ECDH PKESK's ephemeral point and wrapped key (framing.ts has checked the layout). */
function ecdhFields(body: Uint8Array): { V: Uint8Array; C: Uint8Array } | null {
  if (body[0] !== 3 || body[9] !== ECDH) return null;
  const bits = ((body[10] ?? 0) << 8) | (body[11] ?? 0);
  const vEnd = 12 + ((bits + 7) >> 3);
  const n = body[vEnd];
  if (n === undefined || vEnd + 1 + n !== body.length) return null;
  return { V: body.subarray(12, vEnd), C: body.subarray(vEnd + 1) };
}

/**
 * The session key of the first PKESK that names one of our decryption keys, as openpgp.js's
 * path picks it (session-key.ts decryptSessionKey); null when that key is not an ECDH/Curve25519
 * one this module handles.
 */
function sessionKey(bytes: Uint8Array, headers: Header[], keys: NativeKeys): openpgp.SessionKey | null {
  for (const h of headers) {
    if (h.tag !== TAG_PKESK) continue;
    const body = bytes.subarray(h.bodyStart, h.bodyEnd);
    // a v6 PKESK: the openpgp.js path would try it in this place, so it decides the whole knock
    if (body[0] !== 3) return null;
    const id = Buffer.from(body.subarray(1, 9)).toString('hex').toUpperCase();
    const fast = keys.ecdhKeys.get(id);
    if (!fast) {
      if (keys.decryptionKeys.has(id)) return null;
      continue;
    }
    const f = ecdhFields(body);
    if (!f) return null;
    try {
      return decryptEcdhSessionKey(fast, {
        version: 3,
        publicKeyAlgorithm: ECDH,
        encrypted: { V: f.V, C: { data: f.C } },
      });
    } catch (cause) {
      throw new VerifyError('DECRYPT_FAILED', 'packet: could not be decrypted with the server key', {
        cause,
      });
    }
  }
  return null;
}

const NONE: NativeResult = { packets: null, sessionKey: null };

/**
 * Decrypts and reads a knock of the default profile; `packets: null` when it is not one (open()
 * then takes the openpgp.js path, with the session key if this got that far). `bytes` has passed
 * precheck (framing.ts): PKESKs, then one SEIPD packet.
 */
export async function nativeOpen(
  bytes: Uint8Array,
  keys: NativeKeys,
  config: openpgp.Config,
): Promise<NativeResult> {
  const outer = packets(bytes);
  const seipd = outer?.[outer.length - 1];
  if (!outer || !seipd || bytes[seipd.bodyStart] !== 1) return NONE;
  const key = sessionKey(bytes, outer, keys);
  if (!key) return NONE;
  const declined: NativeResult = { packets: null, sessionKey: key };
  const cipher = CIPHERS[key.algorithm];
  const ciphertext = bytes.subarray(seipd.bodyStart + 1, seipd.bodyEnd);
  if (!cipher || ciphertext.length < BLOCK + 2 + MDC_BYTES) return declined;

  const d = createDecipheriv(cipher, key.data, Buffer.alloc(BLOCK));
  const plain = Buffer.concat([d.update(ciphertext), d.final()]);
  const mdcAt = plain.length - MDC_BYTES;
  if (plain[mdcAt] !== MDC_HEADER[0] || plain[mdcAt + 1] !== MDC_HEADER[1]) return declined;
  const digest = createHash('sha1')
    .update(plain.subarray(0, mdcAt + 2))
    .digest();
  if (!digest.equals(plain.subarray(mdcAt + 2))) {
    throw new VerifyError('DECRYPT_FAILED', 'packet: could not be decrypted with the server key', {
      cause: new Error('Modification detected.'),
    });
  }

  const data = plain.subarray(BLOCK + 2, mdcAt);
  const inner = packets(data);
  if (
    inner?.length !== 3 ||
    inner[0]?.tag !== TAG_OPS ||
    inner[1]?.tag !== TAG_LITERAL ||
    inner[2]?.tag !== TAG_SIGNATURE
  ) {
    return declined;
  }
  const body = (h: Header): Uint8Array => new Uint8Array(data.subarray(h.bodyStart, h.bodyEnd));
  try {
    // read() is typed private in openpgp.js's .d.ts, public at run time
    const onePass = new openpgp.OnePassSignaturePacket();
    (onePass as unknown as { read(b: Uint8Array): void }).read(body(inner[0]));
    const literal = new openpgp.LiteralDataPacket();
    await (literal as unknown as { read(b: Uint8Array): Promise<void> }).read(body(inner[1]));
    const signature = new openpgp.SignaturePacket();
    (signature as unknown as { read(b: Uint8Array, c: openpgp.Config): void }).read(body(inner[2]), config);
    return { packets: { onePass, literal, signature } };
  } catch {
    return declined;
  }
}
