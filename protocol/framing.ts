/**
 * Cheap OpenPGP framing check, run before any public-key work (SPEC.md §6.1). It walks packet
 * headers only: a knock must be one or more Public-Key Encrypted Session Key packets (tag 1,
 * v3 or v6) followed by exactly one Symmetrically Encrypted Integrity Protected Data packet
 * (tag 18, v1 or v2) that ends exactly at the end of the datagram. At least one PKESK must name
 * one of the server's encryption key ids: a packet for someone else costs us no decryption.
 */
import { ParseError } from './errors.js';
import { bytesToHex } from './payload.js';

const TAG_PKESK = 1;
const TAG_SEIPD = 18;
const MAX_PKESK = 4;

export interface Recipient {
  readonly version: 3 | 6;
  /** 16 uppercase hex digits, or null for an anonymous (wildcard) recipient. */
  readonly keyId: string | null;
}

export interface Framing {
  readonly recipients: readonly Recipient[];
  readonly seipdVersion: number;
}

interface Header {
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

function readHeader(b: Uint8Array, at: number): Header {
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

function readRecipient(b: Uint8Array, h: Header): Recipient {
  const body = b.subarray(h.bodyStart, h.bodyEnd);
  const v = body[0];
  if (v === 3) {
    if (body.length < 10) bad('short v3 PKESK');
    const id = bytesToHex(body.subarray(1, 9));
    return { version: 3, keyId: /^0+$/.test(id) ? null : id };
  }
  if (v === 6) {
    const n = body[1];
    if (n === undefined || body.length < 2 + n) bad('short v6 PKESK');
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
      if (recipients.length >= MAX_PKESK) bad(`more than ${MAX_PKESK} session key packets`);
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
    return { recipients, seipdVersion: v };
  }
}

/** True when one of the packet's session keys is for one of `ourKeyIds`. */
export function isForUs(f: Framing, ourKeyIds: ReadonlySet<string>): boolean {
  return f.recipients.some((r) => r.keyId !== null && ourKeyIds.has(r.keyId));
}
