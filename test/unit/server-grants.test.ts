/**
 * server/grants.ts: what `spad status`, `spad fw-list` and `spad fw-flush` do with grants. The
 * forwarding grants of gateway mode are listed beside the input grants (external port, target,
 * expiry) and flushed with them; without gateway mode nothing changes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ActiveForward, ActiveGrant, Firewall, Forwarder } from '../../server/firewall/index.js';
import { flushGrants, grantLine, listGrants, statusGrants } from '../../server/grants.js';

const NOW = 1_700_000_000_000;

function fakes(input: ActiveGrant[], forward: ActiveForward[]) {
  const calls: string[] = [];
  const firewall = {
    list: async () => input,
    flush: async () => {
      calls.push('firewall.flush');
      input = [];
    },
  } as unknown as Firewall;
  const forwarder = {
    list: async () => forward,
    flush: async () => {
      calls.push('forwarder.flush');
      forward = [];
    },
  } as unknown as Forwarder;
  return { firewall, forwarder, calls };
}

const input: ActiveGrant = { source: '198.51.100.2', proto: 'tcp', port: 22, expiresAt: NOW + 28_000 };
const fwd4: ActiveForward = {
  source: '198.51.100.2',
  proto: 'tcp',
  externalPort: 40123,
  host: '203.0.113.10',
  port: 22,
  expiresAt: NOW + 10_400,
};
const fwd6: ActiveForward = { ...fwd4, source: '2001:db8::2', host: '2001:db8:1::10', externalPort: 40124 };
const local: ActiveForward = { ...fwd4, externalPort: 40125, host: 'local', port: 7022 };

describe('grants in spad status, fw-list and fw-flush', () => {
  test('fw-list lists forwarding grants after the input grants, as external port -> target', async () => {
    const { firewall, forwarder } = fakes([input], [fwd4, fwd6, local]);
    const list = await listGrants(firewall, forwarder);
    assert.deepEqual(list, [
      { source: '198.51.100.2', proto: 'tcp', port: 22, expiresAt: NOW + 28_000 },
      {
        source: '198.51.100.2',
        proto: 'tcp',
        port: 40123,
        expiresAt: NOW + 10_400,
        forward: '203.0.113.10:22',
      },
      {
        source: '2001:db8::2',
        proto: 'tcp',
        port: 40124,
        expiresAt: NOW + 10_400,
        forward: '[2001:db8:1::10]:22',
      },
      { source: '198.51.100.2', proto: 'tcp', port: 40125, expiresAt: NOW + 10_400, forward: 'local:7022' },
    ]);
    assert.deepEqual(statusGrants(list, NOW).map(grantLine), [
      '198.51.100.2 tcp/22 28s left',
      '198.51.100.2 tcp/40123 -> 203.0.113.10:22 10s left',
      '2001:db8::2 tcp/40124 -> [2001:db8:1::10]:22 10s left',
      '198.51.100.2 tcp/40125 -> local:7022 10s left',
    ]);
  });

  test('an expiry JSON turned into null (no timeout) reads as no timeout', () => {
    const [s] = statusGrants([{ source: '198.51.100.2', proto: 'udp', port: 53, expiresAt: null }], NOW);
    assert.deepEqual(s, { source: '198.51.100.2', port: 'udp/53', secondsLeft: null });
    assert.equal(grantLine(s as NonNullable<typeof s>), '198.51.100.2 udp/53 no timeout');
  });

  test('fw-flush removes the forwarding grants too, and without gateway mode only the input grants', async () => {
    const f = fakes([input], [fwd4]);
    await flushGrants(f.firewall, f.forwarder);
    assert.deepEqual(f.calls, ['firewall.flush', 'forwarder.flush']);
    assert.deepEqual(await listGrants(f.firewall, f.forwarder), []);
    const g = fakes([input], [fwd4]);
    await flushGrants(g.firewall, null);
    assert.deepEqual(g.calls, ['firewall.flush']);
    assert.deepEqual(await listGrants(g.firewall, null), []);
  });
});
