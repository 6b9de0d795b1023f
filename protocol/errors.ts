/**
 * Typed errors with stable string codes (SPEC.md §8 lists them). The audit log, exit codes and
 * tests key on `code`, never on message text. Messages name the field and the length or value
 * class, never secret bytes or packet bodies.
 */

/** Every reason a packet can be dropped, in pipeline order (SPEC.md §7). */
export const DROP_CODES = [
  // size and framing (no crypto yet)
  'PKT_TOO_SHORT',
  'PKT_TOO_LONG',
  'PKT_ARMORED',
  'PKT_FRAMING',
  'PKT_NOT_FOR_US',
  // server gates before decryption
  'RATE_LIMITED',
  'REPLAY_RAW',
  'FWK_HMAC_INVALID',
  // decryption and message structure
  'DECRYPT_FAILED',
  'MSG_STRUCTURE',
  'MSG_COMPRESSION',
  'SIG_MISSING',
  'SIG_MULTIPLE',
  'SIG_NO_ISSUER_FPR',
  'SIGNER_UNKNOWN',
  'SIG_INVALID',
  'SIG_TIME',
  'KEY_EXPIRED',
  'KEY_REVOKED',
  'KEY_DISABLED',
  'FWK_NOT_ENABLED',
  // payload
  'PAYLOAD_MALFORMED',
  'PAYLOAD_VERSION',
  'FWK_PLAINTEXT',
  'FWK_DIGEST',
  'DEST_MISMATCH',
  'TS_TOO_OLD',
  'TS_IN_FUTURE',
  'REPLAY',
  // policy
  'USER_MISMATCH',
  'FWK_NAT_UNSUPPORTED',
  'SOURCE_MISMATCH',
  'SOURCE_ANY_REFUSED',
  'SOURCE_NOT_ALLOWED',
  'PORT_NOT_ALLOWED',
  'TIMEOUT_NOT_ALLOWED',
  'CMD_NOT_ALLOWED',
  'CMD_NO_MATCH',
  'CMD_USER_UNKNOWN',
  'CMD_BUSY',
  'FORWARD_NOT_ALLOWED',
  'REPLY_NOT_ALLOWED',
  // the fleet's shared replay record (cluster_fail: closed and Redis unreachable or too slow)
  'CLUSTER_UNAVAILABLE',
  // acting
  'FW_ERROR',
  // spad's monitor: a message from its verifier process that is not one it accepts
  'IPC_INVALID',
] as const;
export type DropCode = (typeof DROP_CODES)[number];

/** Codes for local misuse (CLI input, files, configuration); never seen on the wire. */
export const CONFIG_CODES = [
  'CONFIG_INVALID',
  'ACCESS_SPEC',
  'ADDRESS_INVALID',
  'USERNAME_INVALID',
  'COMMAND_INVALID',
  'LIMIT_EXCEEDED',
  'KEY_INVALID',
  'KEY_WEAK',
  'KEY_NOT_FOUND',
  'KEY_AMBIGUOUS',
  'KEY_SECRET_REFUSED',
  'KEY_PASSPHRASE',
  'KEYRING_CORRUPT',
  'KEYRING_LOCKED',
  'EXISTS',
  'NOT_CONFIRMED',
  'IMPORT_INCOMPLETE',
  'NOT_FOUND',
  'IO',
  'USAGE',
  // a client refusing a reply datagram (SPEC.md §12.3); spad never sends for one
  'REPLY_INVALID',
  'REPLY_TIMEOUT',
] as const;
export type ConfigCode = (typeof CONFIG_CODES)[number];

export type ErrorCode = DropCode | ConfigCode;

export class SpaError extends Error {
  readonly code: ErrorCode;
  /** The payload or config field concerned, when there is one. */
  readonly field: string | undefined;
  /** What the user can do about it; CLIs print each line as `spa: hint: ...`. */
  readonly hint: string | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    opts: { field?: string; cause?: unknown; hint?: string } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.field = opts.field;
    this.hint = opts.hint;
  }
  override get name(): string {
    return this.constructor.name;
  }
}

/** Bytes that are not what the spec allows (framing, payload encoding). */
export class ParseError extends SpaError {}
/** Cryptographic checks, freshness, replay, destination. */
export class VerifyError extends SpaError {}
/** Authorization: the packet is genuine but the user may not have what it asks for. */
export class PolicyError extends SpaError {}
/** Local input: flags, files, keys, configuration. */
export class ConfigError extends SpaError {}

export function isSpaError(e: unknown): e is SpaError {
  return e instanceof SpaError;
}
