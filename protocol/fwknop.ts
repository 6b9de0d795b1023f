/**
 * fwknop 2.x GPG-mode knocks (SPEC.md §11): what the unmodified fwknop client sends, read as
 * strictly as fwknopd reads it, or more. Pure: the caller passes keys, HMAC keys and the clock.
 *
 * On the wire (fwknop's lib/fko_encryption.c and lib/fko_funcs.c, checked against the real client): base64 of a binary OpenPGP message with its
 * `=` padding and its first two characters removed (fwknop assumes they are `hQ`, true only for
 * RSA session keys), then optionally an HMAC tag (base64, no padding) over the full base64 text,
 * first two characters included. Inside the signed literal data: colon-separated fields (§2.2).
 *
 * Order (cheapest first; no public-key work before the HMAC, when there is one):
 *  1. `looksLikeFwknop`: length and base64 alphabet. A spa knock is binary OpenPGP, whose first
 *     octet (>= 0x80) is never a base64 character, so the two never overlap.
 *  2. `unwrapFwknop`: rebuild the two lost characters by trying every PKESK header octet and
 *     length nibble and keeping the one candidate whose OpenPGP framing parses exactly
 *     (framing.ts) and names our key; check the HMAC (constant time) against each enrolled HMAC
 *     key; no decryption yet.
 *  3. envelope.ts `openEnvelope` and `verifySignature`: decrypt, exactly one signature by an
 *     enrolled key.
 *  4. `parseFwknopPlaintext` (fwknop-plaintext.ts): printable, field counts per message type,
 *     every field's grammar, the inner digest recomputed.
 *  5. `fwknopPayload` (fwknop-plaintext.ts): map onto spa's own Payload so freshness, replay and
 *     policy are spa's.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  type Opened,
  type OpenOptions,
  openEnvelope,
  type SignedLiteral,
  type VerifySignedOptions,
  verifySignature,
} from './envelope.js';
import { ParseError, PolicyError, VerifyError } from './errors.js';
import { type Framing, isForUs, parseFraming } from './framing.js';
import { checkFreshness } from './freshness.js';
import {
  B64_RE,
  decodeB64Strict,
  type FwknopMessage,
  fwknopPayload,
  parseFwknopPlaintext,
} from './fwknop-plaintext.js';
import { FWKNOP_MIN_CHARS, PACKET_MAX_BYTES } from './limits.js';

// the plaintext half (fwknop-plaintext.ts) is part of this module's surface
export {
  decodeB64Strict,
  FWKNOP_MSG_ACCESS,
  FWKNOP_MSG_ACCESS_TIMEOUT,
  FWKNOP_MSG_COMMAND,
  FWKNOP_NAT_TYPES,
  FWKNOP_PLAINTEXT_MAX,
  type FwknopContext,
  type FwknopDigestType,
  type FwknopMessage,
  fwknopNonce,
  fwknopPayload,
  parseFwknopPlaintext,
} from './fwknop-plaintext.js';
export { FWKNOP_MIN_CHARS };

/**
 * spa's datagram ceiling (limits.ts), below fwknop's 1499: RSA-2048 knocks with an HMAC are about
 * 1150 characters, RSA-4096 encryption with an RSA-2048 signature about 1370 (with an HMAC, 1412:
 * too long; fwknop's own client refuses RSA-4096 + RSA-4096 at any size).
 */
export const FWKNOP_MAX_CHARS = PACKET_MAX_BYTES;
/** HMAC-SHA256 tag: 32 bytes in base64 without padding. The only HMAC type accepted. */
export const FWKNOP_HMAC_CHARS = 43;
export const FWKNOP_HMAC_KEY_MIN_BYTES = 16;
export const FWKNOP_HMAC_KEY_MAX_BYTES = 128;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function isB64Byte(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2b ||
    c === 0x2f
  );
}

/** Step 1: a datagram of 140..1400 base64 characters. Nothing else is read as fwknop. */
export function looksLikeFwknop(bytes: Uint8Array): boolean {
  if (bytes.length < FWKNOP_MIN_CHARS || bytes.length > FWKNOP_MAX_CHARS) return false;
  for (const c of bytes) if (!isB64Byte(c)) return false;
  return true;
}

export interface FwknopHmacKey {
  /** Whose key this is (the primary fingerprint of the enrollment). */
  readonly id: string;
  readonly key: Uint8Array;
}

export interface UnwrapOptions {
  /** Every enrolled fwknop user's HMAC key. */
  readonly hmacKeys: readonly FwknopHmacKey[];
  /** False when every fwknop user has an HMAC key: then nothing without a valid tag is decrypted. */
  readonly acceptWithoutHmac: boolean;
  readonly recipientKeyIds: ReadonlySet<string>;
}

export interface Unwrapped {
  /** The OpenPGP message, with its first two base64 characters restored. */
  readonly binary: Uint8Array;
  readonly framing: Framing;
  /** The enrollment whose HMAC key matched, or null for a knock without HMAC. */
  readonly hmacKeyId: string | null;
}

/**
 * PKESK packet header octets: the old format with a 1-, 2- or 4-octet length, which is what
 * GnuPG writes (0x85 for RSA-2048/4096, 0x84 for Curve25519). The new format (0xC1) is not tried:
 * with a length under 192 it would frame exactly like 0x84, a second reading of the same bytes.
 */
const HEADER_OCTETS = [0x84, 0x85, 0x86] as const;

type Rebuilt = { binary: Uint8Array; framing: Framing; prefix: string } | 'framing' | 'not_for_us';

/**
 * The two characters fwknop dropped encode the first octet and the high nibble of the second.
 * Decode once with a placeholder, then try the 64 plausible values: a candidate counts only if
 * the whole datagram then frames exactly as PKESK(s) + SEIPD (framing.ts walks headers only).
 */
function rebuild(body: string, recipientKeyIds: ReadonlySet<string>): Rebuilt {
  const decoded = decodeB64Strict(`AA${body}`);
  if (!decoded || decoded.length < 2) return 'framing';
  const low = (decoded[1] ?? 0) & 0x0f;
  let found: { binary: Uint8Array; framing: Framing; prefix: string } | null = null;
  let parsed = false;
  for (const first of HEADER_OCTETS) {
    for (let nibble = 0; nibble < 16; nibble++) {
      // (64 candidates of a header walk each; decoding happened once, above)
      const b = Uint8Array.from(decoded);
      b[0] = first;
      b[1] = (nibble << 4) | low;
      let framing: Framing;
      try {
        framing = parseFraming(b);
      } catch {
        continue;
      }
      parsed = true;
      if (!isForUs(framing, recipientKeyIds)) continue;
      if (found) return 'framing'; // two readings of one datagram: refuse rather than pick
      const prefix = (B64[first >> 2] ?? '') + (B64[((first & 3) << 4) | nibble] ?? '');
      found = { binary: b, framing, prefix };
    }
  }
  return found ?? (parsed ? 'not_for_us' : 'framing');
}

function hmacMatches(key: Uint8Array, signedText: string, tag: string): boolean {
  const want = createHmac('sha256', key).update(signedText, 'latin1').digest('base64').replace(/=+$/, '');
  const a = Buffer.from(want, 'latin1');
  const b = Buffer.from(tag, 'latin1');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Step 2. Throws ParseError PKT_FRAMING (not an fwknop GPG message), PKT_NOT_FOR_US (encrypted to
 * another key), VerifyError FWK_HMAC_INVALID (a tag that no enrolled key made, or no tag where
 * every fwknop user has a key). Every enrolled HMAC key is tried, each in constant time: which
 * user a datagram is for is unknown before decryption, and an HMAC costs about a microsecond.
 */
export function unwrapFwknop(text: string, opts: UnwrapOptions): Unwrapped {
  if (text.length < FWKNOP_MIN_CHARS || text.length > FWKNOP_MAX_CHARS || !B64_RE.test(text)) {
    throw new ParseError(
      'PKT_FRAMING',
      `fwknop packet: not ${FWKNOP_MIN_CHARS}..${FWKNOP_MAX_CHARS} base64 characters`,
    );
  }
  if (opts.hmacKeys.length === 0 && !opts.acceptWithoutHmac) {
    throw new PolicyError('FWK_NOT_ENABLED', 'fwknop packet: no user is enrolled for fwknop knocks');
  }
  const body = text.slice(0, -FWKNOP_HMAC_CHARS);
  const tag = text.slice(-FWKNOP_HMAC_CHARS);
  let tagged: Rebuilt | null = null;
  if (opts.hmacKeys.length > 0) {
    tagged = rebuild(body, opts.recipientKeyIds);
    if (typeof tagged !== 'string') {
      const signed = tagged.prefix + body;
      let matched: string | null = null;
      // no early exit: the time taken does not depend on which key matched
      for (const k of opts.hmacKeys) if (hmacMatches(k.key, signed, tag) && matched === null) matched = k.id;
      if (matched !== null) return { binary: tagged.binary, framing: tagged.framing, hmacKeyId: matched };
    }
  }
  const untagged = rebuild(text, opts.recipientKeyIds);
  if (typeof untagged !== 'string') {
    if (!opts.acceptWithoutHmac) {
      throw new VerifyError(
        'FWK_HMAC_INVALID',
        'fwknop packet: no HMAC, and every fwknop user must send one',
        {
          field: 'hmac',
        },
      );
    }
    return { binary: untagged.binary, framing: untagged.framing, hmacKeyId: null };
  }
  // Neither reading holds: say why as precisely as headers allow (still no decryption).
  tagged ??= rebuild(body, opts.recipientKeyIds);
  if (typeof tagged !== 'string') {
    throw new VerifyError(
      'FWK_HMAC_INVALID',
      opts.hmacKeys.length > 0
        ? 'fwknop packet: HMAC does not match any enrolled HMAC key'
        : 'fwknop packet: an HMAC is appended, but no fwknop user has an HMAC key',
      { field: 'hmac' },
    );
  }
  if (untagged === 'not_for_us' || tagged === 'not_for_us') {
    throw new ParseError('PKT_NOT_FOR_US', 'fwknop packet: no session key for this server');
  }
  throw new ParseError('PKT_FRAMING', 'fwknop packet: not an OpenPGP message once its prefix is restored');
}

/** What the server knows about a user enrolled with --fwknop. */
export interface FwknopEnrollment {
  /** The spa username of the enrollment. */
  readonly username: string;
  /** True when the user has an HMAC key: a knock without a valid tag is refused. */
  readonly hmac: boolean;
  readonly requireUsername: string | null;
}

export interface FwknopSignedOptions extends Pick<
  VerifySignedOptions,
  'serverFingerprint' | 'lookupSigner' | 'now' | 'maxSkewSeconds'
> {
  /** By primary fingerprint; undefined when the user is not enrolled with --fwknop. */
  readonly fwknopOf: (fingerprint: string) => FwknopEnrollment | undefined;
  /** The enrollment whose HMAC key matched the datagram's tag (unwrapFwknop), or null for none. */
  readonly hmacKeyId: string | null;
}

export interface OpenedFwknop extends Opened {
  readonly message: FwknopMessage;
}

/**
 * Steps 3-5 and freshness on the signed literal of an fwknop knock (SPEC.md §11.3-11.4): what
 * spad's verifier runs after decryption, and its monitor again on the packets it forwards.
 * Throws the SpaError with the drop code, or returns spa's Payload for the policy step.
 */
export async function verifyFwknopSigned(
  signed: SignedLiteral,
  opts: FwknopSignedOptions,
): Promise<OpenedFwknop> {
  const { data, signer, signingKeyFingerprint } = await verifySignature(signed, opts);
  const enrollment = opts.fwknopOf(signer.fingerprint);
  if (!enrollment) {
    throw new PolicyError('FWK_NOT_ENABLED', `signer ${signer.fingerprint}: not enrolled for fwknop knocks`, {
      hint: 'remove the key and enroll it again with spa-keys add ... --fwknop',
    });
  }
  if (opts.hmacKeyId !== null && opts.hmacKeyId !== signer.fingerprint) {
    throw new VerifyError('FWK_HMAC_INVALID', "fwknop packet: HMAC made with another user's key", {
      field: 'hmac',
    });
  }
  if (opts.hmacKeyId === null && enrollment.hmac) {
    throw new VerifyError('FWK_HMAC_INVALID', 'fwknop packet: no HMAC, and this user has an HMAC key', {
      field: 'hmac',
    });
  }
  const message = parseFwknopPlaintext(data);
  const payload = fwknopPayload(message, data, {
    serverFingerprint: opts.serverFingerprint,
    username: enrollment.username,
    requireUsername: enrollment.requireUsername,
  });
  checkFreshness(payload.timestamp, opts.now, opts.maxSkewSeconds);
  return { payload, signer, signingKeyFingerprint, signed, message };
}

export interface OpenFwknopOptions extends OpenOptions {
  readonly fwknopOf: (fingerprint: string) => FwknopEnrollment | undefined;
}

/**
 * Decryption and steps 3-5 for a datagram that unwrapFwknop accepted (its HMAC, if any, already
 * checked): throws the SpaError with the drop code, or returns spa's Payload for the policy step.
 */
export async function openFwknop(u: Unwrapped, opts: OpenFwknopOptions): Promise<OpenedFwknop> {
  const signed = await openEnvelope(u.binary, opts);
  return verifyFwknopSigned(signed, {
    ...opts,
    serverFingerprint: opts.server.fingerprint,
    hmacKeyId: u.hmacKeyId,
  });
}

/**
 * For the capture process's flood shield (server/capture/prefilter.ts): could this datagram be an
 * fwknop knock for us, with or without an HMAC tag? Framing only: no HMAC, no decryption.
 */
export function fwknopMayBeForUs(bytes: Uint8Array, recipientKeyIds: ReadonlySet<string>): boolean {
  if (!looksLikeFwknop(bytes)) return false;
  const text = Buffer.from(bytes).toString('latin1');
  if (typeof rebuild(text, recipientKeyIds) !== 'string') return true;
  return typeof rebuild(text.slice(0, -FWKNOP_HMAC_CHARS), recipientKeyIds) !== 'string';
}
