/**
 * The capture process's synchronous pipe I/O (server/capture/child-io.ts): while a flood keeps
 * `cap`'s packet callback from returning, credits must still be read and records still written,
 * from inside that callback, with no turn of the event loop.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChildIo, SERVICE_NS, SyncRecordOut } from '../../server/capture/child-io.js';
import { FramePump } from '../../server/capture/prefilter.js';

/** A pipe that takes `room` bytes per call of writeNow (Infinity: all). */
function pipe(room = Number.POSITIVE_INFINITY): {
  written: Buffer[];
  room: number;
  write: (b: Buffer) => number;
} {
  const p = {
    written: [] as Buffer[],
    room,
    write(b: Buffer): number {
      const n = Math.min(b.length, p.room);
      if (n > 0) p.written.push(Buffer.from(b.subarray(0, n)));
      return n;
    },
  };
  return p;
}

describe('capture process pipe I/O without the event loop', () => {
  test('a record the pipe takes whole is written at once, without its callback', () => {
    const p = pipe();
    const out = new SyncRecordOut(p.write);
    let called = 0;
    assert.equal(
      out.write(Buffer.from('abc'), () => called++),
      true,
    );
    assert.equal(out.writableLength, 0);
    assert.equal(called, 0);
    assert.equal(Buffer.concat(p.written).toString(), 'abc');
  });

  test('what a full pipe does not take waits, in order, and goes out at flush with its callback', () => {
    const p = pipe(2);
    const out = new SyncRecordOut(p.write);
    let called = 0;
    out.write(Buffer.from('abcd'), () => called++);
    out.write(Buffer.from('ef'));
    assert.equal(out.writableLength, 4);
    p.room = 0;
    assert.equal(out.flush(), false);
    p.room = Number.POSITIVE_INFINITY;
    assert.equal(out.flush(), true);
    assert.equal(out.writableLength, 0);
    assert.equal(called, 1);
    assert.equal(Buffer.concat(p.written).toString(), 'abcdef');
  });

  test('in a packet loop that never yields, credits are read every SERVICE_NS and knocks keep going out', () => {
    const p = pipe();
    const out = new SyncRecordOut(p.write);
    const pump = new FramePump(out, () => {}, 64, 1);
    let waiting = 0; // credits spad has sent and we have not read
    const io = new ChildIo({
      out,
      readCredits: (into) => {
        if (waiting === 0) return null;
        const n = Math.min(waiting, into.length);
        waiting -= n;
        return n;
      },
      onCredit: (n) => pump.credit(n),
      filtered: () => null,
      onEnd: () => assert.fail('not ended'),
    });
    let now = 0n;
    let credited = 0;
    for (let i = 0; i < 1000; i++) {
      now += SERVICE_NS / 4n;
      pump.knock(() => Buffer.from(`k${i};`), `198.51.100.${i % 200}`, 0);
      // spad reads each record sent and credits it back, as the verifier does
      waiting += p.written.length - credited;
      credited = p.written.length;
      io.maybeService(now);
    }
    // one service per 4 packets, one credit each: about 250 records through, none stuck
    assert.ok(p.written.length >= 240, `${p.written.length} records written`);
  });

  test('end of stdin ends the process once; the shed counts go out at most once a second', () => {
    const p = pipe();
    let ends = 0;
    let asked = 0;
    let eof = false;
    const io = new ChildIo({
      out: new SyncRecordOut(p.write),
      readCredits: () => (eof ? 0 : null),
      onCredit: () => {},
      filtered: () => {
        asked++;
        return Buffer.from('F');
      },
      onEnd: () => ends++,
    });
    io.service(5_000_000_000n);
    io.service(5_500_000_000n);
    io.service(6_000_000_000n);
    assert.equal(asked, 2);
    assert.equal(p.written.length, 2);
    eof = true;
    io.service(7_000_000_000n);
    io.service(8_000_000_000n);
    io.end();
    assert.equal(ends, 1);
  });
});
