import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSpaError } from '../../protocol/errors.js';
import {
  createFirewall,
  type FirewallKind,
  type FirewallOptions,
  type GrantRequest,
} from '../../server/firewall/index.js';
import { normalizeGrant, normalizeOptions } from '../../server/firewall/validate.js';
import { FakeRunner } from './firewall-fake-runner.js';

const OPTS: FirewallOptions = {
  protect: [
    { proto: 'tcp', port: 22 },
    { proto: 'udp', port: 53 },
    { proto: 'tcp', port: 65535 },
    { proto: 'tcp', port: 1 },
  ],
  alwaysAllow: [],
};
const GOOD: GrantRequest = {
  source: '198.51.100.2',
  ports: [{ proto: 'tcp', port: 22 }],
  timeoutSeconds: 30,
};

function code(e: unknown): string {
  return isSpaError(e) ? e.code : `not a SpaError: ${String(e)}`;
}

const BAD_SOURCES: unknown[] = [
  '1.2.3.4; flush ruleset',
  '1.2.3.4\nflush ruleset',
  '1.2.3.4 } ; delete table inet filter ; add element inet spa allow4 { 1.2.3.4',
  '1.2.3.4 . tcp . 23',
  '-j ACCEPT',
  '1.2.3.4 -j ACCEPT',
  ' 1.2.3.4',
  '1.2.3.4/32',
  '0.0.0.0/0',
  '999.1.1.1',
  '01.2.3.4',
  '1.2.3',
  '1.2.3.4.5',
  '0x7f.0.0.1',
  'fe80::1%eth0',
  '[2001:db8::1]',
  '2001:db8:::1',
  '2001:db8::1::2',
  '0.0.0.0',
  '::',
  '::ffff:0.0.0.0',
  '',
  'localhost',
  `${'1'.repeat(100)}`,
  42,
  null,
  undefined,
  { toString: () => '1.2.3.4' },
];

const BAD_PORTS: unknown[] = [
  [],
  [{ proto: 'tcp', port: 0 }],
  [{ proto: 'tcp', port: 65536 }],
  [{ proto: 'tcp', port: -22 }],
  [{ proto: 'tcp', port: 22.5 }],
  [{ proto: 'tcp', port: Number.NaN }],
  [{ proto: 'tcp', port: '22' }],
  [{ proto: 'tcp', port: '22; flush ruleset' }],
  [{ proto: 'icmp', port: 22 }],
  [{ proto: 'TCP', port: 22 }],
  [{ proto: 'tcp ; flush ruleset', port: 22 }],
  [{ proto: 'tcp', port: 22 }, null],
  'tcp/22',
  null,
];

const BAD_TIMEOUTS: unknown[] = [
  0,
  -1,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  86_401,
  '30',
  '30s; flush ruleset',
  null,
];

for (const kind of ['nftables', 'iptables'] as FirewallKind[]) {
  describe(`${kind} grant validation`, () => {
    const expectRefused = async (req: unknown, expected: string) => {
      const runner = new FakeRunner();
      const fw = createFirewall(kind, OPTS, runner);
      await assert.rejects(fw.grant(req as GrantRequest), (e) => {
        assert.equal(code(e), expected, `for ${JSON.stringify(req)}`);
        return true;
      });
      assert.equal(runner.calls.length, 0, `a command ran for ${JSON.stringify(req)}`);
    };

    test('a source that is not exactly one IPv4 or IPv6 address is refused before any command runs', async () => {
      for (const source of BAD_SOURCES) await expectRefused({ ...GOOD, source }, 'ADDRESS_INVALID');
    });

    test('ports outside 1..65535, non-integers, unknown protocols and empty lists are refused', async () => {
      for (const ports of BAD_PORTS) await expectRefused({ ...GOOD, ports }, 'ACCESS_SPEC');
    });

    test('a port that is not protected is refused, so a grant never opens more than the protection covers', async () => {
      await expectRefused({ ...GOOD, ports: [{ proto: 'udp', port: 22 }] }, 'PORT_NOT_ALLOWED');
      await expectRefused({ ...GOOD, ports: [{ proto: 'tcp', port: 80 }] }, 'PORT_NOT_ALLOWED');
    });

    test('a timeout of zero, below zero, fractional, over a day or not a number is refused', async () => {
      for (const timeoutSeconds of BAD_TIMEOUTS)
        await expectRefused({ ...GOOD, timeoutSeconds }, 'ACCESS_SPEC');
    });

    test('more than 16 distinct ports in one grant is refused', async () => {
      const protect = Array.from({ length: 17 }, (_, i) => ({ proto: 'tcp' as const, port: 1000 + i }));
      const runner = new FakeRunner();
      const fw = createFirewall(kind, { protect, alwaysAllow: [] }, runner);
      await assert.rejects(fw.grant({ ...GOOD, ports: protect }), (e) => code(e) === 'LIMIT_EXCEEDED');
      assert.equal(runner.calls.length, 0);
    });
  });
}

describe('firewall options validation', () => {
  const refused = (opts: unknown, expected: string) =>
    assert.throws(
      () => createFirewall('nftables', opts as FirewallOptions, new FakeRunner()),
      (e) => code(e) === expected,
      JSON.stringify(opts),
    );

  test('a table/chain name that is not a short lowercase identifier is refused', () => {
    for (const name of ['', 'SPA', '1spa', 'spa-x', 'spa; flush ruleset', 'spa x', 'a'.repeat(17), 'spa\n']) {
      refused({ ...OPTS, name }, 'CONFIG_INVALID');
    }
  });

  test('an empty or malformed protect list is refused', () => {
    refused({ ...OPTS, protect: [] }, 'ACCESS_SPEC');
    refused({ ...OPTS, protect: [{ proto: 'tcp', port: 0 }] }, 'ACCESS_SPEC');
    refused({ ...OPTS, protect: [{ proto: 'sctp', port: 22 }] }, 'ACCESS_SPEC');
  });

  test('always_allow entries must be CIDR blocks with zero host bits and a prefix of at least 1', () => {
    for (const c of [
      '10.0.0.1/8',
      '0.0.0.0/0',
      '::/0',
      '10.0.0.0/33',
      '2001:db8::/129',
      'foo',
      '10.0.0.0/8; flush ruleset',
      '10.0.0.0/08',
      '',
    ]) {
      refused({ ...OPTS, alwaysAllow: [c] }, 'ADDRESS_INVALID');
    }
    refused({ ...OPTS, alwaysAllow: '10.0.0.0/8' }, 'CONFIG_INVALID');
  });

  test('a stealth port outside 1..65535 or equal to a protected udp port is refused', () => {
    for (const stealthPort of [0, 65536, 1.5, -1, '62201'])
      refused({ ...OPTS, stealthPort }, 'CONFIG_INVALID');
    refused({ ...OPTS, stealthPort: 53 }, 'CONFIG_INVALID');
    assert.equal(normalizeOptions({ ...OPTS, stealthPort: 22 }).stealthPort, 22, 'tcp/22 is another port');
    assert.equal(normalizeOptions(OPTS).stealthPort, null);
  });

  test('always_allow duplicates are merged and bare addresses become /32 and /128', () => {
    const o = normalizeOptions({
      ...OPTS,
      alwaysAllow: ['192.0.2.7', '2001:DB8::7', '10.0.0.0/8', '10.0.0.0/8'],
    });
    assert.deepEqual(
      o.alwaysAllow.map((c) => `${c.address}/${c.prefix}`),
      ['192.0.2.7/32', '2001:db8::7/128', '10.0.0.0/8'],
    );
  });
});

describe('grant normalization', () => {
  const protect = normalizeOptions(OPTS).protect;

  test('IPv6 sources are written in canonical RFC 5952 form whatever the input spelling', () => {
    assert.equal(
      normalizeGrant({ ...GOOD, source: '2001:0DB8:0000:0000:0000:0000:0000:0002' }, protect).source,
      '2001:db8::2',
    );
    assert.equal(
      normalizeGrant({ ...GOOD, source: '2001:db8:0:0:1:0:0:1' }, protect).source,
      '2001:db8::1:0:0:1',
    );
  });

  test('an IPv4-mapped IPv6 source is granted as the IPv4 address the packet really came from', () => {
    const g = normalizeGrant({ ...GOOD, source: '::ffff:198.51.100.2' }, protect);
    assert.deepEqual([g.family, g.source], [4, '198.51.100.2']);
  });

  test('duplicate ports in one request are opened once, and ports 1 and 65535 are accepted', () => {
    const g = normalizeGrant(
      {
        ...GOOD,
        ports: [
          { proto: 'tcp', port: 22 },
          { proto: 'tcp', port: 22 },
          { proto: 'tcp', port: 1 },
          { proto: 'tcp', port: 65535 },
        ],
      },
      protect,
    );
    assert.deepEqual(
      g.ports.map((p) => p.port),
      [22, 1, 65535],
    );
  });
});
