import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { parseAddress } from '../../protocol/address.js';
import { type Opened, type OpenOptions, open, seal, serverIdentity } from '../../protocol/envelope.js';
import { precheck } from '../../protocol/precheck.js';
import { type ErrorCode, SpaError } from '../../protocol/errors.js';
import { parseFraming } from '../../protocol/framing.js';
import {
  COMMAND_MAX_BYTES,
  DEFAULT_MAX_SKEW_SECONDS,
  PACKET_MAX_BYTES,
  PACKET_MIN_BYTES,
} from '../../protocol/limits.js';
import { encodePayload, type Payload } from '../../protocol/payload.js';
import {
  concat,
  craftKnock,
  decryptToPackets,
  encryptPackets,
  innerTags,
  signedPackets,
  splitPackets,
} from '../helpers/craft.js';
import {
  type Enrollment,
  freshPayload,
  KEY_DATE,
  type PayloadOverrides,
  signerMap,
  TEST_NOW,
  type TestKey,
  testKey,
  testServer,
  vectorKey,
} from '../helpers/keys.js';

const NOW = TEST_NOW;
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);
const nowSeconds = Math.floor(NOW.getTime() / 1000);
const T = openpgp.enums.packet;

let server: TestKey;
let client: TestKey;
let stranger: TestKey;
let server2: TestKey;

before(async () => {
  [server, client, stranger, server2] = await Promise.all([
    testKey('server'),
    testKey('client'),
    testKey('stranger'),
    testKey('server2'),
  ]);
});

interface OpenAt {
  readonly server?: TestKey;
  readonly signers?: ReadonlyArray<TestKey | openpgp.PublicKey | Enrollment>;
  readonly now?: Date;
  readonly maxSkewSeconds?: number;
}

async function openAt(bytes: Uint8Array, o: OpenAt = {}): Promise<Opened> {
  const opts: OpenOptions = {
    server: await testServer(o.server ?? server),
    lookupSigner: signerMap(o.signers ?? [client]),
    now: o.now ?? NOW,
    maxSkewSeconds: o.maxSkewSeconds ?? DEFAULT_MAX_SKEW_SECONDS,
  };
  return open(bytes, opts);
}

async function refused(p: Promise<unknown>, code: ErrorCode): Promise<SpaError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(
    caught instanceof SpaError,
    `expected SpaError ${code}, got ${caught === undefined ? 'success' : String(caught)}`,
  );
  assert.equal(caught.code, code, caught.message);
  return caught;
}

function payload(o: PayloadOverrides = {}): Payload {
  return freshPayload({ server, now: NOW, ...o });
}

function sealBy(
  signer: TestKey,
  p: Payload = payload(),
  to: TestKey = server,
  now = NOW,
): Promise<Uint8Array> {
  return seal(p, { signingKey: signer.privateKey, serverKey: to.publicKey, now });
}

describe('seal then open, by key type', () => {
  const kinds = [
    ['v4 Ed25519/Curve25519 (legacy)', 'ecc'],
    ['v6 Ed25519/X25519', 'v6'],
    ['RSA-2048', 'rsa2048'],
  ] as const;
  for (const [label, kind] of kinds) {
    test(`a knock between ${label} keys opens to the same payload and names its signer`, async () => {
      const s = await testKey(`server-${kind}`, { kind });
      const c = await testKey(`client-${kind}`, { kind });
      const p = payload({ server: s, source: parseAddress('2001:db8::2'), timeoutSeconds: 90 });
      const bytes = await sealBy(c, p, s);
      assert.ok(bytes.length <= PACKET_MAX_BYTES);
      const opened = await openAt(bytes, { server: s, signers: [stranger, c] });
      assert.deepEqual(opened.payload, p);
      assert.equal(opened.signer.fingerprint, c.fingerprint);
      assert.equal(opened.signingKeyFingerprint, c.fingerprint);
    });
  }

  test('a v6 client can knock on a v4 server and a v4 client on a v6 server', async () => {
    const s6 = await testKey('server-v6', { kind: 'v6' });
    const c6 = await testKey('client-v6', { kind: 'v6' });
    const a = await openAt(await sealBy(c6, payload()), { signers: [c6] });
    assert.equal(a.signer.fingerprint, c6.fingerprint);
    assert.equal(a.signer.fingerprint.length, 64);
    const b = await openAt(await sealBy(client, payload({ server: s6 }), s6), { server: s6 });
    assert.equal(b.signer.fingerprint, client.fingerprint);
  });

  test('an RSA-4096 knock (both sides) fits in one datagram and opens', async () => {
    const [s, c] = await Promise.all([vectorKey('server-rsa4096'), vectorKey('client-rsa4096')]);
    const p = payload({ server: s });
    const bytes = await sealBy(c, p, s);
    assert.ok(bytes.length <= PACKET_MAX_BYTES, `${bytes.length} bytes`);
    assert.deepEqual((await openAt(bytes, { server: s, signers: [c] })).payload, p);
  });

  test('a server key announcing SEIPDv2 gets v6 session key and v2 AEAD packets, which open', async () => {
    const { privateKey } = await openpgp.generateKey({
      type: 'curve25519',
      userIDs: [{ name: 'aead', email: 'aead@example.test' }],
      date: KEY_DATE,
      config: { v6Keys: true, aeadProtect: true },
      format: 'object',
    });
    const s = {
      ...server,
      privateKey,
      publicKey: privateKey.toPublic(),
      fingerprint: privateKey.getFingerprint().toUpperCase(),
    };
    const bytes = await sealBy(client, payload({ server: s }), s);
    const f = parseFraming(bytes);
    assert.equal(f.seipdVersion, 2);
    assert.equal(f.recipients[0]?.version, 6);
    assert.equal((await openAt(bytes, { server: s })).signer.fingerprint, client.fingerprint);
  });

  test('a signing subkey is looked up by its own fingerprint and identified by the primary', async () => {
    const c = await testKey('client-subkey', { signingSubkey: true });
    const sub = await c.privateKey.getSigningKey(undefined, NOW);
    const subFpr = sub.getFingerprint().toUpperCase();
    assert.notEqual(subFpr, c.fingerprint, 'openpgp.js signs with the subkey');
    const asked: string[] = [];
    const lookup = signerMap([c]);
    const opened = await open(await sealBy(c), {
      server: await testServer(server),
      lookupSigner: (fpr) => {
        asked.push(fpr);
        return lookup(fpr);
      },
      now: NOW,
      maxSkewSeconds: 120,
    });
    assert.deepEqual(asked, [subFpr], 'one lookup, by the full uppercase signing key fingerprint');
    assert.equal(opened.signingKeyFingerprint, subFpr);
    assert.equal(opened.signer.fingerprint, c.fingerprint);
  });

  test('a knock inside a ZLIB or ZIP compressed packet (as gpg writes) still opens', async () => {
    for (const compression of ['zlib', 'zip'] as const) {
      const p = payload();
      const bytes = await craftKnock(encodePayload(p), {
        signers: [client.privateKey],
        to: server.publicKey,
        now: NOW,
        compression,
      });
      assert.equal(
        (await innerTags(bytes, server.privateKey, NOW))[0],
        T.compressedData,
        `${compression} really compressed`,
      );
      assert.deepEqual((await openAt(bytes)).payload, p);
    }
  });

  test('seal writes binary PKESK + SEIPD with [one-pass signature, literal, signature] inside, uncompressed', async () => {
    const bytes = await sealBy(client);
    assert.deepEqual(
      parseFraming(bytes).recipients.map((r) => r.version),
      [3],
    );
    assert.deepEqual(await innerTags(bytes, server.privateKey, NOW), [
      T.onePassSignature,
      T.literalData,
      T.signature,
    ]);
  });
});

describe('open refuses', () => {
  test('a valid signature by a key that is not enrolled (SIGNER_UNKNOWN)', async () => {
    await refused(openAt(await sealBy(stranger)), 'SIGNER_UNKNOWN');
    await refused(openAt(await sealBy(client), { signers: [] }), 'SIGNER_UNKNOWN');
  });

  test('a knock by an enrolled key the admin disabled (KEY_DISABLED)', async () => {
    const bytes = await sealBy(client);
    await refused(openAt(bytes, { signers: [{ key: client, enabled: false }] }), 'KEY_DISABLED');
    assert.ok(await openAt(bytes, { signers: [{ key: client, enabled: true }] }));
  });

  test('a knock by a key whose enrollment expired, at or before now (KEY_EXPIRED)', async () => {
    const bytes = await sealBy(client);
    await refused(openAt(bytes, { signers: [{ key: client, expiresAt: at(-1) }] }), 'KEY_EXPIRED');
    await refused(openAt(bytes, { signers: [{ key: client, expiresAt: NOW }] }), 'KEY_EXPIRED');
    assert.ok(await openAt(bytes, { signers: [{ key: client, expiresAt: at(1) }] }));
  });

  test('a signature made after the key’s own OpenPGP expiry (KEY_EXPIRED)', async () => {
    const c = await testKey('client-to-expire');
    const bytes = await sealBy(c);
    // the enrolled copy carries a self-signature saying the key expired an hour ago
    const { publicKey } = await openpgp.reformatKey({
      privateKey: c.privateKey,
      userIDs: [{ name: 'client-to-expire', email: 'c@example.test' }],
      date: KEY_DATE,
      keyExpirationTime: (at(-3600).getTime() - KEY_DATE.getTime()) / 1000,
      format: 'object',
    });
    await refused(openAt(bytes, { signers: [publicKey] }), 'KEY_EXPIRED');
    assert.ok(await openAt(bytes, { signers: [c] }), 'the same knock opens with the unexpired copy');
  });

  test('a signature made shortly before the key’s own expiry, opened after it (KEY_EXPIRED)', async () => {
    // expires 30 s before NOW; signed 60 s before NOW, when it was still valid
    const c = await testKey('client-expiring', {
      keyExpirationTime: (at(-30).getTime() - KEY_DATE.getTime()) / 1000,
    });
    const bytes = await sealBy(c, payload({ now: at(-60) }), server, at(-60));
    assert.ok(await openAt(bytes, { signers: [c], now: at(-60) }), 'valid while the key is');
    await refused(openAt(bytes, { signers: [c] }), 'KEY_EXPIRED');
  });

  test('a key revoked before it signed (KEY_REVOKED)', async () => {
    const c = await testKey('client-revoked');
    const { publicKey } = await openpgp.revokeKey({ key: c.privateKey, date: at(-86_400), format: 'object' });
    const bytes = await sealBy(c);
    await refused(openAt(bytes, { signers: [publicKey] }), 'KEY_REVOKED');
    assert.ok(await openAt(bytes, { signers: [c] }));
  });

  test('a key retired by revocation between signing and opening (KEY_REVOKED)', async () => {
    const c = await testKey('client-retired');
    const { publicKey } = await openpgp.revokeKey({
      key: c.privateKey,
      date: at(-30),
      reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyRetired },
      format: 'object',
    });
    const bytes = await sealBy(c, payload({ now: at(-60) }), server, at(-60));
    await refused(openAt(bytes, { signers: [publicKey] }), 'KEY_REVOKED');
  });

  test('a compromised-key revocation dated after the signature still refuses it (KEY_REVOKED)', async () => {
    const c = await testKey('client-compromised');
    const { publicKey } = await openpgp.revokeKey({
      key: c.privateKey,
      date: at(-30),
      reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyCompromised },
      format: 'object',
    });
    const bytes = await sealBy(c, payload({ now: at(-60) }), server, at(-60));
    await refused(openAt(bytes, { signers: [publicKey] }), 'KEY_REVOKED');
  });

  test('an unsigned message (SIG_MISSING)', async () => {
    const bytes = await craftKnock(encodePayload(payload()), { signers: [], to: server.publicKey, now: NOW });
    assert.deepEqual(await innerTags(bytes, server.privateKey, NOW), [T.literalData]);
    await refused(openAt(bytes), 'SIG_MISSING');
  });

  test('a message signed by two enrolled keys (SIG_MULTIPLE)', async () => {
    const second = await testKey('client-second');
    const bytes = await craftKnock(encodePayload(payload()), {
      signers: [client.privateKey, second.privateKey],
      to: server.publicKey,
      now: NOW,
    });
    await refused(openAt(bytes, { signers: [client, second] }), 'SIG_MULTIPLE');
  });

  test('a signature without an issuer fingerprint subpacket (SIG_NO_ISSUER_FPR)', async () => {
    const bytes = await craftKnock(encodePayload(payload()), {
      signers: [client.privateKey],
      to: server.publicKey,
      now: NOW,
      omitIssuerFingerprint: true,
    });
    await refused(openAt(bytes), 'SIG_NO_ISSUER_FPR');
    const withFpr = await craftKnock(encodePayload(payload()), {
      signers: [client.privateKey],
      to: server.publicKey,
      now: NOW,
    });
    assert.ok(await openAt(withFpr), 'the same construction with the subpacket opens');
  });

  test('a knock signed for server A, decrypted by A and re-encrypted to server B (DEST_MISMATCH)', async () => {
    const forA = await sealBy(client, payload({ server: server2 }), server2);
    const inner = await decryptToPackets(forA, server2.privateKey, NOW);
    const toB = await encryptPackets(inner, server.publicKey, { now: NOW });
    const e = await refused(openAt(toB), 'DEST_MISMATCH');
    assert.equal(e.field, 'server_fpr');
    assert.ok(await openAt(forA, { server: server2 }), 'A itself accepts it');
  });

  test('payload timestamps 121 s old or 121 s ahead (TS_TOO_OLD, TS_IN_FUTURE); 120 s either way is fine', async () => {
    await refused(openAt(await sealBy(client, payload({ timestamp: nowSeconds - 121 }))), 'TS_TOO_OLD');
    await refused(openAt(await sealBy(client, payload({ timestamp: nowSeconds + 121 }))), 'TS_IN_FUTURE');
    assert.ok(await openAt(await sealBy(client, payload({ timestamp: nowSeconds - 120 }))));
    assert.ok(await openAt(await sealBy(client, payload({ timestamp: nowSeconds + 120 }))));
  });

  test('a smaller configured window is honoured', async () => {
    const bytes = await sealBy(client, payload({ timestamp: nowSeconds - 31 }));
    await refused(openAt(bytes, { maxSkewSeconds: 30 }), 'TS_TOO_OLD');
    assert.ok(await openAt(bytes, { maxSkewSeconds: 31 }));
  });

  test('a signature made more than the window away from now, either way (SIG_TIME)', async () => {
    await refused(openAt(await sealBy(client, payload(), server, at(-121))), 'SIG_TIME');
    await refused(openAt(await sealBy(client, payload(), server, at(121))), 'SIG_TIME');
    await refused(openAt(await sealBy(client, payload(), server, at(-86_400))), 'SIG_TIME');
    assert.ok(await openAt(await sealBy(client, payload(), server, at(-120))));
    assert.ok(
      await openAt(await sealBy(client, payload(), server, at(120))),
      'a client clock 2 min ahead is fine',
    );
  });

  test('a knock encrypted to another server key (PKT_NOT_FOR_US), before any decryption', async () => {
    await refused(openAt(await sealBy(client, payload({ server: server2 }), server2)), 'PKT_NOT_FOR_US');
  });

  test('a validly signed payload that is malformed or of another version (PAYLOAD_MALFORMED, PAYLOAD_VERSION)', async () => {
    const good = encodePayload(payload());
    const trailing = await craftKnock(concat(good, Uint8Array.of(0)), {
      signers: [client.privateKey],
      to: server.publicKey,
      now: NOW,
    });
    await refused(openAt(trailing), 'PAYLOAD_MALFORMED');
    const v2 = good.slice();
    v2[0] = 2;
    await refused(
      openAt(await craftKnock(v2, { signers: [client.privateKey], to: server.publicKey, now: NOW })),
      'PAYLOAD_VERSION',
    );
    const empty = await craftKnock(new Uint8Array(0), {
      signers: [client.privateKey],
      to: server.publicKey,
      now: NOW,
    });
    await refused(openAt(empty), 'PAYLOAD_MALFORMED');
  });

  test('a signature before the literal data instead of a one-pass signature (MSG_STRUCTURE)', async () => {
    const [, lit, sig] = splitPackets(
      await signedPackets(encodePayload(payload()), [client.privateKey], { now: NOW }),
    );
    assert.ok(lit && sig);
    await refused(
      openAt(await encryptPackets(concat(sig.bytes, lit.bytes), server.publicKey, { now: NOW })),
      'MSG_STRUCTURE',
    );
  });

  test('a one-pass signature naming another key than the signature does (MSG_STRUCTURE)', async () => {
    const [opsOther] = splitPackets(
      await signedPackets(encodePayload(payload()), [stranger.privateKey], { now: NOW }),
    );
    const [, lit, sig] = splitPackets(
      await signedPackets(encodePayload(payload()), [client.privateKey], { now: NOW }),
    );
    assert.ok(opsOther && lit && sig);
    const bytes = await encryptPackets(concat(opsOther.bytes, lit.bytes, sig.bytes), server.publicKey, {
      now: NOW,
    });
    await refused(openAt(bytes, { signers: [client, stranger] }), 'MSG_STRUCTURE');
  });

  test('packet sequences that break the OpenPGP grammar inside the encryption (MSG_STRUCTURE, not DECRYPT_FAILED)', async () => {
    const [ops, lit, sig] = splitPackets(
      await signedPackets(encodePayload(payload()), [client.privateKey], { now: NOW }),
    );
    assert.ok(ops && lit && sig);
    for (const seq of [
      [lit, sig],
      [ops, lit, sig, lit],
      [ops, lit, lit, sig],
    ]) {
      const bytes = await encryptPackets(concat(...seq.map((p) => p.bytes)), server.publicKey, { now: NOW });
      await refused(openAt(bytes), 'MSG_STRUCTURE');
    }
  });

  test('datagrams below 64 bytes or above 1400 bytes before parsing anything (PKT_TOO_SHORT, PKT_TOO_LONG)', async () => {
    const ids = (await testServer(server)).recipientKeyIds;
    const bytes = await sealBy(client);
    precheck(bytes, { recipientKeyIds: ids });
    await refused(openAt(new Uint8Array(PACKET_MIN_BYTES - 1)), 'PKT_TOO_SHORT');
    await refused(openAt(new Uint8Array(0)), 'PKT_TOO_SHORT');
    await refused(openAt(concat(bytes, new Uint8Array(PACKET_MAX_BYTES + 1 - bytes.length))), 'PKT_TOO_LONG');
    // 64 bytes of zeros get past the size gate and fail at framing
    await refused(openAt(new Uint8Array(PACKET_MIN_BYTES)), 'PKT_FRAMING');
  });

  test('a knock whose session key cannot be decrypted by the server key (DECRYPT_FAILED)', async () => {
    const bytes = await sealBy(client);
    const i = bytes.length - 20;
    bytes[i] = (bytes[i] ?? 0) ^ 0x80;
    await refused(openAt(bytes), 'DECRYPT_FAILED');
  });
});

describe('knock sizes', () => {
  /** The largest valid payload: a 512-byte command, 32-character user, IPv6 source. */
  function largest(server: TestKey): Payload {
    let cmd = '';
    for (let i = 0; cmd.length < COMMAND_MAX_BYTES; i++) cmd += String.fromCharCode(33 + ((i * 7919) % 94));
    return payload({
      server,
      type: 'command',
      command: cmd,
      username: 'a'.repeat(32),
      source: parseAddress('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'),
    });
  }

  test('the largest payload sealed with v4 ECC or v6 keys still fits in one datagram and opens', async () => {
    for (const kind of ['ecc', 'v6'] as const) {
      const s = await testKey(`server-${kind}`, { kind });
      const c = await testKey(`client-${kind}`, { kind });
      const p = largest(s);
      assert.equal(encodePayload(p).length, kind === 'ecc' ? 616 : 628);
      const bytes = await sealBy(c, p, s);
      assert.ok(bytes.length <= PACKET_MAX_BYTES, `${kind}: ${bytes.length} bytes`);
      assert.deepEqual((await openAt(bytes, { server: s, signers: [c] })).payload, p);
    }
  });

  test('seal refuses to make a knock longer than the server accepts (RSA-4096 with a 512-byte command)', async () => {
    const [s, c] = await Promise.all([vectorKey('server-rsa4096'), vectorKey('client-rsa4096')]);
    await assert.rejects(sealBy(c, largest(s), s), (e: unknown) => e instanceof SpaError);
  });
});

describe('serverIdentity', () => {
  test('names the primary fingerprint and the encryption subkey id, not the signing primary', async () => {
    const id = await serverIdentity(server.privateKey);
    assert.equal(id.fingerprint, server.fingerprint);
    const sub = server.privateKey.getSubkeys()[0];
    assert.ok(sub);
    assert.deepEqual([...id.recipientKeyIds], [sub.getKeyID().toHex().toUpperCase()]);
  });

  test('refuses a passphrase-protected key that was not unlocked', async () => {
    const locked = await openpgp.encryptKey({ privateKey: server.privateKey, passphrase: 'correct horse' });
    await refused(serverIdentity(locked), 'DECRYPT_FAILED');
  });
});
