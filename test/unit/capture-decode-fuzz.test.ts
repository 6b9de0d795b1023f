/**
 * Property tests of the frame decoder: it reads untrusted bytes, so whatever arrives it must
 * return (never throw), and whatever it returns must lie within what was captured.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatAddress } from '../../protocol/address.js';
import { DECODE_FAILURES, type DecodeResult, decodeFrame, LINKTYPE } from '../../server/capture/decode.js';
import { ETH_IPV4, ETH_IPV6, ethernet, ext, ipv4, ipv6, sll, sll2, udp } from './capture-frames.js';

const LINKS = Object.values(LINKTYPE);
const RUNS = 3000;

function wellFormed(r: DecodeResult, frame: Uint8Array, truncated: boolean): void {
  if (!r.ok) {
    assert.ok((DECODE_FAILURES as readonly string[]).includes(r.reason));
    return;
  }
  const { payload, length, sourcePort, destinationPort } = r.udp;
  assert.equal(payload.buffer, frame.buffer);
  assert.ok(payload.byteOffset >= frame.byteOffset);
  assert.ok(payload.byteOffset + payload.length <= frame.byteOffset + frame.length);
  assert.ok(payload.length <= length && length <= 65535 - 8);
  if (!truncated) assert.equal(payload.length, length);
  assert.ok(sourcePort >= 0 && sourcePort <= 65535 && destinationPort >= 0 && destinationPort <= 65535);
}

test('random bytes under every link type never make the decoder throw', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...LINKS, 2, 105, 65535),
      fc.uint8Array({ maxLength: 200 }),
      fc.boolean(),
      (lt, frame, truncated) => {
        wellFormed(decodeFrame(lt, frame, { truncated }), frame, truncated);
      },
    ),
    { numRuns: RUNS },
  );
});

/** Valid frames and their link types, for mutation. */
const MAKERS: ReadonlyArray<readonly [number, () => Uint8Array]> = [
  [LINKTYPE.ETHERNET, () => ethernet(ETH_IPV4, ipv4(udp()))],
  [LINKTYPE.ETHERNET, () => ethernet(ETH_IPV6, ipv6(ext(60, ext(17, udp())), { next: 0 }))],
  [LINKTYPE.ETHERNET, () => ethernet(ETH_IPV4, ipv4(udp()), [0x8100])],
  [LINKTYPE.LINUX_SLL, () => sll(ETH_IPV6, ipv6(udp()))],
  [LINKTYPE.LINUX_SLL2, () => sll2(ETH_IPV4, ipv4(udp()))],
];

test('valid frames with random bytes overwritten or cut never make the decoder throw', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...MAKERS),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.nat(),
      fc.boolean(),
      ([lt, make], edits, cutAt, truncated) => {
        const full = make();
        for (const [at, v] of edits) full[at % full.length] = v;
        const frame = full.subarray(0, cutAt % (full.length + 1));
        wellFormed(decodeFrame(lt, frame, { truncated }), frame, truncated);
      },
    ),
    { numRuns: RUNS },
  );
});

test('any IPv4 or IPv6 UDP datagram round-trips through Ethernet, SLL and SLL2 framing', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 65535 }),
      fc.integer({ min: 0, max: 65535 }),
      fc.uint8Array({ maxLength: 600 }),
      fc.constantFrom('eth', 'sll', 'sll2'),
      (v6, src, dst, sport, dport, payload, link) => {
        // an IPv4-mapped IPv6 source is refused by design; make it not mapped
        if (v6 && src.subarray(0, 10).every((x) => x === 0)) src[0] = 0x20;
        const ip = v6
          ? ipv6(udp({ sport, dport, payload }), { src, dst })
          : ipv4(udp({ sport, dport, payload }), {
              src: [...src.subarray(0, 4)],
              dst: [...dst.subarray(0, 4)],
            });
        const type = v6 ? ETH_IPV6 : ETH_IPV4;
        const [lt, frame] =
          link === 'eth'
            ? [LINKTYPE.ETHERNET, ethernet(type, ip)]
            : link === 'sll'
              ? [LINKTYPE.LINUX_SLL, sll(type, ip)]
              : [LINKTYPE.LINUX_SLL2, sll2(type, ip)];
        const r = decodeFrame(lt, frame);
        assert.ok(r.ok, r.ok ? '' : r.reason);
        const fam = v6 ? 6 : 4;
        const n = v6 ? 16 : 4;
        assert.equal(r.udp.family, fam);
        assert.equal(r.udp.source, formatAddress({ family: fam, bytes: src.subarray(0, n) }));
        assert.equal(r.udp.destination, formatAddress({ family: fam, bytes: dst.subarray(0, n) }));
        assert.equal(r.udp.sourcePort, sport);
        assert.equal(r.udp.destinationPort, dport);
        assert.deepEqual(Buffer.from(r.udp.payload), Buffer.from(payload));
      },
    ),
    { numRuns: 1000 },
  );
});
