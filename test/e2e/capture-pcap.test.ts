/**
 * pcap capture in the server namespace of a throw-away topology (scripts/netns.ts), knocks sent
 * from the client namespace. The capture runs in a harness process inside the namespace
 * (fixtures/capture-harness.ts) that prints one JSON line per datagram.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTopology, netnsUnavailable, type Topology } from '../../scripts/netns.js';
import {
  type DatagramEvent,
  droppedCount,
  dropUdpPort,
  type Harness,
  sendFrom,
  startHarness,
} from './fixtures/capture-control.js';

const skip = await netnsUnavailable();
const PORT = 62201;
const TABLE = 'spa_test_capture';

async function started(h: Harness): Promise<void> {
  const e = await h.waitFor((x) => x.event === 'started' || x.event === 'error', 10_000);
  assert.equal(e?.event, 'started', `harness did not start: ${JSON.stringify(e)} ${h.stderr()}`);
}

async function nextDatagram(h: Harness, from: number, timeoutMs = 5000): Promise<DatagramEvent> {
  const e = await h.waitFor((x) => x.event === 'datagram', timeoutMs, from);
  assert.ok(e, `no datagram within ${timeoutMs} ms; stderr: ${h.stderr()}`);
  return e as DatagramEvent;
}

/** Packet sockets open in the namespace (rows of /proc/net/packet after its header). */
async function packetSockets(topo: Topology): Promise<number> {
  const r = await topo.server.exec('cat', ['/proc/net/packet']);
  return r.stdout.trim().split('\n').length - 1;
}

describe('pcap capture', { skip: skip ?? false }, () => {
  let topo: Topology;
  before(async () => {
    topo = await createTopology();
    await dropUdpPort(topo.server, TABLE, PORT);
  });
  after(async () => {
    await topo?.destroy();
  });

  for (const device of ['eth0', 'any']) {
    test(`pcap on ${device} sees IPv4 and IPv6 knocks with source address, port and payload although nftables drops the port`, async () => {
      const pcap = startHarness(topo.server, ['--mode', 'pcap', '--device', device, '--port', String(PORT)]);
      // A socket on the same port shows the drop rule really drops: it must receive nothing.
      const sock = startHarness(topo.server, ['--mode', 'udp', '--port', String(PORT)]);
      try {
        await started(pcap);
        await started(sock);
        const dropsBefore = await droppedCount(topo.server, TABLE);

        const v4 = pcap.events.length;
        await sendFrom(topo.client, {
          to: topo.server.ipv4,
          port: PORT,
          fromPort: 40001,
          payloadHex: 'c1a0ff00',
        });
        const d4 = await nextDatagram(pcap, v4);
        assert.deepEqual(
          { ...d4, receivedAt: undefined, deliveredAt: undefined },
          {
            event: 'datagram',
            source: topo.client.ipv4,
            sourcePort: 40001,
            destination: topo.server.ipv4,
            destinationPort: PORT,
            payloadHex: 'c1a0ff00',
            length: 4,
            oversize: false,
            receivedAt: undefined,
            deliveredAt: undefined,
          },
        );

        const v6 = pcap.events.length;
        await sendFrom(topo.client, {
          to: topo.server.ipv6,
          port: PORT,
          fromPort: 40002,
          payloadHex: '00'.repeat(300),
        });
        const d6 = await nextDatagram(pcap, v6);
        assert.equal(d6.source, topo.client.ipv6);
        assert.equal(d6.sourcePort, 40002);
        assert.equal(d6.destination, topo.server.ipv6);
        assert.equal(d6.destinationPort, PORT);
        assert.equal(d6.payloadHex, '00'.repeat(300));

        assert.equal(await droppedCount(topo.server, TABLE), dropsBefore + 2, 'nftables did not drop both');
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(sock.datagrams().length, 0, 'the socket received what nftables should have dropped');
        assert.equal(pcap.datagrams().length, 2);
      } finally {
        await pcap.close();
        await sock.close();
      }
    });
  }

  test('pcap delivers only UDP to the SPA port: datagrams to other ports and pings are not delivered', async () => {
    const pcap = startHarness(topo.server, ['--mode', 'pcap', '--device', 'eth0', '--port', String(PORT)]);
    try {
      await started(pcap);
      await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT + 1, payloadHex: 'aa' });
      await sendFrom(topo.client, { to: topo.server.ipv6, port: PORT - 1, payloadHex: 'bb' });
      await topo.client.exec('ping', ['-c', '1', '-W', '1', topo.server.ipv4]);
      await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: 'cc' });
      const d = await nextDatagram(pcap, 0);
      assert.equal(d.payloadHex, 'cc');
      assert.equal(pcap.datagrams().length, 1);
    } finally {
      await pcap.close();
    }
  });

  test('a datagram longer than maxPayload is reported as oversize with its length and no bytes', async () => {
    const pcap = startHarness(topo.server, [
      '--mode',
      'pcap',
      '--device',
      'eth0',
      '--port',
      String(PORT),
      '--max-payload',
      '100',
    ]);
    try {
      await started(pcap);
      await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: '11'.repeat(100) });
      const fits = await nextDatagram(pcap, 0);
      assert.equal(fits.oversize, false);
      assert.equal(fits.payloadHex, '11'.repeat(100));
      const from = pcap.events.length;
      await sendFrom(topo.client, { to: topo.server.ipv6, port: PORT, payloadHex: '22'.repeat(1200) });
      const big = await nextDatagram(pcap, from);
      assert.equal(big.oversize, true);
      assert.equal(big.length, 1200);
      assert.equal(big.payloadHex, '');
    } finally {
      await pcap.close();
    }
  });

  test('stop() closes the capture socket and a second start() captures again', async () => {
    const before = await packetSockets(topo);
    const pcap = startHarness(topo.server, ['--mode', 'pcap', '--device', 'eth0', '--port', String(PORT)]);
    try {
      await started(pcap);
      assert.equal(await packetSockets(topo), before + 1);
      for (let round = 1; round <= 2; round++) {
        const from = pcap.events.length;
        await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: `0${round}` });
        assert.equal((await nextDatagram(pcap, from)).payloadHex, `0${round}`);
        pcap.command('stop');
        assert.ok(await pcap.waitFor((e) => e.event === 'stopped', 5000, from));
        assert.equal(await packetSockets(topo), before, 'capture socket still open after stop()');
        const stoppedAt = pcap.events.length;
        await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: 'dead' });
        pcap.command('start');
        assert.ok(await pcap.waitFor((e) => e.event === 'started', 5000, stoppedAt));
        assert.equal(await packetSockets(topo), before + 1);
        // the first datagram reported after the stop is one sent after the start: 'dead' was
        // neither reported while stopped nor kept for later
        await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: `e${round}` });
        assert.equal((await nextDatagram(pcap, stoppedAt)).payloadHex, `e${round}`);
      }
    } finally {
      await pcap.close();
    }
  });

  test('start() on an interface that does not exist fails with an IO error', async () => {
    const pcap = startHarness(topo.server, ['--mode', 'pcap', '--device', 'nosuch0', '--port', String(PORT)]);
    try {
      const e = await pcap.waitFor((x) => x.event === 'error' || x.event === 'started', 10_000);
      assert.equal(e?.event, 'error');
      assert.equal(e?.code, 'IO');
      assert.match(String(e?.message), /nosuch0/);
    } finally {
      await pcap.close();
    }
  });

  test('in-process pcap (isolate: false) sees a knock on eth0 too', async () => {
    const pcap = startHarness(topo.server, [
      '--mode',
      'pcap',
      '--device',
      'eth0',
      '--port',
      String(PORT),
      '--in-process',
    ]);
    try {
      await started(pcap);
      await sendFrom(topo.client, { to: topo.server.ipv6, port: PORT, fromPort: 40003, payloadHex: '5a' });
      const d = await nextDatagram(pcap, 0);
      assert.equal(d.source, topo.client.ipv6);
      assert.equal(d.sourcePort, 40003);
      assert.equal(d.payloadHex, '5a');
    } finally {
      await pcap.close();
    }
  });

  test('the interface going down and up does not kill the capture: it reports the loss and captures again', async () => {
    const pcap = startHarness(topo.server, ['--mode', 'pcap', '--device', 'eth0', '--port', String(PORT)]);
    try {
      await started(pcap);
      await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: 'a1' });
      await nextDatagram(pcap, 0);
      const down = pcap.events.length;
      assert.equal((await topo.server.exec('ip', ['link', 'set', 'eth0', 'down'])).code, 0);
      const lost = await pcap.waitFor((e) => e.event === 'error', 5000, down);
      assert.match(String(lost?.message), /capture process for "eth0" ended/);
      assert.equal((await topo.server.exec('ip', ['link', 'set', 'eth0', 'up'])).code, 0);
      // Restarted (with backoff) once the device is up again; knock until one is seen, bounded.
      let seen: DatagramEvent | undefined;
      for (let i = 0; i < 40 && !seen; i++) {
        const from = pcap.events.length;
        await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: 'a2' });
        seen =
          ((await pcap.waitFor((e) => e.event === 'datagram', 250, from)) as DatagramEvent | null) ??
          undefined;
      }
      assert.equal(
        seen?.payloadHex,
        'a2',
        `no knock seen after the device came back; stderr: ${pcap.stderr()}`,
      );
      pcap.command('stats');
      const st = await pcap.waitFor((e) => e.event === 'stats', 5000);
      assert.ok(Number(st?.restarts) >= 1);
    } finally {
      await topo.server.exec('ip', ['link', 'set', 'eth0', 'up']);
      await pcap.close();
    }
  });

  test('when spad is killed its capture process goes too: no capture socket is left open', async () => {
    const before = await packetSockets(topo);
    const pcap = startHarness(topo.server, ['--mode', 'pcap', '--device', 'eth0', '--port', String(PORT)]);
    try {
      await started(pcap);
      assert.equal(await packetSockets(topo), before + 1);
      pcap.kill('SIGKILL');
      let left = before + 1;
      for (let i = 0; i < 50 && left !== before; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = await packetSockets(topo);
      }
      assert.equal(left, before, 'the capture process outlived spad');
    } finally {
      await pcap.close();
    }
  });
});
