/**
 * Attack: a user whose access was taken away keeps knocking: a key the admin disabled, an
 * enrollment that expired, a key whose own OpenPGP expiry passed, a revoked key, and a key removed
 * from the keyring (also with a knock sealed before the removal and sent after it). The keyring
 * records go through the daemon's own user directory (server/users.ts), as after a reload.
 */
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { KEY_DATE, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { granted, type Rig, recordFor, rig } from './rig.js';

describe('a disabled, expired, revoked or removed key', () => {
  let r: Rig;
  let alice: TestKey;
  let bob: TestKey;
  before(async () => {
    alice = await testKey('sec-alice');
    bob = await testKey('sec-bob');
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
  });

  test('a key disabled by the admin is refused as KEY_DISABLED', async () => {
    r.setUsers([recordFor(alice, { enabled: false })]);
    await r.refused(await r.knock(alice), 'KEY_DISABLED');
    r.setUsers([recordFor(alice)]);
    await granted(r, await r.knock(alice));
  });

  test('an enrollment that expired a second ago, or expires right now, is refused as KEY_EXPIRED', async () => {
    r.setUsers([recordFor(alice, { expiresAt: new Date(r.clock - 1000).toISOString() })]);
    await r.refused(await r.knock(alice), 'KEY_EXPIRED');
    r.setUsers([recordFor(alice, { expiresAt: new Date(r.clock).toISOString() })]);
    await r.refused(await r.knock(alice), 'KEY_EXPIRED');
    r.setUsers([recordFor(alice, { expiresAt: new Date(r.clock + 60_000).toISOString() })]);
    await granted(r, await r.knock(alice));
  });

  test('a key whose own OpenPGP expiry passed 30 s ago, signing 60 s ago while still valid, is refused as KEY_EXPIRED', async () => {
    const expiresAt = TEST_NOW.getTime() - 30_000;
    const old = await testKey('sec-expiring', { keyExpirationTime: (expiresAt - KEY_DATE.getTime()) / 1000 });
    const own = await rig({ server: r.server, records: [recordFor(old, { username: 'carol' })] });
    const then = new Date(TEST_NOW.getTime() - 60_000);
    await own.refused(await own.knock(old, { username: 'carol', now: then, signedAt: then }), 'KEY_EXPIRED');
  });

  test('a key the owner revoked is refused as KEY_REVOKED', async () => {
    const { publicKey } = await openpgp.revokeKey({
      key: bob.privateKey,
      date: new Date(TEST_NOW.getTime() - 86_400_000),
      format: 'object',
    });
    r.setUsers([recordFor(alice), recordFor(bob, { username: 'bob', publicKey: publicKey.armor() })]);
    await r.refused(await r.knock(bob, { username: 'bob' }), 'KEY_REVOKED');
  });

  test('a key removed from the keyring is refused as SIGNER_UNKNOWN, also for a knock sealed before the removal', async () => {
    r.setUsers([recordFor(alice), recordFor(bob, { username: 'bob' })]);
    const sealedBefore = await r.knock(bob, { username: 'bob' });
    await granted(r, await r.knock(bob, { username: 'bob' }));
    r.setUsers([recordFor(alice)]);
    await r.refused(sealedBefore, 'SIGNER_UNKNOWN');
    await r.refused(await r.knock(bob, { username: 'bob' }), 'SIGNER_UNKNOWN');
  });
});
