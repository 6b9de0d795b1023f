/**
 * Cheap OpenPGP framing check, run before any public-key work (SPEC.md §3; §7 steps 2-3). It walks packet
 * headers only: a knock must be one or more Public-Key Encrypted Session Key packets (tag 1,
 * v3 or v6) followed by exactly one Symmetrically Encrypted Integrity Protected Data packet
 * (tag 18, v1 or v2) that ends exactly at the end of the datagram. At least one PKESK must name
 * one of the server's encryption key ids: a packet for someone else costs us no decryption.
 */
import { ParseError } from './errors.js';
import { PKESK_MAX } from './limits.js';
import { bytesToHex } from './payload.js';

const TAG_PKESK = 1;
const TAG_SEIPD = 18;

export interface Recipient {
  readonly version: 3 | 6;
  /** 16 uppercase hex digits, or null for an anonymous (wildcard) recipient. */
  readonly keyId: string | null;
}

export interface Framing {
  readonly recipients: readonly Recipient[];
  readonly seipdVersion: number;
  /**
   * The encrypted data packet's body (partial-length chunks joined): the part of a knock nobody
   * can change without the session key. Its digest is the raw replay identity; a digest of the
   * whole datagram could be dodged by re-framing headers (old vs new packet format).
   */
  readonly encryptedBody: Uint8Array;
}

export interface Header {
  tag: number;
  /** offset of the body and its total length (partial chunks are summed) */
  bodyStart: number;
  bodyEnd: number;
  /** for partial-length bodies, the chunks; the body is not contiguous */
  chunks: Array<[number, number]>;
}

function bad(message: string): never {
  throw new ParseError('PKT_FRAMING', `openpgp framing: ${message}`);
}

/** One packet header at `at` (new or old format); throws PKT_FRAMING. Partial lengths only on tag 18. */
export function readHeader(b: Uint8Array, at: number): Header {
  const first = b[at];
  if (first === undefined || (first & 0x80) === 0) bad(`byte ${at} is not a packet header`);
  let o = at + 1;
  if (first & 0x40) {
    const tag = first & 0x3f;
    const chunks: Array<[number, number]> = [];
    for (;;) {
      const l1 = b[o];
      if (l1 === undefined) bad('truncated length');
      let len: number;
      let partial = false;
      if (l1 < 192) {
        len = l1;
        o += 1;
      } else if (l1 < 224) {
        const l2 = b[o + 1];
        if (l2 === undefined) bad('truncated length');
        len = ((l1 - 192) << 8) + l2 + 192;
        o += 2;
      } else if (l1 === 255) {
        if (o + 5 > b.length) bad('truncated length');
        len =
          (((b[o + 1] ?? 0) << 24) | ((b[o + 2] ?? 0) << 16) | ((b[o + 3] ?? 0) << 8) | (b[o + 4] ?? 0)) >>>
          0;
        o += 5;
      } else {
        if (tag !== TAG_SEIPD) bad(`partial length on packet tag ${tag}`);
        len = 1 << (l1 & 0x1f);
        partial = true;
        o += 1;
      }
      if (o + len > b.length) bad(`packet tag ${tag} runs past the end`);
      chunks.push([o, o + len]);
      o += len;
      if (!partial) break;
    }
    return { tag, bodyStart: chunks[0]?.[0] ?? o, bodyEnd: o, chunks };
  }
  // old format
  const tag = (first >> 2) & 0x0f;
  const lt = first & 3;
  let len: number;
  if (lt === 0) {
    len = b[o] ?? bad('truncated length');
    o += 1;
  } else if (lt === 1) {
    if (o + 2 > b.length) bad('truncated length');
    len = ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
    o += 2;
  } else if (lt === 2) {
    if (o + 4 > b.length) bad('truncated length');
    len = (((b[o] ?? 0) << 24) | ((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0)) >>> 0;
    o += 4;
  } else {
    len = b.length - o; // indeterminate: to the end
  }
  if (o + len > b.length) bad(`packet tag ${tag} runs past the end`);
  return { tag, bodyStart: o, bodyEnd: o + len, chunks: [[o, o + len]] };
}

/**
 * One MPI (RFC 9580 §3.2): a 2-octet bit count, then exactly ceil(bits/8) octets whose first
 * octet's highest set bit is the count's top bit. Anything else is a second spelling of the same
 * number, i.e. a malleable byte; refused so that every byte of a knock is significant.
 */
function readMpi(body: Uint8Array, at: number): number {
  if (at + 2 > body.length) bad('truncated MPI');
  const bits = ((body[at] ?? 0) << 8) | (body[at + 1] ?? 0);
  const len = (bits + 7) >> 3;
  if (bits === 0 || at + 2 + len > body.length) bad('MPI length does not fit the packet');
  const first = body[at + 2] ?? 0;
  if (first >> ((bits - 1) & 7) !== 1) bad('MPI bit count does not match its value');
  return at + 2 + len;
}

/** The algorithm-specific fields after the public-key algorithm octet must fill the packet exactly. */
function checkEncryptedKey(body: Uint8Array, algoAt: number, version: 3 | 6): void {
  const algo = body[algoAt];
  let o = algoAt + 1;
  const rest = (): void => {
    // one length octet, then exactly that many octets, ending the packet
    const n = body[o];
    if (n === undefined || o + 1 + n !== body.length)
      bad('encrypted session key length does not end the packet');
  };
  switch (algo) {
    case 1: // RSA
      if (readMpi(body, o) !== body.length) bad('RSA session key does not end the packet');
      return;
    case 16: // ElGamal
      if (readMpi(body, readMpi(body, o)) !== body.length) bad('ElGamal session key does not end the packet');
      return;
    case 18: // ECDH
      o = readMpi(body, o);
      return rest();
    case 25: // X25519
    case 26: {
      // X448
      o += algo === 25 ? 32 : 56;
      const n = body[o];
      if (n === undefined || o + 1 + n !== body.length)
        bad('encrypted session key length does not end the packet');
      // v3 carries the cleartext symmetric algorithm octet inside that length; v6 does not
      if (version === 3 && n < 1) bad('missing symmetric algorithm');
      return;
    }
    default:
      bad(`PKESK public-key algorithm ${String(algo)}`);
  }
}

function readRecipient(b: Uint8Array, h: Header): Recipient {
  const body = b.subarray(h.bodyStart, h.bodyEnd);
  const v = body[0];
  if (v === 3) {
    if (body.length < 10) bad('short v3 PKESK');
    checkEncryptedKey(body, 9, 3);
    const id = bytesToHex(body.subarray(1, 9));
    return { version: 3, keyId: /^0+$/.test(id) ? null : id };
  }
  if (v === 6) {
    const n = body[1];
    if (n === undefined || body.length < 3 + n) bad('short v6 PKESK');
    checkEncryptedKey(body, 2 + n, 6);
    if (n === 0) return { version: 6, keyId: null };
    const keyVersion = body[2];
    const fpr = body.subarray(3, 2 + n);
    if (keyVersion === 6 && fpr.length === 32) return { version: 6, keyId: bytesToHex(fpr.subarray(0, 8)) };
    if (keyVersion === 4 && fpr.length === 20) return { version: 6, keyId: bytesToHex(fpr.subarray(12, 20)) };
    bad('v6 PKESK with an unknown key version');
  }
  bad(`PKESK version ${String(v)}`);
}

/** Walks the packet headers; throws ParseError PKT_FRAMING / PKT_ARMORED. */
export function parseFraming(b: Uint8Array): Framing {
  if (b[0] === 0x2d /* '-' */ && b[1] === 0x2d) {
    throw new ParseError('PKT_ARMORED', 'openpgp framing: armored text where binary is required');
  }
  const recipients: Recipient[] = [];
  let at = 0;
  for (;;) {
    const h = readHeader(b, at);
    if (h.tag === TAG_PKESK) {
      if (recipients.length >= PKESK_MAX) bad(`more than ${PKESK_MAX} session key packets`);
      recipients.push(readRecipient(b, h));
      at = h.bodyEnd;
      continue;
    }
    if (h.tag !== TAG_SEIPD)
      bad(`packet tag ${h.tag} where a session key or encrypted data packet is expected`);
    if (recipients.length === 0) bad('no session key packet');
    const v = b[h.bodyStart];
    if (v !== 1 && v !== 2) bad(`encrypted data packet version ${String(v)}`);
    if (h.bodyEnd !== b.length) {
      throw new ParseError(
        'PKT_FRAMING',
        `openpgp framing: ${b.length - h.bodyEnd} trailing bytes after the message`,
        {
          field: 'trailing',
        },
      );
    }
    const body =
      h.chunks.length === 1
        ? b.subarray(h.bodyStart, h.bodyEnd)
        : Uint8Array.from(h.chunks.flatMap(([from, to]) => Array.from(b.subarray(from, to))));
    return { recipients, seipdVersion: v, encryptedBody: body };
  }
}

/** True when one of the packet's session keys is for one of `ourKeyIds`. */
export function isForUs(f: Framing, ourKeyIds: ReadonlySet<string>): boolean {
  return f.recipients.some((r) => r.keyId !== null && ourKeyIds.has(r.keyId));
}
