/**
 * The signed reply (SPEC.md §12): one UDP datagram spad sends back to the knock's source address
 * and port after it accepted a knock that asked for one. It says which knock it answers (the
 * knock's nonce), what was granted and until when, and it is signed by the server key, so the
 * client can tell it from a forgery or a replay.
 *
 *   body  = version 0x01 | type 0x81 | issued u64 | nonce 16 | fpr_len u8 | server_fpr
 *         | timeout u32 | count u8 | count × (proto u8, port u16)
 *         | fwd u8 (0 none, 1 local, 4 IPv4, 6 IPv6) | [address 4/16] | [port u16]
 *   reply = body | sig_len u16 | one OpenPGP signature packet (binary document, over body)
 *
 * Pure: the clock is a parameter. Signing draws the salt openpgp.js needs, as seal() does.
 */
import * as openpgp from 'openpgp';
import { type PortSpec, PROTO_NUMBER, protoFromNumber } from './access.js';
import { type Address, unmapV4 } from './address.js';
import { ParseError, VerifyError } from './errors.js';
import type { ForwardTarget } from './forward.js';
import {
  ACCESS_MAX_ENTRIES,
  FINGERPRINT_LENGTHS,
  MSG_REPLY,
  NONCE_BYTES,
  PAYLOAD_VERSION,
  REPLY_MAX_BYTES,
  TIMEOUT_MAX_SECONDS,
} from './limits.js';
import { bytesToHex, hexToBytes } from './payload.js';
import { openpgpConfig } from './pgp-config.js';

export interface Reply {
  /** Server clock when the grant was made, Unix seconds. The grant ends at issued + timeout. */
  readonly issued: number;
  /** The nonce of the knock this answers. */
  readonly nonce: Uint8Array;
  /** Primary fingerprint of the server key that signs (uppercase hex). */
  readonly serverFingerprint: string;
  readonly timeoutSeconds: number;
  /** What was opened for the knock's address; for a forwarding grant, the external port. */
  readonly granted: readonly PortSpec[];
  /** Where a forwarding grant leads, or null. */
  readonly forward: ForwardTarget | null;
}

const FWD_NONE = 0;
const FWD_LOCAL = 1;

function fail(field: string, message: string): never {
  throw new ParseError('REPLY_INVALID', `reply ${field}: ${message}`, { field });
}

function validate(r: Reply): void {
  if (!Number.isSafeInteger(r.issued) || r.issued < 0) fail('issued', 'must be a non-negative integer');
  if (r.nonce.length !== NONCE_BYTES) fail('nonce', `must be ${NONCE_BYTES} bytes`);
  if (
    !/^[0-9A-F]+$/.test(r.serverFingerprint) ||
    !FINGERPRINT_LENGTHS.includes(r.serverFingerprint.length / 2)
  )
    fail('server_fpr', 'must be 40 or 64 uppercase hex digits');
  if (!Number.isInteger(r.timeoutSeconds) || r.timeoutSeconds < 1 || r.timeoutSeconds > TIMEOUT_MAX_SECONDS)
    fail('timeout', `must be 1..${TIMEOUT_MAX_SECONDS}`);
  if (r.granted.length < 1 || r.granted.length > ACCESS_MAX_ENTRIES)
    fail('granted', `1..${ACCESS_MAX_ENTRIES} entries`);
  for (const [i, g] of r.granted.entries()) {
    if (!Number.isInteger(g.port) || g.port < 1 || g.port > 65535)
      fail('granted', `entry ${i}: port out of range`);
    const prev = r.granted[i - 1];
    if (prev && (PROTO_NUMBER[prev.proto] - PROTO_NUMBER[g.proto] || prev.port - g.port) >= 0)
      fail('granted', 'entries must be sorted and unique');
  }
  const f = r.forward;
  if (f) {
    if (r.granted.length !== 1) fail('forward', 'a forwarding grant has exactly one external port');
    if (!Number.isInteger(f.port) || f.port < 1 || f.port > 65535) fail('forward', 'port out of range');
    if (f.host !== 'local') {
      if (f.host.bytes.length !== (f.host.family === 4 ? 4 : 16)) fail('forward', 'address length');
      if (f.host.family === 6 && unmapV4(f.host).family === 4) fail('forward', 'IPv4-mapped address');
    }
  }
}

export function encodeReplyBody(r: Reply): Uint8Array {
  validate(r);
  const fpr = hexToBytes(r.serverFingerprint);
  const f = r.forward;
  const host = f && f.host !== 'local' ? f.host.bytes : new Uint8Array(0);
  const len =
    2 + 8 + NONCE_BYTES + 1 + fpr.length + 4 + 1 + 3 * r.granted.length + 1 + (f ? host.length + 2 : 0);
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  let o = 0;
  out[o++] = PAYLOAD_VERSION;
  out[o++] = MSG_REPLY;
  dv.setBigUint64(o, BigInt(r.issued));
  o += 8;
  out.set(r.nonce, o);
  o += NONCE_BYTES;
  out[o++] = fpr.length;
  out.set(fpr, o);
  o += fpr.length;
  dv.setUint32(o, r.timeoutSeconds);
  o += 4;
  out[o++] = r.granted.length;
  for (const g of r.granted) {
    out[o++] = PROTO_NUMBER[g.proto];
    dv.setUint16(o, g.port);
    o += 2;
  }
  out[o++] = !f ? FWD_NONE : f.host === 'local' ? FWD_LOCAL : f.host.family;
  if (f) {
    out.set(host, o);
    o += host.length;
    dv.setUint16(o, f.port);
  }
  return out;
}

/** Strict decode of a body: one encoding per meaning, nothing left over. */
export function decodeReplyBody(bytes: Uint8Array): Reply {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const need = (n: number, field: string): void => {
    if (o + n > bytes.length) fail(field, `truncated at byte ${o}`);
  };
  need(2, 'version');
  if (bytes[o++] !== PAYLOAD_VERSION) fail('version', 'not supported');
  if (bytes[o++] !== MSG_REPLY) fail('type', 'not a reply');
  need(8 + NONCE_BYTES + 1, 'issued');
  const issued = dv.getBigUint64(o);
  o += 8;
  if (issued > BigInt(Number.MAX_SAFE_INTEGER)) fail('issued', 'out of range');
  const nonce = bytes.slice(o, o + NONCE_BYTES);
  o += NONCE_BYTES;
  const fprLen = bytes[o++] ?? 0;
  if (!FINGERPRINT_LENGTHS.includes(fprLen)) fail('server_fpr', `length ${fprLen}`);
  need(fprLen + 4 + 1, 'server_fpr');
  const serverFingerprint = bytesToHex(bytes.subarray(o, o + fprLen));
  o += fprLen;
  const timeoutSeconds = dv.getUint32(o);
  o += 4;
  const count = bytes[o++] ?? 0;
  if (count > ACCESS_MAX_ENTRIES) fail('granted', `${count} entries`);
  need(3 * count + 1, 'granted');
  const granted: PortSpec[] = [];
  for (let i = 0; i < count; i++) {
    const proto = protoFromNumber(bytes[o++] ?? 0);
    if (!proto) fail('granted', `entry ${i}: protocol must be tcp or udp`);
    granted.push({ proto, port: dv.getUint16(o) });
    o += 2;
  }
  const kind = bytes[o++];
  let forward: ForwardTarget | null = null;
  if (kind !== FWD_NONE) {
    let host: Address | 'local';
    if (kind === FWD_LOCAL) host = 'local';
    else if (kind === 4 || kind === 6) {
      const n = kind === 4 ? 4 : 16;
      need(n, 'forward');
      host = { family: kind, bytes: bytes.slice(o, o + n) };
      o += n;
    } else fail('forward', `unknown kind ${String(kind)}`);
    need(2, 'forward');
    forward = { host, port: dv.getUint16(o) };
    o += 2;
  }
  if (o !== bytes.length) fail('trailing', `${bytes.length - o} bytes after the body`);
  const r: Reply = { issued: Number(issued), nonce, serverFingerprint, timeoutSeconds, granted, forward };
  validate(r);
  return r;
}

/** Splits a datagram into body and signature bytes, by walking the body's own lengths. */
function split(bytes: Uint8Array): { body: Uint8Array; sig: Uint8Array } {
  if (bytes.length > REPLY_MAX_BYTES) fail('length', `${bytes.length} bytes, at most ${REPLY_MAX_BYTES}`);
  // body length: fixed head, fpr, count, forward kind
  let o = 2 + 8 + NONCE_BYTES;
  const fprLen = bytes[o] ?? 0;
  o += 1 + fprLen + 4;
  const count = bytes[o] ?? 0;
  o += 1 + 3 * count;
  const kind = bytes[o];
  if (kind === undefined) fail('length', 'truncated');
  o += 1 + (kind === FWD_NONE ? 0 : kind === FWD_LOCAL ? 2 : kind === 4 ? 6 : kind === 6 ? 18 : 0);
  if (o + 2 > bytes.length) fail('length', 'truncated before the signature');
  const sigLen = ((bytes[o] ?? 0) << 8) | (bytes[o + 1] ?? 0);
  if (o + 2 + sigLen !== bytes.length) fail('sig_len', 'does not end at the end of the datagram');
  return { body: bytes.subarray(0, o), sig: bytes.subarray(o + 2) };
}

let madeConfig: openpgp.Config | undefined;
/** The project's openpgp.js config (pgp-config.ts), made once. */
function cfg(): openpgp.Config {
  madeConfig ??= openpgpConfig(openpgp);
  return madeConfig;
}

/** Builds the datagram: body, then a detached binary-document signature by the server key. */
export async function signReply(r: Reply, key: openpgp.PrivateKey, now: Date): Promise<Uint8Array> {
  if (key.getFingerprint().toUpperCase() !== r.serverFingerprint)
    fail('server_fpr', 'is not the signing key');
  const body = encodeReplyBody(r);
  const message = await openpgp.createMessage({ binary: body, format: 'binary', date: now });
  const sig = (await openpgp.sign({
    message,
    signingKeys: key,
    detached: true,
    format: 'binary',
    date: now,
    config: cfg(),
  })) as Uint8Array;
  const out = new Uint8Array(body.length + 2 + sig.length);
  out.set(body, 0);
  out[body.length] = sig.length >> 8;
  out[body.length + 1] = sig.length & 0xff;
  out.set(sig, body.length + 2);
  if (out.length > REPLY_MAX_BYTES) fail('length', `${out.length} bytes, at most ${REPLY_MAX_BYTES}`);
  return out;
}

export interface VerifyReplyOptions {
  /** The server key the client encrypted its knock to (imported with `spa-keys import-server`). */
  readonly serverKey: openpgp.PublicKey;
  /** Nonces of the knocks this client sent and is waiting on: a reply must name one of them. */
  readonly nonces: readonly Uint8Array[];
  readonly now: Date;
  /** |now − issued| and |now − signature time| must not exceed this. */
  readonly maxSkewSeconds: number;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The client's check (SPEC.md §12.3), cheapest first: size and strict body; the server
 * fingerprint is the imported server key's; the nonce is one this client is waiting on; the
 * issue time is fresh; exactly one signature packet, of type binary document, whose Issuer
 * Fingerprint names the server key (primary or signing subkey) and whose key id agrees; and the
 * signature verifies with that key at `now`. Any failure is REPLY_INVALID.
 */
export async function verifyReply(bytes: Uint8Array, opts: VerifyReplyOptions): Promise<Reply> {
  const { body, sig } = split(bytes);
  const r = decodeReplyBody(body);
  const key = opts.serverKey;
  if (r.serverFingerprint !== key.getFingerprint().toUpperCase()) fail('server_fpr', 'not the server key');
  if (!opts.nonces.some((n) => sameBytes(n, r.nonce))) fail('nonce', 'answers no knock sent in this run');
  const nowS = Math.floor(opts.now.getTime() / 1000);
  if (Math.abs(nowS - r.issued) > opts.maxSkewSeconds) fail('issued', 'outside the freshness window');
  const config = cfg();
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ binarySignature: sig, config });
  } catch (cause) {
    throw new VerifyError('REPLY_INVALID', 'reply signature: not an OpenPGP signature', { cause });
  }
  const packets = signature.packets as unknown as openpgp.SignaturePacket[];
  const packet = packets[0];
  if (packets.length !== 1 || !packet) fail('signature', 'exactly one signature packet is required');
  if (packet.signatureType !== openpgp.enums.signature.binary)
    fail('signature', 'not a binary-document signature');
  const issuerFpr = packet.issuerFingerprint ? bytesToHex(packet.issuerFingerprint as Uint8Array) : null;
  if (!issuerFpr) fail('signature', 'no Issuer Fingerprint subpacket');
  const named = [key, ...key.getSubkeys()].find((k) => k.getFingerprint().toUpperCase() === issuerFpr);
  if (!named) fail('signature', 'not made by the server key');
  if (!packet.issuerKeyID.equals(named.getKeyID())) fail('signature', 'issuer key id names another key');
  const created = packet.created ? Math.floor(packet.created.getTime() / 1000) : -1;
  if (Math.abs(nowS - created) > opts.maxSkewSeconds) fail('signature', 'creation time outside the window');
  try {
    const message = await openpgp.createMessage({ binary: body, format: 'binary' });
    const res = await openpgp.verify({
      message,
      signature,
      verificationKeys: key,
      date: opts.now,
      expectSigned: true,
      format: 'binary',
      config,
    });
    const first = res.signatures[0];
    if (!first || res.signatures.length !== 1) throw new Error('one signature expected');
    await first.verified;
  } catch (cause) {
    throw new VerifyError('REPLY_INVALID', 'reply signature: does not verify with the server key', { cause });
  }
  return r;
}
