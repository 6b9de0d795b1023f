/**
 * The fair queue in front of decryption (server/fairqueue.ts): round robin by prefix and source,
 * the busiest source shed first when full (never the arriving item), a lane for returning
 * sources, and bounded memory.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FairQueue, sourceKeys } from '../../server/fairqueue.js';

function drain<T>(q: FairQueue<T>): T[] {
  const out: T[] = [];
  for (let x = q.shift(); x !== undefined; x = q.shift()) out.push(x);
  return out;
}

describe('fair queue', () => {
  test('source keys: IPv4 by /16, /24, address and port, IPv6 by /32, /48, /64 and port, IPv4-mapped as IPv4', () => {
    const v4 = ['198.51', '198.51.100', '198.51.100.2', '198.51.100.2:4000'];
    assert.deepEqual(sourceKeys('198.51.100.2', 4000), v4);
    assert.deepEqual(sourceKeys('::ffff:198.51.100.2', 4000), v4);
    const v6 = sourceKeys('2001:db8:1:2:3::4', 53);
    assert.deepEqual(v6, [
      '20010db8::/32',
      '20010db80001::/48',
      '20010db800010002::/64',
      '20010db800010002::/64:53',
    ]);
    assert.deepEqual(sourceKeys('2001:db8:1:2:ffff::9', 53), v6);
  });

  test('junk spoofed from the victim’s address on another port does not queue ahead of the victim’s knock', () => {
    const q = new FairQueue<string>({ capacity: 4096 });
    for (let i = 0; i < 3000; i++) q.push(`j${i}`, '198.51.100.2', 0, 40000);
    q.push('knock', '198.51.100.2', 0, 51234);
    assert.ok(drain(q).indexOf('knock') < 2);
  });

  test('with room, every item comes out, one turn per prefix and per source in turn', () => {
    const q = new FairQueue<string>({ capacity: 100 });
    for (let i = 0; i < 4; i++) q.push(`a${i}`, '203.0.113.1', 0);
    q.push('b0', '203.0.113.2', 0);
    q.push('c0', '198.51.100.2', 0);
    q.push('d0', '198.51.7.2', 0);
    assert.deepEqual(drain(q), ['a0', 'c0', 'b0', 'd0', 'a1', 'a2', 'a3']);
    assert.equal(q.size, 0);
  });

  test('when full, an item of the busiest flow itself is shed on arrival, and nothing else moves', () => {
    const q = new FairQueue<string>({ capacity: 3 });
    for (let i = 0; i < 3; i++) q.push(`a${i}`, '203.0.113.1', 0);
    assert.equal(q.admits('203.0.113.1', 0), false);
    assert.equal(q.admits('203.0.113.1', 0, 9), true, 'another port is another flow');
    assert.equal(q.push('a3', '203.0.113.1', 0), 'a3');
    assert.deepEqual(drain(q), ['a0', 'a1', 'a2']);
  });

  test('when full, the oldest item of the busiest source in the busiest prefix is shed, never the arriving one', () => {
    const q = new FairQueue<string>({ capacity: 4 });
    for (let i = 0; i < 3; i++) q.push(`a${i}`, '203.0.113.1', 0);
    q.push('b0', '198.51.100.7', 0);
    assert.equal(q.push('new', '192.0.2.1', 0), 'a0');
    assert.equal(q.push('new2', '192.0.2.200', 0), 'a1');
    // now every prefix holds one or two: 192.0.2 (two) is the busiest
    assert.equal(q.push('b1', '198.51.100.7', 0), 'new');
    assert.deepEqual(drain(q).sort(), ['a2', 'b0', 'b1', 'new2']);
  });

  test('a flood spoofed across a /15 gets the turns of two /16 prefixes: a knock from elsewhere is served within three', () => {
    const q = new FairQueue<string>({ capacity: 4096 });
    for (let i = 0; i < 20_000; i++) q.push(`j${i}`, `198.${18 + (i & 1)}.${(i >> 1) & 255}.${i >> 9}`, 0);
    q.push('knock', '198.51.100.2', 0);
    assert.equal(q.size, 4096);
    const order = drain(q);
    assert.ok(order.indexOf('knock') < 3, `served ${order.indexOf('knock')}th`);
  });

  test('a flood from 10,000 sources keeps the queue at its bound and a late single item in it', () => {
    const q = new FairQueue<string>({ capacity: 256 });
    for (let i = 0; i < 10_000; i++) q.push(`j${i}`, `10.${(i >> 8) & 255}.${i & 255}.1`, 0);
    q.push('knock', '198.51.100.2', 0);
    for (let i = 0; i < 1000; i++) q.push(`j${i}`, `10.0.0.${i & 255}`, 0);
    assert.equal(q.size, 256);
    assert.ok(drain(q).includes('knock'));
  });

  test('a returning source has its own lane: under a flood it gets every other turn', () => {
    const q = new FairQueue<string>({ capacity: 1000, trustMs: 60_000 });
    q.trust('198.51.100.2', 0);
    for (let i = 0; i < 500; i++) q.push(`j${i}`, `10.0.${i & 255}.${i >> 8}`, 1000);
    q.push('knock', '198.51.100.2', 1000);
    assert.ok(drain(q).indexOf('knock') <= 1);
  });

  test('trust expires, and the number of remembered sources is bounded', () => {
    const q = new FairQueue<string>({ capacity: 10, trustMs: 1000, maxTrusted: 3 });
    for (let i = 0; i < 10; i++) q.trust(`198.51.100.${i}`, 0);
    assert.equal(q.trustedSources, 3);
    q.push('x', '198.51.100.2', 5000); // not trusted (forgotten) and expired anyway
    assert.equal(q.shift(), 'x');
  });
});
