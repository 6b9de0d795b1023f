/**
 * Rebuilds the test vectors in test/vectors/*.json (format: test/vectors/README.md) from the fixed
 * throwaway keys in test/vectors/keys/. Keys are generated only when missing (or with
 * --new-keys); packets are made anew on every run, since OpenPGP signatures are salted and session
 * keys random: the vectors pin what `open()` must conclude, not the bytes `seal()` writes.
 *
 * Usage: npm run vectors            (build, then node dist/scripts/gen-vectors.js [--new-keys])
 *        node dist/scripts/gen-vectors.js --only NAME[,NAME]   (just these files; the others,
 *        and their bytes, stay as they are)
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import * as openpgp from 'openpgp';
import { parseAddress } from '../protocol/address.js';
import { seal } from '../protocol/envelope.js';
import type { ErrorCode } from '../protocol/errors.js';
import { DEFAULT_MAX_SKEW_SECONDS } from '../protocol/limits.js';
import { describePayload, encodePayload, hexToBytes, type Payload } from '../protocol/payload.js';
import {
  concat,
  craftKnock,
  decryptToPackets,
  encryptPackets,
  forgedIssuerPackets,
  signedPackets,
  splitPackets,
  subpacket,
  withUnhashed,
} from '../test/helpers/craft.js';
import {
  freshPayload,
  fromPrivateKey,
  KEY_DATE,
  type KeyOptions,
  type PayloadOverrides,
  readTestKey,
  TEST_NOW,
  type TestKey,
  testKey,
  VECTOR_DIR,
} from '../test/helpers/keys.js';

const NOW = TEST_NOW;
const KEYS_DIR = `${VECTOR_DIR}keys/`;
const at = (secondsFromNow: number) => new Date(NOW.getTime() + secondsFromNow * 1000);

/** The fixed keys: name → how to generate it when missing. */
const KEY_SPECS: Record<string, KeyOptions & { aead?: boolean; twoSigningSubkeys?: boolean }> = {
  'server-ecc': { kind: 'ecc' },
  'server2-ecc': { kind: 'ecc' },
  'client-ecc': { kind: 'ecc' },
  'stranger-ecc': { kind: 'ecc' },
  'client-subkey-ecc': { kind: 'ecc', signingSubkey: true },
  'client-two-subkeys-ecc': { kind: 'ecc', twoSigningSubkeys: true },
  // expires 30 s before NOW: still valid for a signature made at NOW - 60 s
  'client-expiring-ecc': { kind: 'ecc', keyExpirationTime: (at(-30).getTime() - KEY_DATE.getTime()) / 1000 },
  'client-revoked-ecc': { kind: 'ecc' },
  'client-retired-ecc': { kind: 'ecc' },
  'client-reformatted-ecc': { kind: 'ecc' },
  'server-v6': { kind: 'v6' },
  'client-v6': { kind: 'v6' },
  'server-v6-aead': { kind: 'v6', aead: true },
  'server-rsa4096': { kind: 'rsa4096' },
  'client-rsa4096': { kind: 'rsa4096' },
};

async function loadOrMakeKey(name: string, fresh: boolean): Promise<TestKey> {
  const file = `${KEYS_DIR}${name}.asc`;
  if (!fresh && existsSync(file)) return readTestKey(name, readFileSync(file, 'utf8'));
  const spec = KEY_SPECS[name];
  if (!spec) throw new Error(`gen-vectors: no spec for key ${name}`);
  let key: TestKey;
  if (spec.aead) {
    // v6 keys announcing SEIPDv2: openpgp.js then encrypts to them with PKESK v6 + SEIPD v2
    const { privateKey } = await openpgp.generateKey({
      type: 'curve25519',
      userIDs: [{ name, email: `${name}@example.test` }],
      date: KEY_DATE,
      config: { v6Keys: true, aeadProtect: true },
      format: 'object',
    });
    key = fromPrivateKey(name, privateKey);
  } else if (spec.twoSigningSubkeys) {
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name, email: `${name}@example.test` }],
      date: KEY_DATE,
      subkeys: [{}, { sign: true }, { sign: true }],
      format: 'object',
    });
    key = fromPrivateKey(name, privateKey);
  } else {
    key = await testKey(name, spec);
  }
  writeFileSync(file, key.armoredPrivate, { mode: 0o600 });
  console.log(`gen-vectors: generated key ${name} ${key.fingerprint}`);
  return key;
}

interface Signer {
  readonly key: TestKey;
  readonly enabled?: boolean;
  readonly expiresAt?: Date | null;
  /** Armored public key to enroll instead of key.armoredPublic (e.g. a revoked copy). */
  readonly publicArmored?: string;
}

interface Vector {
  readonly expect: 'ok' | ErrorCode;
  readonly description: string;
  readonly now?: Date;
  readonly server: TestKey;
  readonly signers: readonly Signer[];
  readonly packet: Uint8Array;
  readonly payload?: Payload;
  readonly signingKey?: string;
}

/** A fixed nonce per vector, so expected payloads do not change between runs. */
function nonceFor(name: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`spa-vector:${name}`).digest().subarray(0, 16));
}

async function main(): Promise<void> {
  const fresh = process.argv.includes('--new-keys');
  mkdirSync(KEYS_DIR, { recursive: true });
  const k: Record<string, TestKey> = {};
  for (const name of Object.keys(KEY_SPECS)) k[name] = await loadOrMakeKey(name, fresh);
  const key = (name: string): TestKey => {
    const v = k[name];
    if (!v) throw new Error(`gen-vectors: unknown key ${name}`);
    return v;
  };
  const server = key('server-ecc');
  const client = key('client-ecc');

  const payload = (name: string, o: PayloadOverrides = {}): Payload =>
    freshPayload({ server, now: NOW, nonce: nonceFor(name), ...o });
  const sealFor = (p: Payload, signer: TestKey, to: TestKey, now = NOW) =>
    seal(p, { signingKey: signer.privateKey, serverKey: to.publicKey, now });

  const vectors: Record<string, (name: string) => Promise<Vector>> = {
    'ok-access-ecc': async (name) => {
      const p = payload(name);
      return {
        expect: 'ok',
        description: 'v4 Ed25519/Curve25519 (legacy) keys on both sides, one tcp port, IPv4 source',
        server,
        signers: [{ key: client }],
        packet: await sealFor(p, client, server),
        payload: p,
      };
    },
    'ok-command-ecc': async (name) => {
      const p = payload(name, {
        type: 'command',
        access: [],
        command: 'systemctl restart web',
        source: 'any',
      });
      return {
        expect: 'ok',
        description: 'a command message with source "any"',
        server,
        signers: [{ key: client }],
        packet: await sealFor(p, client, server),
        payload: p,
      };
    },
    'ok-access-v6': async (name) => {
      const s = key('server-v6');
      const p = payload(name, {
        server: s,
        username: 'bob',
        source: parseAddress('2001:db8:1::2'),
        access: [
          { proto: 'udp', port: 53 },
          { proto: 'tcp', port: 443 },
          { proto: 'tcp', port: 22 },
        ],
        timeoutSeconds: 600,
      });
      return {
        expect: 'ok',
        description:
          'v6 Ed25519/X25519 keys (RFC 9580) on both sides, three ports, IPv6 source, 600 s timeout',
        server: s,
        signers: [{ key: key('client-v6') }, { key: client }],
        packet: await sealFor(p, key('client-v6'), s),
        payload: p,
      };
    },
    'ok-access-v6-aead': async (name) => {
      const s = key('server-v6-aead');
      const p = payload(name, { server: s });
      return {
        expect: 'ok',
        description:
          'server key announcing SEIPDv2: a v6 session key packet and a v2 (AEAD) encrypted data packet',
        server: s,
        signers: [{ key: client }],
        packet: await sealFor(p, client, s),
        payload: p,
      };
    },
    'ok-access-rsa4096': async (name) => {
      const s = key('server-rsa4096');
      const p = payload(name, { server: s });
      return {
        expect: 'ok',
        description: 'RSA-4096 keys on both sides (the largest knock, still one datagram)',
        server: s,
        signers: [{ key: key('client-rsa4096') }],
        packet: await sealFor(p, key('client-rsa4096'), s),
        payload: p,
      };
    },
    'ok-compressed-zlib': async (name) => {
      const p = payload(name);
      return {
        expect: 'ok',
        description:
          'signed data inside a ZLIB compressed data packet, as other OpenPGP tools write by default',
        server,
        signers: [{ key: client }],
        packet: await craftKnock(encodePayload(p), {
          signers: [client.privateKey],
          to: server.publicKey,
          now: NOW,
          compression: 'zlib',
        }),
        payload: p,
      };
    },
    'compressed-bzip2': async (name) => {
      const inner = await signedPackets(encodePayload(payload(name)), [client.privateKey], { now: NOW });
      const bz = spawnSync('bzip2', ['-c', '-9'], { input: inner });
      if (bz.status !== 0) throw new Error('gen-vectors: compressed-bzip2 needs the bzip2 program');
      const body = concat(Uint8Array.of(openpgp.enums.compression.bzip2), new Uint8Array(bz.stdout));
      const n = body.length;
      if (n < 192 || n >= 8384) throw new Error(`gen-vectors: bzip2 packet of ${n} bytes`);
      const header = Uint8Array.of(0xc8, ((n - 192) >> 8) + 192, (n - 192) & 0xff);
      return {
        expect: 'MSG_COMPRESSION',
        description:
          'a genuine signed knock inside a BZip2 compressed data packet (gpg --compress-algo bzip2): only ZIP and ZLIB are accepted',
        server,
        signers: [{ key: client }],
        packet: await encryptPackets(concat(header, body), server.publicKey, {
          now: NOW,
        }),
      };
    },
    'signer-keyid-mismatch': async (name) => {
      // signed by the second signing subkey B; the unhashed area names the first one, A, by
      // fingerprint and then B by key id (openpgp.js keeps the last issuer it reads)
      const c = key('client-two-subkeys-ecc');
      const [a, b] = c.privateKey
        .getSubkeys()
        .filter((s) => s.getAlgorithmInfo().algorithm === 'eddsaLegacy');
      if (!a || !b) throw new Error('gen-vectors: client-two-subkeys-ecc needs two signing subkeys');
      const message = await openpgp.createMessage({
        binary: encodePayload(payload(name)),
        format: 'binary',
        date: NOW,
      });
      const signed = (await openpgp.sign({
        message,
        signingKeys: c.privateKey,
        signingKeyIDs: b.getKeyID(),
        format: 'binary',
        date: NOW,
      })) as Uint8Array;
      const [ops, lit, sig] = splitPackets(signed).map((p) => p.bytes) as [
        Uint8Array,
        Uint8Array,
        Uint8Array,
      ];
      const forged = withUnhashed(
        sig,
        subpacket(33, concat(Uint8Array.of(4), hexToBytes(a.getFingerprint()))),
        subpacket(16, hexToBytes(b.getKeyID().toHex())),
      );
      return {
        expect: 'SIG_INVALID',
        description:
          'made by signing subkey B, whose unhashed area names subkey A by fingerprint, then B by key id: checked against A, the key the fingerprint names',
        server,
        signers: [{ key: c }],
        packet: await encryptPackets(concat(ops, lit, forged), server.publicKey, { now: NOW }),
      };
    },
    'ok-signing-subkey': async (name) => {
      const c = key('client-subkey-ecc');
      const p = payload(name);
      const signing = await c.privateKey.getSigningKey(undefined, NOW);
      return {
        expect: 'ok',
        description: 'signed by a signing subkey: found by the subkey fingerprint, identified by the primary',
        server,
        signers: [{ key: c }],
        packet: await sealFor(p, c, server),
        payload: p,
        signingKey: signing.getFingerprint().toUpperCase(),
      };
    },
    'ok-freshness-edge': async (name) => {
      const p = payload(name, { timestamp: Math.floor(NOW.getTime() / 1000) - DEFAULT_MAX_SKEW_SECONDS });
      return {
        expect: 'ok',
        description: 'payload timestamp and signature exactly max_skew (120 s) old: still accepted',
        server,
        signers: [{ key: client }],
        packet: await sealFor(p, client, server, at(-DEFAULT_MAX_SKEW_SECONDS)),
        payload: p,
      };
    },
    'tampered-ciphertext': async (name) => {
      const packet = await sealFor(payload(name), client, server);
      const i = packet.length - 30;
      packet[i] = (packet[i] ?? 0) ^ 0x01;
      return {
        expect: 'DECRYPT_FAILED',
        description: `one bit flipped in the encrypted data (byte ${i}): the integrity check fails`,
        server,
        signers: [{ key: client }],
        packet,
      };
    },
    'signer-unknown': async (name) => ({
      expect: 'SIGNER_UNKNOWN',
      description: 'a valid signature by a key that is not enrolled',
      server,
      signers: [{ key: client }],
      packet: await sealFor(payload(name), key('stranger-ecc'), server),
    }),
    'signer-forged-issuer': async (name) => {
      const inner = await forgedIssuerPackets(
        encodePayload(payload(name)),
        key('stranger-ecc').privateKey,
        client.publicKey,
        NOW,
      );
      // the forger is enrolled too: checked against the key the issuer names, never by trying
      // the enrolled keys in turn (which would find the forger's own and accept it)
      return {
        expect: 'SIG_INVALID',
        description:
          'signed by one enrolled key (stranger-ecc) whose key id and issuer fingerprint were rewritten to another (client-ecc)',
        server,
        signers: [{ key: client }, { key: key('stranger-ecc') }],
        packet: await encryptPackets(inner, server.publicKey, { now: NOW }),
      };
    },
    'ts-too-old': async (name) => ({
      expect: 'TS_TOO_OLD',
      description: 'payload timestamp 121 s before now (window 120 s); the signature itself is fresh',
      server,
      signers: [{ key: client }],
      packet: await sealFor(
        payload(name, { timestamp: Math.floor(NOW.getTime() / 1000) - 121 }),
        client,
        server,
      ),
    }),
    'ts-in-future': async (name) => ({
      expect: 'TS_IN_FUTURE',
      description: 'payload timestamp 121 s after now (window 120 s); the signature itself is fresh',
      server,
      signers: [{ key: client }],
      packet: await sealFor(
        payload(name, { timestamp: Math.floor(NOW.getTime() / 1000) + 121 }),
        client,
        server,
      ),
    }),
    'dest-mismatch': async (name) => {
      const other = key('server2-ecc');
      const forOther = await sealFor(payload(name, { server: other }), client, other);
      // what server2 (or whoever holds its key) can do: decrypt, then re-encrypt the signed packets
      const inner = await decryptToPackets(forOther, other.privateKey, NOW);
      return {
        expect: 'DEST_MISMATCH',
        description: 'a knock signed for server2, decrypted by server2 and re-encrypted to this server',
        server,
        signers: [{ key: client }],
        packet: await encryptPackets(inner, server.publicKey, { now: NOW }),
      };
    },
    'payload-malformed': async (name) => ({
      expect: 'PAYLOAD_MALFORMED',
      description: 'a validly signed payload with one trailing byte after its last field',
      server,
      signers: [{ key: client }],
      packet: await craftKnock(concat(encodePayload(payload(name)), Uint8Array.of(0)), {
        signers: [client.privateKey],
        to: server.publicKey,
        now: NOW,
      }),
    }),
    'ok-forward-reply': async (name) => {
      const p = payload(name, {
        reply: true,
        forward: { host: parseAddress('203.0.113.10'), port: 22, randomPort: false },
      });
      return {
        expect: 'ok',
        description: 'a forwarding request (-N 203.0.113.10:22 -A tcp/22) asking for a signed reply',
        server,
        signers: [{ key: client }],
        packet: await sealFor(p, client, server),
        payload: p,
      };
    },
    'ok-forward-rand-local': async (name) => {
      const p = payload(name, {
        access: [{ proto: 'tcp', port: 23456 }],
        forward: { host: 'local', port: 22, randomPort: true },
      });
      return {
        expect: 'ok',
        description: 'a local forwarding request (--nat-local) on a client-picked random port 23456',
        server,
        signers: [{ key: client }],
        packet: await sealFor(p, client, server),
        payload: p,
      };
    },
    'ok-forward-v6': async (name) => {
      const p = payload(name, {
        source: parseAddress('2001:db8::2'),
        access: [{ proto: 'udp', port: 5353 }],
        forward: { host: parseAddress('2001:db8:1::10'), port: 53, randomPort: false },
      });
      return {
        expect: 'ok',
        description: 'an IPv6 forwarding request, udp/5353 on the gateway to [2001:db8:1::10]:53',
        server,
        signers: [{ key: client }],
        packet: await sealFor(p, client, server),
        payload: p,
      };
    },
    'ok-reply-only': async (name) => {
      const p = payload(name, { reply: true });
      return {
        expect: 'ok',
        description: 'a plain access knock with the reply flag (extension block of one byte)',
        server,
        signers: [{ key: client }],
        packet: await sealFor(p, client, server),
        payload: p,
      };
    },
    'ext-flags-zero': async (name) => ({
      expect: 'PAYLOAD_MALFORMED',
      description: 'an extension block whose flags byte is 0 (not canonical: it must be absent)',
      server,
      signers: [{ key: client }],
      packet: await craftKnock(concat(encodePayload(payload(name)), Uint8Array.of(0)), {
        signers: [client.privateKey],
        to: server.publicKey,
        now: NOW,
      }),
    }),
    'ext-unknown-flag': async (name) => ({
      expect: 'PAYLOAD_MALFORMED',
      description: 'an extension block with an unknown flag bit (0x08)',
      server,
      signers: [{ key: client }],
      packet: await craftKnock(concat(encodePayload(payload(name)), Uint8Array.of(0x09)), {
        signers: [client.privateKey],
        to: server.publicKey,
        now: NOW,
      }),
    }),
    'ext-forward-two-ports': async (name) => {
      // a forwarding request must name one external port: build it by hand past makePayload
      const base = encodePayload(
        payload(name, {
          access: [
            { proto: 'tcp', port: 22 },
            { proto: 'tcp', port: 80 },
          ],
        }),
      );
      const ext = Uint8Array.of(0x02, 4, 203, 0, 113, 10, 0, 22);
      return {
        expect: 'PAYLOAD_MALFORMED',
        description: 'a forwarding request with two access entries (exactly one external port is allowed)',
        server,
        signers: [{ key: client }],
        packet: await craftKnock(concat(base, ext), {
          signers: [client.privateKey],
          to: server.publicKey,
          now: NOW,
        }),
      };
    },
    'ext-command-reply': async (name) => {
      const base = encodePayload(
        payload(name, { type: 'command', access: [], command: 'uptime', source: 'any' }),
      );
      return {
        expect: 'PAYLOAD_MALFORMED',
        description: 'a command message with the reply flag (replies answer access knocks only)',
        server,
        signers: [{ key: client }],
        packet: await craftKnock(concat(base, Uint8Array.of(0x01)), {
          signers: [client.privateKey],
          to: server.publicKey,
          now: NOW,
        }),
      };
    },
    'payload-version': async (name) => {
      const bytes = encodePayload(payload(name));
      bytes[0] = 2;
      return {
        expect: 'PAYLOAD_VERSION',
        description: 'a validly signed payload of version 2',
        server,
        signers: [{ key: client }],
        packet: await craftKnock(bytes, { signers: [client.privateKey], to: server.publicKey, now: NOW }),
      };
    },
    'trailing-data': async (name) => ({
      expect: 'PKT_FRAMING',
      description: 'a valid knock followed by one extra byte in the datagram',
      server,
      signers: [{ key: client }],
      packet: concat(await sealFor(payload(name), client, server), Uint8Array.of(0)),
    }),
    unsigned: async (name) => ({
      expect: 'SIG_MISSING',
      description: 'a valid payload encrypted to the server but not signed',
      server,
      signers: [{ key: client }],
      packet: await craftKnock(encodePayload(payload(name)), { signers: [], to: server.publicKey, now: NOW }),
    }),
    'two-signatures': async (name) => ({
      expect: 'SIG_MULTIPLE',
      description: 'signed by two enrolled keys: exactly one signature is allowed',
      server,
      signers: [{ key: client }, { key: key('client-v6') }],
      packet: await craftKnock(encodePayload(payload(name)), {
        signers: [client.privateKey, key('client-v6').privateKey],
        to: server.publicKey,
        now: NOW,
      }),
    }),
    'msg-signature-first': async (name) => {
      const parts = splitPackets(
        await signedPackets(encodePayload(payload(name)), [client.privateKey], { now: NOW }),
      );
      const [ops, lit, sig] = parts;
      if (!ops || !lit || !sig || parts.length !== 3)
        throw new Error('gen-vectors: unexpected signed message shape');
      return {
        expect: 'MSG_STRUCTURE',
        description:
          'signature then literal data (a valid OpenPGP signed message, but not the one-pass form)',
        server,
        signers: [{ key: client }],
        packet: await encryptPackets(concat(sig.bytes, lit.bytes), server.publicKey, { now: NOW }),
      };
    },
    'msg-grammar': async (name) => {
      const parts = splitPackets(
        await signedPackets(encodePayload(payload(name)), [client.privateKey], { now: NOW }),
      );
      const [, lit, sig] = parts;
      if (!lit || !sig) throw new Error('gen-vectors: unexpected signed message shape');
      return {
        expect: 'MSG_STRUCTURE',
        description: 'literal data then a signature with no one-pass signature: not OpenPGP message grammar',
        server,
        signers: [{ key: client }],
        packet: await encryptPackets(concat(lit.bytes, sig.bytes), server.publicKey, { now: NOW }),
      };
    },
    'key-disabled': async (name) => ({
      expect: 'KEY_DISABLED',
      description: 'a valid knock by a key the admin disabled',
      server,
      signers: [{ key: client, enabled: false }],
      packet: await sealFor(payload(name), client, server),
    }),
    'enrollment-expired': async (name) => ({
      expect: 'KEY_EXPIRED',
      description: 'a valid knock by a key whose enrollment expired one second ago',
      server,
      signers: [{ key: client, expiresAt: at(-1) }],
      packet: await sealFor(payload(name), client, server),
    }),
    'key-expired': async (name) => {
      const c = key('client-expiring-ecc');
      return {
        expect: 'KEY_EXPIRED',
        description: 'signed 60 s ago, while valid, by a key whose own OpenPGP expiry passed 30 s ago',
        server,
        signers: [{ key: c }],
        packet: await sealFor(payload(name, { now: at(-60) }), c, server, at(-60)),
      };
    },
    'key-expired-before-signing': async (name) => {
      const c = key('client-reformatted-ecc');
      // the enrolled copy carries self-signatures saying the key expired an hour ago
      const { publicKey } = await openpgp.reformatKey({
        privateKey: c.privateKey,
        userIDs: [{ name: c.name, email: `${c.name}@example.test` }],
        date: KEY_DATE,
        keyExpirationTime: (at(-3600).getTime() - KEY_DATE.getTime()) / 1000,
        format: 'armored',
      });
      return {
        expect: 'KEY_EXPIRED',
        description: 'signed now by a key whose enrolled copy expired an hour ago',
        server,
        signers: [{ key: c, publicArmored: publicKey }],
        packet: await sealFor(payload(name), c, server),
      };
    },
    'key-retired-after-signing': async (name) => {
      const c = key('client-retired-ecc');
      const { publicKey } = await openpgp.revokeKey({
        key: c.privateKey,
        date: at(-30),
        reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyRetired },
        format: 'armored',
      });
      return {
        expect: 'KEY_REVOKED',
        description:
          'signed 60 s ago by a key retired (soft revocation) 30 s ago: judged now, not at signing',
        server,
        signers: [{ key: c, publicArmored: publicKey }],
        packet: await sealFor(payload(name, { now: at(-60) }), c, server, at(-60)),
      };
    },
    'key-revoked': async (name) => {
      const c = key('client-revoked-ecc');
      const { publicKey } = await openpgp.revokeKey({
        key: c.privateKey,
        date: at(-86_400),
        reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyCompromised },
        format: 'armored',
      });
      return {
        expect: 'KEY_REVOKED',
        description: 'signed by a key whose enrolled copy carries a revocation made a day ago',
        server,
        signers: [{ key: c, publicArmored: publicKey }],
        packet: await sealFor(payload(name), c, server),
      };
    },
    'sig-time': async (name) => ({
      expect: 'SIG_TIME',
      description: 'fresh payload timestamp, but the signature was made 121 s ago',
      server,
      signers: [{ key: client }],
      packet: await sealFor(payload(name), client, server, at(-121)),
    }),
    'not-for-us': async (name) => ({
      expect: 'PKT_NOT_FOR_US',
      description: 'a valid knock encrypted to another server key',
      server,
      signers: [{ key: client }],
      packet: await sealFor(payload(name, { server: key('server2-ecc') }), client, key('server2-ecc')),
    }),
    'no-issuer-fingerprint': async (name) => ({
      expect: 'SIG_NO_ISSUER_FPR',
      description: 'a signature carrying only the issuer key id, no issuer fingerprint subpacket',
      server,
      signers: [{ key: client }],
      packet: await craftKnock(encodePayload(payload(name)), {
        signers: [client.privateKey],
        to: server.publicKey,
        now: NOW,
        omitIssuerFingerprint: true,
      }),
    }),
    armored: async (name) => {
      const armored = openpgp.armor(
        openpgp.enums.armor.message,
        await sealFor(payload(name), client, server),
      );
      return {
        expect: 'PKT_ARMORED',
        description: 'a valid knock in ASCII armor: only binary is accepted',
        server,
        signers: [{ key: client }],
        packet: new TextEncoder().encode(armored),
      };
    },
  };

  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt > 0 ? new Set((process.argv[onlyAt + 1] ?? '').split(',')) : null;
  for (const n of only ?? []) if (!vectors[n]) throw new Error(`gen-vectors: no vector named ${n}`);
  const written = new Set<string>();
  for (const [name, make] of Object.entries(vectors)) {
    if (only && !only.has(name)) continue;
    const v = await make(name);
    const file = `${name}.json`;
    const json: Record<string, unknown> = {
      expect: v.expect,
      description: v.description,
      now: (v.now ?? NOW).toISOString(),
      max_skew: DEFAULT_MAX_SKEW_SECONDS,
      server_key: v.server.armoredPrivate,
      signers: v.signers.map((s) => ({
        fingerprint: s.key.fingerprint,
        enabled: s.enabled ?? true,
        expires_at: s.expiresAt ? s.expiresAt.toISOString() : null,
        public_key: s.publicArmored ?? s.key.armoredPublic,
      })),
      packet: Buffer.from(v.packet).toString('base64'),
    };
    if (v.expect === 'ok') {
      if (!v.payload) throw new Error(`gen-vectors: ${name} expects ok but has no payload`);
      const signer = v.signers[0]?.key;
      if (!signer) throw new Error(`gen-vectors: ${name} has no signer`);
      json.expect_signer = signer.fingerprint;
      json.expect_signing_key = v.signingKey ?? signer.fingerprint;
      json.expect_payload = describePayload(v.payload);
    }
    writeFileSync(`${VECTOR_DIR}${file}`, `${JSON.stringify(json, null, 2)}\n`);
    written.add(file);
  }
  for (const f of only ? [] : readdirSync(VECTOR_DIR)) {
    if (f.endsWith('.json') && !written.has(f)) {
      unlinkSync(`${VECTOR_DIR}${f}`);
      console.log(`gen-vectors: removed stale ${f}`);
    }
  }
  console.log(`gen-vectors: wrote ${written.size} vectors to ${VECTOR_DIR}`);
}

await main();
