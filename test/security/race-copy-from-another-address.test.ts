/**
 * Attack: an on-path attacker sees the client's knock and races a copy of it to the server from
 * its own address. The copy is refused (SOURCE_MISMATCH: the payload names the client), and it
 * must cost the attacker, not the user: a knock is recorded as used only when it is accepted, so
 * the real knock that arrives second is still granted. The same signed knock is still never
 * accepted twice: not resent, not re-encrypted, and not after `max_skew` was raised across a
 * restart (the replay store forgets an entry only once it is older than any window, and
 * remembers what it forgot, server/replay.ts). A plain restart: replayed-knock.test.ts.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { decryptToPackets, encryptPackets } from '../helpers/craft.js';
import { TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { ATTACKER_IP, CLIENT_IP, datagram, granted, type Rig, recordFor, rig } from './rig.js';

describe('a copy of a knock raced from another address', () => {
  let server: TestKey;
  let alice: TestKey;
  let r: Rig;
  before(async () => {
    server = await testKey('sec-server');
    alice = await testKey('sec-alice');
    r = await rig({ server, records: [recordFor(alice)] });
  });

  /** The signed packets of `bytes`, encrypted again: new bytes, same signed nonce. */
  async function rewrapped(bytes: Uint8Array, at = TEST_NOW): Promise<Uint8Array> {
    const inner = await decryptToPackets(bytes, server.privateKey, at);
    return encryptPackets(inner, server.publicKey, { now: at });
  }

  test('the copy from the attacker’s address is refused as SOURCE_MISMATCH and the real knock is then granted', async () => {
    const k = await r.knock(alice);
    await r.refused(k, 'SOURCE_MISMATCH', ATTACKER_IP);
    await granted(r, k, CLIENT_IP);
  });

  test('a re-encrypted copy from the attacker’s address does not burn the knock either', async () => {
    const k = await r.knock(alice);
    await r.refused(await rewrapped(k), 'SOURCE_MISMATCH', ATTACKER_IP);
    await r.refused(await rewrapped(k), 'SOURCE_MISMATCH', '2001:db8::3');
    await granted(r, k, CLIENT_IP);
  });

  test('the same knock twice from the client’s address: the second is REPLAY_RAW, a re-encrypted copy REPLAY', async () => {
    const k = await r.knock(alice);
    await granted(r, k);
    await r.refused(k, 'REPLAY_RAW');
    await r.refused(await rewrapped(k), 'REPLAY');
  });

  test('two copies of the same knock queued together: exactly one is granted', async () => {
    const k = await r.knock(alice);
    const before = r.firewall.grants.length;
    r.pipeline.submit(datagram(k, ATTACKER_IP));
    r.pipeline.submit(datagram(k));
    r.pipeline.submit(datagram(await rewrapped(k)));
    r.pipeline.submit(datagram(k));
    await r.pipeline.idle();
    assert.equal(r.firewall.grants.length, before + 1);
  });

  test('a knock whose grant failed in the firewall is not used: the same datagram resent is granted', async () => {
    const own = await rig({ server, records: [recordFor(alice)] });
    const k = await own.knock(alice);
    const grant = own.firewall.grant;
    own.firewall.grant = async () => {
      throw new Error('nft: resource busy');
    };
    assert.deepEqual(await own.send(k), { ok: false, code: 'FW_ERROR' });
    own.firewall.grant = grant;
    await granted(own, k);
    await own.refused(k, 'REPLAY_RAW');
  });

  test('max_skew raised from 120 to 600 s across a restart while the entry is alive: the knock is still refused when its old entry would have expired', async () => {
    const first = await rig({ server, records: [recordFor(alice)] });
    const k = await first.knock(alice);
    await granted(first, k);
    const restarted = await rig({
      server,
      records: [recordFor(alice)],
      replayFile: first.replayFile,
      now: new Date(first.clock + 200_000),
      maxSkewSeconds: 600,
    });
    restarted.clock = first.clock + 300_000; // past 2 × 120 s, inside 600 s
    await restarted.refused(k, 'REPLAY_RAW');
    await restarted.refused(await rewrapped(k), 'REPLAY');
  });

  test('max_skew raised from 120 to 600 s after the entry expired (and was compacted away by a restart): the knock is still refused as REPLAY', async () => {
    const first = await rig({ server, records: [recordFor(alice)] });
    const k = await first.knock(alice);
    await granted(first, k);
    const later = new Date(first.clock + 300_000);
    // a restart with the old window forgets the expired entry and compacts the file
    await rig({ server, records: [recordFor(alice)], replayFile: first.replayFile, now: later });
    const raised = await rig({
      server,
      records: [recordFor(alice)],
      replayFile: first.replayFile,
      now: later,
      maxSkewSeconds: 600,
    });
    await raised.refused(k, 'REPLAY');
    await raised.refused(await rewrapped(k), 'REPLAY');
    // a knock signed now is not affected
    await granted(raised, await raised.knock(alice));
  });

  test('max_skew lowered from 600 to 120 s across a restart: a knock accepted before is still refused while fresh', async () => {
    const first = await rig({ server, records: [recordFor(alice)], maxSkewSeconds: 600 });
    const k = await first.knock(alice);
    await granted(first, k);
    const lowered = await rig({
      server,
      records: [recordFor(alice)],
      replayFile: first.replayFile,
      now: new Date(first.clock + 60_000),
      maxSkewSeconds: 120,
    });
    await lowered.refused(k, 'REPLAY_RAW');
    await lowered.refused(await rewrapped(k), 'REPLAY');
  });
});
