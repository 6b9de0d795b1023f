import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTopology, netnsUnavailable } from '../../scripts/netns.js';

const skip = await netnsUnavailable();

test(
  'topology hosts reach each other over IPv4 and IPv6 and are removed afterwards',
  {
    skip: skip ?? false,
  },
  async () => {
    const topo = await createTopology();
    try {
      const v4 = await topo.client.exec('ping', ['-c', '1', '-W', '2', topo.server.ipv4]);
      assert.equal(v4.code, 0, v4.stderr);
      const v6 = await topo.attacker.exec('ping', ['-6', '-c', '1', '-W', '2', topo.server.ipv6]);
      assert.equal(v6.code, 0, v6.stderr);
    } finally {
      await topo.destroy();
    }
    const { execFileSync } = await import('node:child_process');
    assert.ok(!execFileSync('ip', ['netns', 'list']).toString().includes(topo.id), 'namespaces left behind');
  },
);
