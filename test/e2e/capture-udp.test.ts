/**
 * UDP-socket capture (`spad --udp-server`) in the server namespace, datagrams from the client
 * namespace: one dual-stack socket for IPv4 and IPv6, canonical source addresses.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTopology, netnsUnavailable, type Topology } from '../../scripts/netns.js';
import { type DatagramEvent, type Harness, sendFrom, startHarness } from './fixtures/capture-control.js';

const skip = await netnsUnavailable();
const PORT = 62201;

async function started(h: Harness): Promise<void> {
  const e = await h.waitFor((x) => x.event === 'started' || x.event === 'error', 10_000);
  assert.equal(e?.event, 'started', `harness did not start: ${JSON.stringify(e)} ${h.stderr()}`);
}

async function nextDatagram(h: Harness, from: number): Promise<DatagramEvent> {
  const e = await h.waitFor((x) => x.event === 'datagram', 5000, from);
  assert.ok(e, `no datagram within 5 s; stderr: ${h.stderr()}`);
  return e as DatagramEvent;
}

describe('UDP socket capture', { skip: skip ?? false }, () => {
  let topo: Topology;
  before(async () => {
    topo = await createTopology();
  });
  after(async () => {
    await topo?.destroy();
  });

  test('a socket bound to :: receives IPv4 and IPv6 datagrams and names IPv4 senders as dotted quads', async () => {
    const h = startHarness(topo.server, ['--mode', 'udp', '--port', String(PORT)]);
    try {
      await started(h);
      await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, fromPort: 40011, payloadHex: '0401' });
      const d4 = await nextDatagram(h, 0);
      assert.equal(d4.source, topo.client.ipv4);
      assert.equal(d4.sourcePort, 40011);
      assert.equal(d4.destinationPort, PORT);
      assert.equal(d4.payloadHex, '0401');
      const from = h.events.length;
      await sendFrom(topo.client, { to: topo.server.ipv6, port: PORT, fromPort: 40012, payloadHex: '0601' });
      const d6 = await nextDatagram(h, from);
      assert.equal(d6.source, topo.client.ipv6);
      assert.equal(d6.sourcePort, 40012);
      assert.equal(d6.payloadHex, '0601');
    } finally {
      await h.close();
    }
  });

  test('stop() frees the port: a second start() binds it again while another process could not bind it before', async () => {
    const h = startHarness(topo.server, ['--mode', 'udp', '--port', String(PORT)]);
    let rival: Harness | undefined;
    try {
      await started(h);
      rival = startHarness(topo.server, ['--mode', 'udp', '--port', String(PORT)]);
      const clash = await rival.waitFor((x) => x.event === 'error' || x.event === 'started', 10_000);
      assert.equal(clash?.event, 'error', 'two sockets bound the same port');
      assert.equal(clash?.code, 'IO');
      await rival.close();

      h.command('stop');
      assert.ok(await h.waitFor((e) => e.event === 'stopped', 5000));
      const ss = await topo.server.exec('ss', ['-Huln', `sport = :${PORT}`]);
      assert.equal(ss.stdout.trim(), '', 'port still bound after stop()');
      const from = h.events.length;
      h.command('start');
      assert.ok(await h.waitFor((e) => e.event === 'started', 5000, from));
      await sendFrom(topo.client, { to: topo.server.ipv6, port: PORT, payloadHex: '02' });
      assert.equal((await nextDatagram(h, from)).payloadHex, '02');
    } finally {
      await h.close();
      await rival?.close();
    }
  });

  test('a datagram longer than maxPayload is reported as oversize with its length and no bytes', async () => {
    const h = startHarness(topo.server, ['--mode', 'udp', '--port', String(PORT), '--max-payload', '64']);
    try {
      await started(h);
      await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: 'ab'.repeat(65) });
      const d = await nextDatagram(h, 0);
      assert.equal(d.oversize, true);
      assert.equal(d.length, 65);
      assert.equal(d.payloadHex, '');
    } finally {
      await h.close();
    }
  });
});
