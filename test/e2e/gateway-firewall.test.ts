/**
 * Forwarding grants (server/firewall/forward.ts) on real packets, both backends: a fourth,
 * internal host behind the gateway runs a real TCP service; the client reaches it through the
 * gateway's external port only while granted, the attacker never, a random external port opens
 * only that port for that source, routing straight to the internal host never works, live
 * sessions outlast the grant, and the path closes on time (nftables: in the kernel, with nobody
 * sweeping; iptables: by sweep()).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { waitFor } from '../../scripts/netns.js';
import { execRunner, type FirewallKind } from '../../server/firewall/index.js';
import { createForwarder, type Forwarder } from '../../server/firewall/index.js';
import { openSession, probe, probeOne, startServices } from './firewall-harness.js';
import { unavailable } from './firewall-suite.js';
import {
  createGateway,
  type GatewayTopology,
  INTERNAL4,
  INTERNAL6,
  INTERNAL_NETS,
} from './gateway-harness.js';

const EXT = 25000;

async function withGateway(
  kind: FirewallKind,
  fn: (g: GatewayTopology, fw: Forwarder) => Promise<void>,
): Promise<void> {
  const g = await createGateway();
  const fw = createForwarder(
    kind,
    { name: 'e2e', internal: INTERNAL_NETS },
    execRunner({ netns: g.topo.server.ns }),
  );
  try {
    await fw.init();
    await fn(g, fw);
  } finally {
    await fw.shutdown({ removeProtections: true }).catch(() => undefined);
    await g.destroy();
  }
}

/** Until the probe stops answering 'open' (bounded), with the backend's own way of closing. */
async function waitClosed(
  kind: FirewallKind,
  fw: Forwarder,
  check: () => Promise<boolean>,
  ms: number,
): Promise<boolean> {
  return waitFor(
    async () => {
      if (kind === 'iptables') await fw.sweep(Date.now());
      return check();
    },
    ms,
    200,
  );
}

for (const kind of ['nftables', 'iptables'] as const) {
  const skip = await unavailable(kind);
  describe(`gateway forwarding (${kind})`, { skip: skip ?? false }, () => {
    test('only the granted source reaches the internal service, only through the granted port, only while granted', () =>
      withGateway(kind, async ({ topo }, fw) => {
        const { server, client, attacker } = topo;
        const gw: ['tcp', string, number] = ['tcp', server.ipv4, EXT];
        // before: nothing forwarded, and routing straight to the inside is dropped
        assert.deepEqual(await probe(client, [gw, ['tcp', INTERNAL4, 22]]), ['refused', 'closed']);
        assert.deepEqual(await probe(attacker, [gw, ['tcp', INTERNAL4, 22]]), ['refused', 'closed']);

        await fw.grant({
          source: client.ipv4,
          proto: 'tcp',
          externalPort: EXT,
          host: INTERNAL4,
          port: 22,
          timeoutSeconds: 3,
        });
        const grantedAt = Date.now();
        assert.deepEqual(await probe(client, [gw, ['tcp', server.ipv4, EXT + 1], ['tcp', INTERNAL4, 22]]), [
          'open',
          'refused',
          'closed',
        ]);
        assert.deepEqual(await probe(attacker, [gw, ['tcp', INTERNAL4, 22]]), ['refused', 'closed']);
        const list = await fw.list();
        assert.equal(list.length, 1);
        assert.deepEqual(
          { ...list[0], expiresAt: 0 },
          { source: client.ipv4, proto: 'tcp', externalPort: EXT, host: INTERNAL4, port: 22, expiresAt: 0 },
        );

        const session = await openSession(client, server.ipv4, EXT);
        try {
          assert.ok(await session.echo('before-expiry'));
          const closed = await waitClosed(
            kind,
            fw,
            async () => (await probeOne(client, gw, 400)) !== 'open',
            8000,
          );
          assert.ok(closed, 'the grant never closed');
          const took = Date.now() - grantedAt;
          assert.ok(took >= 2500 && took < 8000, `closed after ${took} ms, granted for 3 s`);
          assert.ok(await session.echo('after-expiry'), 'an established session must outlast its grant');
        } finally {
          session.close();
        }
        assert.equal(await probeOne(attacker, gw), 'refused');
      }));

    test('IPv6: the same grant over IPv6, for that source only', () =>
      withGateway(kind, async ({ topo }, fw) => {
        const { server, client, attacker } = topo;
        const gw: ['tcp', string, number] = ['tcp', server.ipv6, EXT];
        assert.equal(await probeOne(client, gw), 'refused');
        await fw.grant({
          source: client.ipv6,
          proto: 'tcp',
          externalPort: EXT,
          host: INTERNAL6,
          port: 22,
          timeoutSeconds: 30,
        });
        assert.deepEqual(await probe(client, [gw, ['tcp', INTERNAL6, 22]]), ['open', 'closed']);
        assert.deepEqual(await probe(attacker, [gw, ['tcp', INTERNAL6, 22]]), ['refused', 'closed']);
        // the IPv4 side got nothing
        assert.equal(await probeOne(client, ['tcp', server.ipv4, EXT]), 'refused');
        await fw.flush();
        assert.equal(await probeOne(client, gw), 'refused');
      }));

    test('local forwarding: a random external port redirected to a port on the gateway itself', () =>
      withGateway(kind, async ({ topo }, fw) => {
        const { server, client, attacker } = topo;
        const svc = await startServices(server, [7022], []);
        try {
          const gw: ['tcp', string, number] = ['tcp', server.ipv4, 27123];
          assert.equal(await probeOne(client, gw), 'refused');
          await fw.grant({
            source: client.ipv4,
            proto: 'tcp',
            externalPort: 27123,
            host: 'local',
            port: 7022,
            timeoutSeconds: 30,
          });
          assert.equal(await probeOne(client, gw), 'open');
          assert.equal(await probeOne(attacker, gw), 'refused');
          // re-granting the same external port to the internal host replaces the redirect
          await fw.grant({
            source: client.ipv4,
            proto: 'tcp',
            externalPort: 27123,
            host: INTERNAL4,
            port: 22,
            timeoutSeconds: 30,
          });
          const list = await fw.list();
          assert.deepEqual(
            list.map((g) => `${g.host}:${g.port}`),
            [`${INTERNAL4}:22`],
          );
          assert.equal(await probeOne(client, gw), 'open');
        } finally {
          svc.kill('SIGKILL');
        }
      }));

    test('healthy() notices the chains being removed by an admin; init() puts them back, grants kept', () =>
      withGateway(kind, async ({ topo }, fw) => {
        const { server, client } = topo;
        await fw.grant({
          source: client.ipv4,
          proto: 'tcp',
          externalPort: EXT,
          host: INTERNAL4,
          port: 22,
          timeoutSeconds: 60,
        });
        assert.equal(await fw.healthy(), true);
        if (kind === 'nftables') await server.exec('nft', ['flush', 'chain', 'inet', 'e2e_gw', 'gw_forward']);
        else await server.exec('iptables', ['-w', '5', '-D', 'FORWARD', '-j', 'E2E_GW_FWD']);
        assert.equal(await fw.healthy(), false);
        await fw.init();
        assert.equal(await fw.healthy(), true);
        assert.equal((await fw.list()).length, 1);
        assert.equal(await probeOne(client, ['tcp', server.ipv4, EXT]), 'open');
        assert.equal(await probeOne(topo.attacker, ['tcp', INTERNAL4, 22]), 'closed');
      }));
  });
}
