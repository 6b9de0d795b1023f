import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  addressEquals,
  canonicalAddress,
  cidrContains,
  formatAddress,
  formatCidr,
  parseAddress,
  parseCidr,
  tryParseAddress,
  unmapV4,
} from '../../protocol/address.js';
import { ConfigError } from '../../protocol/errors.js';

const bytes = (text: string) => Array.from(parseAddress(text).bytes);

function invalid(fn: () => unknown, field?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.code, 'ADDRESS_INVALID');
    if (field !== undefined) assert.equal(e.field, field);
    return true;
  });
}

describe('IPv4 addresses', () => {
  test('dotted quads parse to four bytes', () => {
    assert.deepEqual(parseAddress('198.51.100.2'), { family: 4, bytes: Uint8Array.from([198, 51, 100, 2]) });
    assert.deepEqual(bytes('0.0.0.0'), [0, 0, 0, 0]);
    assert.deepEqual(bytes('255.255.255.255'), [255, 255, 255, 255]);
  });

  test('leading zeros are refused (010 is octal to some parsers and decimal to others)', () => {
    for (const t of ['010.0.0.1', '192.0.2.01', '192.0.02.1', '00.0.0.0', '1.2.3.004']) {
      assert.equal(tryParseAddress(t), null, t);
    }
  });

  test('out-of-range octets, wrong part counts, signs, spaces and hex forms are refused', () => {
    for (const t of [
      '256.0.0.1',
      '1.2.3',
      '1.2.3.4.5',
      '1.2.3.',
      '.1.2.3',
      '1..2.3',
      '+1.2.3.4',
      '-1.2.3.4',
      ' 1.2.3.4',
      '1.2.3.4 ',
      '0x7f.0.0.1',
      '2130706433',
      '1.2.3.4/32',
      '',
    ]) {
      assert.equal(tryParseAddress(t), null, JSON.stringify(t));
    }
  });

  test('parseAddress names the field in its ADDRESS_INVALID error', () => {
    invalid(() => parseAddress('300.1.1.1', 'allow_ip'), 'allow_ip');
    invalid(() => parseAddress('nope'), 'address');
  });
});

describe('IPv6 addresses', () => {
  test('full, compressed, uppercase and embedded-IPv4 forms parse', () => {
    assert.deepEqual(bytes('2001:db8:0:0:0:0:0:1'), bytes('2001:db8::1'));
    assert.deepEqual(bytes('2001:DB8::1'), bytes('2001:db8::1'));
    assert.deepEqual(bytes('::'), new Array(16).fill(0));
    assert.deepEqual(bytes('::1'), [...new Array(15).fill(0), 1]);
    assert.deepEqual(bytes('1::'), [0, 1, ...new Array(14).fill(0)]);
    assert.deepEqual(bytes('1:2:3:4:5:6:7::'), bytes('1:2:3:4:5:6:7:0'));
    assert.deepEqual(bytes('::2:3:4:5:6:7:8'), bytes('0:2:3:4:5:6:7:8'));
    assert.deepEqual(bytes('64:ff9b::192.0.2.33'), bytes('64:ff9b::c000:221'));
    assert.deepEqual(bytes('1:2:3:4:5:6:1.2.3.4'), bytes('1:2:3:4:5:6:102:304'));
    assert.equal(parseAddress('2001:db8::1').family, 6);
  });

  test('malformed forms are refused', () => {
    for (const t of [
      ':',
      ':::',
      '1::2::3',
      '12345::',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8::',
      '::1:2:3:4:5:6:7:8',
      ':1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:',
      'g::1',
      '1.2.3.4::',
      '::1.2.3.4:5',
      '1:2:3:4:5:6:7:1.2.3.4',
      '::1.2.3.04',
      'fe80::1%eth0',
      '[2001:db8::1]',
      '2001:db8::1/64',
    ]) {
      assert.equal(tryParseAddress(t), null, t);
    }
  });

  test('::ffff:1.2.3.4 is folded to the IPv4 address it maps', () => {
    const mapped = parseAddress('::ffff:1.2.3.4');
    assert.equal(mapped.family, 6);
    assert.deepEqual(unmapV4(mapped), { family: 4, bytes: Uint8Array.from([1, 2, 3, 4]) });
    assert.equal(canonicalAddress('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(canonicalAddress('::FFFF:c000:0201'), '192.0.2.1');
  });

  test('IPv4-compatible (::1.2.3.4) and NAT64 addresses stay IPv6', () => {
    assert.equal(unmapV4(parseAddress('::1.2.3.4')).family, 6);
    assert.equal(unmapV4(parseAddress('64:ff9b::1.2.3.4')).family, 6);
    assert.equal(unmapV4(parseAddress('::fffe:1.2.3.4')).family, 6);
    assert.equal(unmapV4(parseAddress('1.2.3.4')).family, 4);
  });
});

describe('canonical address text (RFC 5952)', () => {
  const cases: Array<[string, string]> = [
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // equal runs: the first is compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run is compressed
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fe80:0:0:0:a:b:c:d', 'fe80::a:b:c:d'],
    ['2001:db8::abcd:EF01', '2001:db8::abcd:ef01'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['192.0.2.1', '192.0.2.1'],
  ];
  for (const [input, want] of cases) {
    test(`${input} is written ${want}`, () => {
      assert.equal(canonicalAddress(input), want);
    });
  }

  test('formatting then parsing gives the same bytes for any address', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 4, maxLength: 4 }),
          fc.uint8Array({ minLength: 16, maxLength: 16 }),
        ),
        (b) => {
          const a = { family: b.length === 4 ? (4 as const) : (6 as const), bytes: b };
          const text = formatAddress(a);
          assert.deepEqual(parseAddress(text), a);
          assert.equal(text, text.toLowerCase());
          assert.ok(!text.includes(':::'));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('addressEquals treats a mapped IPv6 address and its IPv4 address as the same peer', () => {
    assert.ok(addressEquals(parseAddress('::ffff:198.51.100.2'), parseAddress('198.51.100.2')));
    assert.ok(addressEquals(parseAddress('2001:db8::1'), parseAddress('2001:DB8:0::1')));
    assert.ok(!addressEquals(parseAddress('198.51.100.2'), parseAddress('198.51.100.3')));
    assert.ok(!addressEquals(parseAddress('::1.2.3.4'), parseAddress('1.2.3.4')));
  });
});

describe('CIDR blocks', () => {
  test('blocks and bare addresses parse (a bare address is /32 or /128)', () => {
    assert.equal(formatCidr(parseCidr('192.0.2.0/24')), '192.0.2.0/24');
    assert.equal(formatCidr(parseCidr('198.51.100.7')), '198.51.100.7/32');
    assert.equal(formatCidr(parseCidr('2001:DB8::/32')), '2001:db8::/32');
    assert.equal(formatCidr(parseCidr('2001:db8::5')), '2001:db8::5/128');
    assert.equal(parseCidr('0.0.0.0/0').prefix, 0);
    assert.equal(parseCidr('::/0').prefix, 0);
  });

  test('host bits set after the prefix are refused', () => {
    invalid(() => parseCidr('192.0.2.1/24'));
    invalid(() => parseCidr('192.0.2.128/24'));
    invalid(() => parseCidr('255.0.0.0/7'));
    invalid(() => parseCidr('2001:db8::1/64'));
    invalid(() => parseCidr('2001:db8:0:0:8000::/64'));
    invalid(() => parseCidr('1.0.0.0/0'));
    invalid(() => parseCidr('::1/0', 'always_allow'), 'always_allow');
  });

  test('prefix lengths out of range, with leading zeros, signs or empty are refused', () => {
    for (const t of [
      '10.0.0.0/33',
      '10.0.0.0/08',
      '10.0.0.0/-1',
      '10.0.0.0/',
      '10.0.0.0/+8',
      '::/129',
      '::/1000',
      '/24',
      '10.0.0.0/8/8',
    ]) {
      invalid(() => parseCidr(t));
    }
  });

  const contains = (cidr: string, addr: string) => cidrContains(parseCidr(cidr), parseAddress(addr));

  test('/0 contains every address of its family and none of the other', () => {
    assert.ok(contains('0.0.0.0/0', '0.0.0.0'));
    assert.ok(contains('0.0.0.0/0', '255.255.255.255'));
    assert.ok(!contains('0.0.0.0/0', '::'));
    assert.ok(!contains('0.0.0.0/0', '2001:db8::1'));
    assert.ok(contains('::/0', '::'));
    assert.ok(contains('::/0', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'));
  });

  test('/7 matches on its first seven bits only', () => {
    assert.ok(contains('254.0.0.0/7', '254.0.0.0'));
    assert.ok(contains('254.0.0.0/7', '255.255.255.255'));
    assert.ok(!contains('254.0.0.0/7', '253.255.255.255'));
    assert.ok(contains('fc00::/7', 'fc00::'));
    assert.ok(contains('fc00::/7', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'));
    assert.ok(!contains('fc00::/7', 'fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'));
    assert.ok(!contains('fc00::/7', 'fe00::'));
  });

  test('/24 includes .0 and .255 and excludes the neighbouring blocks', () => {
    assert.ok(contains('192.0.2.0/24', '192.0.2.0'));
    assert.ok(contains('192.0.2.0/24', '192.0.2.255'));
    assert.ok(!contains('192.0.2.0/24', '192.0.1.255'));
    assert.ok(!contains('192.0.2.0/24', '192.0.3.0'));
  });

  test('/32 matches one address exactly', () => {
    assert.ok(contains('198.51.100.7/32', '198.51.100.7'));
    assert.ok(!contains('198.51.100.7/32', '198.51.100.6'));
    assert.ok(!contains('198.51.100.7/32', '198.51.100.8'));
    assert.ok(!contains('198.51.100.7/32', '199.51.100.7'));
  });

  test('/64 covers its whole interface-id space and nothing past it', () => {
    assert.ok(contains('2001:db8:0:1::/64', '2001:db8:0:1::'));
    assert.ok(contains('2001:db8:0:1::/64', '2001:db8:0:1:ffff:ffff:ffff:ffff'));
    assert.ok(!contains('2001:db8:0:1::/64', '2001:db8:0:2::'));
    assert.ok(!contains('2001:db8:0:1::/64', '2001:db8:0:0:ffff:ffff:ffff:ffff'));
  });

  test('/128 matches one address exactly', () => {
    assert.ok(contains('2001:db8::7/128', '2001:db8::7'));
    assert.ok(!contains('2001:db8::7/128', '2001:db8::6'));
    assert.ok(!contains('2001:db8::7/128', '2001:db8::8'));
    assert.ok(!contains('2001:db8::7/128', '2001:db9::7'));
  });

  test('an IPv4 address never matches an IPv6 block, even ::/0 or ::ffff:0:0/96', () => {
    assert.ok(!contains('::/0', '192.0.2.1'));
    assert.ok(!contains('::ffff:0:0/96', '192.0.2.1'));
    assert.ok(!contains('::/96', '192.0.2.1'));
    assert.ok(!contains('::ffff:0:0/96', '::ffff:192.0.2.1'), 'a mapped address is judged as IPv4');
  });

  test('an IPv4-mapped IPv6 peer is judged against IPv4 blocks as its IPv4 address', () => {
    assert.ok(contains('192.0.2.0/24', '::ffff:192.0.2.9'));
    assert.ok(!contains('192.0.2.0/24', '::ffff:192.0.3.9'));
  });

  test('a block contains exactly the addresses that share its prefix bits', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 128 }),
        (net, addr, prefix) => {
          const masked = net.map((b, i) => {
            const keep = Math.max(0, Math.min(8, prefix - 8 * i));
            return b & ((0xff << (8 - keep)) & 0xff);
          });
          // keep the block out of ::ffff:0:0/96 so unmapping does not change the family
          masked[10] = 0;
          const cidr = parseCidr(`${formatAddress({ family: 6, bytes: masked })}/${prefix}`);
          let same = true;
          for (let bit = 0; bit < prefix; bit++) {
            const x = ((masked[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1;
            const y = ((addr[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1;
            if (x !== y) same = false;
          }
          const a = { family: 6 as const, bytes: addr };
          if (unmapV4(a).family === 4) return;
          assert.equal(cidrContains(cidr, a), same);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
