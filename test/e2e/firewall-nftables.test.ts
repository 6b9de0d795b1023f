import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { waitFor } from '../../scripts/netns.js';
import { createFirewall, nftShellRunner } from '../../server/firewall/index.js';
import { NftablesFirewall } from '../../server/firewall/nftables.js';
import { normalizeOptions } from '../../server/firewall/validate.js';
import { probeOne, sleep } from './firewall-harness.js';
import { ALT, defineFirewallSuite, NAME, SSH, scenario, unavailable } from './firewall-suite.js';

const skip = await unavailable('nftables');

defineFirewallSuite('nftables', skip);
defineFirewallSuite('nftables', skip, {
  suffix: ' (through one nft -i process)',
  makeRunner: (netns) => nftShellRunner({ netns }),
});

const CHILD = `
const { createFirewall, execRunner } = await import(process.argv[1]);
const fw = createFirewall('nftables', { protect: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 2222 }, { proto: 'udp', port: 53 }], alwaysAllow: [], name: '${NAME}' }, execRunner({ netns: process.argv[2] }));
await fw.init();
await fw.grant({ source: process.argv[3], ports: [{ proto: 'tcp', port: 22 }], timeoutSeconds: 2 });
console.log('granted');
setInterval(() => {}, 1000);`;

test(
  'a grant made by a process that was then SIGKILLed still expires on time, in the kernel',
  { skip: skip ?? false },
  scenario('nftables', async ({ topo, sh }) => {
    const { server, client, attacker } = topo;
    const mod = new URL('../../server/firewall/index.js', import.meta.url).href;
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, mod, server.ns, client.ipv4], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
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
    const killedAt = Date.now();
    assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'open');
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port]), 'closed');
    const closed = await waitFor(
      async () => (await probeOne(client, ['tcp', server.ipv4, SSH.port], 400)) === 'closed',
      6000,
      100,
    );
    assert.ok(closed, 'nobody is left to close it, and the kernel did not');
    assert.ok(Date.now() - killedAt < 6000);
    assert.doesNotMatch(await sh('nft', ['list', 'set', 'inet', NAME, 'allow4']), /198\.51\.100\.2/);
  }),
);

test(
  'init rebuilds an incompatible leftover table in one step and carries its live grants over',
  { skip: skip ?? false },
  scenario('nftables', async ({ topo, fw, sh, runner }) => {
    const { server, client, attacker } = topo;
    const leftover = [
      `add table inet ${NAME}`,
      `add set inet ${NAME} allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }`,
      `add set inet ${NAME} allow6 { type ipv4_addr; }`,
      `add element inet ${NAME} allow4 { ${client.ipv4} . tcp . 2222 timeout 60s }`,
      '',
    ].join('\n');
    const r = await runner.run('nft', ['-f', '-'], leftover);
    assert.equal(r.code, 0, r.stderr);
    await fw.init();
    assert.equal(await fw.healthy(), true);
    const list = await fw.list();
    assert.deepEqual(
      list.map((g) => `${g.source} ${g.proto}/${g.port}`),
      [`${client.ipv4} tcp/${ALT.port}`],
    );
    assert.ok((list[0]?.expiresAt ?? 0) > Date.now() + 50_000);
    assert.equal(await probeOne(client, ['tcp', server.ipv4, ALT.port]), 'open');
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, ALT.port]), 'closed');
    assert.match(
      await sh('nft', ['list', 'set', 'inet', NAME, 'allow6']),
      /type ipv6_addr \. inet_proto \. inet_service/,
    );
    assert.equal(await probeOne(attacker, ['tcp', server.ipv6, SSH.port]), 'closed');
  }),
);

test(
  'drops are counted in our named counter',
  { skip: skip ?? false },
  scenario('nftables', async ({ topo, fw, sh }) => {
    const { server, attacker } = topo;
    await fw.init();
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port], 300), 'closed');
    const out = await sh('nft', ['list', 'counter', 'inet', NAME, 'dropped']);
    const packets = Number(/packets (\d+)/.exec(out)?.[1] ?? 0);
    assert.ok(packets >= 1, out);
  }),
);

test(
  'the add-delete-add re-grant that older kernels need refreshes a window about to close, and init leaves no probe set',
  { skip: skip ?? false },
  scenario('nftables', async ({ topo, runner, sh }) => {
    const { server, client } = topo;
    const fw = new NftablesFirewall(
      normalizeOptions({ protect: [SSH, ALT], alwaysAllow: [], name: NAME }),
      runner,
      { refresh: 'readd' },
    );
    await fw.init();
    assert.equal(fw.refreshMode, 'readd');
    assert.doesNotMatch(await sh('nft', ['list', 'table', 'inet', NAME]), /probe/);
    await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 2 });
    await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 60 });
    await sleep(3000);
    assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'open');
    const [g, ...rest] = await fw.list();
    assert.equal(rest.length, 0);
    assert.ok(g && g.expiresAt > Date.now() + 50_000, `expires in ${g ? g.expiresAt - Date.now() : '?'} ms`);
  }),
);

test(
  'through nft -i, a script nft refuses applies nothing and is reported, and later scripts still work',
  { skip: skip ?? false },
  scenario('nftables', async ({ topo, sh }) => {
    const shell = nftShellRunner({ netns: topo.server.ns });
    try {
      const ok = await shell.run(
        'nft',
        ['-f', '-'],
        'add table inet scratch\nadd set inet scratch s { type ipv4_addr; }\nadd element inet scratch s { 192.0.2.12 }\n',
      );
      assert.deepEqual(ok, { code: 0, stdout: '', stderr: '' });
      // the kernel refuses the second command (the element exists): the first must not stay
      const bad = await shell.run(
        'nft',
        ['-f', '-'],
        'add element inet scratch s { 192.0.2.10 }\ncreate element inet scratch s { 192.0.2.12 }\n',
      );
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /File exists/);
      assert.doesNotMatch(bad.stderr, /spa_sync/);
      const list = () => sh('nft', ['list', 'set', 'inet', 'scratch', 's']);
      assert.doesNotMatch(await list(), /192\.0\.2\.10/, 'half a transaction was applied');
      // refused by nft itself (no such set), before the kernel sees anything
      const unknown = await shell.run('nft', ['-f', '-'], 'add element inet scratch nosuch { 192.0.2.11 }\n');
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /No such file or directory/);
      const again = await shell.run('nft', ['-f', '-'], 'add element inet scratch s { 192.0.2.13 }\n');
      assert.deepEqual(again, { code: 0, stdout: '', stderr: '' });
      assert.match(await list(), /192\.0\.2\.13/);
    } finally {
      shell.close();
    }
  }),
);

test(
  'when the nft -i process is killed between grants, the next grant still opens the port',
  { skip: skip ?? false },
  scenario('nftables', async ({ topo }) => {
    const { server, client } = topo;
    const shell = nftShellRunner({ netns: topo.server.ns });
    const fw = createFirewall('nftables', { protect: [SSH, ALT], alwaysAllow: [], name: NAME }, shell);
    try {
      await fw.init();
      await fw.grant({ source: client.ipv4, ports: [ALT], timeoutSeconds: 30 });
      const pid = shell.pid;
      assert.ok(pid !== undefined, 'no nft -i process was used');
      process.kill(pid, 'SIGKILL');
      // the runner has seen it exit (it forgets the pid then), as it would between two grants
      assert.ok(
        await waitFor(async () => shell.pid === undefined, 5000, 10),
        'the runner never saw nft -i exit',
      );
      await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 30 });
      assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'open');
      assert.equal((await fw.list()).length, 2);
      assert.notEqual(shell.pid, pid);
    } finally {
      shell.close();
    }
  }),
);
