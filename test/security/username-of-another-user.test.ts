/**
 * Attack: an enrolled user signs a knock that names another user's username, hoping for that
 * user's wider policy (more ports, longer timeouts, commands). The username must be the one
 * enrolled for the signing key, whatever else the knock says.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { type TestKey, testKey } from '../helpers/keys.js';
import { granted, type Rig, recordFor, rig } from './rig.js';

describe('an enrolled key signing for another username', () => {
  let r: Rig;
  let bob: TestKey;
  before(async () => {
    const server = await testKey('sec-server');
    const alice = await testKey('sec-alice');
    bob = await testKey('sec-bob');
    r = await rig({
      server,
      records: [
        recordFor(alice, { openPorts: ['tcp/22', 'tcp/5432'], maxTimeout: 3600 }),
        recordFor(bob, { username: 'bob', openPorts: ['tcp/22'] }),
      ],
    });
  });

  test('bob naming alice is refused as USER_MISMATCH, for a port only alice may open', async () => {
    await r.refused(
      await r.knock(bob, { username: 'alice', access: [{ proto: 'tcp', port: 5432 }] }),
      'USER_MISMATCH',
    );
  });

  test('bob naming alice is refused as USER_MISMATCH even for a port both may open', async () => {
    await r.refused(await r.knock(bob, { username: 'alice' }), 'USER_MISMATCH');
  });

  test('bob naming a user that does not exist, or root, is refused as USER_MISMATCH', async () => {
    await r.refused(await r.knock(bob, { username: 'root' }), 'USER_MISMATCH');
    await r.refused(await r.knock(bob, { username: 'nobody_here' }), 'USER_MISMATCH');
  });

  test('bob as himself is granted only his own port and timeout', async () => {
    const g = await granted(r, await r.knock(bob, { username: 'bob' }));
    assert.deepEqual(g.ports, [{ proto: 'tcp', port: 22 }]);
    assert.equal(g.timeoutSeconds, 30);
    await r.refused(await r.knock(bob, { username: 'bob', timeoutSeconds: 3600 }), 'TIMEOUT_NOT_ALLOWED');
  });
});
