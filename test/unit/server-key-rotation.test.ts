/**
 * Rotating the fleet's shared server key with both keys valid for a while (README "Many
 * gateways"): a new encryption subkey is added to the same primary key, so the fingerprint that
 * knocks name and that signs the cluster keyring stays; gateways holding the new server.key
 * accept knocks sealed to the old subkey (clients not yet moved) and to the new one; once the old
 * subkey is gone from server.key, knocks sealed to it are no longer for this server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import { fromPrivateKey, type TestKey, testKey } from '../helpers/keys.js';
import { granted, recordFor, rig } from '../security/rig.js';

async function rotated(old: TestKey): Promise<TestKey> {
  const copy = await openpgp.readPrivateKey({ armoredKey: old.armoredPrivate });
  const withNew = await copy.addSubkey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    date: new Date('2025-03-01T00:00:00Z'),
  });
  return fromPrivateKey(old.name, withNew);
}

test('a gateway with the rotated key accepts knocks sealed to the old and to the new subkey', async () => {
  const old = await testKey('rotation-server');
  const alice = await testKey('rotation-alice');
  const next = await rotated(old);
  assert.equal(next.fingerprint, old.fingerprint, 'same primary: knocks and keyring signatures unchanged');
  const oldSub = (await old.publicKey.getEncryptionKey()).getKeyID().toHex();
  const newSub = (await next.publicKey.getEncryptionKey()).getKeyID().toHex();
  assert.notEqual(newSub, oldSub, 'a client with the new server.asc encrypts to the new subkey');

  const gw = await rig({ server: next, records: [recordFor(alice)] });
  // a client still on the old server.asc
  const before = await rig({ server: old, records: [recordFor(alice)] });
  await granted(gw, await before.knock(alice));
  // a client on the new server.asc
  await granted(gw, await gw.knock(alice));
});

test('once the old subkey is removed from server.key, knocks sealed to it are refused as not for us', async () => {
  const old = await testKey('rotation-server');
  const alice = await testKey('rotation-alice');
  const next = await rotated(old);
  const oldSub = (await old.publicKey.getEncryptionKey()).getKeyID();
  const trimmed = await openpgp.readPrivateKey({ armoredKey: next.armoredPrivate });
  trimmed.subkeys = trimmed.subkeys.filter((s) => !s.getKeyID().equals(oldSub));
  const gw = await rig({ server: fromPrivateKey(old.name, trimmed), records: [recordFor(alice)] });
  const stale = await rig({ server: old, records: [recordFor(alice)] });
  await gw.refused(await stale.knock(alice), 'PKT_NOT_FOR_US');
  await granted(gw, await gw.knock(alice));
});
