/**
 * A fleet: three spad gateways sharing one server key and one real redis-server, each in its own
 * namespace with its own nftables table, replay store and state dir. The admin host runs
 * `spa-keys --cluster`; the gateways start with only server.key/server.asc copied and take the
 * keyring from Redis.
 *
 *   <id>-client   198.51.100.2 ─┐
 *   <id>-attacker 198.51.100.3 ─┤
 *   <id>-server   198.51.100.1 ─┤ gateway A (cluster_fail closed)
 *   <id>-gwb      198.51.100.4 ─┼── bridge   gateway B (closed)
 *   <id>-gwc      198.51.100.5 ─┤            gateway C (cluster_fail open)
 *   <id>-redis    198.51.100.6 ─┤            redis-server
 *   <id>-admin    198.51.100.7 ─┘            spa-keys --cluster (the admin host)
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sealKnock } from '../../scripts/bench-lib.js';
import { createTopology, type Host, netnsUnavailable, type Topology } from '../../scripts/netns.js';
import { callControl } from '../../server/control.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis.js';
import { probeOne, startServices } from './firewall-harness.js';
import {
  type AuditLine,
  BIN,
  cli,
  type Keys,
  must,
  type Run,
  type Spad,
  sendRaw,
  setupKeys,
  startSpad,
} from './spad-harness.js';

const skip = (await netnsUnavailable()) ?? redisUnavailable();

interface Gateway {
  name: string;
  host: Host;
  stateDir: string;
  spad: Spad;
}

describe('three gateways sharing one keyring and one replay record on Redis', { skip: skip ?? false }, () => {
  let topo: Topology;
  let keys: Keys;
  let redis: TestRedis;
  let url: string;
  const services: ChildProcess[] = [];
  const gws: Gateway[] = [];
  let alice: { home: string };
  let A: Gateway, B: Gateway, C: Gateway;

  /** spa-keys on the admin host, which reaches Redis over the test network. */
  const admin = (args: readonly string[], input?: string): Promise<Run> =>
    (topo.hosts.admin as Host).exec(
      process.execPath,
      [BIN['spa-keys'], '--state-dir', keys.stateDir, '--cluster', url, ...args],
      {
        ...(input !== undefined ? { input } : {}),
        timeoutMs: 30_000,
      },
    );

  /** Enrolls `user` through Redis (the admin host), like keys.enroll but with --cluster. */
  async function enroll(user: string): Promise<{ home: string; ms: number }> {
    const home = join(keys.dir, user);
    const pub = await must('spa-keys', ['gen', '--user', user, '--home', home]);
    await must('spa-keys', ['import', join(keys.stateDir, 'server.asc'), '--home', home]);
    const r = await admin(['add', '--user', user, '--key', '-', '--open', 'tcp/22', '--yes'], pub);
    assert.equal(r.code, 0, r.stderr);
    return { home, ms: Date.now() };
  }

  const knock = async (home: string, user = 'alice'): Promise<Uint8Array> =>
    Buffer.from(
      (await sealKnock(home, { user, source: topo.client.ipv4, serverFingerprint: keys.serverFingerprint }))
        .hex,
      'hex',
    );
  /** The next audit line of `g` after `from` matching `pred`. */
  const next = (g: Gateway, from: number, pred: (l: AuditLine) => boolean, ms = 5000) =>
    g.spad.waitFor(pred, ms, from);
  const marks = () => gws.map((g) => g.spad.lines.length);
  const drop = (reason: string) => (l: AuditLine) => l.event === 'drop' && l.reason === reason;
  const grant = (l: AuditLine) => l.event === 'grant';

  before(async () => {
    topo = await createTopology(['gwb', 'gwc', 'redis', 'admin']);
    keys = await setupKeys();
    const h = (n: string): Host => topo.hosts[n] as Host;
    redis = await startRedis({ in: h('redis'), bind: h('redis').ipv4 });
    url = redis.url;
    alice = await enroll('alice');
    for (const [name, host, fail] of [
      ['A', topo.server, 'closed'],
      ['B', h('gwb'), 'closed'],
      ['C', h('gwc'), 'open'],
    ] as const) {
      const stateDir = join(keys.dir, `gw-${name}`);
      mkdirSync(stateDir, { mode: 0o700 });
      // a new gateway: the shared server key only; its keyring comes from Redis
      for (const f of ['server.key', 'server.asc']) copyFileSync(join(keys.stateDir, f), join(stateDir, f));
      const cfg = join(stateDir, 'spad.json');
      writeFileSync(cfg, JSON.stringify({ cluster: url, cluster_fail: fail, cluster_timeout_ms: 200 }));
      services.push(await startServices(host, [22], []));
      const spad = await startSpad(host, stateDir, [
        '--interface',
        'eth0',
        '--protect',
        'tcp/22',
        '--config',
        cfg,
      ]);
      gws.push({ name, host, stateDir, spad });
    }
    [A, B, C] = gws as [Gateway, Gateway, Gateway];
  });

  after(async () => {
    for (const g of gws) await g.spad.stop();
    for (const s of services) s.kill('SIGKILL');
    await redis?.stop();
    await topo?.destroy();
    keys?.cleanup();
  });

  test('each gateway took the keyring from Redis at start', async () => {
    for (const g of gws) {
      const s = (await callControl(join(g.stateDir, 'spad.sock'), 'status')) as {
        users: number;
        cluster: { state: string; keyring: { revision: number } };
      };
      assert.equal(s.users, 1, g.name);
      assert.equal(s.cluster.state, 'up', g.name);
      assert.equal(s.cluster.keyring.revision, 1, g.name);
    }
  });

  test('a knock accepted by A is refused by B and C, replayed from the attacker’s and the client’s address', async () => {
    const k = await knock(alice.home);
    const m = marks();
    await sendRaw(topo.client, A.host.ipv4, k);
    await next(A, m[0]!, grant);
    assert.equal(await probeOne(topo.client, ['tcp', A.host.ipv4, 22]), 'open');
    for (const g of [B, C]) {
      const from = g.spad.lines.length;
      await sendRaw(topo.attacker, g.host.ipv4, k);
      await next(g, from, drop('SOURCE_MISMATCH'));
      const from2 = g.spad.lines.length;
      await sendRaw(topo.client, g.host.ipv4, k);
      const l = await next(g, from2, drop('REPLAY'));
      assert.match(String(l.detail), /another gateway/);
      assert.notEqual(await probeOne(topo.client, ['tcp', g.host.ipv4, 22], 400), 'open', g.name);
    }
    assert.equal(
      B.spad.lines.slice(m[1]).filter(grant).length + C.spad.lines.slice(m[2]).filter(grant).length,
      0,
    );
  });

  test('the same knock sent to all three at once opens exactly one', async () => {
    const k = await knock(alice.home);
    const m = marks();
    await Promise.all(gws.map((g) => sendRaw(topo.client, g.host.ipv4, k)));
    // every gateway says something about it: one grant, two REPLAY
    await Promise.all(gws.map((g, i) => next(g, m[i]!, (l) => grant(l) || drop('REPLAY')(l))));
    const grants = gws.map((g, i) => g.spad.lines.slice(m[i]).filter(grant).length);
    assert.deepEqual(
      grants.reduce((a, b) => a + b),
      1,
      JSON.stringify(grants),
    );
  });

  test('spa-keys --cluster add and disable on the admin host take effect on all three within 1 s', async () => {
    let m = marks();
    const bob = await enroll('bob');
    await Promise.all(gws.map((g, i) => next(g, m[i]!, (l) => l.event === 'reload' && l.users === 2, 1000)));
    assert.ok(Date.now() - bob.ms <= 1000 + 200);
    const kb = await knock(bob.home, 'bob');
    m = marks();
    await sendRaw(topo.client, B.host.ipv4, kb);
    await next(B, m[1]!, (l) => grant(l) && l.user === 'bob');

    m = marks();
    const r = await admin(['disable', 'alice']);
    assert.equal(r.code, 0, r.stderr);
    const done = Date.now();
    await Promise.all(gws.map((g, i) => next(g, m[i]!, (l) => l.event === 'reload', 1000)));
    assert.ok(Date.now() - done <= 1000);
    for (const g of gws) {
      const from = g.spad.lines.length;
      await sendRaw(topo.client, g.host.ipv4, await knock(alice.home));
      await next(g, from, drop('KEY_DISABLED'));
    }
    m = marks();
    assert.equal((await admin(['enable', 'alice'])).code, 0);
    await Promise.all(gws.map((g, i) => next(g, m[i]!, (l) => l.event === 'reload', 1000)));
  });

  test('Redis stopped: closed refuses, open accepts and logs, no spad crashes; Redis back: knocks work, no restart', async () => {
    const m = marks();
    await redis.stop();
    await Promise.all(
      gws.map((g, i) => next(g, m[i]!, (l) => l.event === 'cluster_state' && /down/.test(String(l.detail)))),
    );
    // A and B (closed): refused, and not burned
    const ka = await knock(alice.home);
    let from = A.spad.lines.length;
    await sendRaw(topo.client, A.host.ipv4, ka);
    await next(A, from, drop('CLUSTER_UNAVAILABLE'));
    from = B.spad.lines.length;
    await sendRaw(topo.client, B.host.ipv4, await knock(alice.home));
    await next(B, from, drop('CLUSTER_UNAVAILABLE'));
    // C (open): accepted on its local store, and said so
    from = C.spad.lines.length;
    await sendRaw(topo.client, C.host.ipv4, await knock(alice.home));
    await next(C, from, grant);
    assert.ok(C.spad.lines.slice(from).some((l) => l.event === 'cluster_open'));
    for (const g of gws) {
      assert.equal(g.spad.proc.exitCode, null, `${g.name} exited`);
      const s = (await callControl(join(g.stateDir, 'spad.sock'), 'status')) as {
        cluster: { state: string };
        users: number;
      };
      assert.equal(s.cluster.state, 'down', g.name);
      assert.equal(s.users, 2, `${g.name} keeps its last good keyring`);
    }
    const st = await cli('spad', ['status', '--state-dir', A.stateDir]);
    assert.match(st.stdout, /cluster redis:\/\/198\.51\.100\.6:\d+\/0 down/);

    const m2 = marks();
    await redis.start();
    await Promise.all(
      gws.map((g, i) => next(g, m2[i]!, (l) => l.event === 'cluster_state' && /up/.test(String(l.detail)))),
    );
    // the knock A refused while Redis was down was not burned: it opens now
    from = A.spad.lines.length;
    await sendRaw(topo.client, A.host.ipv4, ka);
    await next(A, from, grant);
    from = B.spad.lines.length;
    await sendRaw(topo.client, B.host.ipv4, await knock(alice.home));
    await next(B, from, grant);
  });
});
