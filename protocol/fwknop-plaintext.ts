/**
 * What an fwknop 2.x GPG-mode knock carries inside its signature (SPEC.md §11.3-11.4): the
 * colon-separated plaintext, read as strictly as fwknopd reads it or more, and its mapping onto
 * spa's own Payload. The wire format around it (base64, the rebuilt prefix, the HMAC) and the
 * verification order are fwknop.ts's. Pure.
 */
import { createHash } from 'node:crypto';
import { type PortSpec, parsePortSpec } from './access.js';
import { tryParseAddress } from './address.js';
import { ParseError, PolicyError, VerifyError } from './errors.js';
import { ACCESS_MAX_ENTRIES, COMMAND_MAX_BYTES, NONCE_BYTES } from './limits.js';
import { makePayload, type Payload } from './payload.js';

/** Decrypted plaintext bound, as fwknop's (< MAX_SPA_ENCODED_MSG_SIZE). */
export const FWKNOP_PLAINTEXT_MAX = 1499;

export const FWKNOP_MSG_COMMAND = 0;
export const FWKNOP_MSG_ACCESS = 1;
export const FWKNOP_MSG_ACCESS_TIMEOUT = 3;
/** NAT access, NAT + timeout, local NAT, local NAT + timeout: not carried yet (FWK_NAT_UNSUPPORTED). */
export const FWKNOP_NAT_TYPES: readonly number[] = [2, 4, 5, 6];

export const B64_RE = /^[A-Za-z0-9+/]+$/;

/** Strict unpadded base64: alphabet, length, and zero unused bits (one spelling per value). */
export function decodeB64Strict(text: string): Uint8Array | null {
  if (text.length === 0 || text.length % 4 === 1 || !B64_RE.test(text)) return null;
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  if (Buffer.from(bytes).toString('base64').replace(/=+$/, '') !== text) return null;
  return bytes;
}

export type FwknopDigestType = 'sha256' | 'sha3-256' | 'sha384' | 'sha512' | 'sha3-512';

export interface FwknopMessage {
  readonly random: string;
  /** The client-chosen username field (fwknop -U), decoded. Not an identity: the signer is. */
  readonly username: string;
  readonly timestamp: number;
  readonly version: string;
  /** 0 command, 1 access, 3 access with a client timeout. */
  readonly type: 0 | 1 | 3;
  /** The allow-IP inside the message; '0.0.0.0' is fwknop -s, "use the packet's source". */
  readonly allowIp: string;
  /** access types: the requested proto/port entries, in the client's order. */
  readonly access: readonly PortSpec[];
  /** type 0: the command text after the allow-IP. */
  readonly command: string | null;
  /** type 3: seconds asked for (0..65536); else 0. */
  readonly clientTimeout: number;
  readonly digestType: FwknopDigestType;
  /** The decoded message field, as fwknop -v prints it ("Message String"). */
  readonly message: string;
}

function bad(message: string, field: string): never {
  throw new ParseError('FWK_PLAINTEXT', `fwknop plaintext ${field}: ${message}`, { field });
}

/** fwknop's username rule (lib/fko_user.c): printable, none of these. */
const USER_FORBIDDEN = /["/\\[\]:;|=,+*?<>]/;
const PRINTABLE = /^[\x20-\x7e]*$/;
const IPV4_RE =
  /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

function b64Field(text: string, field: string, maxChars: number): string {
  if (text.length > maxChars) bad(`${text.length} characters, at most ${maxChars}`, field);
  const bytes = decodeB64Strict(text);
  if (!bytes) bad('not canonical unpadded base64', field);
  const s = Buffer.from(bytes).toString('latin1');
  if (!PRINTABLE.test(s)) bad('not printable ASCII once decoded', field);
  return s;
}

const DIGESTS: ReadonlyMap<number, readonly FwknopDigestType[]> = new Map([
  [43, ['sha256', 'sha3-256']],
  [64, ['sha384']],
  [86, ['sha512', 'sha3-512']],
]);

/** The inner digest type, or the drop: its length names it; MD5 (22) and SHA-1 (27) are refused. */
function checkDigest(encoded: string, digest: string): FwknopDigestType {
  const types = DIGESTS.get(digest.length);
  if (!types) {
    throw new VerifyError(
      'FWK_DIGEST',
      `fwknop plaintext digest: ${digest.length} characters is no accepted type (SHA-256, SHA-384, SHA-512, SHA3)`,
      { field: 'digest', hint: 'use fwknop -m sha256 (the default); MD5 and SHA-1 digests are refused' },
    );
  }
  for (const t of types) {
    const want = createHash(t).update(encoded, 'latin1').digest('base64').replace(/=+$/, '');
    if (want === digest) return t;
  }
  throw new VerifyError('FWK_DIGEST', 'fwknop plaintext digest: does not match the fields', {
    field: 'digest',
  });
}

/**
 * Step 4: the signed literal data. Throws ParseError FWK_PLAINTEXT (any field out of grammar, a
 * wrong field count for the type, a server-auth field), VerifyError FWK_DIGEST, PolicyError
 * FWK_NAT_UNSUPPORTED (types 2, 4, 5, 6).
 */
export function parseFwknopPlaintext(data: Uint8Array): FwknopMessage {
  if (data.length === 0 || data.length > FWKNOP_PLAINTEXT_MAX) bad(`${data.length} bytes`, 'length');
  const text = Buffer.from(data).toString('latin1');
  if (!PRINTABLE.test(text)) bad('not printable ASCII', 'text');
  const fields = text.split(':');
  const digest = fields.pop() ?? '';
  // 6..9 fields before the digest (MIN/MAX_SPA_FIELDS); exact counts per type below
  if (fields.length < 6 || fields.length > 9) bad(`${fields.length + 1} fields`, 'fields');
  const digestType = checkDigest(text.slice(0, text.length - digest.length - 1), digest);
  const [random = '', user = '', ts = '', version = '', typeText = '', msg = ''] = fields;
  if (!/^[0-9]{16}$/.test(random)) bad('must be 16 decimal digits', 'random');
  const username = b64Field(user, 'username', 64);
  if (username.length === 0 || USER_FORBIDDEN.test(username))
    bad('empty or has a forbidden character', 'username');
  if (!/^[0-9]{1,12}$/.test(ts)) bad('must be 1..12 decimal digits', 'timestamp');
  const timestamp = Number(ts);
  if (!/^[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}$/.test(version)) bad('must look like 3.0.0', 'version');
  if (!/^[0-9]{1,2}$/.test(typeText)) bad('must be 1..2 decimal digits', 'type');
  const type = Number(typeText);
  if (FWKNOP_NAT_TYPES.includes(type)) {
    throw new PolicyError(
      'FWK_NAT_UNSUPPORTED',
      `fwknop message type ${type} (NAT) is not supported by spad`,
      {
        field: 'type',
      },
    );
  }
  if (type !== FWKNOP_MSG_COMMAND && type !== FWKNOP_MSG_ACCESS && type !== FWKNOP_MSG_ACCESS_TIMEOUT) {
    bad(`${type} is not a message type`, 'type');
  }
  // the optional server-auth field (never set by the client, never used by fwknopd) is refused
  const want = type === FWKNOP_MSG_ACCESS_TIMEOUT ? 7 : 6;
  if (fields.length !== want) bad(`${fields.length + 1} fields, type ${type} has ${want + 1}`, 'fields');
  let clientTimeout = 0;
  if (type === FWKNOP_MSG_ACCESS_TIMEOUT) {
    const t = fields[6] ?? '';
    if (!/^(0|[1-9][0-9]{0,4})$/.test(t) || Number(t) > 65536) bad('must be 0..65536', 'client_timeout');
    clientTimeout = Number(t);
  }
  const message = b64Field(msg, 'message', 256);
  const comma = message.indexOf(',');
  if (comma < 0) bad('no allow-IP before the first comma', 'message');
  const allowIp = message.slice(0, comma);
  if (!IPV4_RE.test(allowIp)) bad('allow-IP is not a dotted IPv4 address', 'message');
  const rest = message.slice(comma + 1);
  if (type === FWKNOP_MSG_COMMAND) {
    if (rest.length === 0 || rest.length > COMMAND_MAX_BYTES)
      bad(`command must be 1..${COMMAND_MAX_BYTES} bytes`, 'message');
    return {
      random,
      username,
      timestamp,
      version,
      type,
      allowIp,
      access: [],
      command: rest,
      clientTimeout,
      digestType,
      message,
    };
  }
  const items = rest.split(',');
  if (items.length > ACCESS_MAX_ENTRIES) bad(`more than ${ACCESS_MAX_ENTRIES} proto/port entries`, 'message');
  const access: PortSpec[] = [];
  for (const item of items) {
    let p: PortSpec;
    try {
      p = parsePortSpec(item, 'message');
    } catch {
      bad('entries must be tcp/N or udp/N, 1..65535', 'message');
    }
    if (item !== `${p.proto}/${p.port}`) bad('entries must be tcp/N or udp/N, 1..65535', 'message');
    if (access.some((q) => q.proto === p.proto && q.port === p.port))
      bad('duplicate proto/port entry', 'message');
    access.push(p);
  }
  return {
    random,
    username,
    timestamp,
    version,
    type,
    allowIp,
    access,
    command: null,
    clientTimeout,
    digestType,
    message,
  };
}

export interface FwknopContext {
  readonly serverFingerprint: string;
  /** The enrolled user's spa username (the signer's, never the packet's). */
  readonly username: string;
  /** REQUIRE_USERNAME carried over: the packet's username field must be exactly this. */
  readonly requireUsername: string | null;
}

/** The replay identity's "nonce" for an fwknop knock: the first 16 octets of SHA-256(plaintext). */
export function fwknopNonce(plaintext: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(plaintext).digest().subarray(0, NONCE_BYTES));
}

/**
 * Step 5: the spa Payload the rest of the pipeline judges (freshness, replay, policy: SPEC.md
 * §7 steps 12, 13, 14). The destination binding is the encryption to our key (fwknop names no
 * server); the source is 'any' for allow-IP 0.0.0.0 (fwknop -s).
 */
export function fwknopPayload(m: FwknopMessage, plaintext: Uint8Array, ctx: FwknopContext): Payload {
  if (ctx.requireUsername !== null && m.username !== ctx.requireUsername) {
    throw new PolicyError('USER_MISMATCH', 'fwknop username: not the one this enrollment requires', {
      field: 'username',
    });
  }
  let source: Payload['source'] = 'any';
  if (m.allowIp !== '0.0.0.0') {
    const a = tryParseAddress(m.allowIp);
    if (!a || a.family !== 4) bad('allow-IP is not an IPv4 address', 'message');
    source = a;
  }
  return makePayload({
    type: m.type === FWKNOP_MSG_COMMAND ? 'command' : 'access',
    timestamp: m.timestamp,
    nonce: fwknopNonce(plaintext),
    serverFingerprint: ctx.serverFingerprint,
    username: ctx.username,
    source,
    access: m.access,
    timeoutSeconds: m.clientTimeout,
    command: m.command,
  });
}
