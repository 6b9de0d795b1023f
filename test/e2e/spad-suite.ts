/**
 * spad end to end, for one firewall backend: real network namespaces, real pcap capture on the
 * server's eth0, real nftables/iptables, a real TCP service on port 22, keys made with the real
 * `spa-keys`. Knocks are sealed from the user's own keystore (the same library the `spa` client
 * uses) so that the very same bytes can be replayed later.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { resolveOwnKey, resolveServerKey } from '../../keyring/index.js';
import { parseAddress } from '../../protocol/address.js';
import { seal } from '../../protocol/envelope.js';
import { makePayload } from '../../protocol/payload.js';
import { createTopology, type Host, type Topology, waitFor } from '../../scripts/netns.js';
import { openSession, probeOne, sleep, startServices } from './firewall-harness.js';
import { type Keys, must, type Spad, sendRaw, setupKeys, startSpad } from './spad-harness.js';

export interface Knock {
  bytes: Uint8Array;
}

/** Seals a knock for `user` (home) from `from` asking for tcp/22. */
async function makeKnock(
  keys: Keys,
  home: string,
  user: string,
  source: string,
  over: { timeout?: number } = {},
): Promise<Uint8Array> {
  const own = await resolveOwnKey(home);
  const server = await resolveServerKey(home, keys.serverFingerprint);
  const now = new Date();
  const payload = makePayload({
    type: 'access',
    timestamp: Math.floor(now.getTime() / 1000),
    nonce: new Uint8Array(randomBytes(16)),
    serverFingerprint: keys.serverFingerprint,
    username: user,
    source: parseAddress(source),
    access: [{ proto: 'tcp', port: 22 }],
    timeoutSeconds: over.timeout ?? 0,
    command: null,
  });
  return seal(payload, { signingKey: own.key, serverKey: server.key, now });
}

export function defineSpadSuite(backend: 'nftables' | 'iptables', skip: string | null): void {
  describe(`spad with ${backend}`, { skip: skip ?? false }, () => {
    let topo: Topology;
    let keys: Keys;
    let alice: { home: string; fingerprint: string };
    let spad: Spad | null = null;
    const children: Array<{ kill(sig?: NodeJS.Signals): unknown }> = [];
    const args = ['--interface', 'eth0', '--protect', 'tcp/22', '--firewall', backend];

    const ssh = (h: Host, addr: string): Promise<string> => probeOne(h, ['tcp', addr, 22], 600);
    const knockFrom = async (h: Host, to: string, src: string, timeout = 3): Promise<Uint8Array> => {
      const bytes = await makeKnock(keys, alice.home, 'alice', src, { timeout });
      await sendRaw(h, to, bytes);
      return bytes;
    };

    before(async () => {
      topo = await createTopology();
      keys = await setupKeys();
      alice = await keys.enroll('alice', ['--open', 'tcp/22', '--timeout', '3', '--max-timeout', '30']);
      children.push(await startServices(topo.server, [22], []));
      spad = await startSpad(topo.server, keys.stateDir, args);
    });

    after(async () => {
      await spad?.stop();
      for (const c of children) c.kill('SIGKILL');
      await topo?.destroy();
      keys?.cleanup();
    });

    test('the protected port is closed to everyone before any knock', async () => {
      assert.equal(await ssh(topo.client, topo.server.ipv4), 'closed');
      assert.equal(await ssh(topo.attacker, topo.server.ipv4), 'closed');
    });

    test('an enrolled user knocks and connects; the attacker stays out; access closes after its timeout while the live session keeps working', async () => {
      const s = spad as Spad;
      const mark = s.lines.length;
      await knockFrom(topo.client, topo.server.ipv4, topo.client.ipv4);
      const grant = await s.waitFor((l) => l.event === 'grant', 5000, mark);
      assert.equal(grant.source, topo.client.ipv4);
      assert.equal(grant.user, 'alice');
      assert.equal(await ssh(topo.client, topo.server.ipv4), 'open');
      assert.equal(await ssh(topo.attacker, topo.server.ipv4), 'closed');
      const session = await openSession(topo.client, topo.server.ipv4, 22);
      children.push({ kill: () => session.close() });
      assert.ok(
        await waitFor(async () => (await ssh(topo.client, topo.server.ipv4)) === 'closed', 8000, 250),
        'access did not close after its 3 s timeout',
      );
      assert.equal(
        await session.echo('still-alive'),
        true,
        'an established session was cut when the window closed',
      );
      session.close();
    });

    test('a captured knock replayed from the attacker namespace is refused and opens nothing', async () => {
      const s = spad as Spad;
      const bytes = await knockFrom(topo.client, topo.server.ipv4, topo.client.ipv4);
      const mark = s.lines.length;
      await sendRaw(topo.attacker, topo.server.ipv4, bytes);
      const drop = await s.waitFor((l) => l.event === 'drop' && l.source === topo.attacker.ipv4, 5000, mark);
      assert.equal(drop.reason, 'REPLAY_RAW');
      assert.equal(await ssh(topo.attacker, topo.server.ipv4), 'closed');
    });

    test('an IPv6 knock opens the port for the IPv6 source only', async () => {
      const s = spad as Spad;
      const mark = s.lines.length;
      await knockFrom(topo.client, topo.server.ipv6, topo.client.ipv6);
      const grant = await s.waitFor((l) => l.event === 'grant', 5000, mark);
      assert.equal(grant.source, topo.client.ipv6);
      assert.equal(await ssh(topo.client, topo.server.ipv6), 'open');
      assert.equal(await ssh(topo.attacker, topo.server.ipv6), 'closed');
    });

    test('a knock replayed from the client after a daemon restart is refused', async () => {
      const bytes = await knockFrom(topo.client, topo.server.ipv4, topo.client.ipv4);
      await (spad as Spad).waitFor(
        (l) => l.event === 'grant' && l.source === topo.client.ipv4,
        5000,
        (spad as Spad).lines.length - 3,
      );
      await (spad as Spad).stop();
      spad = await startSpad(topo.server, keys.stateDir, args);
      const mark = spad.lines.length;
      await sendRaw(topo.client, topo.server.ipv4, bytes);
      const drop = await spad.waitFor((l) => l.event === 'drop', 5000, mark);
      assert.equal(drop.reason, 'REPLAY_RAW');
    });

    test('a disabled user is refused within one second of spa-keys disable, without a restart', async () => {
      const s = spad as Spad;
      const disabled = s.lines.length;
      await must('spa-keys', ['disable', 'alice', '--state-dir', keys.stateDir]);
      await s.waitFor((l) => l.event === 'reload', 1000, disabled);
      const mark = s.lines.length;
      await knockFrom(topo.client, topo.server.ipv4, topo.client.ipv4);
      const drop = await s.waitFor((l) => l.event === 'drop' || l.event === 'grant', 5000, mark);
      assert.equal(drop.reason, 'KEY_DISABLED');
      await must('spa-keys', ['enable', 'alice', '--state-dir', keys.stateDir]);
      await s.waitFor((l) => l.event === 'reload', 3000, mark);
    });

    test('spad killed with SIGKILL leaves the protected port closed and the grant expiring on time', async () => {
      const s = spad as Spad;
      assert.ok(
        await waitFor(async () => (await ssh(topo.client, topo.server.ipv4)) === 'closed', 8000, 250),
        'an earlier grant is still open',
      );
      const mark = s.lines.length;
      await knockFrom(topo.client, topo.server.ipv4, topo.client.ipv4);
      const grant = await s.waitFor((l) => l.event === 'grant', 5000, mark);
      await s.kill();
      spad = null;
      assert.equal(await ssh(topo.client, topo.server.ipv4), 'open');
      assert.equal(await ssh(topo.attacker, topo.server.ipv4), 'closed');
      if (backend === 'nftables') {
        assert.ok(
          await waitFor(async () => (await ssh(topo.client, topo.server.ipv4)) === 'closed', 8000, 250),
          'the kernel did not expire the grant after spad died',
        );
      } else {
        // iptables has no kernel timeout: the next start reconciles and removes the expired rule,
        // so start it once the grant has expired (the wait is the grant's own timeout)
        const expiresAt = Date.parse(String(grant.time)) + Number(grant.seconds) * 1000;
        assert.ok(Number.isFinite(expiresAt), `grant line without time or seconds: ${JSON.stringify(grant)}`);
        await sleep(Math.max(0, expiresAt + 250 - Date.now()));
        spad = await startSpad(topo.server, keys.stateDir, args);
        assert.ok(
          await waitFor(async () => (await ssh(topo.client, topo.server.ipv4)) === 'closed', 5000, 250),
        );
      }
      assert.equal(await ssh(topo.attacker, topo.server.ipv4), 'closed');
    });
  });
}
