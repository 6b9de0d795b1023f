/**
 * Attack: a captured knock sent again: from another address, re-wrapped into new bytes (same
 * signed nonce), after the daemon restarted, and after the freshness window. Each must be refused
 * with its own code and open nothing.
 *
 * Codes after the window: the raw digest of an accepted datagram is kept until timestamp + 2 ×
 * window, so the exact bytes are REPLAY_RAW until then; after that they reach the signature time
 * check (step 9, before payload freshness), which refuses them as SIG_TIME, since clients sign at
 * the payload's timestamp. A re-wrapped copy (new bytes) meets SIG_TIME as soon as the window
 * has passed.
 */
import { before, describe, test } from 'node:test';
import { decryptToPackets, encryptPackets } from '../helpers/craft.js';
import { TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { ATTACKER_IP, granted, type Rig, recordFor, rig } from './rig.js';

describe('a replayed knock', () => {
  let server: TestKey;
  let alice: TestKey;
  let r: Rig;
  before(async () => {
    server = await testKey('sec-server');
    alice = await testKey('sec-alice');
    r = await rig({ server, records: [recordFor(alice)] });
  });

  /** The signed packets of `bytes`, encrypted again: new bytes, same signed nonce. */
  async function rewrapped(bytes: Uint8Array): Promise<Uint8Array> {
    const inner = await decryptToPackets(bytes, server.privateKey, TEST_NOW);
    return encryptPackets(inner, server.publicKey, { now: TEST_NOW });
  }

  test('the same datagram from another address is refused as REPLAY_RAW', async () => {
    const k = await r.knock(alice);
    await granted(r, k);
    await r.refused(k, 'REPLAY_RAW', ATTACKER_IP);
    await r.refused(k, 'REPLAY_RAW', '2001:db8::3');
  });

  test('the same signed nonce in new bytes (re-encrypted) is refused as REPLAY, from any address', async () => {
    const k = await r.knock(alice);
    await granted(r, k);
    await r.refused(await rewrapped(k), 'REPLAY', ATTACKER_IP);
    await r.refused(await rewrapped(k), 'REPLAY');
  });

  test('the client re-signing an already used nonce is refused as REPLAY', async () => {
    const nonce = new Uint8Array(16).fill(0x5a);
    await granted(r, await r.knock(alice, { nonce }));
    await r.refused(await r.knock(alice, { nonce }), 'REPLAY');
  });

  test('after a restart (a new pipeline on the same replay file) both the datagram and a re-wrap are refused', async () => {
    const first = await rig({ server, records: [recordFor(alice)] });
    const k = await first.knock(alice);
    await granted(first, k);
    const restarted = await rig({ server, records: [recordFor(alice)], replayFile: first.replayFile });
    await restarted.refused(k, 'REPLAY_RAW', ATTACKER_IP);
    await restarted.refused(await rewrapped(k), 'REPLAY', ATTACKER_IP);
  });

  test('just after the window the datagram is still REPLAY_RAW and a re-wrap is SIG_TIME', async () => {
    const own = await rig({ server, records: [recordFor(alice)] });
    const k = await own.knock(alice);
    await granted(own, k);
    own.clock += 121_000;
    await own.refused(k, 'REPLAY_RAW', ATTACKER_IP);
    await own.refused(await rewrapped(k), 'SIG_TIME', ATTACKER_IP);
  });

  test('once the replay entry has expired (2 × window) the datagram is refused as SIG_TIME, also after a restart', async () => {
    const own = await rig({ server, records: [recordFor(alice)] });
    const k = await own.knock(alice);
    await granted(own, k);
    own.clock += 241_000;
    await own.refused(k, 'SIG_TIME', ATTACKER_IP);
    const restarted = await rig({
      server,
      records: [recordFor(alice)],
      replayFile: own.replayFile,
      now: new Date(own.clock),
    });
    await restarted.refused(k, 'SIG_TIME', ATTACKER_IP);
  });

  test('a knock never delivered, replayed late by whoever captured it, is refused as SIG_TIME', async () => {
    const own = await rig({ server, records: [recordFor(alice)] });
    const k = await own.knock(alice);
    own.clock += 121_000;
    await own.refused(k, 'SIG_TIME', ATTACKER_IP);
  });
});
