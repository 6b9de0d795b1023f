/**
 * Fault: an admin removes spad's firewall rules while it runs (`nft delete table inet spa`; with
 * iptables, the jump from INPUT and then our chain's rules). The protected port is open to
 * everyone until spad notices: it must restore its rules (a firewall_restored audit line) within
 * a few seconds, after which the port is closed again and knocks work as before.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { netnsUnavailable, waitFor } from '../../scripts/netns.js';
import { type FaultRig, faultRig } from './faults-harness.js';
import { sendRaw } from './spad-harness.js';

const skip = await netnsUnavailable();

for (const backend of ['nftables', 'iptables'] as const) {
  describe(`our ${backend} rules deleted by an admin while spad runs`, { skip: skip ?? false }, () => {
    let rig: FaultRig;
    before(async () => {
      rig = await faultRig({ backend });
    });
    after(async () => rig?.close());

    async function removedThenRestored(remove: () => Promise<void>): Promise<number> {
      assert.equal(await rig.ssh('attacker'), 'closed');
      const mark = rig.spad.lines.length;
      const t0 = Date.now();
      await remove();
      const restored = await rig.spad.waitFor((l) => l.event === 'firewall_restored', 10_000, mark);
      const ms = Date.now() - t0;
      console.log(`${backend}: restored after ${ms} ms: ${String(restored.detail)}`);
      assert.equal(await rig.ssh('attacker'), 'closed');
      return ms;
    }

    const inServer = async (cmd: string, args: string[]): Promise<void> => {
      const r = await rig.topo.server.exec(cmd, args);
      assert.equal(r.code, 0, r.stderr);
    };

    if (backend === 'nftables') {
      test('the whole table deleted: spad restores it and the port is closed again', async () => {
        await removedThenRestored(() => inServer('nft', ['delete', 'table', 'inet', 'spa']));
      });
      test('our chain flushed: spad restores it', async () => {
        const list = await rig.topo.server.exec('nft', ['-a', 'list', 'table', 'inet', 'spa']);
        const chain = /chain (\S+) \{/.exec(list.stdout)?.[1] ?? 'input';
        await removedThenRestored(() => inServer('nft', ['flush', 'chain', 'inet', 'spa', chain]));
      });
    } else {
      test('the jump from INPUT deleted: spad restores it and the port is closed again', async () => {
        const rules = await rig.topo.server.exec('iptables', ['-S', 'INPUT']);
        const jump = rules.stdout.split('\n').find((l) => l.startsWith('-A INPUT -j '));
        assert.ok(jump, rules.stdout);
        await removedThenRestored(() => inServer('iptables', ['-D', ...jump.slice(3).split(' ')]));
      });
      test('our chain flushed: spad restores it', async () => {
        const rules = await rig.topo.server.exec('iptables', ['-S', 'INPUT']);
        const chain = rules.stdout
          .split('\n')
          .find((l) => l.startsWith('-A INPUT -j '))
          ?.split(' ')[3];
        assert.ok(chain, rules.stdout);
        await removedThenRestored(() => inServer('iptables', ['-F', chain]));
      });
    }

    test('after the restore a knock opens the port for the client only', async () => {
      const [k] = await rig.knocks(1);
      const mark = rig.spad.lines.length;
      await sendRaw(rig.topo.client, rig.topo.server.ipv4, Buffer.from(k as string, 'hex'));
      await rig.spad.waitFor((l) => l.event === 'grant', 5000, mark);
      assert.ok(await waitFor(async () => (await rig.ssh('client')) === 'open', 2000, 50));
      assert.equal(await rig.ssh('attacker'), 'closed');
    });
  });
}
