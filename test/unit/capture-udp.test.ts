/**
 * UDP-socket capture on loopback (no namespaces needed), plus the option checks of both capture
 * kinds and the child-process record framing.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, test } from 'node:test';
import { isSpaError } from '../../protocol/errors.js';
import { createPcapCapture } from '../../server/capture/pcap.js';
import { encodeError, encodeFrame, encodeReady, RecordReader } from '../../server/capture/pcap-ipc.js';
import type { Capture, Datagram, UdpCaptureOptions } from '../../server/capture/types.js';
import { canonicalSocketAddress, createUdpCapture } from '../../server/capture/udp.js';

/** Starts a UDP capture on a free high port (bounded tries). */
async function listen(
  opts: Partial<Omit<UdpCaptureOptions, 'port'>>,
): Promise<{ capture: Capture; port: number; got: Datagram[] }> {
  const got: Datagram[] = [];
  for (let i = 0; i < 20; i++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const capture = createUdpCapture({
      ...opts,
      maxPayload: opts.maxPayload ?? 64,
      port,
      onDatagram: opts.onDatagram ?? ((d) => got.push(d)),
    });
    try {
      await capture.start();
      return { capture, port, got };
    } catch {
      // port taken: try another
    }
  }
  throw new Error('no free port');
}

async function send(to: string, port: number, payload: Buffer): Promise<void> {
  const s = dgram.createSocket(to.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => s.send(payload, port, to, (e) => (e ? reject(e) : resolve())));
  s.close();
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), 'timed out');
}

describe('UDP socket capture on loopback', () => {
  test('a dual-stack socket reports an IPv4 sender as a dotted quad and an IPv6 sender as RFC 5952 text', async () => {
    const { capture, port, got } = await listen({ host: '::' });
    try {
      const before = process.hrtime.bigint();
      await send('127.0.0.1', port, Buffer.from('v4'));
      await until(() => got.length === 1);
      await send('::1', port, Buffer.from('v6'));
      await until(() => got.length === 2);
      const [a, b] = got;
      assert.equal(a?.source, '127.0.0.1');
      assert.equal(a?.payload.toString(), 'v4');
      assert.equal(a?.destinationPort, port);
      assert.equal(a?.oversize, false);
      assert.ok((a?.receivedAt ?? 0n) >= before);
      assert.equal(b?.source, '::1');
      assert.equal(b?.payload.toString(), 'v6');
      assert.equal(a?.destination, '::');
      assert.deepEqual(capture.stats, { received: 2, oversize: 0, decodeErrors: 0 });
    } finally {
      await capture.stop();
    }
  });

  test('a datagram above maxPayload arrives flagged oversize with its length and no bytes', async () => {
    const { capture, port, got } = await listen({ host: '127.0.0.1', maxPayload: 10 });
    try {
      await send('127.0.0.1', port, Buffer.alloc(10, 1));
      await send('127.0.0.1', port, Buffer.alloc(11, 2));
      await until(() => got.length === 2);
      assert.equal(got[0]?.oversize, false);
      assert.equal(got[0]?.payload.length, 10);
      assert.equal(got[1]?.oversize, true);
      assert.equal(got[1]?.length, 11);
      assert.equal(got[1]?.payload.length, 0);
      assert.equal(capture.stats.oversize, 1);
    } finally {
      await capture.stop();
    }
  });

  test('an exception thrown by onDatagram goes to onError and the next datagram still arrives', async () => {
    const errors: Error[] = [];
    const seen: string[] = [];
    const { capture, port } = await listen({
      host: '127.0.0.1',
      onError: (e) => errors.push(e),
      onDatagram: (d) => {
        seen.push(d.payload.toString());
        if (seen.length === 1) throw new Error('pipeline bug');
      },
    });
    try {
      await send('127.0.0.1', port, Buffer.from('one'));
      await send('127.0.0.1', port, Buffer.from('two'));
      await until(() => seen.length === 2);
      assert.deepEqual(seen, ['one', 'two']);
      assert.equal(errors[0]?.message, 'pipeline bug');
    } finally {
      await capture.stop();
    }
  });

  test('start() on a port another socket holds rejects with an IO error; stop() then start() rebinds', async () => {
    const first = await listen({ host: '127.0.0.1' });
    const rival = createUdpCapture({
      host: '127.0.0.1',
      port: first.port,
      maxPayload: 64,
      onDatagram: () => {},
    });
    try {
      await assert.rejects(rival.start(), (e) => isSpaError(e) && e.code === 'IO');
      await first.capture.stop();
      await first.capture.stop(); // twice is fine
      await rival.start();
      await first.capture.start().then(
        () => assert.fail('bound a port already in use'),
        () => {},
      );
    } finally {
      await rival.stop();
      await first.capture.stop();
    }
  });

  test('socket addresses get one canonical text: zone dropped, IPv4-mapped folded, libuv forms redone', () => {
    assert.equal(canonicalSocketAddress('::ffff:198.51.100.2'), '198.51.100.2');
    assert.equal(canonicalSocketAddress('fe80::1%eth0'), 'fe80::1');
    assert.equal(canonicalSocketAddress('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
    assert.equal(canonicalSocketAddress('::1.2.3.4'), '::102:304');
    assert.equal(canonicalSocketAddress('198.51.100.7'), '198.51.100.7');
    assert.equal(canonicalSocketAddress('not an address'), null);
  });
});

describe('capture options', () => {
  const noop = (): void => {};
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      return isSpaError(e) ? e.code : 'not a SpaError';
    }
    return undefined;
  };

  test('bad ports, payload limits, bind addresses and interface names are refused before anything opens', () => {
    const udp = { port: 62201, maxPayload: 1400, onDatagram: noop };
    assert.equal(
      code(() => createUdpCapture({ ...udp, port: 0 })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createUdpCapture({ ...udp, port: 65536 })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createUdpCapture({ ...udp, maxPayload: 0 })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createUdpCapture({ ...udp, host: 'example.org' })),
      'ADDRESS_INVALID',
    );
    const pcap = { device: 'eth0', port: 62201, maxPayload: 1400, onDatagram: noop };
    assert.equal(
      code(() => createPcapCapture({ ...pcap, device: '../../etc' })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createPcapCapture({ ...pcap, device: 'a-name-that-is-too-long' })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createPcapCapture({ ...pcap, device: 'eth0 or 1' })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createPcapCapture({ ...pcap, port: 1.5 })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createPcapCapture({ ...pcap, maxPayload: 70000 })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createPcapCapture({ ...pcap, bufferBytes: 1024 })),
      'CONFIG_INVALID',
    );
    assert.equal(
      code(() => createPcapCapture({ ...pcap, device: 'any' })),
      undefined,
    );
  });

  test('pcap start() on an interface that does not exist rejects with IO without loading libpcap', async () => {
    const c = createPcapCapture({ device: 'nosuch0', port: 62201, maxPayload: 1400, onDatagram: noop });
    await assert.rejects(c.start(), (e) => isSpaError(e) && e.code === 'IO' && /nosuch0/.test(e.message));
    await c.stop();
  });
});

describe('capture child records', () => {
  test('records survive being split at every byte boundary', () => {
    const frame = Buffer.from('0123456789abcdef');
    const stream = Buffer.concat([
      encodeReady(113),
      encodeFrame(frame, true, 7, 123456789n),
      encodeError('no device'),
    ]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = new RecordReader(1000);
      const out = [];
      r.push(stream.subarray(0, cut));
      for (let x = r.next(); x; x = r.next()) out.push(x);
      r.push(stream.subarray(cut));
      for (let x = r.next(); x; x = r.next()) out.push(x);
      assert.deepEqual(out, [
        { type: 'ready', linkType: 113 },
        { type: 'frame', truncated: true, dropped: 7, receivedAt: 123456789n, frame },
        { type: 'error', message: 'no device' },
      ]);
    }
  });

  test('a record longer than the bound or of an unknown type is refused', () => {
    const big = new RecordReader(10);
    big.push(encodeFrame(Buffer.alloc(20), false, 0, 0n));
    assert.throws(() => big.next(), /record of 33 bytes/);
    const odd = new RecordReader(10);
    odd.push(Buffer.from([9, 0, 0, 0, 0]));
    assert.throws(() => odd.next(), /unknown record type 9/);
  });
});
