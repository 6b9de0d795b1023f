/**
 * Keys made by real GnuPG, used by the openpgp.js client: a client key exported with
 * `gpg --export-secret-keys --armor` and imported into the keystore (as `spa-keys import` does) or
 * named as a file with --gpg-sign, a passphrase-protected one, an RSA one, and a server key made by
 * gpg whose secret the server loads from gpg's export. Every knock is opened with protocol's
 * open() as spad would.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { importKey } from '../../keyring/keystore.js';
import { serverIdentity } from '../../protocol/envelope.js';
import { type Home, type Listener, makeHome, openKnock, spa, udpListener } from '../unit/client-fixtures.js';
import { type GpgHome, gpgAvailable, makeGpgHome, readPublic } from './client-gpg-fixtures.js';

const skip = gpgAvailable() ? false : 'gpg is not installed';

describe('keys made by GnuPG in the openpgp.js client', { skip }, () => {
  let G: GpgHome;
  let H: Home;
  let L: Listener;
  let serverFpr: string;
  let identity: Awaited<ReturnType<typeof serverIdentity>>;
  let eveFpr: string;
  let rsaFpr: string;
  let protFpr: string;
  const PASS = 'exported but still protected';

  before(async () => {
    G = await makeGpgHome();
    serverFpr = G.genKey('SPA server <spa@gw.example.test>');
    eveFpr = G.genKey('Eve <eve@example.test>');
    rsaFpr = G.genKey('Rsa User <rsa@example.test>', { algo: 'rsa3072' });
    protFpr = G.genKey('Pat <pat@example.test>', { passphrase: PASS });
    // the server loads its gpg-made secret key through openpgp.js
    const serverSecret = await openpgp.readPrivateKey({ armoredKey: G.exportSecret(serverFpr) });
    identity = await serverIdentity(serverSecret);
    H = await makeHome([], []);
    await importKey(H.home, G.exportPublic(serverFpr), { name: 'gw' });
    await importKey(H.home, G.exportSecret(eveFpr));
    await importKey(H.home, G.exportSecret(rsaFpr), { username: 'rsauser' });
    await importKey(H.home, G.exportSecret(protFpr, PASS));
    await writeFile(join(H.root, 'pass'), PASS, { mode: 0o600 });
    L = await udpListener();
  });
  after(async () => {
    L.close();
    await H.cleanup();
    await G.cleanup();
  });

  const knock = (args: string[]) =>
    spa(['--home', H.home, '-A', 'tcp/22', '-p', String(L.port), ...args, '127.0.0.1']);

  test('an Ed25519 key exported from gpg and imported signs a knock the server accepts', async () => {
    const r = await knock(['--gpg-sign', eveFpr]);
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await L.next()).msg, identity, [
      await readPublic(G.exportPublic(eveFpr)),
    ]);
    assert.equal(opened.payload.username, 'eve', 'derived at import from the user id');
    assert.equal(opened.payload.serverFingerprint, serverFpr, 'the gpg-made server key, primary fingerprint');
  });

  test('an RSA-3072 key from gpg works the same', async () => {
    const r = await knock(['--gpg-sign', 'rsauser']);
    assert.equal(r.code, 0, r.err);
    const d = await L.next();
    const opened = await openKnock(d.msg, identity, [await readPublic(G.exportPublic(rsaFpr))]);
    assert.equal(opened.payload.username, 'rsauser');
    assert.ok(d.msg.length <= 1400, `${d.msg.length} bytes`);
  });

  test('a protected key stays protected in the keystore and the passphrase file unlocks it', async () => {
    const noPass = await spa(
      ['--home', H.home, '-A', 'tcp/22', '--gpg-sign', protFpr, '--test', '127.0.0.1'],
      {
        ask: async () => null,
      },
    );
    assert.equal(noPass.code, 3);
    assert.match(noPass.err, /passphrase-protected/);
    const r = await knock(['--gpg-sign', 'pat@example.test', '--key-passphrase-file', join(H.root, 'pass')]);
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await L.next()).msg, identity, [
      await readPublic(G.exportPublic(protFpr)),
    ]);
    assert.equal(opened.payload.username, 'pat');
  });

  test('--gpg-sign FILE uses a gpg-exported secret key that is not in the keystore (with -U)', async () => {
    const other = G.genKey('Outside <outside@example.test>');
    const f = join(H.root, 'outside.asc');
    await writeFile(f, G.exportSecret(other), { mode: 0o600 });
    const r = await knock(['--gpg-sign', f, '-U', 'outside']);
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await L.next()).msg, identity, [await readPublic(G.exportPublic(other))]);
    assert.equal(opened.payload.username, 'outside');
  });

  test('--gpg-sign FILE holding only a public key is refused (exit 3)', async () => {
    const f = join(H.root, 'eve-public.asc');
    await writeFile(f, G.exportPublic(eveFpr));
    const r = await knock(['--gpg-sign', f, '--test']);
    assert.equal(r.code, 3);
    assert.match(r.err, /holds a public key; signing needs your secret key/);
  });
});
