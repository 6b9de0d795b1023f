/**
 * Attack: a datagram to the SPA port of *another* host reaches our capture. libpcap runs the
 * device in promiscuous mode, so on a hub, a bridge that floods, a mirror port or `any` on a
 * router, frames for other hosts arrive too. Such a knock, meant for (or aimed at) someone else,
 * must not open our firewall: only datagrams whose destination is one of this host's own
 * addresses may reach the pipeline.
 *
 *   <id>-client 198.51.100.2 / 2001:db8::2 ──┐   bridge with ageing 0: floods every frame (a hub)
 *   <id>-attacker 198.51.100.3 / 2001:db8::3 ─┼── br0 ── <id>-server 198.51.100.1 / 2001:db8::1
 *     (the other host the datagrams are for)  ┘              pcap capture on eth0
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTopology, netnsUnavailable, run, type Topology } from '../../scripts/netns.js';
import { type Harness, sendFrom, startHarness } from './fixtures/capture-control.js';

const skip = await netnsUnavailable();
const PORT = 62201;

describe('datagrams for another host seen by a promiscuous capture', { skip: skip ?? false }, () => {
  let topo: Topology;
  before(async () => {
    topo = await createTopology();
    const r = await run('ip', [
      '-n',
      `${topo.id}-sw`,
      'link',
      'set',
      'br0',
      'type',
      'bridge',
      'ageing_time',
      '0',
    ]);
    if (r.code !== 0) throw new Error(`cannot make the bridge flood: ${r.stderr.trim()}`);
  });
  after(async () => {
    await topo?.destroy();
  });

  test('a datagram to the SPA port of another host on the segment is not delivered; one to this host is', async () => {
    const pcap: Harness = startHarness(topo.server, [
      '--mode',
      'pcap',
      '--device',
      'eth0',
      '--port',
      String(PORT),
    ]);
    try {
      const e = await pcap.waitFor((x) => x.event === 'started' || x.event === 'error', 10_000);
      assert.equal(e?.event, 'started', `harness did not start: ${JSON.stringify(e)} ${pcap.stderr()}`);
      await sendFrom(topo.client, { to: topo.attacker.ipv4, port: PORT, payloadHex: 'a4' });
      await sendFrom(topo.client, { to: topo.attacker.ipv6, port: PORT, payloadHex: 'a6' });
      await sendFrom(topo.client, { to: topo.server.ipv4, port: PORT, payloadHex: 'cc' });
      const d = await pcap.waitFor((x) => x.event === 'datagram' && x.payloadHex === 'cc', 5000);
      assert.ok(d, `the datagram to this host was not delivered; stderr: ${pcap.stderr()}`);
      pcap.command('stats');
      const stats = await pcap.waitFor((x) => x.event === 'stats', 5000);
      assert.deepEqual(
        pcap.datagrams().map((x) => [x.destination, x.payloadHex]),
        [[topo.server.ipv4, 'cc']],
      );
      const rejected = (stats?.rejected ?? {}) as Record<string, number>;
      assert.ok((rejected['not-for-host'] ?? 0) >= 2, `counted: ${JSON.stringify(stats)}`);
    } finally {
      await pcap.close();
    }
  });
});
