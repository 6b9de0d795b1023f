/**
 * Attack: a genuine user asks for more than the admin gave: another port, the right port on the
 * other protocol, one allowed port bundled with a forbidden one, a longer timeout. Nothing is
 * opened at all, not even the allowed part.
 */
import { before, describe, test } from 'node:test';
import { type TestKey, testKey } from '../helpers/keys.js';
import { type Rig, recordFor, rig } from './rig.js';

describe('a port not allowed', () => {
  let r: Rig;
  let alice: TestKey;
  before(async () => {
    alice = await testKey('sec-alice');
    // alice may open tcp/22 and udp/53 only, for at most 300 s
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
  });

  test('tcp/80 is refused as PORT_NOT_ALLOWED', async () => {
    await r.refused(await r.knock(alice, { access: [{ proto: 'tcp', port: 80 }] }), 'PORT_NOT_ALLOWED');
  });

  test('udp/22 and tcp/53 (allowed numbers, other protocol) are refused as PORT_NOT_ALLOWED', async () => {
    await r.refused(await r.knock(alice, { access: [{ proto: 'udp', port: 22 }] }), 'PORT_NOT_ALLOWED');
    await r.refused(await r.knock(alice, { access: [{ proto: 'tcp', port: 53 }] }), 'PORT_NOT_ALLOWED');
  });

  test('tcp/22 bundled with tcp/23 is refused whole: nothing opens', async () => {
    await r.refused(
      await r.knock(alice, {
        access: [
          { proto: 'tcp', port: 22 },
          { proto: 'tcp', port: 23 },
        ],
      }),
      'PORT_NOT_ALLOWED',
    );
  });

  test('sixteen ports with one forbidden among them are refused as PORT_NOT_ALLOWED', async () => {
    const access = Array.from({ length: 15 }, (_, i) => ({ proto: 'tcp' as const, port: 1000 + i }));
    await r.refused(
      await r.knock(alice, { access: [{ proto: 'tcp', port: 22 }, ...access] }),
      'PORT_NOT_ALLOWED',
    );
  });

  test('a timeout of 301 s when the maximum is 300 is refused as TIMEOUT_NOT_ALLOWED', async () => {
    await r.refused(await r.knock(alice, { timeoutSeconds: 301 }), 'TIMEOUT_NOT_ALLOWED');
  });

  test('a command knock from a user without a command policy is refused as CMD_NOT_ALLOWED', async () => {
    await r.refused(await r.knock(alice, { type: 'command', access: [], command: 'id' }), 'CMD_NOT_ALLOWED');
  });
});
