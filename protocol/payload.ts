/**
 * The knock payload: a small, strict, canonical binary record (SPEC.md §4). It is what the client
 * signs; the signature and encryption around it are envelope.ts's business.
 *
 * Canonical means one byte string per meaning: access entries are sorted and unique, lengths are
 * exact, nothing follows the last field. `decode(encode(p))` equals `p`, and every byte string
 * `decode` accepts re-encodes to itself (property-tested).
 *
 * The optional extension block (SPEC.md §4.6) follows `command` only when a knock asks for a
 * reply or a forwarding grant; a knock without it is byte for byte a version 1 knock of before.
 */
import { type PortSpec, PROTO_NUMBER, protoFromNumber } from './access.js';
import { type Address, formatAddress, unmapV4 } from './address.js';
import { ParseError } from './errors.js';
import { type ForwardTarget, formatForwardTarget } from './forward.js';
import {
  ACCESS_MAX_ENTRIES,
  COMMAND_MAX_BYTES,
  EXT_FORWARD,
  EXT_KNOWN,
  EXT_RANDOM_PORT,
  EXT_REPLY,
  FINGERPRINT_LENGTHS,
  MSG_ACCESS,
  MSG_COMMAND,
  NONCE_BYTES,
  PAYLOAD_MAX_BYTES,
  PAYLOAD_VERSION,
  TIMEOUT_MAX_SECONDS,
  USERNAME_MAX,
  USERNAME_RE,
} from './limits.js';

export type MessageType = 'access' | 'command';

/** A forwarding request (`spa -N`): access[0] is the external proto/port on the gateway. */
export interface ForwardRequest extends ForwardTarget {
  /** The external port was picked by the client from the server's range (`--rand-port`). */
  readonly randomPort: boolean;
}

export interface Payload {
  readonly type: MessageType;
  /** Unix time, seconds. */
  readonly timestamp: number;
  readonly nonce: Uint8Array;
  /** Fingerprint of the server key this knock is meant for: uppercase hex, 40 or 64 digits. */
  readonly serverFingerprint: string;
  readonly username: string;
  /** The address to open for, or 'any': "whatever address the packet comes from". */
  readonly source: Address | 'any';
  /** access: 1..16 entries; command: none (the server's policy names ports to open). */
  readonly access: readonly PortSpec[];
  /** Requested firewall timeout in seconds; 0 = the server's default for this user. */
  readonly timeoutSeconds: number;
  /** command messages only. */
  readonly command: string | null;
  /** Asks for a signed reply (§12); absent = false. Access messages only. */
  readonly reply?: boolean;
  /** Asks for a forwarding grant; absent = none. Access messages with one entry only. */
  readonly forward?: ForwardRequest;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

function fail(field: string, message: string): never {
  throw new ParseError('PAYLOAD_MALFORMED', `payload ${field}: ${message}`, { field });
}

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The 256 octets as uppercase hex pairs: bytesToHex runs several times per knock. */
const HEX_PAIRS = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0').toUpperCase());

/** Uppercase hex of `b`. */
export function bytesToHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX_PAIRS[b[i] as number] as string;
  return s;
}

function portCompare(a: PortSpec, b: PortSpec): number {
  return PROTO_NUMBER[a.proto] - PROTO_NUMBER[b.proto] || a.port - b.port;
}

/** Checks every field's range and grammar; encode and decode share it. */
function validate(p: Payload): void {
  if (p.type !== 'access' && p.type !== 'command') fail('type', 'must be access or command');
  if (!Number.isSafeInteger(p.timestamp) || p.timestamp < 0)
    fail('timestamp', 'must be a non-negative integer');
  if (p.nonce.length !== NONCE_BYTES) fail('nonce', `must be ${NONCE_BYTES} bytes, got ${p.nonce.length}`);
  if (
    !/^[0-9A-F]+$/.test(p.serverFingerprint) ||
    !FINGERPRINT_LENGTHS.includes(p.serverFingerprint.length / 2)
  ) {
    fail('server_fpr', 'must be 40 or 64 uppercase hex digits');
  }
  if (p.username.length > USERNAME_MAX || !USERNAME_RE.test(p.username)) {
    fail('username', `must match ${USERNAME_RE.source}`);
  }
  if (p.source !== 'any' && p.source.bytes.length !== (p.source.family === 4 ? 4 : 16)) {
    fail('address', 'length does not match its family');
  }
  if (p.source !== 'any' && p.source.family === 6 && unmapV4(p.source).family === 4) {
    fail('address', 'an IPv4-mapped IPv6 address must be sent as IPv4 (family 4)');
  }
  for (const [i, a] of p.access.entries()) {
    if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535)
      fail('access', `entry ${i}: port out of range`);
    const prev = p.access[i - 1];
    if (prev && portCompare(prev, a) >= 0) fail('access', 'entries must be sorted and unique');
  }
  if (!Number.isInteger(p.timeoutSeconds) || p.timeoutSeconds < 0 || p.timeoutSeconds > TIMEOUT_MAX_SECONDS) {
    fail('timeout', `must be 0..${TIMEOUT_MAX_SECONDS}`);
  }
  if (p.reply !== undefined && typeof p.reply !== 'boolean') fail('ext_flags', 'reply must be a boolean');
  if ((p.reply === true || p.forward !== undefined) && p.type !== 'access') {
    fail('ext_flags', 'a reply or forwarding request needs an access message');
  }
  if (p.forward !== undefined) {
    const f = p.forward;
    if (p.access.length !== 1) fail('forward', 'a forwarding request names exactly one access entry');
    if (!Number.isInteger(f.port) || f.port < 1 || f.port > 65535) fail('forward', 'port out of range');
    if (typeof f.randomPort !== 'boolean') fail('forward', 'randomPort must be a boolean');
    if (f.host !== 'local') {
      if (f.host.bytes.length !== (f.host.family === 4 ? 4 : 16)) fail('forward', 'address length');
      if (f.host.family === 6 && unmapV4(f.host).family === 4) {
        fail('forward', 'an IPv4-mapped IPv6 address must be sent as IPv4 (family 4)');
      }
    }
  }
  if (p.type === 'access') {
    if (p.access.length < 1 || p.access.length > ACCESS_MAX_ENTRIES)
      fail('access', `1..${ACCESS_MAX_ENTRIES} entries`);
    if (p.command !== null) fail('command', 'not allowed in an access message');
  } else {
    if (p.access.length !== 0) fail('access', 'not allowed in a command message');
    if (p.timeoutSeconds !== 0) fail('timeout', 'must be 0 in a command message');
    if (p.command === null || p.command.length === 0) fail('command', 'empty');
    const n = utf8.encode(p.command).length;
    if (n > COMMAND_MAX_BYTES) fail('command', `${n} bytes, at most ${COMMAND_MAX_BYTES}`);
    if (CONTROL_RE.test(p.command)) fail('command', 'control characters are not allowed');
  }
}

/** Builds a payload with access entries put in canonical order. Throws ParseError on bad fields. */
export function makePayload(fields: Omit<Payload, 'access'> & { access: readonly PortSpec[] }): Payload {
  const access = [...fields.access].sort(portCompare);
  const p: Payload = { ...fields, access };
  validate(p);
  return p;
}

export function encodePayload(p: Payload): Uint8Array {
  validate(p);
  const fpr = hexToBytes(p.serverFingerprint);
  const user = utf8.encode(p.username);
  const cmd = p.command === null ? new Uint8Array(0) : utf8.encode(p.command);
  const addr = p.source === 'any' ? new Uint8Array(0) : p.source.bytes;
  const ext = encodeExtension(p);
  const len =
    ext.length +
    1 +
    1 +
    8 +
    NONCE_BYTES +
    1 +
    fpr.length +
    1 +
    user.length +
    1 +
    addr.length +
    1 +
    3 * p.access.length +
    4 +
    2 +
    cmd.length;
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  let o = 0;
  out[o++] = PAYLOAD_VERSION;
  out[o++] = p.type === 'access' ? MSG_ACCESS : MSG_COMMAND;
  dv.setBigUint64(o, BigInt(p.timestamp));
  o += 8;
  out.set(p.nonce, o);
  o += NONCE_BYTES;
  out[o++] = fpr.length;
  out.set(fpr, o);
  o += fpr.length;
  out[o++] = user.length;
  out.set(user, o);
  o += user.length;
  out[o++] = p.source === 'any' ? 0 : p.source.family;
  out.set(addr, o);
  o += addr.length;
  out[o++] = p.access.length;
  for (const a of p.access) {
    out[o++] = PROTO_NUMBER[a.proto];
    dv.setUint16(o, a.port);
    o += 2;
  }
  dv.setUint32(o, p.timeoutSeconds);
  o += 4;
  dv.setUint16(o, cmd.length);
  o += 2;
  out.set(cmd, o);
  o += cmd.length;
  out.set(ext, o);
  return out;
}

/** `ext_flags`, then (forward) `fwd_family`, `fwd_address`, `fwd_port`; empty when not asked. */
function encodeExtension(p: Payload): Uint8Array {
  const f = p.forward;
  const flags =
    (p.reply === true ? EXT_REPLY : 0) |
    (f ? EXT_FORWARD : 0) |
    (f?.randomPort === true ? EXT_RANDOM_PORT : 0);
  if (flags === 0) return new Uint8Array(0);
  if (!f) return Uint8Array.of(flags);
  const host = f.host === 'local' ? new Uint8Array(0) : f.host.bytes;
  const out = new Uint8Array(1 + 1 + host.length + 2);
  out[0] = flags;
  out[1] = f.host === 'local' ? 0 : f.host.family;
  out.set(host, 2);
  new DataView(out.buffer).setUint16(2 + host.length, f.port);
  return out;
}

/** Strict decode: every length exact, every value in range, no trailing bytes. */
export function decodePayload(bytes: Uint8Array): Payload {
  if (bytes.length > PAYLOAD_MAX_BYTES) fail('length', `${bytes.length} bytes, at most ${PAYLOAD_MAX_BYTES}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const need = (n: number, field: string): void => {
    if (o + n > bytes.length) fail(field, `truncated at byte ${o}`);
  };
  need(2, 'version');
  const version = bytes[o++];
  if (version !== PAYLOAD_VERSION) {
    throw new ParseError(
      'PAYLOAD_VERSION',
      `payload version: ${String(version)} is not supported (expected ${PAYLOAD_VERSION})`,
      {
        field: 'version',
      },
    );
  }
  const typeByte = bytes[o++];
  const type: MessageType | null =
    typeByte === MSG_ACCESS ? 'access' : typeByte === MSG_COMMAND ? 'command' : null;
  if (!type) fail('type', `unknown message type ${String(typeByte)}`);
  need(8, 'timestamp');
  const ts = dv.getBigUint64(o);
  o += 8;
  if (ts > BigInt(Number.MAX_SAFE_INTEGER)) fail('timestamp', 'out of range');
  need(NONCE_BYTES, 'nonce');
  const nonce = bytes.slice(o, o + NONCE_BYTES);
  o += NONCE_BYTES;
  need(1, 'server_fpr');
  const fprLen = bytes[o++] ?? 0;
  if (!FINGERPRINT_LENGTHS.includes(fprLen)) fail('server_fpr', `length ${fprLen}, expected 20 or 32`);
  need(fprLen, 'server_fpr');
  const serverFingerprint = bytesToHex(bytes.subarray(o, o + fprLen));
  o += fprLen;
  need(1, 'username');
  const userLen = bytes[o++] ?? 0;
  if (userLen < 1 || userLen > USERNAME_MAX)
    fail('username', `length ${userLen}, expected 1..${USERNAME_MAX}`);
  need(userLen, 'username');
  let username: string;
  try {
    username = utf8Strict.decode(bytes.subarray(o, o + userLen));
  } catch {
    fail('username', 'not valid UTF-8');
  }
  o += userLen;
  need(1, 'address');
  const fam = bytes[o++];
  let source: Address | 'any';
  if (fam === 0) source = 'any';
  else if (fam === 4 || fam === 6) {
    const n = fam === 4 ? 4 : 16;
    need(n, 'address');
    source = { family: fam, bytes: bytes.slice(o, o + n) };
    o += n;
  } else fail('address', `unknown family ${String(fam)}`);
  need(1, 'access');
  const count = bytes[o++] ?? 0;
  if (count > ACCESS_MAX_ENTRIES) fail('access', `${count} entries, at most ${ACCESS_MAX_ENTRIES}`);
  need(3 * count, 'access');
  const access: PortSpec[] = [];
  for (let i = 0; i < count; i++) {
    const proto = protoFromNumber(bytes[o++] ?? 0);
    if (!proto) fail('access', `entry ${i}: protocol must be 6 (tcp) or 17 (udp)`);
    access.push({ proto, port: dv.getUint16(o) });
    o += 2;
  }
  need(4, 'timeout');
  const timeoutSeconds = dv.getUint32(o);
  o += 4;
  need(2, 'command');
  const cmdLen = dv.getUint16(o);
  o += 2;
  if (cmdLen > COMMAND_MAX_BYTES) fail('command', `${cmdLen} bytes, at most ${COMMAND_MAX_BYTES}`);
  need(cmdLen, 'command');
  let command: string | null = null;
  if (cmdLen > 0) {
    try {
      command = utf8Strict.decode(bytes.subarray(o, o + cmdLen));
    } catch {
      fail('command', 'not valid UTF-8');
    }
  }
  o += cmdLen;
  let reply = false;
  let forward: ForwardRequest | undefined;
  if (o < bytes.length) {
    const flags = bytes[o++] ?? 0;
    if (flags === 0) fail('ext_flags', 'must be absent rather than 0');
    if ((flags & ~EXT_KNOWN) !== 0) fail('ext_flags', `unknown bits 0x${flags.toString(16)}`);
    if ((flags & EXT_RANDOM_PORT) !== 0 && (flags & EXT_FORWARD) === 0) {
      fail('ext_flags', 'random port without a forwarding request');
    }
    reply = (flags & EXT_REPLY) !== 0;
    if ((flags & EXT_FORWARD) !== 0) {
      need(1, 'forward');
      const ffam = bytes[o++];
      let host: Address | 'local';
      if (ffam === 0) host = 'local';
      else if (ffam === 4 || ffam === 6) {
        const n = ffam === 4 ? 4 : 16;
        need(n, 'forward');
        host = { family: ffam, bytes: bytes.slice(o, o + n) };
        o += n;
      } else fail('forward', `unknown family ${String(ffam)}`);
      need(2, 'forward');
      forward = { host, port: dv.getUint16(o), randomPort: (flags & EXT_RANDOM_PORT) !== 0 };
      o += 2;
    }
  }
  if (o !== bytes.length) fail('trailing', `${bytes.length - o} bytes after the last field`);
  const p: Payload = {
    type,
    timestamp: Number(ts),
    nonce,
    serverFingerprint,
    username,
    source,
    access,
    timeoutSeconds,
    command,
    ...(reply ? { reply } : {}),
    ...(forward ? { forward } : {}),
  };
  validate(p);
  return p;
}

/** A readable one-line view for `spa --test` and logs; the nonce is not secret but is shortened. */
export function describePayload(p: Payload): Record<string, unknown> {
  return {
    type: p.type,
    timestamp: p.timestamp,
    nonce: bytesToHex(p.nonce).toLowerCase(),
    server: p.serverFingerprint,
    username: p.username,
    source: p.source === 'any' ? 'any' : formatAddress(p.source),
    access: p.access.map((a) => `${a.proto}/${a.port}`).join(',') || null,
    timeout: p.timeoutSeconds,
    command: p.command,
    ...(p.reply === true ? { reply: true } : {}),
    ...(p.forward
      ? { forward: formatForwardTarget(p.forward), ...(p.forward.randomPort ? { random_port: true } : {}) }
      : {}),
  };
}
