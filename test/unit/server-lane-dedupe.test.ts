import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Datagram } from '../../server/capture/types.js';
import { LANE_DUPLICATE_MAX, LANE_DUPLICATE_MS, LaneDedupe } from '../../server/lane-dedupe.js';

function dg(source: string, bytes: string, sourcePort = 40000): Datagram {
  const payload = Buffer.from(bytes);
  return {
    source,
    sourcePort,
    destination: '0.0.0.0',
    destinationPort: 62201,
    payload,
    length: payload.length,
    oversize: false,
    receivedAt: 0n,
  };
}

describe('the returning lane: one datagram seen through libpcap and the socket is handled once', () => {
  const returning = new Set(['198.51.100.2', '2001:db8::2']);
  const make = (clock = { t: 1000 }) => ({
    clock,
    d: new LaneDedupe(
      () => clock.t,
      (s) => returning.has(s),
    ),
  });

  test('the lane copy after the captured one is a duplicate, and the captured copy after the lane one', () => {
    const { d } = make();
    assert.equal(d.duplicate(dg('198.51.100.2', 'knock-1'), 'capture'), false);
    assert.equal(d.duplicate(dg('198.51.100.2', 'knock-1'), 'lane'), true);
    assert.equal(d.duplicate(dg('2001:db8::2', 'knock-2'), 'lane'), false);
    assert.equal(d.duplicate(dg('2001:db8::2', 'knock-2'), 'capture'), true);
    assert.equal(d.size, 0, 'a matched pair is forgotten');
  });

  test('the same datagram twice through one path is not a copy: the replay check sees it', () => {
    const { d } = make();
    assert.equal(d.duplicate(dg('198.51.100.2', 'knock'), 'capture'), false);
    assert.equal(d.duplicate(dg('198.51.100.2', 'knock'), 'capture'), false);
    assert.equal(d.duplicate(dg('198.51.100.2', 'again'), 'lane'), false);
    assert.equal(d.duplicate(dg('198.51.100.2', 'again'), 'lane'), false);
  });

  test('another source port or other bytes are another datagram', () => {
    const { d } = make();
    assert.equal(d.duplicate(dg('198.51.100.2', 'knock', 40000), 'lane'), false);
    assert.equal(d.duplicate(dg('198.51.100.2', 'knock', 40001), 'capture'), false);
    assert.equal(d.duplicate(dg('198.51.100.2', 'knock!', 40000), 'capture'), false);
  });

  test('a captured datagram from a source that is not returning is never remembered', () => {
    const { d } = make();
    assert.equal(d.duplicate(dg('203.0.113.9', 'flood'), 'capture'), false);
    assert.equal(d.size, 0);
    // its lane twin cannot exist (the kernel drops it), but if it came it would be handled
    assert.equal(d.duplicate(dg('203.0.113.9', 'flood'), 'lane'), false);
  });

  test('a first copy is forgotten after LANE_DUPLICATE_MS, and at most LANE_DUPLICATE_MAX are kept', () => {
    const { d, clock } = make();
    assert.equal(d.duplicate(dg('198.51.100.2', 'old'), 'lane'), false);
    clock.t += LANE_DUPLICATE_MS;
    assert.equal(d.duplicate(dg('198.51.100.2', 'old'), 'capture'), false, 'too late to be a copy');
    for (let i = 0; i < LANE_DUPLICATE_MAX + 10; i++) d.duplicate(dg('198.51.100.2', `k${i}`), 'lane');
    assert.equal(d.size, LANE_DUPLICATE_MAX);
    assert.equal(d.duplicate(dg('198.51.100.2', 'k0'), 'capture'), false, 'the oldest went first');
    assert.equal(d.duplicate(dg('198.51.100.2', `k${LANE_DUPLICATE_MAX + 9}`), 'capture'), true);
  });
});
