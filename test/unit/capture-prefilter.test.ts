/**
 * The capture process's flood shield: a real knock always passes; junk passes up to the
 * per-second allowance (so it is still audited one by one at normal rates) and is then only
 * counted, by the reason spad itself would give.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seal, serverIdentity } from '../../protocol/envelope.js';
import { junkReason, Prefilter } from '../../server/capture/prefilter.js';
import { RateLimiter } from '../../server/ratelimit.js';
import { freshPayload, testKey } from '../helpers/keys.js';
import { ethernet, ipv4, udp } from './capture-frames.js';

const ETHERNET = 1;
const frameOf = (payload: Uint8Array): Uint8Array => ethernet(0x0800, ipv4(udp({ payload })));

describe('capture prefilter', async () => {
  const server = await testKey('prefilter-server');
  const alice = await testKey('alice');
  const ids = (await serverIdentity(server.privateKey)).recipientKeyIds;
  const knock = await seal(freshPayload({ server }), {
    signingKey: alice.privateKey,
    serverKey: server.publicKey,
    now: new Date(),
  });
  const other = await testKey('prefilter-other');
  const forOther = await seal(freshPayload({ server: other }), {
    signingKey: alice.privateKey,
    serverKey: other.publicKey,
    now: new Date(),
  });

  test('a real knock for us is never junk, at any rate', () => {
    assert.equal(junkReason(ETHERNET, frameOf(knock), false, ids), null);
    const p = new Prefilter(ids, 2);
    for (let i = 0; i < 100; i++) assert.equal(p.pass(ETHERNET, frameOf(knock), false, 5000), true);
    assert.equal(p.takeCounts(), null);
  });

  test('junk gets the reason spad would give: too short, too long, framing, not for us, undecodable', () => {
    assert.equal(junkReason(ETHERNET, frameOf(new Uint8Array(10)), false, ids), 'PKT_TOO_SHORT');
    assert.equal(junkReason(ETHERNET, frameOf(new Uint8Array(1401)), false, ids), 'PKT_TOO_LONG');
    assert.equal(junkReason(ETHERNET, frameOf(new Uint8Array(200).fill(0x41)), false, ids), 'PKT_FRAMING');
    assert.equal(junkReason(ETHERNET, frameOf(forOther), false, ids), 'PKT_NOT_FOR_US');
    assert.equal(junkReason(ETHERNET, new Uint8Array(5), false, ids), 'DECODE');
  });

  test('junk beyond the per-second allowance is shed and counted, and the allowance renews each second', () => {
    const p = new Prefilter(ids, 3);
    const junk = frameOf(new Uint8Array(200).fill(0x41));
    const passed = Array.from({ length: 10 }, () => p.pass(ETHERNET, junk, false, 1000)).filter(
      Boolean,
    ).length;
    assert.equal(passed, 3);
    assert.deepEqual(p.takeCounts(), { PKT_FRAMING: 7 });
    assert.equal(p.takeCounts(), null, 'reported once until it changes');
    assert.equal(p.pass(ETHERNET, junk, false, 2000), true, 'a new second, a new allowance');
    assert.equal(p.pass(ETHERNET, frameOf(knock), false, 2000), true);
  });

  test('with a rate limiter, a knock-shaped flood from one source is shed beyond its burst as RATE_LIMITED', () => {
    const rate = new RateLimiter({ burst: 5, perSecond: 1, globalPerSecond: 1e9, maxSources: 100 });
    const p = new Prefilter(ids, 0, rate);
    const passed = Array.from({ length: 20 }, () => p.pass(ETHERNET, frameOf(knock), false, 1000)).filter(
      Boolean,
    ).length;
    assert.equal(passed, 5);
    assert.deepEqual(p.takeCounts(), { RATE_LIMITED: 15 });
  });
});
