/**
 * Attack: packets larger than any knock: a jumbo datagram the capture layer flags without copying,
 * a 1401-byte datagram, a valid knock padded past the ceiling, an RSA-4096 knock made too large by
 * its command (seal() refuses to build it, so it is crafted), and a knock whose signed payload is
 * larger than any valid payload. All are dropped by size before any decryption, except the last,
 * which is judged by the payload decoder.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodePayload } from '../../protocol/payload.js';
import { PACKET_MAX_BYTES, PAYLOAD_MAX_BYTES } from '../../protocol/limits.js';
import { concat, craftKnock } from '../helpers/craft.js';
import { freshPayload, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { datagram, type Rig, recordFor, rig } from './rig.js';
import { slow } from '../helpers/slow.js';

describe('oversize packets', () => {
  let r: Rig;
  let alice: TestKey;
  before(async () => {
    alice = await testKey('sec-alice');
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
  });

  test('a 65,507-byte datagram flagged oversize by the capture layer is refused as PKT_TOO_LONG', async () => {
    const d = { ...datagram(new Uint8Array(0)), length: 65_507, oversize: true };
    await r.refused(d, 'PKT_TOO_LONG');
  });

  test('a 1401-byte datagram of zeros, and of a knock-like header, is refused as PKT_TOO_LONG', async () => {
    await r.refused(new Uint8Array(PACKET_MAX_BYTES + 1), 'PKT_TOO_LONG');
    const k = await r.knock(alice);
    await r.refused(concat(k, new Uint8Array(PACKET_MAX_BYTES + 1 - k.length)), 'PKT_TOO_LONG');
  });

  test('a valid knock padded to exactly 1400 bytes is no longer a knock: refused as PKT_FRAMING', async () => {
    const k = await r.knock(alice);
    await r.refused(concat(k, new Uint8Array(PACKET_MAX_BYTES - k.length)), 'PKT_FRAMING');
  });

  test(
    'an RSA-4096 knock over 1400 bytes (crafted: seal() refuses to make it) is refused as PKT_TOO_LONG',
    slow,
    async () => {
      const [server, client] = await Promise.all([
        testKey('sec-server-rsa4096', { kind: 'rsa4096' }),
        testKey('sec-client-rsa4096', { kind: 'rsa4096' }),
      ]);
      const big = await rig({ server, records: [recordFor(client)] });
      const payload = freshPayload({
        server,
        now: TEST_NOW,
        type: 'command',
        access: [],
        command: 'x'.repeat(300),
      });
      const bytes = await craftKnock(encodePayload(payload), {
        signers: [client.privateKey],
        to: server.publicKey,
        now: TEST_NOW,
      });
      assert.ok(bytes.length > PACKET_MAX_BYTES, `crafted knock is ${bytes.length} bytes`);
      await big.refused(bytes, 'PKT_TOO_LONG');
    },
  );

  test('a signed payload larger than any valid payload, in a packet under 1400 bytes, is refused as PAYLOAD_MALFORMED', async () => {
    const valid = encodePayload(freshPayload({ server: r.server, now: TEST_NOW }));
    const data = concat(valid, new Uint8Array(PAYLOAD_MAX_BYTES + 1 - valid.length).fill(0x41));
    const bytes = await craftKnock(data, {
      signers: [alice.privateKey],
      to: r.server.publicKey,
      now: TEST_NOW,
    });
    assert.ok(bytes.length <= PACKET_MAX_BYTES, `crafted knock is ${bytes.length} bytes`);
    await r.refused(bytes, 'PAYLOAD_MALFORMED');
  });
});
