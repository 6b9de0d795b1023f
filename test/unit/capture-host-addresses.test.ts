import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LINKTYPE } from '../../server/capture/decode.js';
import { HostAddresses, MISS_REFRESH_MS, REFRESH_MS } from '../../server/capture/host-addresses.js';
import { frameHandler, type PcapCaptureStats } from '../../server/capture/pcap.js';
import type { Datagram } from '../../server/capture/types.js';
import { ETH_IPV4, ETH_IPV6, ethernet, ipv4, ipv6, SERVER6, udp, v6addr } from './capture-frames.js';

describe('pcap: only datagrams addressed to this host reach the pipeline', () => {
  const host = new HostAddresses(() => ['198.51.100.1', '2001:db8::1', '127.0.0.1', '::1']);
  const run = (frames: Uint8Array[]) => {
    const stats: PcapCaptureStats = { received: 0, oversize: 0, decodeErrors: 0, rejected: {}, restarts: 0 };
    const got: Datagram[] = [];
    const onFrame = frameHandler(
      {
        port: 62201,
        maxPayload: 1400,
        onDatagram: (d) => got.push(d),
        report: (e) => assert.fail(String(e)),
        isLocal: (a) => host.has(a),
      },
      stats,
    );
    for (const f of frames) onFrame(LINKTYPE.ETHERNET, f, false, 0n);
    return { stats, got };
  };
  const v4To = (dst: number[]) => ethernet(ETH_IPV4, ipv4(udp(), { dst }));
  const v6To = (dst: Uint8Array) => ethernet(ETH_IPV6, ipv6(udp(), { dst }));

  test('a knock to another host, a broadcast or a multicast address is refused as not-for-host, IPv4 and IPv6', () => {
    const { stats, got } = run([
      v4To([198, 51, 100, 3]),
      v4To([198, 51, 100, 255]),
      v4To([255, 255, 255, 255]),
      v4To([224, 0, 0, 1]),
      v6To(v6addr([0x2001, 0xdb8, 0, 0, 0, 0, 0, 3])),
      v6To(v6addr([0xff02, 0, 0, 0, 0, 0, 0, 1])),
      v6To(v6addr([0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6401])), // ::ffff:198.51.100.1
    ]);
    assert.deepEqual(got, []);
    assert.deepEqual(stats.rejected, { 'not-for-host': 7 });
    assert.equal(stats.decodeErrors, 7);
    assert.equal(stats.received, 0);
  });

  test('a knock to one of our addresses is delivered, IPv4 and IPv6', () => {
    const { stats, got } = run([v4To([198, 51, 100, 1]), v6To(SERVER6)]);
    assert.deepEqual(
      got.map((d) => d.destination),
      ['198.51.100.1', '2001:db8::1'],
    );
    assert.deepEqual(stats.rejected, {});
  });
});

describe('HostAddresses', () => {
  test('addresses are compared in canonical form; zone ids and junk from the source are ignored', () => {
    const h = new HostAddresses(() => ['2001:DB8:0:0::0001', 'fe80::1%eth0', 'not an address']);
    assert.equal(h.has('2001:db8::1'), true);
    assert.equal(h.has('fe80::1'), true);
    assert.equal(h.has('not an address'), false);
  });

  test('an address added later is found on a miss, but a run of misses reads the list at most once a second', () => {
    let now = 0;
    let reads = 0;
    const list = ['198.51.100.1'];
    const h = new HostAddresses(
      () => {
        reads++;
        return [...list];
      },
      () => now,
    );
    assert.equal(h.has('198.51.100.1'), true);
    assert.equal(reads, 1);
    for (let i = 0; i < 100; i++) assert.equal(h.has('198.51.100.9'), false);
    assert.equal(reads, 1, 'misses within a second of a read do not read again');
    list.push('198.51.100.9');
    now += MISS_REFRESH_MS;
    assert.equal(h.has('198.51.100.9'), true);
    assert.equal(reads, 2);
  });

  test('a removed address stops matching after the periodic refresh; a failing source keeps the last list', () => {
    let now = 0;
    let list: string[] | null = ['198.51.100.1', '198.51.100.2'];
    const h = new HostAddresses(
      () => {
        if (list === null) throw new Error('boom');
        return list;
      },
      () => now,
    );
    assert.equal(h.has('198.51.100.2'), true);
    list = null;
    now += REFRESH_MS;
    assert.equal(h.has('198.51.100.2'), true, 'kept the last good list');
    list = ['198.51.100.1'];
    now += REFRESH_MS;
    assert.equal(h.has('198.51.100.2'), false);
    assert.equal(h.has('198.51.100.1'), true);
  });
});
