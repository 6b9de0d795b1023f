/**
 * Attack (or accident): a gpg.conf that changes what gpg makes. `armor`, `throw-keyids`,
 * `textmode` or `compress-algo bzip2` turn a GnuPG-mode knock into one the server always drops,
 * while spa reported success; `recipient` / `hidden-recipient` lines add a second reader of the
 * knock. spa now forces the options a knock needs (`--no-armor`, `--no-throw-keyids`,
 * `--no-textmode`, no compression) and checks the shape of gpg's output (protocol/framing.ts)
 * before sending: a knock that is not for the server key alone is an error, and nothing is sent.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { parseFraming } from '../../protocol/framing.js';
import { type TestKey, testKey, testServer } from '../helpers/keys.js';
import { gpgAvailable, type GpgHome, makeGpgHome, readPublic } from '../interop/client-gpg-fixtures.js';
import { type Home, type Listener, makeHome, openKnock, spa, udpListener } from '../unit/client-fixtures.js';

const skip = gpgAvailable() ? false : 'gpg is not installed';

/** Key ids (16 hex) of the keys of `k` that can decrypt. */
function encryptionKeyIds(k: TestKey): Set<string> {
  return new Set(k.publicKey.subkeys.map((s) => s.getKeyID().toHex().toUpperCase()));
}

describe('a gpg.conf cannot make GnuPG mode send a knock the server drops', { skip }, () => {
  let G: GpgHome;
  let H: Home;
  let L: Listener;
  let server: TestKey;
  let friend: TestKey;
  let bob: openpgp.PublicKey;

  before(async () => {
    [server, friend] = await Promise.all([testKey('server'), testKey('other-server')]);
    G = await makeGpgHome();
    const bobFpr = G.genKey('Bob <bob@example.test>');
    G.importArmored(server.armoredPublic);
    G.importArmored(friend.armoredPublic);
    bob = await readPublic(G.exportPublic(bobFpr));
    H = await makeHome([], []);
    L = await udpListener();
  });
  after(async () => {
    L.close();
    await H.cleanup();
    await G.cleanup();
  });

  const setConf = (lines: readonly string[]) => writeFile(join(G.dir, 'gpg.conf'), `${lines.join('\n')}\n`);
  const knock = () =>
    spa([
      '--home',
      H.home,
      '--gpg-home-dir',
      G.dir,
      '--gpg-recv',
      server.fingerprint,
      '-p',
      String(L.port),
      '-A',
      'tcp/22',
      '127.0.0.1',
    ]);

  test('with armor, throw-keyids, textmode and bzip2 in gpg.conf the knock is still binary, for the server key, uncompressed, and accepted', async () => {
    await setConf(['armor', 'throw-keyids', 'textmode', 'compress-algo bzip2', 'compress-level 9']);
    const r = await knock();
    assert.equal(r.code, 0, r.err);
    const d = await L.next();
    const f = parseFraming(d.msg); // throws on armor
    assert.equal(f.recipients.length, 1);
    assert.ok(encryptionKeyIds(server).has(f.recipients[0]?.keyId ?? ''), 'the key id is there, not thrown');
    const opened = await openKnock(d.msg, await testServer(server), [bob]);
    assert.equal(opened.payload.serverFingerprint, server.fingerprint);
    // no compressed data packet inside
    const msg = await openpgp.readMessage({ binaryMessage: d.msg });
    const inner = await msg.decrypt([await openpgp.readPrivateKey({ armoredKey: server.armoredPrivate })]);
    assert.ok(
      !inner.packets.some((p) => p instanceof openpgp.CompressedDataPacket),
      'gpg was told not to compress',
    );
  });

  for (const option of ['recipient', 'hidden-recipient']) {
    test(`a gpg.conf line '${option} FRIEND' is refused before sending: the knock would have a second reader`, async () => {
      await setConf([`${option} ${friend.fingerprint}`]);
      const before = L.received.length;
      const r = await knock();
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, /^spa: error: gpg made a knock the server would drop: .*recipient/m);
      assert.match(r.err, /^spa: hint: .*gpg\.conf/m);
      await new Promise((res) => setTimeout(res, 100));
      assert.equal(L.received.length, before, 'nothing was sent');
    });
  }
});
