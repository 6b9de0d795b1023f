/**
 * The behaviour both firewall backends must show on real packets, run once per backend by
 * firewall-nftables.test.ts and firewall-iptables.test.ts. Each test gets fresh namespaces (see
 * firewall-harness.ts); the firewall commands run inside the server namespace only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { netnsUnavailable, type Topology, waitFor } from '../../scripts/netns.js';
import {
  type FirewallExec,
  createFirewall,
  execRunner,
  type Firewall,
  type FirewallKind,
  type FirewallOptions,
  type PortSpec,
} from '../../server/firewall/index.js';
import {
  openSession,
  probe,
  probeOne,
  type Session,
  sleep,
  startServices,
  withTopology,
} from './firewall-harness.js';

export const SSH: PortSpec = { proto: 'tcp', port: 22 };
export const ALT: PortSpec = { proto: 'tcp', port: 2222 };
export const DNS: PortSpec = { proto: 'udp', port: 53 };
/** Not protected: must stay reachable for everyone. */
export const OPEN_PORT = 8080;
export const NAME = 'e2e';

export interface Ctx {
  topo: Topology;
  fw: Firewall;
  runner: FirewallExec;
  track: (s: Session) => void;
  /** Runs a command in the server namespace; throws on failure. */
  sh: (cmd: string, args: string[]) => Promise<string>;
}

export async function unavailable(kind: FirewallKind): Promise<string | null> {
  const why = await netnsUnavailable();
  if (why) return why;
  const probeRunner = execRunner();
  for (const bin of kind === 'nftables' ? ['nft'] : ['iptables', 'ip6tables', 'iptables-restore']) {
    const r = await probeRunner.run(bin, ['--version']);
    if (r.code !== 0) return `${bin} not installed`;
  }
  return null;
}

/** How commands reach the server namespace: spawned one by one unless a variant says otherwise. */
export type RunnerFactory = (netns: string) => FirewallExec;

export function scenario(
  kind: FirewallKind,
  body: (ctx: Ctx) => Promise<void>,
  opts: Partial<FirewallOptions> = {},
  makeRunner: RunnerFactory = (netns) => execRunner({ netns }),
): () => Promise<void> {
  return () =>
    withTopology(async (topo, track) => {
      track(await startServices(topo.server, [SSH.port, ALT.port, OPEN_PORT], [DNS.port]));
      const runner = makeRunner(topo.server.ns);
      const fw = createFirewall(
        kind,
        { protect: [SSH, ALT, DNS], alwaysAllow: [], name: NAME, ...opts },
        runner,
      );
      const sh = async (cmd: string, args: string[]) => {
        const r = await runner.run(cmd, args);
        if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
        return r.stdout;
      };
      try {
        await body({ topo, fw, runner, track, sh });
      } finally {
        runner.close?.();
      }
    });
}

/** The timer spad runs for iptables; nftables needs none. */
function sweeper(kind: FirewallKind, fw: Firewall): () => void {
  if (kind !== 'iptables') return () => undefined;
  const t = setInterval(() => {
    fw.sweep(Date.now()).catch(() => undefined);
  }, 200);
  return () => clearInterval(t);
}

export function defineFirewallSuite(
  kind: FirewallKind,
  skip: string | null,
  variant: { suffix: string; makeRunner: RunnerFactory } | null = null,
): void {
  const it = (name: string, body: (ctx: Ctx) => Promise<void>, opts?: Partial<FirewallOptions>): void => {
    void test(
      `${name}${variant?.suffix ?? ''}`,
      { skip: skip ?? false },
      scenario(kind, body, opts, variant?.makeRunner),
    );
  };

  it('before any grant a protected port is dropped for everyone while unprotected ports stay reachable', async ({
    topo,
    fw,
  }) => {
    const { server, client, attacker } = topo;
    assert.deepEqual(
      await probe(client, [['tcp', server.ipv4, SSH.port]]),
      ['open'],
      'services must answer before init',
    );
    await fw.init();
    assert.equal(await fw.healthy(), true);
    for (const from of [client, attacker]) {
      assert.deepEqual(
        await probe(from, [
          ['tcp', server.ipv4, SSH.port],
          ['tcp', server.ipv6, SSH.port],
          ['udp', server.ipv4, DNS.port],
          ['tcp', server.ipv4, OPEN_PORT],
          ['tcp', server.ipv6, OPEN_PORT],
        ]),
        ['closed', 'closed', 'closed', 'open', 'open'],
        from.name,
      );
    }
  });

  it('a grant opens only the granted port, only for that IPv4 source', async ({ topo, fw }) => {
    const { server, client, attacker } = topo;
    await fw.init();
    await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 30 });
    assert.deepEqual(
      await probe(client, [
        ['tcp', server.ipv4, SSH.port],
        ['tcp', server.ipv4, ALT.port],
        ['tcp', server.ipv6, SSH.port],
      ]),
      ['open', 'closed', 'closed'],
    );
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port]), 'closed');
  });

  it('an IPv6 grant opens the port for that IPv6 source only, and not for the same host over IPv4', async ({
    topo,
    fw,
  }) => {
    const { server, client, attacker } = topo;
    await fw.init();
    await fw.grant({ source: client.ipv6, ports: [SSH, ALT], timeoutSeconds: 30 });
    assert.deepEqual(
      await probe(client, [
        ['tcp', server.ipv6, SSH.port],
        ['tcp', server.ipv6, ALT.port],
        ['tcp', server.ipv4, SSH.port],
      ]),
      ['open', 'open', 'closed'],
    );
    assert.equal(await probeOne(attacker, ['tcp', server.ipv6, SSH.port]), 'closed');
  });

  it("a UDP grant lets that source's datagrams through and no one else's", async ({ topo, fw }) => {
    const { server, client, attacker } = topo;
    await fw.init();
    await fw.grant({ source: client.ipv4, ports: [DNS], timeoutSeconds: 30 });
    assert.equal(await probeOne(client, ['udp', server.ipv4, DNS.port]), 'open');
    assert.equal(await probeOne(attacker, ['udp', server.ipv4, DNS.port]), 'closed');
    assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'closed');
  });

  it('a grant closes by itself after its timeout while a connection made during the window keeps working', async ({
    topo,
    fw,
    track,
  }) => {
    const { server, client } = topo;
    await fw.init();
    const stop = sweeper(kind, fw);
    try {
      await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 2 });
      const grantedAt = Date.now();
      const live = await openSession(client, server.ipv4, SSH.port);
      track(live);
      assert.equal(await live.echo('before-expiry'), true);
      const closed = await waitFor(
        async () => (await probeOne(client, ['tcp', server.ipv4, SSH.port], 400)) === 'closed',
        8000,
        100,
      );
      assert.ok(closed, 'the window never closed');
      assert.ok(Date.now() - grantedAt >= 1900, 'the window closed before its timeout');
      assert.equal(await live.echo('after-expiry'), true, 'the established session was cut');
      assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'closed');
    } finally {
      stop();
    }
  });

  it('list shows each grant with the time it has left, and a re-grant refreshes it instead of adding another', async ({
    topo,
    fw,
  }) => {
    const { client } = topo;
    await fw.init();
    assert.deepEqual(await fw.list(), []);
    const t0 = Date.now();
    await fw.grant({ source: client.ipv4, ports: [SSH, DNS], timeoutSeconds: 5 });
    await fw.grant({ source: client.ipv6, ports: [ALT], timeoutSeconds: 60 });
    await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 300 });
    const t1 = Date.now();
    const list = (await fw.list()).sort((a, b) => a.expiresAt - b.expiresAt);
    assert.deepEqual(
      list.map((g) => `${g.source} ${g.proto}/${g.port}`),
      [`${client.ipv4} udp/53`, `${client.ipv6} tcp/2222`, `${client.ipv4} tcp/22`],
    );
    const left = list.map((g) => g.expiresAt);
    const within = (v: number | undefined, secs: number) =>
      v !== undefined && v >= t0 + (secs - 2) * 1000 && v <= t1 + (secs + 1) * 1000;
    assert.ok(
      within(left[0], 5) && within(left[1], 60) && within(left[2], 300),
      `expiries ${left.map((v) => v - t0)}`,
    );
  });

  it('flush removes every grant and keeps the protections', async ({ topo, fw }) => {
    const { server, client } = topo;
    await fw.init();
    await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 60 });
    await fw.grant({ source: client.ipv6, ports: [SSH], timeoutSeconds: 60 });
    assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'open');
    await fw.flush();
    assert.deepEqual(await fw.list(), []);
    assert.deepEqual(
      await probe(client, [
        ['tcp', server.ipv4, SSH.port],
        ['tcp', server.ipv6, SSH.port],
        ['tcp', server.ipv4, OPEN_PORT],
      ]),
      ['closed', 'closed', 'open'],
    );
    assert.equal(await fw.healthy(), true);
  });

  it('init twice is idempotent: nothing is duplicated and live grants survive it', async ({
    topo,
    fw,
    sh,
  }) => {
    const { server, client, attacker } = topo;
    await fw.init();
    await fw.grant({ source: client.ipv4, ports: [SSH], timeoutSeconds: 60 });
    const snapshot = async () =>
      kind === 'nftables'
        ? (await sh('nft', ['list', 'table', 'inet', NAME]))
            .replace(/expires \S+/g, '')
            .replace(/packets \d+ bytes \d+/g, '')
        : (await sh('iptables', ['-S'])) + (await sh('ip6tables', ['-S']));
    const before = await snapshot();
    await fw.init();
    await fw.init();
    assert.equal(await snapshot(), before);
    if (kind === 'iptables') {
      const jumps = (await sh('iptables', ['-S', 'INPUT']))
        .split('\n')
        .filter((l) => l === '-A INPUT -j E2E_INPUT');
      assert.equal(jumps.length, 1);
    }
    assert.equal((await fw.list()).length, 1);
    assert.equal(await probeOne(client, ['tcp', server.ipv4, SSH.port]), 'open');
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port]), 'closed');
  });

  it('healthy notices our table or chain removed by an admin, and init puts the protection back', async ({
    topo,
    fw,
    sh,
  }) => {
    const { server, attacker } = topo;
    await fw.init();
    assert.equal(await fw.healthy(), true);
    if (kind === 'nftables') await sh('nft', ['delete', 'table', 'inet', NAME]);
    else await sh('iptables', ['-D', 'INPUT', '-j', 'E2E_INPUT']);
    assert.equal(await fw.healthy(), false);
    assert.equal(
      await probeOne(attacker, ['tcp', server.ipv4, SSH.port]),
      'open',
      'the damage did not open the port',
    );
    await fw.init();
    assert.equal(await fw.healthy(), true);
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port]), 'closed');
    // a bypass slipped into our chain, or a drop taken out of it, is damage too
    if (kind === 'nftables')
      await sh('nft', ['insert', 'rule', 'inet', NAME, 'input', 'tcp', 'dport', '22', 'accept']);
    else
      await sh('ip6tables', [
        '-D',
        'E2E_INPUT',
        '-p',
        'tcp',
        '-m',
        'tcp',
        '--dport',
        '22',
        '-m',
        'comment',
        '--comment',
        'spa_protect',
        '-j',
        'DROP',
      ]);
    assert.equal(await fw.healthy(), false);
    await fw.init();
    assert.equal(await fw.healthy(), true);
    assert.deepEqual(
      await probe(attacker, [
        ['tcp', server.ipv4, SSH.port],
        ['tcp', server.ipv6, SSH.port],
      ]),
      ['closed', 'closed'],
    );
  });

  it(
    'always_allow CIDRs reach protected ports without a grant, over IPv4 and IPv6',
    async ({ topo, fw }) => {
      const { server, client, attacker } = topo;
      await fw.init();
      assert.deepEqual(
        await probe(client, [
          ['tcp', server.ipv4, SSH.port],
          ['tcp', server.ipv6, ALT.port],
        ]),
        ['open', 'open'],
      );
      assert.deepEqual(
        await probe(attacker, [
          ['tcp', server.ipv4, SSH.port],
          ['tcp', server.ipv6, SSH.port],
        ]),
        ['closed', 'closed'],
      );
    },
    { alwaysAllow: ['198.51.100.2/32', '2001:db8::2/128'] },
  );

  it('shutdown removes only our table or chain when asked; without that the protections stay', async ({
    topo,
    fw,
    sh,
  }) => {
    const { server, attacker } = topo;
    // someone else's firewall state, which must survive us
    if (kind === 'nftables') await sh('nft', ['add', 'table', 'inet', 'admin']);
    else await sh('iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'DROP']);
    await fw.init();
    await fw.shutdown({ removeProtections: false });
    assert.equal(
      await probeOne(attacker, ['tcp', server.ipv4, SSH.port]),
      'closed',
      'a plain shutdown must fail closed',
    );
    await fw.shutdown({ removeProtections: true });
    assert.equal(await probeOne(attacker, ['tcp', server.ipv4, SSH.port]), 'open');
    if (kind === 'nftables') {
      const tables = await sh('nft', ['list', 'tables']);
      assert.match(tables, /table inet admin/);
      assert.doesNotMatch(tables, new RegExp(`table inet ${NAME}\\b`));
    } else {
      const all = (await sh('iptables', ['-S'])) + (await sh('ip6tables', ['-S']));
      assert.doesNotMatch(all, /E2E_INPUT/);
      assert.match(all, /-A INPUT -p tcp -m tcp --dport 9 -j DROP/);
    }
    assert.equal(await fw.healthy(), false);
  });
}

export { sleep };
