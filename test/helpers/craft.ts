/**
 * Building knocks that `seal()` would never make: unsigned, signed twice, compressed, signed over
 * arbitrary bytes, signatures without an issuer fingerprint, issuers rewritten. Anyone holding
 * the server's public key can encrypt such messages, so the server must judge them; these helpers
 * let tests and scripts/gen-vectors.ts make them with openpgp.js, each call with its own config.
 */
import * as openpgp from 'openpgp';
import { RSA_MIN_BITS } from '../../protocol/limits.js';
import { hexToBytes } from '../../protocol/payload.js';

export type Compression = 'none' | 'zip' | 'zlib';

const COMPRESSION: Record<Compression, openpgp.enums.compression> = {
  none: openpgp.enums.compression.uncompressed,
  zip: openpgp.enums.compression.zip,
  zlib: openpgp.enums.compression.zlib,
};

export interface SignOptions {
  readonly now: Date;
  /** Leave the Issuer Fingerprint subpacket out of every signature (the key id stays). */
  readonly omitIssuerFingerprint?: boolean;
}

type HashedWriter = {
  writeHashedSubPackets(this: unknown): Uint8Array;
  issuerFingerprint: Uint8Array | null;
};

/**
 * OPS..., Literal(data), Signature... as binary packets, unencrypted: what the inside of a knock
 * looks like. With no signers, just the literal data packet.
 */
export async function signedPackets(
  data: Uint8Array,
  signers: readonly openpgp.PrivateKey[],
  opts: SignOptions,
): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: data, format: 'binary', date: opts.now });
  if (signers.length === 0) return message.write() as Uint8Array;
  const proto = openpgp.SignaturePacket.prototype as unknown as HashedWriter;
  const original = proto.writeHashedSubPackets;
  if (opts.omitIssuerFingerprint) {
    // openpgp.js always writes the subpacket when the field is set; hide it while writing.
    proto.writeHashedSubPackets = function (this: HashedWriter) {
      const fpr = this.issuerFingerprint;
      this.issuerFingerprint = null;
      try {
        return original.call(this);
      } finally {
        this.issuerFingerprint = fpr;
      }
    };
  }
  try {
    return (await openpgp.sign({
      message,
      signingKeys: [...signers],
      format: 'binary',
      date: opts.now,
      config: { minRSABits: RSA_MIN_BITS },
    })) as Uint8Array;
  } finally {
    proto.writeHashedSubPackets = original;
  }
}

export interface EncryptOptions {
  readonly now: Date;
  readonly compression?: Compression;
}

/** Encrypts an already-built packet sequence (e.g. from signedPackets) to these keys, binary. */
export async function encryptPackets(
  packets: Uint8Array,
  to: openpgp.PublicKey | readonly openpgp.PublicKey[],
  opts: EncryptOptions,
): Promise<Uint8Array> {
  // readMessage leaves packets after the first in a stream; take them all before re-wrapping.
  // Grammar is not enforced here: crafting messages that break it is the point.
  const message = await drain(
    await openpgp.readMessage({ binaryMessage: packets, config: { enforceGrammar: false } }),
  );
  return (await openpgp.encrypt({
    message,
    encryptionKeys: Array.isArray(to) ? [...to] : (to as openpgp.PublicKey),
    format: 'binary',
    date: opts.now,
    config: {
      preferredCompressionAlgorithm: COMPRESSION[opts.compression ?? 'none'],
      minRSABits: RSA_MIN_BITS,
    },
  })) as Uint8Array;
}

export interface CraftOptions extends SignOptions {
  readonly signers: readonly openpgp.PrivateKey[];
  readonly to: openpgp.PublicKey | readonly openpgp.PublicKey[];
  readonly compression?: Compression;
}

/** Sign (with any number of keys, possibly none) then encrypt arbitrary payload bytes. */
export async function craftKnock(data: Uint8Array, o: CraftOptions): Promise<Uint8Array> {
  const inner = await signedPackets(data, o.signers, o);
  return encryptPackets(inner, o.to, { now: o.now, compression: o.compression ?? 'none' });
}

/** Every occurrence of `needle` in `hay` replaced by `replacement` (same length). Returns the count. */
export function replaceAll(hay: Uint8Array, needle: Uint8Array, replacement: Uint8Array): number {
  if (needle.length !== replacement.length || needle.length === 0)
    throw new Error('replaceAll: lengths differ');
  let n = 0;
  for (let i = 0; i + needle.length <= hay.length; i++) {
    let hit = true;
    for (let j = 0; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) {
        hit = false;
        break;
      }
    }
    if (hit) {
      hay.set(replacement, i);
      n++;
      i += needle.length - 1;
    }
  }
  return n;
}

/**
 * A message signed by `signer` whose OPS and signature name `claimed` as their issuer (key id and
 * fingerprint rewritten in place): what a forger who enrolled nothing would try. Both keys must be
 * the same version so the lengths match.
 */
export async function forgedIssuerPackets(
  data: Uint8Array,
  signer: openpgp.PrivateKey,
  claimed: openpgp.PublicKey,
  now: Date,
): Promise<Uint8Array> {
  const packets = await signedPackets(data, [signer], { now });
  const from = await signer.getSigningKey(undefined, now);
  const to = await claimed.getSigningKey(undefined, now);
  const fprs = replaceAll(packets, hexToBytes(from.getFingerprint()), hexToBytes(to.getFingerprint()));
  const ids = replaceAll(packets, hexToBytes(from.getKeyID().toHex()), hexToBytes(to.getKeyID().toHex()));
  if (fprs + ids === 0) throw new Error('forgedIssuerPackets: issuer not found in the signed packets');
  return packets;
}

/** The packets inside a knock, decrypted with the server key, re-serialized (binary). */
export async function decryptToPackets(
  bytes: Uint8Array,
  serverKey: openpgp.PrivateKey,
  now: Date,
): Promise<Uint8Array> {
  const message = await openpgp.readMessage({ binaryMessage: bytes });
  const decrypted = await drain(
    (await message.decrypt([serverKey], undefined, undefined, now)) as openpgp.Message<Uint8Array>,
  );
  return decrypted.write() as Uint8Array;
}

/** A packet as its tag and its whole encoding (header included). */
export interface RawPacket {
  readonly tag: number;
  readonly bytes: Uint8Array;
}

/** Splits a sequence of new-format, fixed-length packets (what openpgp.js writes for small data). */
export function splitPackets(b: Uint8Array): RawPacket[] {
  const out: RawPacket[] = [];
  let o = 0;
  while (o < b.length) {
    const start = o;
    const first = b[o++] ?? 0;
    if ((first & 0xc0) !== 0xc0) throw new Error(`splitPackets: byte ${start} is not a new-format header`);
    const l1 = b[o++] ?? 0;
    let len: number;
    if (l1 < 192) len = l1;
    else if (l1 < 224) len = ((l1 - 192) << 8) + (b[o++] ?? 0) + 192;
    else if (l1 === 255) {
      len = new DataView(b.buffer, b.byteOffset + o, 4).getUint32(0);
      o += 4;
    } else throw new Error('splitPackets: partial lengths are not supported');
    o += len;
    out.push({ tag: first & 0x3f, bytes: b.slice(start, o) });
  }
  return out;
}

/** Concatenates byte arrays. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Decrypts a knock with the server key and returns the tags of the packets inside (after one level
 * of compression, whose tag 8 is listed first when present). For asserting what a crafted message
 * really contains.
 */
export async function innerTags(
  bytes: Uint8Array,
  serverKey: openpgp.PrivateKey,
  now: Date,
): Promise<number[]> {
  const message = await openpgp.readMessage({ binaryMessage: bytes });
  const decrypted = (await message.decrypt(
    [serverKey],
    undefined,
    undefined,
    now,
  )) as openpgp.Message<Uint8Array>;
  const tags: number[] = [];
  const drained = await drain(decrypted);
  const first = drained.packets[0];
  if (drained.packets.length === 1 && first && tagOf(first) === openpgp.enums.packet.compressedData) {
    tags.push(openpgp.enums.packet.compressedData);
    const inner = await drain(drained.unwrapCompressed() as openpgp.Message<Uint8Array>);
    for (const p of inner.packets) tags.push(tagOf(p));
  } else {
    for (const p of drained.packets) tags.push(tagOf(p));
  }
  return tags;
}

function tagOf(p: unknown): number {
  return (p as { constructor: { tag?: number } }).constructor.tag ?? -1;
}

async function drain(m: openpgp.Message<Uint8Array>): Promise<openpgp.Message<Uint8Array>> {
  const list = m.packets as unknown as unknown[] & { stream?: ReadableStream | null };
  if (list.stream) {
    const reader = list.stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      list.push(value);
    }
    list.stream = null;
  }
  return m;
}

/** One signature subpacket (RFC 9580 §5.2.3.7): one-octet length, type, body. */
export function subpacket(type: number, body: Uint8Array): Uint8Array {
  if (body.length + 1 >= 192) throw new Error('subpacket: too long for a one-octet length');
  return concat(Uint8Array.of(body.length + 1, type), body);
}

/**
 * A v4 signature packet (new format, as splitPackets gives it) with its unhashed area replaced by
 * these subpackets, in this order. The signature still verifies: the unhashed area is not signed.
 */
export function withUnhashed(sigRaw: Uint8Array, ...subpackets: Uint8Array[]): Uint8Array {
  const body = sigRaw.subarray((sigRaw[1] ?? 0) < 192 ? 2 : 3);
  if (body[0] !== 4) throw new Error('withUnhashed: not a v4 signature');
  const at = 6 + (((body[4] ?? 0) << 8) | (body[5] ?? 0));
  const oldLen = ((body[at] ?? 0) << 8) | (body[at + 1] ?? 0);
  const unhashed = concat(...subpackets);
  const out = concat(
    body.subarray(0, at),
    Uint8Array.of(unhashed.length >> 8, unhashed.length & 0xff),
    unhashed,
    body.subarray(at + 2 + oldLen),
  );
  const n = out.length;
  if (n >= 8384) throw new Error('withUnhashed: signature too long');
  const header =
    n < 192 ? Uint8Array.of(0xc2, n) : Uint8Array.of(0xc2, ((n - 192) >> 8) + 192, (n - 192) & 0xff);
  return concat(header, out);
}
