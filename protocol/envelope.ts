/**
 * The one place that talks to openpgp.js about whole messages: `seal` signs then encrypts a
 * payload; `open` runs the verification steps of SPEC.md §7 that judge the message itself, in
 * SPEC's order, cheapest first, each a named function with its own stable codes:
 *
 *   steps 1-3   precheck          size, framing, a PKESK for us (precheck.ts)
 *   (4-5)                         fair queue and the ciphertext digest: server/pipeline.ts
 *   step 6      decrypt           the session key, then the data and its integrity check
 *                                 (the default profile: native-open.ts, steps 6-7 at once)
 *   step 7      innerPackets      [OPS, Literal, Signature] (structure.ts, compressed.ts)
 *   step 8      findSigner        the enrolled key the issuer fingerprint names
 *   step 9      verifySignature   signature time (freshness.ts), signature, key state
 *                                 (signing-key.ts), enrollment state
 *   step 10     decodePayload     strict payload decode (payload.ts)
 *   step 11     checkDestination  the payload names our server key
 *   step 12     checkFreshness    the payload timestamp (freshness.ts)
 *   (13-16)                       replay (replay-key.ts names a knock), policy, act, reply: server/
 *
 * Every call passes its own `config` (the global one is never changed), and the clock is a
 * parameter.
 *
 * Safe-use notes on openpgp.js: `decrypt`/`verify` resolve even with a bad signature unless the
 * caller insists, so we accept exactly one signature, look its issuer up ourselves by full
 * fingerprint, then verify against exactly the key packet that fingerprint names (openpgp.js
 * itself would pick the key by the Issuer Key ID, which may name another one). It would also
 * decompress any algorithm it knows: compressed data is read by our own packet class instead
 * (compressed.ts).
 */
import * as openpgp from 'openpgp';
import { guardedCompressedData } from './compressed.js';
import { type EcdhKey, prepareEcdh } from './ecdh.js';
import { verifyEd25519Message } from './ed25519-verify.js';
import { nativeOpen } from './native-open.js';
import { ConfigError, VerifyError } from './errors.js';
import { checkFreshness, checkSignatureTime } from './freshness.js';
import { PACKET_MAX_BYTES } from './limits.js';
import { openpgpConfig } from './pgp-config.js';
import { decodePayload, encodePayload, type Payload } from './payload.js';
import { precheck } from './precheck.js';
import { decryptSessionKey } from './session-key.js';
import { keyStateCode, validSigningKey } from './signing-key.js';
import { innerPackets, issuerFingerprintOf, signedLiteralOf, structureErrorOf } from './structure.js';

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

let madeConfig: openpgp.Config | undefined;
/**
 * The project's openpgp.js config (pgp-config.ts): a frozen copy, never the global. Made once:
 * copying the library's ~50 settings on every call showed up in every knock (issue #15).
 */
function cfg(): openpgp.Config {
  madeConfig ??= openpgpConfig(openpgp);
  return madeConfig;
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

/** What verifySignature() found: the signed bytes and who signed them. */
export interface VerifiedSignature {
  /** The literal data packet's bytes, exactly what the signature covers. */
  readonly data: Uint8Array;
  readonly signer: SignerEntry;
  readonly signingKeyFingerprint: string;
}

/**
 * The crypto half of the pipeline, SPEC.md §7 steps 1-3 and 6-12 in order. The server key is
 * needed up to step 7 and nowhere after: openEnvelope() and verifySigned() are the two halves,
 * for callers that run them apart (spad's monitor repeats steps 8-12, §7.1).
 */
export async function open(bytes: Uint8Array, opts: OpenOptions): Promise<Opened> {
  const signed = await openEnvelope(bytes, opts); // steps 1-3, 6-7
  return verifySigned(signed, {
    serverFingerprint: opts.server.fingerprint,
    lookupSigner: opts.lookupSigner,
    now: opts.now,
    maxSkewSeconds: opts.maxSkewSeconds,
  }); // steps 8-12
}

/**
 * Steps 1-3 and 6-7 (SPEC.md §7): size and framing, decrypt, structure. Returns the literal and
 * signature packets of exactly [OPS, Literal, Signature].
 */
export async function openEnvelope(
  bytes: Uint8Array,
  opts: Pick<OpenOptions, 'server' | 'now'>,
): Promise<SignedLiteral> {
  precheck(bytes, opts.server); // steps 1-3
  // steps 4-5 (fair queue, ciphertext seen before) are the pipeline's, before open()
  // steps 6-7 for the default profile without openpgp.js's message layer (native-open.ts);
  // null: anything else, decided below
  const native = await nativeOpen(bytes, opts.server, cfg());
  if (native.packets)
    return signedLiteralOf(native.packets.onePass, native.packets.literal, native.packets.signature);
  const decrypted = await decrypt(bytes, opts.server, opts.now, native.sessionKey); // step 6
  return innerPackets(decrypted); // step 7
}

/**
 * Steps 8-12 (SPEC.md §7): signer, signature, payload, destination, freshness: the checks that
 * need no server secret. spad's verifier runs this inside open(); its monitor runs it again on
 * the packets the verifier forwards (readSigned).
 */
export async function verifySigned(signed: SignedLiteral, opts: VerifySignedOptions): Promise<Opened> {
  const { data, signer, signingKeyFingerprint } = await verifySignature(signed, opts); // steps 8-9
  const payload = decodePayload(data); // step 10
  checkDestination(payload, opts.serverFingerprint); // step 11
  checkFreshness(payload.timestamp, opts.now, opts.maxSkewSeconds); // step 12
  // step 13 on (replay: replayKey(), policy, act, reply) are the pipeline's
  return { payload, signer, signingKeyFingerprint, signed };
}

/**
 * Step 6: decrypt with the server key. openpgp.js parses the decrypted data while it decrypts,
 * after the integrity check, so step 7's codes can already come from here (structureErrorOf);
 * the compressed data class it is given is ours (compressed.ts).
 */
async function decrypt(
  bytes: Uint8Array,
  server: ServerIdentity,
  now: Date,
  /** Already unwrapped from the same session key packet (native-open.ts), if it was. */
  known: openpgp.SessionKey | null,
): Promise<openpgp.Message<Uint8Array>> {
  const config = cfg();
  let message: openpgp.Message<Uint8Array>;
  let sessionKeys: openpgp.SessionKey[];
  try {
    message = (await openpgp.readMessage({ binaryMessage: bytes, config })) as openpgp.Message<Uint8Array>;
    sessionKeys = known ? [known] : await decryptSessionKey(message, server);
  } catch (cause) {
    throw new VerifyError('DECRYPT_FAILED', 'packet: could not be decrypted with the server key', { cause });
  }
  try {
    return (await message.decrypt(undefined, undefined, sessionKeys, now, {
      ...config,
      additionalAllowedPackets: [guardedCompressedData(config)],
    })) as openpgp.Message<Uint8Array>;
  } catch (cause) {
    throw (
      structureErrorOf(cause) ??
      new VerifyError('DECRYPT_FAILED', 'packet: could not be decrypted with the server key', { cause })
    );
  }
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
  const signer = findSigner(signingFpr, opts.lookupSigner); // step 8

  // step 9: signature time, the signature by the key the fingerprint names, key state
  checkSignatureTime(sig.created, opts.now, opts.maxSkewSeconds);
  const now = opts.now.getTime();
  const key = await signer.getKey();
  // Judge the key at the later of now and the signature time, so a client clock a little ahead
  // of ours is not mistaken for a signature "from the future".
  const at = new Date(Math.max(now, sig.created?.getTime() ?? 0));
  const literal = signed.literal;
  try {
    if (
      sig.signatureType !== openpgp.enums.signature.binary &&
      sig.signatureType !== openpgp.enums.signature.text
    ) {
      throw new Error('not a signature over data');
    }
    const signingPacket = await validSigningKey(key, signingFpr, at, config);
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
    throw new VerifyError(await keyStateCode(key, at, config), 'signature: not valid for the enrolled key', {
      cause,
    });
  }
  // typed private in openpgp.js's .d.ts, public at run time
  const data = (literal as unknown as { getBytes(): Uint8Array | null }).getBytes();
  if (!(data instanceof Uint8Array))
    throw new VerifyError('MSG_STRUCTURE', 'message: literal data is not bytes');

  // step 9, last: the enrollment's own state, set by the admin
  if (!signer.enabled)
    throw new VerifyError('KEY_DISABLED', `signer ${signer.fingerprint}: disabled by the admin`);
  if (signer.expiresAt && signer.expiresAt.getTime() <= now) {
    throw new VerifyError('KEY_EXPIRED', `signer ${signer.fingerprint}: enrollment expired`);
  }
  return { data, signer, signingKeyFingerprint: signingFpr };
}

/**
 * Step 8: the enrollment that lists the fingerprint of the key that signed. That key is the only
 * one the signature is checked against (SPEC.md §3).
 */
function findSigner(signingFpr: string, lookupSigner: LookupSigner): SignerEntry {
  const signer = lookupSigner(signingFpr);
  if (!signer) throw new VerifyError('SIGNER_UNKNOWN', `signature: key ${signingFpr} is not enrolled`);
  return signer;
}

/** Step 11: the payload names our primary fingerprint, so a knock for server A fails on B. */
function checkDestination(payload: Payload, serverFingerprint: string): void {
  if (payload.serverFingerprint !== serverFingerprint) {
    throw new VerifyError('DEST_MISMATCH', 'payload server_fpr: meant for another server key', {
      field: 'server_fpr',
    });
  }
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
