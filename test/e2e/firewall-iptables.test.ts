import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { probeOne, sleep } from './firewall-harness.js';
import { defineFirewallSuite, NAME, SSH, scenario, unavailable } from './firewall-suite.js';

const skip = await unavailable('iptables');

defineFirewallSuite('iptables', skip);

const CHAIN = `${NAME.toUpperCase()}_INPUT`;

const CHILD = `
const { createFirewall, execRunner } = await import(process.argv[1]);
const fw = createFirewall('iptables', { protect: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 2222 }, { proto: 'udp', port: 53 }], alwaysAllow: [], name: '${NAME}' }, execRunner({ netns: process.argv[2] }));
await fw.init();
await fw.grant({ source: process.argv[3], ports: [{ proto: 'tcp', port: 22 }], timeoutSeconds: 1 });
await fw.grant({ source: process.argv[4], ports: [{ proto: 'tcp', port: 22 }], timeoutSeconds: 120 });
console.log('granted');
setInterval(() => {}, 1000);`;

test(
  'after a SIGKILL an iptables grant outlives its expiry, and the next init removes it while keeping unexpired ones',
  { skip: skip ?? false },
  scenario('iptables', async ({ topo, fw, sh }) => {
    const { server, client } = topo;
    const mod = new URL('../../server/firewall/index.js', import.meta.url).href;
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', CHILD, mod, server.ns, client.ipv4, client.ipv6],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      const granted = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 10_000);
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('granted')) {
            clearTimeout(t);
            resolve(true);
          }
        });
        child.on('exit', () => resolve(false));
      });
      assert.ok(granted, 'the child never granted');
    } finally {
      child.kill('SIGKILL');
    }
    await sleep(2500);
    // the kernel knows nothing of the expiry: this is why spad reconciles at start
    assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'open');
    await fw.init();
    assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'closed');
    assert.equal(await probeOne(client, ['tcp', server.ipv6, SSH.port]), 'open');
    assert.deepEqual(
      (await fw.list()).map((g) => g.source),
      [client.ipv6],
    );
    assert.doesNotMatch(await sh('iptables', ['-S', CHAIN]), /spa_exp_/);
  }),
);

test(
  'init puts the jump back on top when an admin rule above it would accept a protected port',
  { skip: skip ?? false },
  scenario('iptables', async ({ topo, fw, sh }) => {
    const { server, attacker } = topo;
    await fw.init();
    await sh('iptables', ['-I', 'INPUT', '1', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port]), 'open');
    assert.equal(await fw.healthy(), false);
    await fw.init();
    assert.equal(await fw.healthy(), true);
    const input = (await sh('iptables', ['-S', 'INPUT'])).split('\n').filter((l) => l.startsWith('-A INPUT'));
    assert.deepEqual(input, [`-A INPUT -j ${CHAIN}`, '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT']);
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port]), 'closed');
  }),
);

test(
  'grants still open the port when the INPUT policy is DROP (fwknop-style host firewall)',
  { skip: skip ?? false },
  scenario('iptables', async ({ topo, fw, sh }) => {
    const { server, client, attacker } = topo;
    await sh('iptables', [
      '-A',
      'INPUT',
      '-m',
      'conntrack',
      '--ctstate',
      'RELATED,ESTABLISHED',
      '-j',
      'ACCEPT',
    ]);
    await sh('iptables', ['-P', 'INPUT', 'DROP']);
    await fw.init();
    await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 30 });
    assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'open');
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port]), 'closed');
  }),
);
