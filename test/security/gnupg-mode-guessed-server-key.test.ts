/**
 * Attack: in GnuPG mode spa used to guess the server key as "the only public key whose secret we
 * do not hold". In a personal keyring that is a friend's key (or one an attacker got imported),
 * so the knock went out encrypted to them. Now the server key is never guessed: `--gpg-recv` (or
 * a stanza's `gpg-recv`) is required. Short key ids, which collide cheaply, are refused before gpg
 * is asked, as they are in the keystore.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type TestKey, testKey } from '../helpers/keys.js';
import { gpgAvailable, type GpgHome, makeGpgHome } from '../interop/client-gpg-fixtures.js';
import { type Home, makeHome, parseTestOutput, spa } from '../unit/client-fixtures.js';

const skip = gpgAvailable() ? false : 'gpg is not installed';

describe('GnuPG mode never guesses the server key', { skip }, () => {
  let G: GpgHome;
  let H: Home;
  let server: TestKey;

  before(async () => {
    server = await testKey('server');
    G = await makeGpgHome();
    G.genKey('Bob <bob@example.test>');
    // the only public key without a secret: the guess would have picked it
    G.importArmored(server.armoredPublic);
    H = await makeHome([], []);
  });
  after(async () => {
    await H.cleanup();
    await G.cleanup();
  });

  const dry = (args: readonly string[]) =>
    spa(['--home', H.home, '--gpg-home-dir', G.dir, '-A', 'tcp/22', ...args, '--test', '127.0.0.1']);

  test('without --gpg-recv the knock is refused even when only one key could be the server', async () => {
    const r = await dry([]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^spa: error: --gpg-home-dir needs --gpg-recv: say which server key to encrypt to$/m);
    assert.match(r.err, /^spa: hint: .*--gpg-recv FPR/m);
    assert.equal(r.out, '', 'nothing was built');
  });

  test('--gpg-recv with the server fingerprint works', async () => {
    const r = await dry(['--gpg-recv', server.fingerprint]);
    assert.equal(r.code, 0, r.err);
    assert.equal(parseTestOutput(r.out).payload.server, server.fingerprint);
  });

  test('a gpg-recv saved in an rc stanza works without the flag', async () => {
    const rc = join(H.root, 'spa.rc');
    await writeFile(rc, `[work]\ngpg-recv = ${server.fingerprint}\n`, { mode: 0o600 });
    const r = await dry(['--rc-file', rc, '-n', 'work']);
    assert.equal(r.code, 0, r.err);
    assert.equal(parseTestOutput(r.out).payload.server, server.fingerprint);
  });

  test('a short key id for --gpg-recv is refused before gpg is asked', async () => {
    for (const short of [server.fingerprint.slice(-8), `0x${server.fingerprint.slice(-8)}`]) {
      const r = await dry(['--gpg-recv', short]);
      assert.equal(r.code, 3, r.err);
      assert.match(r.err, /^spa: error: '.*' looks like a short key id, which is not accepted$/m);
      assert.match(r.err, /^spa: hint: use the full fingerprint or the 16-digit long key id/m);
    }
  });

  test('a short key id for --gpg-sign is refused too', async () => {
    const bob = G.gpg(['--with-colons', '--fixed-list-mode', '--list-secret-keys', 'bob@example.test']);
    const fpr = /^fpr:+([0-9A-F]{40,64}):/m.exec(bob)?.[1] ?? '';
    const r = await dry(['--gpg-recv', server.fingerprint, '--gpg-sign', fpr.slice(-8)]);
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, /looks like a short key id, which is not accepted/);
  });

  test('a long key id for --gpg-recv works', async () => {
    const r = await dry(['--gpg-recv', server.fingerprint.slice(-16)]);
    assert.equal(r.code, 0, r.err);
    assert.equal(parseTestOutput(r.out).payload.server, server.fingerprint);
  });
});
