/**
 * Attack: lock a user out by spending, before authentication, what the user's knock needs.
 * Junk that carries our key id (it passes the framing checks and costs a decryption attempt) is
 * sent with the victim's address as its source, or from thousands of spoofed sources. Junk may
 * cost spad work, but it must never make a later valid knock fail while spad has capacity left;
 * under overload the queue in front of decryption is shared fairly (server/fairqueue.ts), so a
 * flood can only slow a knock by its fair share, never gate it. The rig runs the pipeline with
 * the daemon's default settings, and datagrams go through submit(), the capture path.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { keyIdGarbageKeep } from '../../scripts/bench-lib.js';
import { type TestKey, testKey } from '../helpers/keys.js';
import { CLIENT_IP, datagram, granted, type Rig, recordFor, rig } from './rig.js';

/** `n` datagrams shaped like `knock` (headers, our key id, lengths) with random bytes elsewhere. */
function keyIdJunk(knock: Uint8Array, n: number): Uint8Array[] {
  const keep = keyIdGarbageKeep(knock);
  return Array.from({ length: n }, () => {
    const b = new Uint8Array(randomBytes(knock.length));
    for (const [a, z] of keep) b.set(knock.subarray(a, z), a);
    return b;
  });
}

/** A random address in 10.0.0.0/8, or in 2001:db8::/32 when `v6`. */
function randomSource(v6 = false): string {
  const r = randomBytes(6);
  return v6
    ? `2001:db8:${r.readUInt16BE(0).toString(16)}:${r.readUInt16BE(2).toString(16)}::${r.readUInt16BE(4).toString(16)}`
    : `10.${r[0]}.${r[1]}.${r[2]}`;
}

describe('a spoofed-source flood that tries to lock a user out', () => {
  let server: TestKey;
  let alice: TestKey;
  let r: Rig;
  let template: Uint8Array;
  before(async () => {
    server = await testKey('sec-server');
    alice = await testKey('sec-alice');
    r = await rig({ server, records: [recordFor(alice)] });
    template = await r.knock(alice);
  });

  async function submitted(datagrams: Array<{ bytes: Uint8Array; from: string }>): Promise<number> {
    const before = r.firewall.grants.length;
    for (const d of datagrams) r.pipeline.submit(datagram(d.bytes, d.from));
    await r.pipeline.idle();
    return r.firewall.grants.length - before;
  }

  test('fifty junk datagrams with our key id from the victim’s address, one at a time, are each DECRYPT_FAILED, and the victim’s knock is then granted', async () => {
    for (const j of keyIdJunk(template, 50)) await r.refused(j, 'DECRYPT_FAILED', CLIENT_IP);
    await granted(r, await r.knock(alice));
  });

  test('twenty junk datagrams from the victim’s address queued ahead of the victim’s knock do not stop it', async () => {
    const junk = keyIdJunk(template, 20).map((bytes) => ({ bytes, from: CLIENT_IP }));
    assert.equal(await submitted([...junk, { bytes: await r.knock(alice), from: CLIENT_IP }]), 1);
  });

  test('junk from 5,000 random spoofed sources queued at once, then a valid knock: the knock is granted', async () => {
    const junk = keyIdJunk(template, 5000).map((bytes, i) => ({ bytes, from: randomSource(i % 2 === 1) }));
    assert.equal(await submitted([...junk, { bytes: await r.knock(alice), from: CLIENT_IP }]), 1);
  });

  test('after 3,000 junk datagrams from random sources (more than a second of decryption work), the victim’s knock from an idle queue is granted', async () => {
    assert.equal(
      await submitted(keyIdJunk(template, 3000).map((bytes) => ({ bytes, from: randomSource() }))),
      0,
    );
    await granted(r, await r.knock(alice));
  });
});
