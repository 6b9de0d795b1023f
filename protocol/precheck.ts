/**
 * SPEC.md §7 steps 1-3, the checks before any decryption: size, OpenPGP framing, a PKESK for one
 * of our key ids. Cheap enough for every datagram; spad's pipeline runs them first (precheck),
 * the capture process's flood prefilter before the pipe (precheckVerdict).
 */
import { ParseError } from './errors.js';
import { type Framing, isForUs, parseFraming } from './framing.js';
import { PACKET_MAX_BYTES, PACKET_MIN_BYTES } from './limits.js';

/** Steps 1-3, throwing the ParseError of the first that refuses the datagram. */
export function precheck(
  bytes: Uint8Array,
  server: { readonly recipientKeyIds: ReadonlySet<string> },
): Framing {
  const verdict = precheckVerdict(bytes, server.recipientKeyIds);
  if (typeof verdict !== 'string') return verdict;
  const n = bytes.length;
  throw new ParseError(
    verdict,
    verdict === 'PKT_TOO_SHORT'
      ? `packet: ${n} bytes, at least ${PACKET_MIN_BYTES}`
      : verdict === 'PKT_TOO_LONG'
        ? `packet: ${n} bytes, at most ${PACKET_MAX_BYTES}`
        : 'packet: no session key for this server',
  );
}

export type PrecheckDrop = 'PKT_TOO_SHORT' | 'PKT_TOO_LONG' | 'PKT_NOT_FOR_US';

/**
 * Steps 1-3 as a verdict: the framing, or the code of the step that refuses the datagram. Step
 * 2's framing errors are thrown (parseFraming); the other refusals are returned, so a caller on a
 * flood's hot path (server/capture/prefilter.ts) pays for no exception and no message.
 */
export function precheckVerdict(
  bytes: Uint8Array,
  recipientKeyIds: ReadonlySet<string>,
): Framing | PrecheckDrop {
  const size = sizeDrop(bytes.length); // step 1
  if (size !== null) return size;
  const framing = parseFraming(bytes); // step 2
  return isForUs(framing, recipientKeyIds) ? framing : 'PKT_NOT_FOR_US'; // step 3
}

/** Step 1 on a datagram's length as sent (a capture cut at its snap length holds less). */
export function sizeDrop(length: number): 'PKT_TOO_SHORT' | 'PKT_TOO_LONG' | null {
  if (length < PACKET_MIN_BYTES) return 'PKT_TOO_SHORT';
  if (length > PACKET_MAX_BYTES) return 'PKT_TOO_LONG';
  return null;
}
