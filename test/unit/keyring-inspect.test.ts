/**
 * Key inspection and the refusals: short RSA, expired, revoked, no encryption for a server, a
 * secret key where a public one is expected, garbage and several keys in one input.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as openpgp from 'openpgp';
import { generateKeyPair } from '../../keyring/generate.js';
import { assertPublic, checkUsable, inspectKey, keyIdOfFingerprint } from '../../keyring/inspect.js';
import { classifyQuery } from '../../keyring/lookup.js';
import { commandRegexWarnings, parseExpiry, parseSources, usernameFromUserId } from '../../keyring/policy.js';
import { ConfigError } from '../../protocol/errors.js';
import { makeKey } from './keyring-helpers.js';

function refusedWith(code: string, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  };
}

describe('inspectKey', () => {
  it('describes a v4 ed25519 key with its cv25519 subkey as openpgp.js and gpg see it', async () => {
    const k = await makeKey({ name: 'Alice', email: 'alice@example.test' });
    const info = await inspectKey(k.publicKey);
    assert.equal(info.fingerprint, k.fingerprint);
    assert.match(info.fingerprint, /^[0-9A-F]{40}$/);
    assert.equal(info.keyId, k.fingerprint.slice(-16));
    assert.equal(info.version, 4);
    assert.equal(info.isPrivate, false);
    assert.equal(info.algorithm, 'ed25519');
    assert.deepEqual(
      info.subkeys.map((s) => s.algorithm),
      ['cv25519'],
    );
    assert.deepEqual(info.userIds, ['Alice <alice@example.test>']);
    assert.equal(info.canSign, true);
    assert.equal(info.canEncrypt, true);
    assert.deepEqual(info.signingFingerprints, [k.fingerprint]);
    assert.equal(info.expiresAt, null);
    assert.equal(info.revoked, false);
  });

  it('lists a signing subkey among the signing fingerprints', async () => {
    const k = await makeKey({ subkeys: [{}, { sign: true }] });
    const info = await inspectKey(k.publicKey);
    assert.equal(info.signingFingerprints.length, 2);
    assert.equal(info.signingFingerprints[0], k.fingerprint);
    assert.equal(info.signingFingerprints[1], info.subkeys[1]?.fingerprint);
    assert.equal(info.encryptionFingerprints.length, 1);
  });

  it('describes v6 keys with 64-digit fingerprints and the leading key id', async () => {
    const g = await generateKeyPair({ type: 'curve25519-v6', userId: { name: 'v6' } });
    const info = await inspectKey(g.publicKeyArmored);
    assert.equal(info.version, 6);
    assert.match(info.fingerprint, /^[0-9A-F]{64}$/);
    assert.equal(info.keyId, info.fingerprint.slice(0, 16));
    assert.equal(keyIdOfFingerprint(info.fingerprint), info.fingerprint.slice(0, 16));
    assert.equal(info.algorithm, 'ed25519');
    checkUsable(info, 'client');
    checkUsable(info, 'server');
  });

  it('reads binary keys as well as armored ones', async () => {
    const k = await makeKey();
    const bin = (await openpgp.readKey({ armoredKey: k.publicKey })).write();
    assert.equal((await inspectKey(bin)).fingerprint, k.fingerprint);
  });

  it('flags a secret key as private, and passphrase-protected when it is', async () => {
    const plain = await makeKey();
    const locked = await makeKey({ passphrase: 'pw' });
    const a = await inspectKey(plain.privateKey);
    const b = await inspectKey(locked.privateKey);
    assert.equal(a.isPrivate, true);
    assert.equal(a.isEncrypted, false);
    assert.equal(b.isPrivate, true);
    assert.equal(b.isEncrypted, true);
  });

  it('refuses text that is not a key, a message, and an input holding two keys', async () => {
    await assert.rejects(inspectKey('hello'), refusedWith('KEY_INVALID', /no armor header/));
    await assert.rejects(
      inspectKey('-----BEGIN PGP MESSAGE-----\n\nabc\n-----END PGP MESSAGE-----\n'),
      refusedWith('KEY_INVALID', /not a key/),
    );
    await assert.rejects(
      inspectKey('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n'),
      refusedWith('KEY_INVALID', /cannot read the key/),
    );
    const a = await openpgp.readKey({ armoredKey: (await makeKey({ name: 'A' })).publicKey });
    const b = await openpgp.readKey({ armoredKey: (await makeKey({ name: 'B' })).publicKey });
    const both = new Uint8Array([...a.write(), ...b.write()]);
    await assert.rejects(inspectKey(both), refusedWith('KEY_INVALID', /expected one key, found 2/));
  });
});

describe('checkUsable refusals', () => {
  it('refuses RSA keys shorter than 2048 bits as weak, naming the size', async () => {
    const k = await makeKey({ type: 'rsa', rsaBits: 1024 });
    const info = await inspectKey(k.publicKey);
    assert.equal(info.algorithm, 'rsa1024');
    assert.throws(() => checkUsable(info, 'client'), refusedWith('KEY_WEAK', /1024 bits; at least 2048/));
    assert.throws(() => checkUsable(info, 'server'), refusedWith('KEY_WEAK', /1024 bits/));
  });

  it('accepts RSA 2048', async () => {
    const k = await makeKey({ type: 'rsa', rsaBits: 2048 });
    const info = await inspectKey(k.publicKey);
    checkUsable(info, 'client');
    checkUsable(info, 'server');
  });

  it('refuses an expired key, giving the date', async () => {
    const k = await makeKey({ date: new Date(Date.now() - 10 * 86_400_000), keyExpirationTime: 86_400 });
    const info = await inspectKey(k.publicKey);
    assert.equal(info.expired, true);
    assert.throws(
      () => checkUsable(info, 'client'),
      refusedWith('KEY_INVALID', /expired on \d{4}-\d{2}-\d{2}/),
    );
  });

  it('accepts a key that expires in the future and reports the date', async () => {
    const k = await makeKey({ keyExpirationTime: 30 * 86_400 });
    const info = await inspectKey(k.publicKey);
    assert.equal(info.expired, false);
    assert.ok(info.expiresAt && Date.parse(info.expiresAt) > Date.now());
    checkUsable(info, 'client');
  });

  it('refuses a revoked key', async () => {
    const k = await makeKey();
    const priv = await openpgp.readPrivateKey({ armoredKey: k.privateKey });
    const { publicKey } = await openpgp.revokeKey({ key: priv, format: 'armored' });
    const info = await inspectKey(publicKey);
    assert.equal(info.revoked, true);
    assert.throws(() => checkUsable(info, 'client'), refusedWith('KEY_INVALID', /revoked/));
  });

  it('refuses a key without an encryption-capable key for a server and accepts it for a client', async () => {
    const k = await makeKey({ subkeys: [] });
    const info = await inspectKey(k.publicKey);
    assert.equal(info.canEncrypt, false);
    checkUsable(info, 'client');
    assert.throws(() => checkUsable(info, 'server'), refusedWith('KEY_INVALID', /no encryption-capable key/));
  });

  it('refuses a key whose subkeys cannot sign and whose primary is not valid now, for a client', async () => {
    // a key created in the future: openpgp.js accepts none of its keys today
    const k = await makeKey({ date: new Date(Date.now() + 86_400_000) });
    const info = await inspectKey(k.publicKey);
    assert.equal(info.canSign, false);
    assert.throws(
      () => checkUsable(info, 'client'),
      (e: unknown) => e instanceof ConfigError && e.code === 'KEY_INVALID',
    );
  });

  it('refuses a secret key where a public key is expected, without echoing it', async () => {
    const k = await makeKey();
    const info = await inspectKey(k.privateKey);
    assert.throws(
      () => assertPublic(info, 'alice.asc'),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.code === 'KEY_SECRET_REFUSED' &&
        /alice\.asc is a SECRET key/.test(e.message) &&
        !e.message.includes('BEGIN'),
    );
  });
});

describe('flag parsers', () => {
  it('parses sources to canonical CIDR text and refuses mixing any with blocks', () => {
    assert.equal(parseSources('any'), 'any');
    assert.equal(parseSources('ANY'), 'any');
    assert.deepEqual(parseSources('198.51.100.7, 2001:DB8::/32,198.51.100.7'), [
      '198.51.100.7/32',
      '2001:db8::/32',
    ]);
    assert.throws(() => parseSources('any,10.0.0.0/8'), /cannot be combined/);
    assert.throws(() => parseSources('10.0.0.1/8'), /host bits/);
    assert.throws(() => parseSources(''), /empty/);
  });

  it('parses expiry dates as 00:00 UTC and refuses past or impossible dates', () => {
    const now = new Date('2026-06-01T12:00:00Z');
    assert.equal(parseExpiry('2027-01-31', now), '2027-01-31T00:00:00.000Z');
    assert.equal(parseExpiry('never', now), null);
    assert.equal(parseExpiry('2027-01-31T10:00:00+02:00', now), '2027-01-31T08:00:00.000Z');
    assert.throws(() => parseExpiry('2026-02-31', now), /expected YYYY-MM-DD/);
    assert.throws(() => parseExpiry('2026-05-01', now), /not in the future/);
    assert.throws(() => parseExpiry('tomorrow', now), /expected YYYY-MM-DD/);
  });

  it('warns about broad command regexes and stays quiet about narrow ones', () => {
    assert.equal(commandRegexWarnings('backup-run (home|etc)').length, 0);
    assert.equal(commandRegexWarnings('backup-run [a-z0-9-]+').length, 0);
    assert.match(commandRegexWarnings('backup-run .*').join('\n'), /contains \.\*/);
    assert.match(commandRegexWarnings('[^\\n]+').join('\n'), /matches "x; rm -rf \/"/);
    assert.match(commandRegexWarnings('\\S+ \\S+').join('\n'), /\\S\+/);
  });

  it('derives a username from the e-mail local part only', () => {
    assert.equal(usernameFromUserId('Alice Liddell <Alice.L@example.test>'), 'alice.l');
    assert.equal(usernameFromUserId('bob+spa@example.test'), 'bob_spa');
    assert.equal(usernameFromUserId('Just A Name'), null);
    assert.equal(usernameFromUserId('x <1abc@example.test>'), null);
  });

  it('classifies fingerprints, long and short key ids, and names', () => {
    assert.deepEqual(classifyQuery(`0x${'ab'.repeat(20)}`), {
      kind: 'fingerprint',
      fingerprint: 'AB'.repeat(20),
    });
    assert.equal(classifyQuery('ABCD 1234 ABCD 1234 ABCD  1234 ABCD 1234 ABCD 1234').kind, 'fingerprint');
    assert.equal(classifyQuery('0123456789abcdef').kind, 'keyid');
    assert.equal(classifyQuery('deadbeef').kind, 'shortid');
    assert.equal(classifyQuery('alice').kind, 'text');
  });
});
