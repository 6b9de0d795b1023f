/**
 * Knocks sealed with node:crypto alone (protocol/native-seal.ts, the client's path for the
 * default key profile) are real OpenPGP: for every knock shape and every pairing of keys made by
 * openpgp.js and by GnuPG, the server's open() returns the very payload, signed by the client
 * key, and the real `gpg` decrypts the knock and reports a good signature by that key. Keys the
 * native path must not use (protected, expired, not yet valid, revoked, with a signing subkey,
 * v6 or RSA, a broken self-signature or binding, a server key that asks for SEIPDv2) are
 * refused by it, so the client falls back to openpgp.js, which decides as before. The `spa`
 * program itself seals default keys this way (-v says so) and its knock opens.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { parseAddress } from '../../protocol/address.js';
import { open, serverIdentity } from '../../protocol/envelope.js';
import {
  nativeSeal,
  parseNativeRecipient,
  parseNativeSigner,
  type SealRandom,
} from '../../protocol/native-seal.js';
import { encodePayload, type Payload } from '../../protocol/payload.js';
import { GpgHome, gpgUnavailable } from '../helpers/gpg.js';
import { freshPayload, KEY_DATE, readTestKey, signerMap, type TestKey, testKey } from '../helpers/keys.js';
import { makeHome, openKnock, spa } from '../unit/client-fixtures.js';

const skip = gpgUnavailable();

const fresh = (): SealRandom => ({
  sessionKey: new Uint8Array(randomBytes(32)),
  ephemeral: new Uint8Array(randomBytes(32)),
  prefix: new Uint8Array(randomBytes(16)),
  salt: new Uint8Array(randomBytes(32)),
});

function sealNative(p: Payload, client: TestKey, server: TestKey, now: Date): Uint8Array {
  const signer = parseNativeSigner(client.armoredPrivate, now);
  const recipient = parseNativeRecipient(server.armoredPublic, now);
  assert.ok(signer, `${client.name}: the native path takes the own key`);
  assert.ok(recipient, `${server.name}: the native path takes the server key`);
  assert.equal(signer.fingerprint, client.fingerprint);
  assert.equal(recipient.fingerprint, server.fingerprint);
  return nativeSeal(encodePayload(p), signer, recipient, now, fresh());
}

describe('knocks sealed with node:crypto', { skip: skip ?? false }, () => {
  let gpg: GpgHome;
  const families: Array<{ label: string; client: TestKey; server: TestKey }> = [];

  before(async () => {
    gpg = new GpgHome('native-seal');
    const [gSrv, gCli] = [
      await gpg.generateEd25519('Gpg Srv <gsrv@example.test>'),
      await gpg.generateEd25519('Gpg Cli <gcli@example.test>'),
    ];
    const gpgServer = await readTestKey('gpg-server', await gpg.exportSecret(gSrv));
    const gpgClient = await readTestKey('gpg-client', await gpg.exportSecret(gCli));
    const [jsServer, jsClient] = await Promise.all([testKey('native-server'), testKey('native-client')]);
    // the verifying gpg knows every server secret and every client public key
    await gpg.importKey(jsServer.armoredPrivate);
    await gpg.importKey(jsClient.armoredPublic);
    families.push(
      { label: 'openpgp.js keys', client: jsClient, server: jsServer },
      { label: 'gpg keys', client: gpgClient, server: gpgServer },
      { label: 'openpgp.js client, gpg server', client: jsClient, server: gpgServer },
      { label: 'gpg client, openpgp.js server', client: gpgClient, server: jsServer },
    );
  });
  after(() => gpg?.destroy());

  const shapes: Array<[string, (server: TestKey, now: Date) => Payload]> = [
    ['access tcp/22', (server, now) => freshPayload({ server, now })],
    [
      'three ports and a timeout',
      (server, now) =>
        freshPayload({
          server,
          now,
          access: [
            { proto: 'tcp', port: 22 },
            { proto: 'udp', port: 53 },
            { proto: 'tcp', port: 8443 },
          ],
          timeoutSeconds: 90,
        }),
    ],
    [
      'a command',
      (server, now) => freshPayload({ server, now, type: 'command', command: 'uptime --pretty' }),
    ],
    ['source any', (server, now) => freshPayload({ server, now, source: 'any' })],
    ['an IPv6 source', (server, now) => freshPayload({ server, now, source: parseAddress('2001:db8::7') })],
  ];

  test('open() returns the payload of every knock shape, for every pairing of openpgp.js and gpg keys', async () => {
    for (const f of families) {
      const identity = await serverIdentity(f.server.privateKey);
      for (const [shape, make] of shapes) {
        const now = new Date();
        const p = make(f.server, now);
        const opened = await open(sealNative(p, f.client, f.server, now), {
          server: identity,
          lookupSigner: signerMap([f.client]),
          now,
          maxSkewSeconds: 120,
        });
        assert.deepEqual(opened.payload, p, `${f.label}, ${shape}`);
        assert.equal(opened.signer.fingerprint, f.client.fingerprint, `${f.label}, ${shape}`);
      }
    }
  });

  test('gpg decrypts every knock shape and reports a good signature by the client key', async () => {
    for (const f of families) {
      for (const [shape, make] of shapes) {
        const now = new Date();
        const p = make(f.server, now);
        const input = join(gpg.dir, 'knock.bin');
        const output = join(gpg.dir, 'payload.bin');
        writeFileSync(input, sealNative(p, f.client, f.server, now));
        const r = await gpg.run(['--trust-model', 'always', '--yes', '-o', output, '--decrypt', input]);
        assert.equal(r.code, 0, `${f.label}, ${shape}: ${r.stderr}`);
        assert.ok(
          r.status.some((l) => l.startsWith(`VALIDSIG ${f.client.fingerprint} `)),
          `${f.label}, ${shape}: ${r.status.join('\n')}`,
        );
        assert.ok(
          r.status.some((l) => l.startsWith('DECRYPTION_OKAY')),
          `${f.label}, ${shape}: ${r.status.join('\n')}`,
        );
        assert.deepEqual(new Uint8Array(readFileSync(output)), encodePayload(p), `${f.label}, ${shape}`);
      }
    }
  });

  test('a knock changed in transit is refused by open(), as any other', async () => {
    const f = families[0];
    assert.ok(f);
    const now = new Date();
    const bytes = sealNative(freshPayload({ server: f.server, now }), f.client, f.server, now);
    bytes[bytes.length - 30] = (bytes[bytes.length - 30] ?? 0) ^ 0x01;
    await assert.rejects(
      open(bytes, {
        server: await serverIdentity(f.server.privateKey),
        lookupSigner: signerMap([f.client]),
        now,
        maxSkewSeconds: 120,
      }),
      { code: 'DECRYPT_FAILED' },
    );
  });
});

/** The armored key with one byte of its binary changed at `at` (negative: from the end). */
function corrupt(key: openpgp.PrivateKey | openpgp.PublicKey, at: (bin: Uint8Array) => number): string {
  const bin = key.write();
  const i = at(bin);
  bin[i] = (bin[i] ?? 0) ^ 0x01;
  return openpgp.armor(key.isPrivate() ? openpgp.enums.armor.privateKey : openpgp.enums.armor.publicKey, bin);
}

describe('keys the native path leaves to openpgp.js', () => {
  const now = new Date();

  test('the keys it takes: openpgp.js v4 Ed25519/Curve25519, as spa-keys makes them', async () => {
    const k = await testKey('native-ok');
    assert.ok(parseNativeSigner(k.armoredPrivate, now));
    assert.ok(parseNativeRecipient(k.armoredPublic, now));
  });

  test('a passphrase-protected own key', async () => {
    const k = await testKey('native-protected');
    const locked = await openpgp.encryptKey({ privateKey: k.privateKey, passphrase: 'correct horse' });
    assert.equal(parseNativeSigner(locked.armor(), now), null);
  });

  test('an expired key and a key not yet valid', async () => {
    const expired = await testKey('native-expired', { keyExpirationTime: 3600 });
    assert.equal(parseNativeSigner(expired.armoredPrivate, now), null);
    assert.equal(parseNativeRecipient(expired.armoredPublic, now), null);
    const ok = await testKey('native-ok');
    const before = new Date(KEY_DATE.getTime() - 86_400_000);
    assert.equal(parseNativeSigner(ok.armoredPrivate, before), null);
    assert.equal(parseNativeRecipient(ok.armoredPublic, before), null);
  });

  test('a revoked key', async () => {
    const k = await testKey('native-revoked');
    const { privateKey } = await openpgp.revokeKey({ key: k.privateKey, format: 'object' });
    assert.equal(parseNativeSigner(privateKey.armor(), now), null);
    assert.equal(parseNativeRecipient(privateKey.toPublic().armor(), now), null);
  });

  test('a key with a signing subkey (openpgp.js signs with that one)', async () => {
    const k = await testKey('native-signing-subkey', { signingSubkey: true });
    assert.equal(parseNativeSigner(k.armoredPrivate, now), null);
  });

  test('v6 and RSA keys', async () => {
    for (const kind of ['v6', 'rsa2048'] as const) {
      const k = await testKey(`native-${kind}`, { kind });
      assert.equal(parseNativeSigner(k.armoredPrivate, now), null, kind);
      assert.equal(parseNativeRecipient(k.armoredPublic, now), null, kind);
    }
  });

  test('a subkey binding signature that does not verify', async () => {
    const k = await testKey('native-ok');
    // the last octet of the key is the binding signature's S value
    assert.equal(
      parseNativeRecipient(
        corrupt(k.publicKey, (b) => b.length - 1),
        now,
      ),
      null,
    );
    assert.equal(
      parseNativeSigner(
        corrupt(k.privateKey, (b) => b.length - 1),
        now,
      ),
      null,
    );
  });

  test('a user id changed after its self-certification', async () => {
    const k = await testKey('native-ok');
    const name = Buffer.from('native-ok@example.test');
    const at = (b: Uint8Array) => Buffer.from(b).indexOf(name);
    assert.equal(parseNativeRecipient(corrupt(k.publicKey, at), now), null);
    assert.equal(parseNativeSigner(corrupt(k.privateKey, at), now), null);
  });

  test('a server key that asks for SEIPDv2', async () => {
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'aead server' }],
      config: { aeadProtect: true },
      format: 'object',
    });
    const later = new Date(Date.now() + 1000);
    assert.ok(parseNativeSigner(privateKey.armor(), later), 'the shape is otherwise plain');
    assert.equal(parseNativeRecipient(privateKey.toPublic().armor(), later), null);
  });
});

describe('the spa program seals default keys with node:crypto', () => {
  test('-v names node:crypto, and the knock opens', async () => {
    const [alice, server] = await Promise.all([testKey('native-alice'), testKey('native-gw')]);
    const H = await makeHome([{ key: alice, username: 'alice' }], [{ key: server, name: 'gw' }]);
    try {
      const file = join(H.root, 'knock.bin');
      const r = await spa(['--home', H.home, '-A', 'tcp/22', '--test', '-v', '-B', file, '198.51.100.1']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, new RegExp(`signing key ${alice.fingerprint} \\(node:crypto\\)`));
      const opened = await openKnock(
        new Uint8Array(readFileSync(file)),
        await serverIdentity(server.privateKey),
        [alice],
      );
      assert.equal(opened.payload.username, 'alice');
    } finally {
      await H.cleanup();
    }
  });

  test('a passphrase-protected key still goes through openpgp.js', async () => {
    const server = await testKey('native-gw');
    const alice = await testKey('native-alice');
    const locked = await openpgp.encryptKey({ privateKey: alice.privateKey, passphrase: 'pw' });
    const H = await makeHome([{ key: locked.armor(), username: 'alice' }], [{ key: server, name: 'gw' }]);
    try {
      const pass = join(H.root, 'pass');
      writeFileSync(pass, 'pw\n', { mode: 0o600 });
      const r = await spa([
        '--home',
        H.home,
        '-A',
        'tcp/22',
        '--test',
        '-v',
        '--key-passphrase-file',
        pass,
        '198.51.100.1',
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /\(openpgp\.js\)/);
    } finally {
      await H.cleanup();
    }
  });
});
