/**
 * The capture process's flood shield: a real knock always passes; junk passes up to the
 * per-second allowance (so it is still audited one by one at normal rates) and is then only
 * counted, by the reason spad itself would give. While spad does not read, FramePump holds what
 * may be knocks in a fair queue and sheds from the busiest source.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { seal, serverIdentity } from '../../protocol/envelope.js';
import { FramePump, junkReason, Prefilter, type RecordSink } from '../../server/capture/prefilter.js';
import { freshPayload, testKey, VECTOR_DIR } from '../helpers/keys.js';
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

  test('a real fwknop-client knock for us (SPEC.md §11) is never junk; one for another key is', async () => {
    const v = JSON.parse(readFileSync(`${VECTOR_DIR}fwknop/ok-hmac-ecc.json`, 'utf8')) as {
      server_key: string;
      packet: string;
    };
    const fwkIds = (await serverIdentity(await openpgp.readPrivateKey({ armoredKey: v.server_key })))
      .recipientKeyIds;
    const text = new Uint8Array(Buffer.from(v.packet, 'latin1'));
    assert.equal(junkReason(ETHERNET, frameOf(text), false, fwkIds), null, 'with its HMAC tag');
    const untagged = text.subarray(0, text.length - 43);
    assert.equal(junkReason(ETHERNET, frameOf(untagged), false, fwkIds), null, 'without one');
    assert.equal(junkReason(ETHERNET, frameOf(text), false, ids), 'PKT_FRAMING', 'for another server');
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

  test('a knock-shaped flood from one source is never shed by the prefilter itself', () => {
    const p = new Prefilter(ids, 0);
    const passed = Array.from({ length: 200 }, () => p.judge(ETHERNET, frameOf(knock), false, 1000));
    assert.ok(passed.every((v) => v !== null && 'source' in v && v.source === '198.51.100.2'));
    assert.equal(p.takeCounts(), null);
  });
});

/** A pipe that takes `room` records, then buffers until `drain()` (spad read them). */
function fakePipe(room: number): RecordSink & { sent: string[]; drain(n: number): void } {
  const buffered: Array<{ b: Buffer; cb: () => void }> = [];
  let free = room;
  const sink = {
    sent: [] as string[],
    get writableLength() {
      return buffered.length;
    },
    write(b: Buffer, cb: () => void) {
      if (free > 0) {
        free--;
        sink.sent.push(b.toString());
        queueMicrotask(cb);
      } else buffered.push({ b, cb });
      return true;
    },
    drain(n: number) {
      free += n;
      while (free > 0 && buffered.length) {
        const x = buffered.shift() as { b: Buffer; cb: () => void };
        free--;
        sink.sent.push(x.b.toString());
        x.cb();
      }
    },
  };
  return sink;
}

describe('capture frame pump', () => {
  test('while the pipe takes records, every record goes through in order', () => {
    const pipe = fakePipe(100);
    const pump = new FramePump(pipe, () => assert.fail('shed'), 8);
    for (let i = 0; i < 50; i++) pump.knock(() => Buffer.from(`a${i}`), '203.0.113.66', 0);
    assert.equal(pipe.sent.length, 50);
    assert.equal(pump.queued, 0);
  });

  test('while spad does not read, a flood from one source is shed and a knock from another is sent next', () => {
    const pipe = fakePipe(1);
    let shed = 0;
    const pump = new FramePump(pipe, () => shed++, 8);
    for (let i = 0; i < 100; i++) pump.knock(() => Buffer.from(`junk${i}`), '203.0.113.66', 0);
    pump.knock(() => Buffer.from('knock'), '198.51.100.2', 0);
    assert.equal(shed, 100 - 1 - 1 - 8 + 1); // one sent, one buffered in the stream, 8 queued; the knock takes a place
    pipe.drain(1); // the buffered one
    pipe.drain(1);
    pipe.drain(1);
    assert.ok(pipe.sent.slice(0, 4).includes('knock'), pipe.sent.join(' '));
  });

  test('junk (to be audited) is sent only while the pipe is free', () => {
    const pipe = fakePipe(1);
    const pump = new FramePump(pipe, () => {}, 8);
    assert.equal(pump.junk(Buffer.from('j1')), true);
    pump.knock(() => Buffer.from('k'), '198.51.100.2', 0); // buffered in the stream
    assert.equal(pump.junk(Buffer.from('j2')), false);
  });
});
