/**
 * The inner packet sequence of a knock (SPEC.md §3, §7 step 7), judged once the data is decrypted
 * and its integrity checked: exactly [OPS, Literal, Signature], optionally inside one compressed
 * packet (compressed.ts), with one signature that names its issuer by full fingerprint. Also the
 * ways openpgp.js reports packets it will not have there, mapped onto our codes.
 */
import * as openpgp from 'openpgp';
import type { SignedLiteral } from './envelope.js';
import { isSpaError, type SpaError, VerifyError } from './errors.js';
import { bytesToHex } from './payload.js';

export const T = openpgp.enums.packet;

export function tagOf(p: unknown): number {
  return (p as { constructor: { tag?: number } }).constructor.tag ?? -1;
}

/** Step 7 on decrypted data: the literal and signature packets of exactly [OPS, Literal, Signature]. */
export async function innerPackets(decrypted: openpgp.Message<Uint8Array>): Promise<SignedLiteral> {
  // Exactly [OPS, Literal, Signature], optionally inside one compressed packet (gpg's default).
  let inner: openpgp.Message<Uint8Array>;
  try {
    inner = await materialize(decrypted);
    if (inner.packets.length === 1 && tagOf(inner.packets[0]) === T.compressedData) {
      inner = await materialize(inner.unwrapCompressed());
    }
  } catch (cause) {
    throw (
      ourError(cause) ??
      new VerifyError('MSG_STRUCTURE', 'message: malformed packets inside the encryption', { cause })
    );
  }
  const tags = inner.packets.map(tagOf);
  const sigs = tags.filter((t) => t === T.signature).length;
  if (sigs === 0) throw new VerifyError('SIG_MISSING', 'message: not signed');
  if (sigs > 1) throw new VerifyError('SIG_MULTIPLE', `message: ${sigs} signatures, exactly one is allowed`);
  if (
    tags.length !== 3 ||
    tags[0] !== T.onePassSignature ||
    tags[1] !== T.literalData ||
    tags[2] !== T.signature
  ) {
    throw new VerifyError(
      'MSG_STRUCTURE',
      `message: packet sequence [${tags.join(',')}] is not one-pass-signature, literal, signature`,
    );
  }
  return signedLiteralOf(
    inner.packets[0] as openpgp.OnePassSignaturePacket,
    inner.packets[1] as openpgp.LiteralDataPacket,
    inner.packets[2] as openpgp.SignaturePacket,
  );
}

/** The one-pass signature and the signature must name the same key (and fingerprint, if both do). */
export function signedLiteralOf(
  onePass: openpgp.OnePassSignaturePacket,
  literal: openpgp.LiteralDataPacket,
  sig: openpgp.SignaturePacket,
): SignedLiteral {
  // openpgp.js types omit the OPS key id; it is there at run time.
  const ops = onePass as unknown as { issuerKeyID: openpgp.KeyID; issuerFingerprint?: Uint8Array };
  if (!ops.issuerKeyID.equals(sig.issuerKeyID)) {
    throw new VerifyError('MSG_STRUCTURE', 'message: one-pass signature and signature name different keys');
  }
  const signingKeyFingerprint = issuerFingerprintOf(sig);
  if (ops.issuerFingerprint && bytesToHex(ops.issuerFingerprint) !== signingKeyFingerprint) {
    throw new VerifyError('MSG_STRUCTURE', 'message: one-pass signature and signature name different keys');
  }
  return { literal, signature: sig, signingKeyFingerprint };
}

/** The signature's issuer fingerprint (uppercase hex); a key id alone is SIG_NO_ISSUER_FPR. */
export function issuerFingerprintOf(sig: openpgp.SignaturePacket): string {
  if (!sig.issuerFingerprint) {
    throw new VerifyError(
      'SIG_NO_ISSUER_FPR',
      'signature: no issuer fingerprint subpacket (key id alone is not accepted)',
    );
  }
  return bytesToHex(sig.issuerFingerprint);
}

/**
 * What an error from openpgp.js's decryption means for step 7: the data is parsed only after its
 * integrity check passed (SEIPD v1 MDC, v2 AEAD chunks), so one of our own codes thrown from
 * inside its parser, or a packet that is not allowed or malformed there, is a structure problem,
 * not a decryption one. Undefined for anything else.
 */
export function structureErrorOf(cause: unknown): SpaError | undefined {
  const own = ourError(cause);
  if (own) return own;
  if (isStructureError(cause)) {
    return new VerifyError('MSG_STRUCTURE', 'message: packet sequence inside the encryption is not allowed', {
      cause,
    });
  }
  return undefined;
}

/**
 * openpgp.js reads packets lazily: after the first data packet the rest wait in `list.stream`.
 * We need the whole sequence to judge it, so drain that stream into the list itself (as
 * openpgp.js's own verify does) and return the message ready for verification.
 */
async function materialize(message: openpgp.Message<Uint8Array>): Promise<openpgp.Message<Uint8Array>> {
  const list = message.packets as unknown as unknown[] & {
    stream?: { getReader(): ReadableStreamDefaultReader } | null;
  };
  const stream = list.stream;
  if (stream) {
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      list.push(value);
    }
    (reader as { releaseLock?: () => void }).releaseLock?.();
    list.stream = null;
  }
  return message;
}

// exported at run time but missing from openpgp.js's .d.ts
const { GrammarError } = openpgp as unknown as { GrammarError: new () => Error };
const isGrammarError = (e: unknown): boolean => e instanceof GrammarError;

/** openpgp.js's ways of saying "these packets may not be here" (checked along the cause chain). */
function isStructureError(e: unknown): boolean {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 4; x = x.cause, depth++) {
    if (
      isGrammarError(x) ||
      x.name === 'MalformedPacketError' ||
      x.message.startsWith('Packet not allowed in this context')
    ) {
      return true;
    }
  }
  return false;
}

/** A drop code of ours somewhere along openpgp.js's cause chain (thrown from inside its parser). */
function ourError(e: unknown): SpaError | undefined {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 6; x = x.cause, depth++) {
    if (isSpaError(x)) return x;
  }
  return undefined;
}
