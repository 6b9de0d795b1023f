import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type DecodedUdp,
  type DecodeResult,
  decodeFrame,
  LINKTYPE,
  linkTypeFromCap,
} from '../../server/capture/decode.js';
import {
  CLIENT6,
  concat,
  ETH_IPV4,
  ETH_IPV6,
  ethernet,
  ext,
  fragHeader,
  ipv4,
  ipv6,
  nullLink,
  SERVER6,
  sll,
  sll2,
  udp,
  v6addr,
} from './capture-frames.js';

const PAYLOAD = new Uint8Array([0xc1, 0xa0, 0x00, 0xff, 0x10]);

function ok(r: DecodeResult): DecodedUdp {
  assert.ok(r.ok, `expected a datagram, got ${r.ok ? '' : r.reason}`);
  return r.udp;
}
function reason(r: DecodeResult): string {
  assert.ok(!r.ok, 'expected a rejection, got a datagram');
  return r.reason;
}
const eth4 = (ip: Uint8Array): DecodeResult => decodeFrame(LINKTYPE.ETHERNET, ethernet(ETH_IPV4, ip));
const eth6 = (ip: Uint8Array): DecodeResult => decodeFrame(LINKTYPE.ETHERNET, ethernet(ETH_IPV6, ip));

describe('link layers', () => {
  test('an Ethernet IPv4 UDP frame yields addresses, ports and exactly the payload', () => {
    const d = ok(eth4(ipv4(udp({ sport: 40001, dport: 62201, payload: PAYLOAD }))));
    assert.deepEqual(
      { ...d, payload: Array.from(d.payload) },
      {
        family: 4,
        source: '198.51.100.2',
        destination: '198.51.100.1',
        sourcePort: 40001,
        destinationPort: 62201,
        payload: Array.from(PAYLOAD),
        length: PAYLOAD.length,
      },
    );
  });

  test('an Ethernet IPv6 UDP frame yields RFC 5952 addresses', () => {
    const d = ok(eth6(ipv6(udp({ payload: PAYLOAD }))));
    assert.equal(d.family, 6);
    assert.equal(d.source, '2001:db8::2');
    assert.equal(d.destination, '2001:db8::1');
    assert.deepEqual(Array.from(d.payload), Array.from(PAYLOAD));
  });

  test('IPv6 addresses with two zero runs compress the longest, lowercase', () => {
    const src = v6addr([0x2001, 0xdb8, 0, 0, 1, 0, 0, 0]);
    const dst = v6addr([0xfe80, 0, 0, 0, 0xabcd, 0, 0, 1]);
    const d = ok(eth6(ipv6(udp(), { src, dst })));
    assert.equal(d.source, '2001:db8:0:0:1::');
    assert.equal(d.destination, 'fe80::abcd:0:0:1');
  });

  test('Ethernet padding after a short IPv4 packet is not taken as payload', () => {
    const frame = concat(
      ethernet(ETH_IPV4, ipv4(udp({ payload: new Uint8Array([7]) }))),
      new Uint8Array(20).fill(0xee),
    );
    assert.deepEqual(Array.from(ok(decodeFrame(LINKTYPE.ETHERNET, frame)).payload), [7]);
  });

  test('one 802.1Q tag (and one 802.1ad tag) is skipped', () => {
    for (const tpid of [0x8100, 0x88a8]) {
      const d = ok(
        decodeFrame(LINKTYPE.ETHERNET, ethernet(ETH_IPV4, ipv4(udp({ payload: PAYLOAD })), [tpid])),
      );
      assert.deepEqual(Array.from(d.payload), Array.from(PAYLOAD));
    }
  });

  test('a frame with two VLAN tags is not decoded (one tag is supported)', () => {
    assert.equal(
      reason(decodeFrame(LINKTYPE.ETHERNET, ethernet(ETH_IPV4, ipv4(udp()), [0x88a8, 0x8100]))),
      'not-ip',
    );
  });

  test('an ARP frame is not IP', () => {
    assert.equal(reason(decodeFrame(LINKTYPE.ETHERNET, ethernet(0x0806, new Uint8Array(28)))), 'not-ip');
  });

  test('Linux cooked (SLL) frames from the any device decode for IPv4 and IPv6', () => {
    assert.equal(ok(decodeFrame(LINKTYPE.LINUX_SLL, sll(ETH_IPV4, ipv4(udp())))).source, '198.51.100.2');
    assert.equal(ok(decodeFrame(LINKTYPE.LINUX_SLL, sll(ETH_IPV6, ipv6(udp()), 1))).source, '2001:db8::2');
  });

  test('SLL frames we sent ourselves or that were addressed to another host are dropped', () => {
    assert.equal(reason(decodeFrame(LINKTYPE.LINUX_SLL, sll(ETH_IPV4, ipv4(udp()), 4))), 'outgoing');
    assert.equal(reason(decodeFrame(LINKTYPE.LINUX_SLL, sll(ETH_IPV4, ipv4(udp()), 3))), 'not-for-host');
  });

  test('Linux cooked v2 (SLL2) frames decode, and outgoing ones are dropped', () => {
    assert.equal(
      ok(decodeFrame(LINKTYPE.LINUX_SLL2, sll2(ETH_IPV6, ipv6(udp())))).destination,
      '2001:db8::1',
    );
    assert.equal(reason(decodeFrame(LINKTYPE.LINUX_SLL2, sll2(ETH_IPV6, ipv6(udp()), 4))), 'outgoing');
  });

  test('raw IP links take the version from the packet', () => {
    for (const lt of [LINKTYPE.DLT_RAW, LINKTYPE.RAW]) {
      assert.equal(ok(decodeFrame(lt, ipv4(udp()))).family, 4);
      assert.equal(ok(decodeFrame(lt, ipv6(udp()))).family, 6);
    }
    assert.equal(ok(decodeFrame(LINKTYPE.IPV4, ipv4(udp()))).family, 4);
    assert.equal(reason(decodeFrame(LINKTYPE.IPV4, ipv6(udp()))), 'ip-header');
    assert.equal(reason(decodeFrame(LINKTYPE.IPV6, ipv4(udp()))), 'ip-header');
  });

  test('BSD loopback frames decode in either byte order', () => {
    assert.equal(ok(decodeFrame(LINKTYPE.NULL, nullLink(2, ipv4(udp()), true))).family, 4);
    assert.equal(ok(decodeFrame(LINKTYPE.NULL, nullLink(2, ipv4(udp()), false))).family, 4);
    assert.equal(ok(decodeFrame(LINKTYPE.NULL, nullLink(30, ipv6(udp())))).family, 6);
    assert.equal(reason(decodeFrame(LINKTYPE.NULL, nullLink(7, ipv4(udp())))), 'not-ip');
  });

  test('an unknown link type is refused, not guessed', () => {
    assert.equal(reason(decodeFrame(105, ipv4(udp()))), 'link-unsupported');
  });

  test('frames shorter than their link header are link-truncated', () => {
    assert.equal(reason(decodeFrame(LINKTYPE.ETHERNET, new Uint8Array(13))), 'link-truncated');
    assert.equal(
      reason(decodeFrame(LINKTYPE.ETHERNET, ethernet(0x8100, new Uint8Array(2)).subarray(0, 16))),
      'link-truncated',
    );
    assert.equal(reason(decodeFrame(LINKTYPE.LINUX_SLL, new Uint8Array(15))), 'link-truncated');
    assert.equal(reason(decodeFrame(LINKTYPE.LINUX_SLL2, new Uint8Array(19))), 'link-truncated');
    assert.equal(reason(decodeFrame(LINKTYPE.NULL, new Uint8Array(3))), 'link-truncated');
    assert.equal(reason(decodeFrame(LINKTYPE.RAW, new Uint8Array(0))), 'ip-truncated');
  });

  test("cap's link-type names map to pcap_datalink() numbers", () => {
    assert.equal(linkTypeFromCap('ETHERNET'), LINKTYPE.ETHERNET);
    assert.equal(linkTypeFromCap('LINKTYPE_LINUX_SLL'), LINKTYPE.LINUX_SLL);
    assert.equal(linkTypeFromCap('RAW'), LINKTYPE.DLT_RAW);
    assert.equal(linkTypeFromCap('NULL'), LINKTYPE.NULL);
    assert.equal(linkTypeFromCap('Unknown linktype 276'), LINKTYPE.LINUX_SLL2);
    assert.equal(linkTypeFromCap('IEEE802_11_RADIO'), null);
    assert.equal(linkTypeFromCap('Unknown linktype 2x'), null);
  });
});

describe('IPv4', () => {
  test('IP options (IHL 6) are skipped', () => {
    const d = ok(eth4(ipv4(udp({ payload: PAYLOAD }), { options: new Uint8Array([1, 1, 1, 0]) })));
    assert.deepEqual(Array.from(d.payload), Array.from(PAYLOAD));
  });

  test('IHL below 5 is a bad header', () => {
    assert.equal(reason(eth4(ipv4(udp(), { ihl: 4 }))), 'ip-header');
  });

  test('IHL pointing past the captured bytes is truncated', () => {
    const frame = ipv4(new Uint8Array(0), { ihl: 15, totalLength: 60 });
    assert.equal(reason(decodeFrame(LINKTYPE.RAW, frame)), 'ip-truncated');
  });

  test('a total length shorter than the header is a bad header', () => {
    assert.equal(reason(eth4(ipv4(udp(), { totalLength: 19 }))), 'ip-header');
  });

  test('a total length longer than the frame is truncated unless the capture cut it', () => {
    const ip = ipv4(udp({ payload: new Uint8Array(100) }));
    const cut = ethernet(ETH_IPV4, ip).subarray(0, 14 + 20 + 8 + 40);
    assert.equal(reason(decodeFrame(LINKTYPE.ETHERNET, cut)), 'ip-truncated');
    const d = ok(decodeFrame(LINKTYPE.ETHERNET, cut, { truncated: true }));
    assert.equal(d.length, 100);
    assert.equal(d.payload.length, 40);
  });

  test('fragments are dropped: more-fragments set, or a non-zero offset, even the first', () => {
    assert.equal(reason(eth4(ipv4(udp(), { flagsFrag: 0x2000 }))), 'fragment');
    assert.equal(reason(eth4(ipv4(udp(), { flagsFrag: 0x0010 }))), 'fragment');
    assert.equal(reason(eth4(ipv4(udp(), { flagsFrag: 0x2000 | 0x4000 }))), 'fragment');
    assert.equal(ok(eth4(ipv4(udp(), { flagsFrag: 0 }))).family, 4);
  });

  test('TCP and ICMP are not UDP', () => {
    assert.equal(reason(eth4(ipv4(udp(), { protocol: 6 }))), 'not-udp');
    assert.equal(reason(eth4(ipv4(udp(), { protocol: 1 }))), 'not-udp');
  });

  test('an IPv6 packet under an IPv4 ethertype is a bad header', () => {
    assert.equal(reason(eth4(ipv6(udp()))), 'ip-header');
  });

  test('a version nibble that is neither 4 nor 6 on a raw link is not IP', () => {
    assert.equal(reason(decodeFrame(LINKTYPE.RAW, ipv4(udp(), { version: 5 }))), 'not-ip');
  });
});

describe('IPv6', () => {
  test('hop-by-hop, destination options and routing headers are walked to UDP', () => {
    const body = ext(60, ext(43, ext(17, udp({ payload: PAYLOAD })), 1));
    const d = ok(eth6(ipv6(body, { next: 0 })));
    assert.deepEqual(Array.from(d.payload), Array.from(PAYLOAD));
  });

  test('a hop-by-hop header that is not first is a bad header', () => {
    assert.equal(reason(eth6(ipv6(ext(0, ext(17, udp())), { next: 60 }))), 'ip-header');
  });

  test('more than 8 extension headers is refused (bounded walk)', () => {
    let body = udp();
    for (let i = 0; i < 9; i++) body = ext(i === 0 ? 17 : 60, body);
    assert.equal(reason(eth6(ipv6(body, { next: 60 }))), 'not-udp');
    let eight = udp();
    for (let i = 0; i < 8; i++) eight = ext(i === 0 ? 17 : 60, eight);
    assert.equal(ok(eth6(ipv6(eight, { next: 60 }))).family, 6);
  });

  test('an extension header longer than the payload is a bad header', () => {
    const hdr = ext(17, new Uint8Array(0), 0);
    hdr[1] = 200;
    assert.equal(reason(eth6(ipv6(concat(hdr, udp()), { next: 60 }))), 'ip-header');
  });

  test('fragments are dropped, the first one too', () => {
    assert.equal(reason(eth6(ipv6(fragHeader(17, udp(), 0, true), { next: 44 }))), 'fragment');
    assert.equal(reason(eth6(ipv6(fragHeader(17, udp(), 10, false), { next: 44 }))), 'fragment');
  });

  test('an atomic fragment (offset 0, no more fragments) is a whole datagram (RFC 6946)', () => {
    const d = ok(eth6(ipv6(fragHeader(17, udp({ payload: PAYLOAD }), 0, false), { next: 44 })));
    assert.deepEqual(Array.from(d.payload), Array.from(PAYLOAD));
  });

  test('ESP, no-next-header and TCP are not UDP', () => {
    for (const next of [50, 59, 6]) assert.equal(reason(eth6(ipv6(udp(), { next }))), 'not-udp');
  });

  test('payload length 0 (jumbogram) is a bad header', () => {
    assert.equal(reason(eth6(ipv6(udp(), { payloadLength: 0 }))), 'ip-header');
  });

  test('a payload length past the frame is truncated', () => {
    assert.equal(reason(eth6(ipv6(udp(), { payloadLength: 500 }))), 'ip-truncated');
  });

  test('an IPv4-mapped source is refused: it would name an IPv4 sender it did not come from', () => {
    const src = v6addr([0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6402]);
    assert.equal(reason(eth6(ipv6(udp(), { src }))), 'bad-source');
    assert.equal(ok(eth6(ipv6(udp(), { src: CLIENT6, dst: SERVER6 }))).family, 6);
  });
});

describe('UDP', () => {
  test('a UDP length below 8 is a bad header', () => {
    assert.equal(reason(eth4(ipv4(udp({ length: 7 })))), 'udp-header');
  });

  test('a UDP length past the IP payload is a bad header', () => {
    assert.equal(reason(eth4(ipv4(udp({ payload: PAYLOAD, length: 8 + PAYLOAD.length + 1 })))), 'udp-header');
    assert.equal(reason(eth6(ipv6(udp({ payload: PAYLOAD, length: 8 + PAYLOAD.length + 1 })))), 'udp-header');
  });

  test('bytes after the UDP length inside the IP packet are not payload', () => {
    const d = ok(eth4(ipv4(udp({ payload: PAYLOAD, length: 8 + 2 }))));
    assert.deepEqual(Array.from(d.payload), [0xc1, 0xa0]);
    assert.equal(d.length, 2);
  });

  test('an IP packet too short for the UDP header is a bad header', () => {
    assert.equal(reason(eth4(ipv4(new Uint8Array(4)))), 'udp-header');
  });

  test('an empty UDP payload is a datagram of length 0', () => {
    const d = ok(eth4(ipv4(udp({ payload: new Uint8Array(0) }))));
    assert.equal(d.length, 0);
    assert.equal(d.payload.length, 0);
  });

  test('a capture cut inside the UDP header is udp-truncated', () => {
    const frame = ethernet(ETH_IPV4, ipv4(udp({ payload: new Uint8Array(50) }))).subarray(0, 14 + 20 + 4);
    assert.equal(reason(decodeFrame(LINKTYPE.ETHERNET, frame, { truncated: true })), 'udp-truncated');
  });

  test('the payload is a view of the frame (the capture layer copies it)', () => {
    const frame = ethernet(ETH_IPV4, ipv4(udp({ payload: PAYLOAD })));
    const d = ok(decodeFrame(LINKTYPE.ETHERNET, frame));
    assert.equal(d.payload.buffer, frame.buffer);
  });
});
