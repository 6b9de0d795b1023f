/**
 * The one place that talks to openpgp.js about messages: `seal` signs then encrypts a payload;
 * `open` runs the verification steps of SPEC.md §7 that need cryptography, each with its own
 * stable code, cheapest first. Every call passes its own `config` (the global one is never
 * changed), and the clock is a parameter.
 *
 * Safe-use notes on openpgp.js: `decrypt`/`verify` resolve even with a bad signature unless the
 * caller insists, so we accept exactly one signature, look its issuer up ourselves by full
 * fingerprint, then verify against exactly the key packet that fingerprint names (openpgp.js
 * itself would pick the key by the Issuer Key ID, which may name another one). It would also
 * decompress any algorithm it knows, BZip2 included, and count the output only as it streams:
 * compressed data is read by our own packet class instead (ZIP and ZLIB only, inflated here
 * with a hard output cap).
 */
import { inflateRawSync, inflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { ConfigError, type ErrorCode, isSpaError, ParseError, type SpaError, VerifyError } from './errors.js';
import { decryptEcdhSessionKey, type EcdhKey, prepareEcdh } from './ecdh.js';
import { nativeOpen } from './native-open.js';
import { verifyEd25519Message } from './ed25519-verify.js';
import { type Framing, isForUs, parseFraming } from './framing.js';
import { MAX_DECOMPRESSED_BYTES, PACKET_MAX_BYTES, PACKET_MIN_BYTES } from './limits.js';
import { openpgpConfig } from './pgp-config.js';
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
  /**
   * Decryption key packets by key id, validated (binding signatures) once when the identity is
   * built: per packet we decrypt the session key directly instead of re-validating the key.
   */
  readonly decryptionKeys: ReadonlyMap<string, openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket>;
  /** Native X25519 fast path for v4 ECDH/Curve25519 decryption keys (ecdh.ts), by key id. */
  readonly ecdhKeys: ReadonlyMap<string, EcdhKey>;
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
  /** The verified packets, for a second verification elsewhere (signedBytes, readSigned). */
  readonly signed: SignedLiteral;
}

/** The project's openpgp.js config (pgp-config.ts): a frozen copy, never the global. */
function cfg(): openpgp.Config {
  return openpgpConfig(openpgp);
}

export async function serverIdentity(key: openpgp.PrivateKey): Promise<ServerIdentity> {
  if (!key.isDecrypted()) throw new VerifyError('DECRYPT_FAILED', 'server key is still passphrase-protected');
  const packets = new Map<string, openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket>();
  const keys = await key.getDecryptionKeys(undefined, undefined, undefined, cfg()).catch(() => []);
  for (const k of keys)
    packets.set(
      k.getKeyID().toHex().toUpperCase(),
      k.keyPacket as openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket,
    );
  const ecdhKeys = new Map<string, EcdhKey>();
  for (const [id, packet] of packets) {
    const fast = prepareEcdh(packet);
    if (fast) ecdhKeys.set(id, fast);
  }
  return {
    key,
    decryptionKeys: packets,
    ecdhKeys,
    fingerprint: key.getFingerprint().toUpperCase(),
    recipientKeyIds: new Set(packets.keys()),
  };
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
  const bytes = out as Uint8Array;
  if (bytes.length > PACKET_MAX_BYTES) {
    throw new ConfigError(
      'LIMIT_EXCEEDED',
      `knock: ${bytes.length} bytes, the server accepts at most ${PACKET_MAX_BYTES}`,
      {
        hint: 'use a shorter command, or Curve25519 keys (RSA-4096 knocks are about 1.3 kB before the command)',
      },
    );
  }
  return bytes;
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

function tagOf(p: unknown): number {
  return (p as { constructor: { tag?: number } }).constructor.tag ?? -1;
}

const T = openpgp.enums.packet;

/**
 * The compression algorithms a knock may use (SPEC.md §3): ZIP and ZLIB, what GnuPG writes by
 * default. Any other (BZip2 above all: its decoder un-sorts a whole 900 kB block, ~10 ms, before
 * the size cap can stop it) is refused by its algorithm octet before anything is decoded.
 */
const INFLATE: ReadonlyMap<number, typeof inflateSync> = new Map([
  [openpgp.enums.compression.zip, inflateRawSync],
  [openpgp.enums.compression.zlib, inflateSync],
]);

/**
 * A Compressed Data packet class that openpgp.js uses instead of its own while it parses the
 * decrypted data of one knock (after the integrity check). It allows one compressed packet per
 * message, refuses every algorithm but ZIP and ZLIB before decoding, and inflates itself with
 * node's zlib, synchronously, stopping as soon as the output passes MAX_DECOMPRESSED_BYTES (the
 * work is bounded by the at most 1400 bytes of input and 8 KiB of output). openpgp.js then parses
 * the inflated packets as its own would, with `config`, which does not allow a compressed packet
 * inside the compressed one.
 */
function guardedCompressedData(config: openpgp.Config): typeof openpgp.CompressedDataPacket {
  let seen = 0;
  type Internals = {
    algorithm: openpgp.enums.compression;
    compressed: Uint8Array | null;
    decompress(config: openpgp.Config): Promise<void>;
  };
  return class GuardedCompressedData extends openpgp.CompressedDataPacket {
    override async read(bytes: Uint8Array): Promise<void> {
      if (++seen > 1) {
        throw new VerifyError('MSG_STRUCTURE', 'message: more than one compressed data packet');
      }
      const body = await bytesOf(bytes);
      const algorithm = body[0];
      if (algorithm === undefined) throw new VerifyError('MSG_STRUCTURE', 'compressed data: empty packet');
      const inflate = INFLATE.get(algorithm);
      if (!inflate) {
        throw new VerifyError(
          'MSG_COMPRESSION',
          `compressed data: algorithm ${algorithm} is not accepted (ZIP or ZLIB only)`,
          { hint: 'compress with ZLIB or ZIP (gpg: --compress-algo zlib), or not at all' },
        );
      }
      let inflated: Uint8Array;
      try {
        inflated = inflate(body.subarray(1), {
          maxOutputLength: MAX_DECOMPRESSED_BYTES,
          chunkSize: MAX_DECOMPRESSED_BYTES,
        });
      } catch (cause) {
        const over = (cause as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
        throw new VerifyError(
          'MSG_STRUCTURE',
          over
            ? `compressed data: more than ${MAX_DECOMPRESSED_BYTES} bytes once decompressed`
            : 'compressed data: not a valid ZIP or ZLIB stream',
          { cause },
        );
      }
      // typed private in openpgp.js's .d.ts, public at run time: parse the inflated packets
      const self = this as unknown as Internals;
      self.algorithm = openpgp.enums.compression.uncompressed;
      self.compressed = inflated;
      await self.decompress(config);
      self.algorithm = algorithm;
      self.compressed = body.subarray(1);
    }
  };
}

/** A packet body as bytes: openpgp.js hands over a Uint8Array or, for data packets, a stream. */
async function bytesOf(
  input: Uint8Array | { getReader(): ReadableStreamDefaultReader<Uint8Array> },
): Promise<Uint8Array> {
  if (input instanceof Uint8Array) return input;
  const reader = input.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    // a packet inside a datagram cannot be longer than the datagram
    if (n > PACKET_MAX_BYTES) throw new VerifyError('MSG_STRUCTURE', 'compressed data: longer than a knock');
    parts.push(value);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A drop code of ours somewhere along openpgp.js's cause chain (thrown from inside its parser). */
function ourError(e: unknown): SpaError | undefined {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 6; x = x.cause, depth++) {
    if (isSpaError(x)) return x;
  }
  return undefined;
}

/** Size and framing checks only: no decryption. Run first and cheaply on every datagram. */
export function precheck(bytes: Uint8Array, server: Pick<ServerIdentity, 'recipientKeyIds'>): Framing {
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
  return framing;
}

/** The crypto half of the pipeline: decrypt → structure → signer → signature → payload → destination → freshness. */
export async function open(bytes: Uint8Array, opts: OpenOptions): Promise<Opened> {
  const envelope = await openEnvelope(bytes, opts);
  return verifySigned(envelope, {
    serverFingerprint: opts.server.fingerprint,
    lookupSigner: opts.lookupSigner,
    now: opts.now,
    maxSkewSeconds: opts.maxSkewSeconds,
  });
}

/** The signed part of a knock: what is left once the encryption and framing are gone. */
export interface SignedLiteral {
  readonly literal: openpgp.LiteralDataPacket;
  readonly signature: openpgp.SignaturePacket;
  /** From the signature's issuer fingerprint subpacket (uppercase hex). */
  readonly signingKeyFingerprint: string;
}

export interface VerifySignedOptions {
  /** The payload must name this fingerprint (destination binding). */
  readonly serverFingerprint: string;
  readonly lookupSigner: LookupSigner;
  readonly now: Date;
  readonly maxSkewSeconds: number;
}

/**
 * Decrypt and structure (SPEC.md §7 steps 6-7): the server key is needed here and nowhere
 * after. Returns the literal and signature packets of exactly [OPS, Literal, Signature].
 */
export async function openEnvelope(
  bytes: Uint8Array,
  opts: Pick<OpenOptions, 'server' | 'now'>,
): Promise<SignedLiteral> {
  precheck(bytes, opts.server);
  const config = cfg();
  // the default profile without openpgp.js's message layer; null: anything else, decided below
  const fast = await nativeOpen(bytes, opts.server, config);
  if (fast) return signedLiteralOf(fast.onePass, fast.literal, fast.signature);

  let message: openpgp.Message<Uint8Array>;
  let sessionKeys: openpgp.SessionKey[];
  try {
    message = (await openpgp.readMessage({ binaryMessage: bytes, config })) as openpgp.Message<Uint8Array>;
    sessionKeys = await decryptSessionKey(message, opts.server);
  } catch (cause) {
    throw new VerifyError('DECRYPT_FAILED', 'packet: could not be decrypted with the server key', { cause });
  }
  let decrypted: openpgp.Message<Uint8Array>;
  try {
    decrypted = (await message.decrypt(undefined, undefined, sessionKeys, opts.now, {
      ...config,
      additionalAllowedPackets: [guardedCompressedData(config)],
    })) as openpgp.Message<Uint8Array>;
  } catch (cause) {
    const own = ourError(cause);
    if (own) throw own;
    // The data is parsed only after its integrity check passed (SEIPD v1 MDC, v2 AEAD chunks):
    // a packet that is not allowed or malformed there is a structure problem, not a decryption one.
    if (isStructureError(cause)) {
      throw new VerifyError(
        'MSG_STRUCTURE',
        'message: packet sequence inside the encryption is not allowed',
        { cause },
      );
    }
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
function signedLiteralOf(
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

function issuerFingerprintOf(sig: openpgp.SignaturePacket): string {
  if (!sig.issuerFingerprint) {
    throw new VerifyError(
      'SIG_NO_ISSUER_FPR',
      'signature: no issuer fingerprint subpacket (key id alone is not accepted)',
    );
  }
  return bytesToHex(sig.issuerFingerprint);
}

/** The bytes of a literal data packet and of a signature packet (bodies, no packet headers). */
export interface SignedBytes {
  readonly literal: Uint8Array;
  readonly signature: Uint8Array;
}

export function signedBytes(s: SignedLiteral): SignedBytes {
  // write() is typed private for literal packets in openpgp.js's .d.ts, public at run time
  const literal = (s.literal as unknown as { write(): Uint8Array }).write();
  return { literal, signature: s.signature.write() };
}

/**
 * The inverse of signedBytes, for a party that holds no decryption key (spad's monitor): one
 * literal data packet body and one signature packet body, parsed as exactly that. Nothing here
 * is encrypted or compressed, so nothing is decrypted or decompressed. Throws MSG_STRUCTURE
 * for bytes that are not one such packet each, SIG_NO_ISSUER_FPR as open() does.
 */
export async function readSigned(bytes: SignedBytes): Promise<SignedLiteral> {
  const config = cfg();
  let signature: openpgp.SignaturePacket;
  let literal: openpgp.LiteralDataPacket;
  try {
    signature = new openpgp.SignaturePacket();
    // read() is typed private in openpgp.js's .d.ts, public at run time
    (signature as unknown as { read(b: Uint8Array, c: openpgp.Config): void }).read(bytes.signature, config);
    literal = new openpgp.LiteralDataPacket();
    await (literal as unknown as { read(b: Uint8Array): Promise<void> }).read(bytes.literal);
  } catch (cause) {
    throw new VerifyError('MSG_STRUCTURE', 'signed literal: not one literal and one signature packet', {
      cause,
    });
  }
  // a re-serialization that differs means trailing or non-canonical bytes: refuse them
  const again = signedBytes({ literal, signature, signingKeyFingerprint: '' });
  if (!sameBytes(again.signature, bytes.signature) || !sameBytes(again.literal, bytes.literal)) {
    throw new VerifyError('MSG_STRUCTURE', 'signed literal: packets are not in their canonical encoding');
  }
  return { literal, signature, signingKeyFingerprint: issuerFingerprintOf(signature) };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What verifySignature() found: the signed bytes and who signed them. */
export interface VerifiedSignature {
  /** The literal data packet's bytes, exactly what the signature covers. */
  readonly data: Uint8Array;
  readonly signer: SignerEntry;
  readonly signingKeyFingerprint: string;
}

/**
 * Signer → signature → payload → destination → freshness (SPEC.md §7 steps 8-12): the checks
 * that need no server secret. The verifying key is the enrolled key the issuer fingerprint
 * names, and nothing else. spad's verifier runs this inside open(); its monitor runs it again
 * on the packets the verifier forwards (readSigned).
 */
export async function verifySigned(signed: SignedLiteral, opts: VerifySignedOptions): Promise<Opened> {
  const { data, signer, signingKeyFingerprint } = await verifySignature(signed, opts);
  const payload = decodePayload(data);
  if (payload.serverFingerprint !== opts.serverFingerprint) {
    throw new VerifyError('DEST_MISMATCH', 'payload server_fpr: meant for another server key', {
      field: 'server_fpr',
    });
  }
  checkFreshness(payload.timestamp, opts.now, opts.maxSkewSeconds);
  return { payload, signer, signingKeyFingerprint, signed };
}

/**
 * Steps 8-9 alone: signer by issuer fingerprint, signature time inside the window, signature
 * valid for the enrolled key, enrollment enabled and not expired. Shared by spa knocks
 * (verifySigned) and fwknop knocks (protocol/fwknop.ts, SPEC.md §11), which differ only in what
 * the literal data holds.
 */
export async function verifySignature(
  signed: SignedLiteral,
  opts: Pick<VerifySignedOptions, 'lookupSigner' | 'now' | 'maxSkewSeconds'>,
): Promise<VerifiedSignature> {
  const config = cfg();
  const sig = signed.signature;
  const signingFpr = issuerFingerprintOf(sig);

  // The enrollment lists the fingerprints of the keys that may sign for it: the one named here
  // is the only key the signature is checked against (SPEC.md §3).
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
  const literal = signed.literal;
  try {
    if (
      sig.signatureType !== openpgp.enums.signature.binary &&
      sig.signatureType !== openpgp.enums.signature.text
    ) {
      throw new Error('not a signature over data');
    }
    const signingPacket = await validSigningKey(key, signingFpr, at);
    // openpgp.js would verify with whatever key the (possibly unhashed, possibly later) Issuer
    // Key ID names; a key id that is not the fingerprint's is a second issuer, refused.
    if (!sig.issuerKeyID.equals(signingPacket.getKeyID())) {
      throw new Error('issuer key id is not the issuer fingerprint’s key id');
    }
    // Ed25519 keys (the default) natively (ed25519-verify.ts, the same checks); others by openpgp.js
    if (!(await verifyEd25519Message(sig, signingPacket, literal, at, config))) {
      await sig.verify(signingPacket, sig.signatureType, literal, at, false, config);
    }
  } catch (cause) {
    throw new VerifyError(await keyStateCode(key, at), 'signature: not valid for the enrolled key', {
      cause,
    });
  }
  // typed private in openpgp.js's .d.ts, public at run time
  const data = (literal as unknown as { getBytes(): Uint8Array | null }).getBytes();
  if (!(data instanceof Uint8Array))
    throw new VerifyError('MSG_STRUCTURE', 'message: literal data is not bytes');
  if (!signer.enabled)
    throw new VerifyError('KEY_DISABLED', `signer ${signer.fingerprint}: disabled by the admin`);
  if (signer.expiresAt && signer.expiresAt.getTime() <= now) {
    throw new VerifyError('KEY_EXPIRED', `signer ${signer.fingerprint}: enrollment expired`);
  }

  return { data, signer, signingKeyFingerprint: signingFpr };
}
/**
 * Decrypts the session key with the PKESK that names one of our (already validated) decryption
 * key packets; openpgp.js then decrypts and integrity-checks the data with it. Equivalent to
 * `message.decrypt([serverKey])` minus re-verifying our own key's self-signatures per packet.
 */
async function decryptSessionKey(
  message: openpgp.Message<Uint8Array>,
  server: ServerIdentity,
): Promise<openpgp.SessionKey[]> {
  for (const p of message.packets) {
    if (tagOf(p) !== T.publicKeyEncryptedSessionKey) continue;
    // decrypt() is typed private in openpgp.js's .d.ts, public at run time
    const pkesk = p as unknown as {
      decrypt(key: openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket): Promise<void>;
      publicKeyID: openpgp.KeyID;
      sessionKey: Uint8Array | null;
      sessionKeyAlgorithm: openpgp.enums.symmetric | null;
    };
    const id = pkesk.publicKeyID.toHex().toUpperCase();
    const fast = server.ecdhKeys.get(id);
    if (fast) return [decryptEcdhSessionKey(fast, pkesk)];
    const keyPacket = server.decryptionKeys.get(id);
    if (!keyPacket) continue;
    await pkesk.decrypt(keyPacket);
    if (!pkesk.sessionKey) throw new Error('no session key');
    const algorithm =
      pkesk.sessionKeyAlgorithm === null
        ? null
        : openpgp.enums.read(openpgp.enums.symmetric, pkesk.sessionKeyAlgorithm);
    // v6 PKESKs carry no algorithm (SEIPDv2 names it); openpgp.js then ignores this field
    return [{ data: pkesk.sessionKey, algorithm: algorithm as openpgp.enums.symmetricNames }];
  }
  throw new Error('no session key packet for this server');
}

/**
 * The key packet of `key` (primary or subkey) whose fingerprint is `fingerprint`, if it is valid
 * for signing (bindings, flags, not expired or revoked) at `at`; else it throws. The full check
 * (several signature verifications) runs once per key object and fingerprint, then is reused
 * until the key or subkey would expire: the certifications inside a parsed key never change, and
 * a new keyring record means a new key object. A failed check is remembered too, for a minute:
 * anyone can send datagrams naming an enrolled key's fingerprint, and each would otherwise pay
 * the full check again.
 */
const NEGATIVE_TTL_MS = 60_000;
const validity = new WeakMap<
  openpgp.PublicKey,
  Map<
    string,
    | { packet: openpgp.PublicKeyPacket | openpgp.PublicSubkeyPacket; until: number }
    | { error: unknown; until: number }
  >
>();
async function validSigningKey(
  key: openpgp.PublicKey,
  fingerprint: string,
  at: Date,
): Promise<openpgp.PublicKeyPacket | openpgp.PublicSubkeyPacket> {
  let perKey = validity.get(key);
  if (!perKey) {
    perKey = new Map();
    validity.set(key, perKey);
  }
  const hit = perKey.get(fingerprint);
  if (hit && at.getTime() < hit.until) {
    if ('error' in hit) throw hit.error;
    return hit.packet;
  }
  const config = cfg();
  let signing: Awaited<ReturnType<openpgp.PublicKey['getSigningKey']>>;
  try {
    const named = [key, ...key.getSubkeys()].find((k) => k.getFingerprint().toUpperCase() === fingerprint);
    if (!named) throw new Error('the enrolled key has no key packet with the issuer fingerprint');
    signing = await key.getSigningKey(named.getKeyID(), at, undefined, config);
    // key ids may collide inside one key: openpgp.js picks by key id, we insist on the fingerprint
    if (signing.getFingerprint().toUpperCase() !== fingerprint) {
      throw new Error('the key valid for signing under that key id is another key');
    }
  } catch (error) {
    perKey.set(fingerprint, { error, until: at.getTime() + NEGATIVE_TTL_MS });
    throw error;
  }
  const own =
    signing === key
      ? await key.getExpirationTime(undefined, config)
      : await (signing as openpgp.Subkey).getExpirationTime(at, config);
  const primary = await key.getExpirationTime(undefined, config);
  const ends = (x: Date | number | null): number =>
    x instanceof Date ? x.getTime() : Number.POSITIVE_INFINITY;
  // recheck at least hourly, so a clock jump cannot keep a stale answer for long
  const until = Math.min(ends(own), ends(primary), at.getTime() + 3_600_000);
  const packet = signing.keyPacket as openpgp.PublicKeyPacket | openpgp.PublicSubkeyPacket;
  perKey.set(fingerprint, { packet, until });
  return packet;
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

/** |now − timestamp| ≤ window, else TS_TOO_OLD / TS_IN_FUTURE (SPEC.md §7 step 12). */
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

/** Replay identity (SPEC.md §7 step 13): the signer and the signed nonce, never unsigned bytes. */
export function replayKey(signerFingerprint: string, nonce: Uint8Array): string {
  return `${signerFingerprint}:${bytesToHex(nonce)}`;
}
