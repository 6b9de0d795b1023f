/**
 * Attack: user ids the key's owner never certified. A user id packet needs no signature to sit in
 * a key, so anyone relaying a user's key can insert "Root <root@example.test>" before the real
 * ones; the fingerprint stays the same. A user id the owner revoked is still in the key too.
 * Neither may be shown to the admin, stored, or used for the default username, on the openpgp.js
 * path (`spa-keys add`, `spa-keys import`) or the GnuPG path (`spa --gpg-home`, which reads
 * `gpg --with-colons`).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { parseColons, listGpgKeys } from '../../client/gpg-keys.js';
import { loadAllowlist } from '../../keyring/allowlist.js';
import { inspectKey } from '../../keyring/inspect.js';
import { importKey, openKeystore } from '../../keyring/keystore.js';
import { keyWithUserIds, withRevokedUserId, withUnsignedUserId } from '../helpers/keycraft.js';
import { GpgHome, gpgUnavailable } from '../helpers/gpg.js';
import { TEST_NOW } from '../helpers/keys.js';
import { runKeys, ScriptedPrompter, withTmp } from '../unit/keyring-helpers.js';

const ALICE = 'Alice <alice@example.test>';
const ROOT = 'Root <root@example.test>';
const OLD = 'Old <old@example.test>';

describe('user ids the key owner did not certify', () => {
  let alice: openpgp.PrivateKey;
  let unsigned: openpgp.PublicKey;
  let revoked: openpgp.PublicKey;
  before(async () => {
    alice = await keyWithUserIds([ALICE]);
    unsigned = await withUnsignedUserId(alice.toPublic(), ROOT);
    const twoUids = await keyWithUserIds([OLD, ALICE]);
    revoked = await withRevokedUserId(twoUids, 0);
  });

  test('the crafted keys really carry the extra user id first, with the same fingerprint', () => {
    assert.deepEqual(unsigned.getUserIDs(), [ROOT, ALICE]);
    assert.equal(unsigned.getFingerprint(), alice.getFingerprint());
    assert.deepEqual(revoked.getUserIDs(), [OLD, ALICE]);
  });

  test('key inspection lists only the certified, unrevoked user ids', async () => {
    assert.deepEqual((await inspectKey(unsigned.armor(), TEST_NOW)).userIds, [ALICE]);
    assert.deepEqual((await inspectKey(revoked.armor(), TEST_NOW)).userIds, [ALICE]);
  });

  for (const [what, key] of [
    ['an unsigned "Root" user id placed first', () => unsigned],
    ['a revoked user id placed first', () => revoked],
  ] as const) {
    test(`spa-keys add with ${what} neither shows it, stores it, nor offers it as the default username`, async () => {
      await withTmp(async (dir) => {
        const state = join(dir, 'state');
        assert.equal((await runKeys(['init', '--state-dir', state])).code, 0);
        const file = join(dir, 'k.asc');
        await writeFile(file, key().armor());
        // confirm the fingerprint, then accept every default ('') and allow no command, no fwknop
        // knocks, no forwarding and no reply
        const p = new ScriptedPrompter([true, '', '', true, '', '', false, false, '', '', false]);
        const r = await runKeys(['add', '--state-dir', state, '--key', file, '--open', 'tcp/22'], {
          prompter: p,
          now: TEST_NOW,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stderr, /Root|Old/);
        const rec = [...(await loadAllowlist(state)).records.values()][0];
        assert.ok(rec);
        assert.equal(rec.username, 'alice');
        assert.deepEqual(rec.userIds, [ALICE]);
        const stored = await openpgp.readKey({ armoredKey: rec.publicKey });
        assert.deepEqual(stored.getUserIDs(), [ALICE], 'the stored key holds no uncertified user id');
      });
    });
  }

  test('spa-keys import of an own secret key takes the username from a certified user id only', async () => {
    const sec = await keyWithUserIds([ALICE]);
    const pub = await withUnsignedUserId(sec.toPublic(), ROOT);
    // put the unsigned user id into the secret key too (same packets after the primary)
    const packets = new openpgp.PacketList<openpgp.AnyPacket>();
    const list = sec.toPacketList();
    const rootPacket = pub.users[0]?.userID;
    assert.ok(rootPacket);
    packets.push(list[0] as openpgp.AnyPacket, rootPacket, ...(list.slice(1) as openpgp.AnyPacket[]));
    const tampered = new openpgp.PrivateKey(packets as openpgp.PacketList<openpgp.AnyKeyPacket>);
    assert.deepEqual(tampered.getUserIDs(), [ROOT, ALICE]);
    await withTmp(async (home) => {
      const r = await importKey(home, tampered.armor(), { now: TEST_NOW });
      assert.equal(r.kind, 'own');
      assert.equal(r.record.username, 'alice');
      assert.deepEqual(r.record.userIds, [ALICE]);
      const ks = await openKeystore(home);
      const stored = await openpgp.readKey({ armoredKey: [...ks.own.values()][0]?.publicKey ?? '' });
      assert.deepEqual(stored.getUserIDs(), [ALICE]);
    });
  });

  describe('the GnuPG path', () => {
    test('parseColons drops revoked user ids and user ids without a self-signature date', () => {
      // gpg 2.2.40, a key imported with --allow-non-selfsigned-uid after --quick-revoke-uid
      const colons = [
        'pub:-:255:22:645A79620E85A2CF:1796193009:::-:::scSC:::::ed25519:::0:',
        'fpr:::::::::4A1B7C3E0F6D2A9B8C7D6E5F645A79620E85A2CF:',
        'uid:-::::1796193009::AFDDE6387831F32D743316DACC920A0D9D5E8F60::Alice <alice@example.test>::::::::::0:',
        'uid:-::::::3EC38EB604D561C363A76556D4062D4AED2F18A1::Root <root@example.test>::::::::::0:',
        'uid:r::::::D67D3354A1ED71151A36FC54EC6175EDD71EBA66::Old <old@example.test>::::::::::0:',
      ].join('\n');
      const keys = parseColons(colons);
      assert.equal(keys.length, 1);
      assert.deepEqual(keys[0]?.userIds, [ALICE]);
    });

    const skip = gpgUnavailable();
    describe('with a real gpg', { skip: skip ?? false }, () => {
      let gpg: GpgHome;
      before(() => {
        gpg = new GpgHome('uids');
      });
      after(() => gpg?.destroy());

      test('a user id revoked with gpg and one imported without a self-signature are not listed', async () => {
        const fpr = await gpg.generateEd25519(ALICE);
        await gpg.ok(['--quick-add-uid', fpr, OLD]);
        await gpg.ok(['--quick-revoke-uid', fpr, OLD]);
        const exported = await openpgp.readKey({ armoredKey: await gpg.exportPublic(fpr) });
        const withRoot = await withUnsignedUserId(exported, ROOT);
        await gpg.ok(['--allow-non-selfsigned-uid', '--import'], new TextEncoder().encode(withRoot.armor()));
        const raw = await gpg.ok(['--with-colons', '--fixed-list-mode', '--list-keys', fpr]);
        assert.match(raw.stdout.toString('utf8'), /Root <root@example\.test>/, 'gpg kept the unsigned uid');
        const keys = await listGpgKeys({ exe: 'gpg', home: gpg.dir }, fpr, false);
        assert.deepEqual(keys[0]?.userIds, [ALICE]);
      });
    });
  });
});
