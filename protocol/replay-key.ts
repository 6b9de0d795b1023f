/**
 * The replay identity of a knock (SPEC.md §7 step 13): the signer and the signed nonce, never
 * unsigned bytes, so re-signing tricks and bit-flips in the unhashed area do not make a "new"
 * knock. The stores that use it are the server's (server/replay.ts, server/cluster/).
 */
import { bytesToHex } from './payload.js';

export function replayKey(signerFingerprint: string, nonce: Uint8Array): string {
  return `${signerFingerprint}:${bytesToHex(nonce)}`;
}
