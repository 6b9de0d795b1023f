/**
 * The one place that talks to openpgp.js about messages: `seal` signs then encrypts a payload;
 * `open` runs the verification steps of SPEC.md §7 that need cryptography, each with its own
 * stable code, cheapest first. Every call passes its own `config` (the global one is never
 * changed), and the clock is a parameter.
 *
 * Safe-use notes on openpgp.js: `decrypt`/`verify` resolve even with a bad signature unless the
 * caller insists, so we accept exactly one signature, look its issuer up ourselves by full
 * fingerprint, then verify with `expectSigned: true` against that one key only.
 */
import * as openpgp from 'openpgp';
import { type ErrorCode, ParseError, VerifyError } from './errors.js';
import { isForUs, parseFraming } from './framing.js';
import { MAX_DECOMPRESSED_BYTES, PACKET_MAX_BYTES, PACKET_MIN_BYTES } from './limits.js';
import { bytesToHex, decodePayload, encodePayload, type Payload } from './payload.js';

/** What the server knows about a signer, found by the fingerprint of the key that signed. */
export interface SignerEntry {
  /** Primary key fingerprint (uppercase hex): the identity used for replay keys and policy. */
  readonly fingerprint: string;
  readonly enabled: boolean;
  /** Enrollment expiry set by the admin (distinct from the key's own OpenPGP expiry). */
  readonly expiresAt: Date | null;
  /** Parsed lazily and cached by the keyring, so loading 10,000 users parses nothing. */
  getKey(): Promise<openpgp.PublicKey>;
}

export type LookupSigner = (signingKeyFingerprint: string) => SignerEntry | undefined;

export interface ServerIdentity {
  readonly key: openpgp.PrivateKey;
  /** Primary fingerprint, uppercase hex: what payloads must name (destination binding). */
  readonly fingerprint: string;
  /** Key ids (16 uppercase hex) of every key packet that can decrypt: the framing pre-check. */
  readonly recipientKeyIds: ReadonlySet<string>;
}

export interface OpenOptions {
  readonly server: ServerIdentity;
  readonly lookupSigner: LookupSigner;
  readonly now: Date;
  readonly maxSkewSeconds: number;
}

export interface Opened {
  readonly payload: Payload;
  readonly signer: SignerEntry;
  /** Fingerprint of the (sub)key that made the signature. */
  readonly signingKeyFingerprint: string;
}

/** A fresh full config per call: a copy of the defaults with our limits, never the global. */
function cfg(): openpgp.Config {
  return {
    ...openpgp.config,
    maxDecompressedMessageSize: MAX_DECOMPRESSED_BYTES,
    preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
    minRSABits: 2048,
  };
}

export async function serverIdentity(key: openpgp.PrivateKey): Promise<ServerIdentity> {
  if (!key.isDecrypted()) throw new VerifyError('DECRYPT_FAILED', 'server key is still passphrase-protected');
  const ids = new Set<string>();
  const keys = await key.getDecryptionKeys(undefined, undefined, undefined, cfg()).catch(() => []);
  for (const k of keys) ids.add(k.getKeyID().toHex().toUpperCase());
  return { key, fingerprint: key.getFingerprint().toUpperCase(), recipientKeyIds: ids };
}

export interface SealOptions {
  readonly signingKey: openpgp.PrivateKey;
  readonly serverKey: openpgp.PublicKey;
  /** Signature creation time; the payload carries its own timestamp. */
  readonly now: Date;
}

/** Sign-then-encrypt: PKESK(s) + SEIPD{ OPS, Literal(payload), Signature }, binary, uncompressed. */
export async function seal(payload: Payload, opts: SealOptions): Promise<Uint8Array> {
  const binary = encodePayload(payload);
  const message = await openpgp.createMessage({ binary, format: 'binary', date: opts.now });
  const out = await openpgp.encrypt({
    message,
    encryptionKeys: opts.serverKey,
    signingKeys: opts.signingKey,
    format: 'binary',
    date: opts.now,
    config: cfg(),
  });
  return out as Uint8Array;
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

function tagOf(p: unknown): number {
  return (p as { constructor: { tag?: number } }).constructor.tag ?? -1;
}

const T = openpgp.enums.packet;

/** Size and framing checks only: no decryption. Run first and cheaply on every datagram. */
export function precheck(bytes: Uint8Array, server: Pick<ServerIdentity, 'recipientKeyIds'>): void {
  if (bytes.length < PACKET_MIN_BYTES) {
    throw new ParseError('PKT_TOO_SHORT', `packet: ${bytes.length} bytes, at least ${PACKET_MIN_BYTES}`);
  }
  if (bytes.length > PACKET_MAX_BYTES) {
    throw new ParseError('PKT_TOO_LONG', `packet: ${bytes.length} bytes, at most ${PACKET_MAX_BYTES}`);
  }
  const framing = parseFraming(bytes);
  if (!isForUs(framing, server.recipientKeyIds)) {
    throw new ParseError('PKT_NOT_FOR_US', 'packet: no session key for this server');
  }
}

/** The crypto half of the pipeline: decrypt → structure → signer → signature → payload → destination → freshness. */
export async function open(bytes: Uint8Array, opts: OpenOptions): Promise<Opened> {
  precheck(bytes, opts.server);
  const config = cfg();

  let decrypted: openpgp.Message<Uint8Array>;
  try {
    const message = await openpgp.readMessage({ binaryMessage: bytes, config });
    decrypted = (await message.decrypt(
      [opts.server.key],
      undefined,
      undefined,
      opts.now,
      config,
    )) as openpgp.Message<Uint8Array>;
  } catch (cause) {
    throw new VerifyError('DECRYPT_FAILED', 'packet: could not be decrypted with the server key', { cause });
  }

  // Exactly [OPS, Literal, Signature], optionally inside one compressed packet (gpg's default).
  let inner: openpgp.Message<Uint8Array>;
  try {
    inner = await materialize(decrypted);
    if (inner.packets.length === 1 && tagOf(inner.packets[0]) === T.compressedData) {
      inner = await materialize(inner.unwrapCompressed());
    }
  } catch (cause) {
    throw new VerifyError('MSG_STRUCTURE', 'message: malformed packets inside the encryption', { cause });
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
  // openpgp.js types omit the OPS key id; it is there at run time.
  const ops = inner.packets[0] as unknown as { issuerKeyID: openpgp.KeyID };
  const sig = inner.packets[2] as openpgp.SignaturePacket;
  if (!ops.issuerKeyID.equals(sig.issuerKeyID)) {
    throw new VerifyError('MSG_STRUCTURE', 'message: one-pass signature and signature name different keys');
  }
  if (!sig.issuerFingerprint) {
    throw new VerifyError(
      'SIG_NO_ISSUER_FPR',
      'signature: no issuer fingerprint subpacket (key id alone is not accepted)',
    );
  }
  const signingFpr = bytesToHex(sig.issuerFingerprint);

  const signer = opts.lookupSigner(signingFpr);
  if (!signer) throw new VerifyError('SIGNER_UNKNOWN', `signature: key ${signingFpr} is not enrolled`);

  const created = sig.created?.getTime() ?? 0;
  const now = opts.now.getTime();
  const skew = opts.maxSkewSeconds * 1000;
  if (Math.abs(created - now) > skew) {
    throw new VerifyError('SIG_TIME', 'signature: creation time outside the freshness window');
  }
  const key = await signer.getKey();
  // Judge the key at the later of now and the signature time, so a client clock a little ahead
  // of ours is not mistaken for a signature "from the future".
  const at = new Date(Math.max(now, created));
  let data: Uint8Array;
  try {
    const res = await openpgp.verify({
      message: inner,
      verificationKeys: key,
      expectSigned: true,
      format: 'binary',
      date: at,
      config,
    });
    data = res.data as Uint8Array;
  } catch (cause) {
    throw new VerifyError(await keyStateCode(key, at), 'signature: not valid for the enrolled key', {
      cause,
    });
  }
  if (!signer.enabled)
    throw new VerifyError('KEY_DISABLED', `signer ${signer.fingerprint}: disabled by the admin`);
  if (signer.expiresAt && signer.expiresAt.getTime() <= now) {
    throw new VerifyError('KEY_EXPIRED', `signer ${signer.fingerprint}: enrollment expired`);
  }

  const payload = decodePayload(data);
  if (payload.serverFingerprint !== opts.server.fingerprint) {
    throw new VerifyError('DEST_MISMATCH', 'payload server_fpr: meant for another server key', {
      field: 'server_fpr',
    });
  }
  checkFreshness(payload.timestamp, opts.now, opts.maxSkewSeconds);
  return { payload, signer, signingKeyFingerprint: signingFpr };
}

/** Why a signature by `key` failed: the key's state if that explains it, else a bad signature. */
async function keyStateCode(key: openpgp.PublicKey, at: Date): Promise<ErrorCode> {
  try {
    if (await key.isRevoked(undefined, undefined, at, cfg())) return 'KEY_REVOKED';
    const exp = await key.getExpirationTime(undefined, cfg());
    if (exp instanceof Date && exp.getTime() <= at.getTime()) return 'KEY_EXPIRED';
  } catch {
    // a key that cannot even be evaluated is not usable: report the signature as invalid
  }
  return 'SIG_INVALID';
}

/** |now − timestamp| ≤ window, else TS_TOO_OLD / TS_IN_FUTURE (SPEC.md §7 step 10). */
export function checkFreshness(timestampSeconds: number, now: Date, maxSkewSeconds: number): void {
  const delta = timestampSeconds - Math.floor(now.getTime() / 1000);
  if (delta < -maxSkewSeconds) {
    throw new VerifyError('TS_TOO_OLD', `payload timestamp: ${-delta} s old, window is ${maxSkewSeconds} s`, {
      field: 'timestamp',
    });
  }
  if (delta > maxSkewSeconds) {
    throw new VerifyError(
      'TS_IN_FUTURE',
      `payload timestamp: ${delta} s in the future, window is ${maxSkewSeconds} s`,
      {
        field: 'timestamp',
      },
    );
  }
}

/** Replay identity (SPEC.md §7 step 11): the signer and the signed nonce, never unsigned bytes. */
export function replayKey(signerFingerprint: string, nonce: Uint8Array): string {
  return `${signerFingerprint}:${bytesToHex(nonce)}`;
}
