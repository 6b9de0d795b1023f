/**
 * Attack: gateways of one fleet share the server key, so a knock captured on its way to gateway A
 * is a valid knock for gateway B and C too, inside the freshness window. With `--cluster` the
 * used-knock record is shared (server/cluster/replay.ts, an atomic SET NX PX in Redis), so a knock
 * is accepted by exactly one gateway, from whatever address the copy comes. Redis down: under
 * cluster_fail closed the knock is refused (and not burned), under open it is accepted on the
 * local store alone and logged. Runs against a real redis-server on loopback.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ClusterLink, openLink } from '../../server/cluster/connection.js';
import { SharedReplay } from '../../server/cluster/replay.js';
import { resolveClusterSettings } from '../../server/cluster/settings.js';
import { openEnvelope, signedBytes } from '../../protocol/envelope.js';
import { memoryAudit } from '../../server/audit.js';
import { encodeLine } from '../../server/ipc.js';
import { Monitor } from '../../server/monitor.js';
import type { SharedReplayCheck } from '../../server/pipeline.js';
import { ReplayStore } from '../../server/replay.js';
import { TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis.js';
import { recordingFirewall } from '../helpers/firewall.js';
import { ATTACKER_IP, CLIENT_IP, datagram, granted, type Rig, recordFor, rig, usersOf } from './rig.js';

const skip = redisUnavailable();

describe('a knock replayed to another gateway of the fleet', { skip: skip ?? false }, () => {
  let server: TestKey;
  let alice: TestKey;
  let redis: TestRedis;
  const links: ClusterLink[] = [];
  const gateway = async (
    name: string,
    o: { fail?: 'closed' | 'open'; nat?: boolean; firewall?: ReturnType<typeof recordingFirewall> } = {},
  ): Promise<Rig> => {
    const link = await openLink(
      resolveClusterSettings({ url: redis.url, timeoutMs: 200, passwordFile: null }, '/x'),
    );
    links.push(link);
    const sr = new SharedReplay(link, name);
    const shared: SharedReplayCheck = {
      fail: o.fail ?? 'closed',
      claim: (k, t) => sr.claim(k, t),
      release: (k) => sr.release(k),
    };
    return rig({
      server,
      records: [recordFor(alice, o.nat ? { requireSourceAddress: false } : {})],
      shared,
      ...(o.firewall ? { firewall: o.firewall } : {}),
    });
  };
  const untilUp = async (): Promise<void> => {
    for (const l of links) {
      const end = Date.now() + 5000;
      while (!l.up && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.ok(l.up, 'link back up');
    }
  };

  before(async () => {
    server = await testKey('sec-server');
    alice = await testKey('sec-alice');
    redis = await startRedis();
  });
  after(async () => {
    for (const l of links) await l.close();
    await redis?.stop();
  });

  test('without a cluster, gateway B accepts the knock A already accepted (the attack this closes)', async () => {
    const a = await rig({ server, records: [recordFor(alice)] });
    const b = await rig({ server, records: [recordFor(alice)] });
    const k = await a.knock(alice);
    await granted(a, k);
    await granted(b, k);
  });

  test('accepted by A, the knock is refused by B and C from the client’s and from the attacker’s address', async () => {
    const [a, b, c] = [await gateway('a'), await gateway('b'), await gateway('c')];
    const k = await a.knock(alice);
    await granted(a, k);
    // from the attacker's address the policy refuses it first; a refused copy burns nothing
    await b.refused(k, 'SOURCE_MISMATCH', ATTACKER_IP);
    await c.refused(k, 'SOURCE_MISMATCH', ATTACKER_IP);
    await b.refused(k, 'REPLAY', CLIENT_IP);
    await c.refused(k, 'REPLAY', CLIENT_IP);
    // B recorded the knock it refused as used elsewhere: its next copy stops at step 5
    await b.refused(k, 'REPLAY_RAW', CLIENT_IP);
  });

  test('for a user allowed NAT, the attacker’s copy passes the policy and is refused as REPLAY', async () => {
    const [a, b] = [await gateway('a', { nat: true }), await gateway('b', { nat: true })];
    const k = await a.knock(alice);
    await granted(a, k);
    await b.refused(k, 'REPLAY', ATTACKER_IP);
  });

  test('the same knock sent to three gateways at once is granted by exactly one', async () => {
    const gws = [await gateway('a'), await gateway('b'), await gateway('c')];
    for (let round = 0; round < 5; round++) {
      const k = await gws[0]!.knock(alice);
      const out = await Promise.all(gws.map((g) => g.send(k)));
      assert.equal(out.filter((o) => o.ok).length, 1, `round ${round}: ${JSON.stringify(out)}`);
      assert.deepEqual(
        out.filter((o) => !o.ok),
        [
          { ok: false, code: 'REPLAY' },
          { ok: false, code: 'REPLAY' },
        ],
      );
    }
  });

  test('a knock whose firewall change failed at A gives its claim back: the resend works at B', async () => {
    const broken = recordingFirewall();
    broken.grant = async () => {
      throw new Error('nft: no such table');
    };
    const a = await gateway('a', { firewall: broken });
    const b = await gateway('b');
    const k = await a.knock(alice);
    assert.deepEqual(await a.send(k), { ok: false, code: 'FW_ERROR' });
    await granted(b, k);
  });

  test('Redis down, cluster_fail closed: refused as CLUSTER_UNAVAILABLE, not burned; Redis back: granted', async () => {
    const a = await gateway('a');
    const k = await a.knock(alice);
    await redis.stop();
    try {
      await a.refused(k, 'CLUSTER_UNAVAILABLE');
    } finally {
      await redis.start();
    }
    await untilUp();
    await granted(a, k);
  });

  test('Redis down, cluster_fail open: accepted on the local store alone, logged, still once per gateway', async () => {
    const a = await gateway('a', { fail: 'open' });
    const k = await a.knock(alice);
    await redis.stop();
    try {
      await granted(a, k);
      assert.ok(a.audit.lines.some((l) => l.event === 'cluster_open'));
      await a.refused(k, 'REPLAY_RAW');
    } finally {
      await redis.start();
    }
    await untilUp();
  });

  test('the monitor makes the claim: a decision monitor A acted on is refused by monitor B as REPLAY', async () => {
    const r = await gateway('verifier');
    const monitorOf = async (name: string) => {
      const link = await openLink(
        resolveClusterSettings({ url: redis.url, timeoutMs: 200, passwordFile: null }, '/x'),
      );
      links.push(link);
      const sr = new SharedReplay(link, name);
      const firewall = recordingFirewall();
      const audit = memoryAudit();
      const monitor = new Monitor({
        serverFingerprint: r.identity.fingerprint,
        users: () => usersOf([recordFor(alice)]),
        replay: new ReplayStore(null),
        firewall,
        audit,
        now: () => TEST_NOW.getTime(),
        maxSkewSeconds: 120,
        shared: { fail: 'closed', claim: (k, t) => sr.claim(k, t), release: (k) => sr.release(k) },
      });
      return { monitor, firewall, audit };
    };
    const [ma, mb] = [await monitorOf('ma'), await monitorOf('mb')];
    const s = signedBytes(await openEnvelope(await r.knock(alice), { server: r.identity, now: TEST_NOW }));
    const line = encodeLine({
      t: 'decision',
      source: CLIENT_IP,
      sport: 40000,
      raw: 'cd'.repeat(32),
      literal: Buffer.from(s.literal).toString('base64'),
      signature: Buffer.from(s.signature).toString('base64'),
      receivedAt: process.hrtime.bigint().toString(),
    }).trimEnd();
    assert.deepEqual(await ma.monitor.line(line), { ok: true });
    assert.deepEqual(await mb.monitor.line(line), { ok: false, code: 'REPLAY' });
    assert.equal(mb.firewall.grants.length, 0);
    assert.equal(mb.audit.lines.at(-1)?.where, 'monitor');
  });

  test('queued copies at one gateway while another holds the claim: none granted there', async () => {
    const [a, b] = [await gateway('a'), await gateway('b')];
    const k = await a.knock(alice);
    await granted(a, k);
    const before = b.firewall.grants.length;
    b.pipeline.submit(datagram(k));
    b.pipeline.submit(datagram(k, ATTACKER_IP));
    await b.pipeline.idle();
    assert.equal(b.firewall.grants.length, before);
    assert.equal(TEST_NOW.getTime(), a.clock);
  });
});
