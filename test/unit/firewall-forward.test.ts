/**
 * server/firewall/forward.ts, forward-nft.ts and forward-ipt.ts without running anything: option and grant validation, the exact
 * nft script a grant becomes (including replacing a key's old target), and the iptables listing
 * parser that sweep() and init() trust.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SpaError } from '../../protocol/errors.js';
import { normalizeForward, normalizeForwardOptions } from '../../server/firewall/forward.js';
import { iptFwdSpec, iptPreSpec, parseIptForward } from '../../server/firewall/forward-ipt.js';
import { nftForwardGrantScript } from '../../server/firewall/forward-nft.js';

const code = (c: string) => (e: unknown) => e instanceof SpaError && e.code === c;
const base = {
  source: '198.51.100.2',
  proto: 'tcp' as const,
  externalPort: 25000,
  host: '203.0.113.10',
  port: 22,
  timeoutSeconds: 30,
};

describe('forwarding grant validation', () => {
  test('refused: mixed families, the unspecified host, bad ports and timeouts, a /0 internal network', () => {
    assert.throws(() => normalizeForward({ ...base, host: '2001:db8:1::10' }), code('ADDRESS_INVALID'));
    assert.throws(() => normalizeForward({ ...base, host: '0.0.0.0' }), code('ADDRESS_INVALID'));
    assert.throws(
      () => normalizeForward({ ...base, host: '203.0.113.10; flush ruleset' }),
      code('ADDRESS_INVALID'),
    );
    assert.throws(() => normalizeForward({ ...base, externalPort: 0 }), code('ACCESS_SPEC'));
    assert.throws(() => normalizeForward({ ...base, timeoutSeconds: 0 }), code('ACCESS_SPEC'));
    assert.throws(() => normalizeForwardOptions({ internal: ['0.0.0.0/0'] }), code('CONFIG_INVALID'));
    assert.throws(() => normalizeForwardOptions({ internal: [] }), code('CONFIG_INVALID'));
    assert.equal(normalizeForward({ ...base, source: '::ffff:198.51.100.2' }).source, '198.51.100.2');
  });
});

describe('nft forwarding scripts', () => {
  test('a new grant adds the DNAT element and the forward element with the timeout', () => {
    assert.equal(
      nftForwardGrantScript('spa', normalizeForward(base)),
      [
        'add element inet spa_gw dnat4 { 198.51.100.2 . tcp . 25000 timeout 30s : 203.0.113.10 . 22 }',
        'add element inet spa_gw fwd4 { 198.51.100.2 . tcp . 203.0.113.10 . 22 timeout 30s }',
        'delete element inet spa_gw fwd4 { 198.51.100.2 . tcp . 203.0.113.10 . 22 }',
        'add element inet spa_gw fwd4 { 198.51.100.2 . tcp . 203.0.113.10 . 22 timeout 30s }',
        '',
      ].join('\n'),
    );
  });
  test('re-granting a key that redirected locally deletes the redirect in the same transaction', () => {
    const s = nftForwardGrantScript('spa', normalizeForward(base), [
      { source: '198.51.100.2', proto: 'tcp', externalPort: 25000, host: 'local', port: 7022, expiresAt: 0 },
    ]);
    assert.match(s, /^delete element inet spa_gw local4 \{ 198\.51\.100\.2 \. tcp \. 25000 \}$/m);
  });
});

describe('iptables forwarding listing', () => {
  test('our rules parse back to the grants they were written from; anything else is not a grant', () => {
    const g = { ...normalizeForward(base), exp: 1700000030, expiresAt: 1700000030000 };
    const local = {
      ...normalizeForward({ ...base, externalPort: 25001, host: 'local', port: 22 }),
      exp: 1700000031,
      expiresAt: 1700000031000,
    };
    const text = [
      '-N SPA_GW_PRE',
      '-A PREROUTING -j SPA_GW_PRE',
      `-A SPA_GW_PRE ${iptPreSpec(g)}`,
      `-A SPA_GW_PRE ${iptPreSpec(local)}`,
      '-A SPA_GW_PRE -s 198.51.100.9/32 -p tcp -m tcp --dport 1 -j DNAT --to-destination 203.0.113.10:22',
    ].join('\n');
    const v = parseIptForward(text, 'SPA_GW_PRE', 4);
    assert.equal(v.jumps, 1);
    assert.ok(v.jumpFirst);
    assert.deepEqual(
      v.grants.map((x) => [x.externalPort, x.host, x.port, x.exp]),
      [
        [25000, '203.0.113.10', 22, 1700000030],
        [25001, 'local', 22, 1700000031],
      ],
    );
    assert.equal(
      iptFwdSpec(g),
      '-s 198.51.100.2/32 -d 203.0.113.10/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment spa_exp_1700000030 -j ACCEPT',
    );
  });
});
