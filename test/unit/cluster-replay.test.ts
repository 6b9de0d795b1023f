/**
 * server/cluster against a real redis-server on loopback: the shared replay record lets exactly
 * one gateway accept a knock, a call is bounded in time whether Redis is down or hangs, a link
 * comes back by itself, and the cluster URL and its secrets are checked before anything starts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ClusterLink, openLink } from '../../server/cluster/connection.js';
import { replayRedisKey, SharedReplay } from '../../server/cluster/replay.js';
import { parseClusterUrl, resolveClusterSettings } from '../../server/cluster/settings.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis.js';

const skip = redisUnavailable();

function untilState(link: ClusterLink, state: 'up' | 'down', ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (link.status.state === state) return resolve();
    const timer = setTimeout(() => reject(new Error(`link not ${state} within ${ms} ms`)), ms);
    const on = (): void => {
      if (link.status.state !== state) return;
      clearTimeout(timer);
      link.redis.off('ready', on);
      link.redis.off('close', on);
      link.redis.off('error', on);
      resolve();
    };
    link.redis.on('ready', on);
    link.redis.on('close', on);
    link.redis.on('error', on);
  });
}

describe('cluster URL and settings', () => {
  test('redis://HOST:PORT/DB and rediss:// (TLS) are parsed; the database defaults to 0', () => {
    assert.deepEqual(parseClusterUrl('redis://127.0.0.1:6380/3'), {
      host: '127.0.0.1',
      port: 6380,
      db: 3,
      tls: false,
      username: null,
      url: 'redis://127.0.0.1:6380/3',
    });
    const v6 = parseClusterUrl('rediss://spa@[2001:db8::9]:6379');
    assert.equal(v6.host, '2001:db8::9');
    assert.equal(v6.tls, true);
    assert.equal(v6.username, 'spa');
    assert.equal(v6.db, 0);
  });

  test('a password in the URL is refused: every local user can read a command line', () => {
    assert.throws(
      () => parseClusterUrl('redis://:hunter2@127.0.0.1:6379'),
      (e: Error) => {
        assert.match(e.message, /password in the URL/);
        assert.doesNotMatch(e.message, /hunter2/);
        return true;
      },
    );
  });

  test('another scheme, a missing port, a bad database or a query are refused', () => {
    for (const u of [
      'http://127.0.0.1:6379',
      'redis://127.0.0.1',
      'redis://h:1/x',
      'redis://h:1/0?tls=1',
      'nope',
    ]) {
      assert.throws(() => parseClusterUrl(u), /--cluster/, u);
    }
  });

  test('cluster_fail is closed unless set to open; the timeout is bounded', () => {
    assert.equal(resolveClusterSettings({ url: 'redis://h:1' }, '/nonexistent').fail, 'closed');
    assert.equal(resolveClusterSettings({ url: 'redis://h:1', fail: 'open' }, '/nonexistent').fail, 'open');
    assert.throws(() => resolveClusterSettings({ url: 'redis://h:1', fail: 'maybe' }, '/x'), /cluster_fail/);
    assert.throws(
      () => resolveClusterSettings({ url: 'redis://h:1', timeoutMs: 0 }, '/x'),
      /cluster_timeout_ms/,
    );
  });
});

describe('shared replay record on a real redis-server', { skip: skip ?? false }, () => {
  let redis: TestRedis;
  const links: ClusterLink[] = [];
  const link = async (timeoutMs = 200, extra: { passwordFile?: string } = {}): Promise<ClusterLink> => {
    const s = resolveClusterSettings(
      { url: redis.url, timeoutMs, passwordFile: extra.passwordFile ?? null },
      '/x',
    );
    const l = await openLink(s);
    links.push(l);
    return l;
  };
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const l of links) await l.close();
    await redis?.stop();
  });

  test('the same knock claimed by three gateways at once is claimed by exactly one', async () => {
    const gws = await Promise.all([link(), link(), link()]);
    const replays = gws.map((l, i) => new SharedReplay(l, `gw${i}`));
    for (let round = 0; round < 20; round++) {
      const key = `AAAA:${round.toString(16).padStart(32, '0')}`;
      const r = await Promise.all(replays.map((x) => x.claim(key, 60_000)));
      assert.equal(r.filter((x) => x.kind === 'claimed').length, 1, `round ${round}`);
      assert.equal(r.filter((x) => x.kind === 'taken').length, 2, `round ${round}`);
    }
  });

  test('a claim expires with the freshness window (PX ttl)', async () => {
    const l = await link();
    const r = new SharedReplay(l, 'gw');
    assert.deepEqual(await r.claim('BBBB:01', 5000), { kind: 'claimed' });
    const pttl = await l.redis.pttl(replayRedisKey('BBBB:01'));
    assert.ok(pttl > 0 && pttl <= 5000, `pttl ${pttl}`);
  });

  test('a release deletes only this gateway’s own claim, never another’s', async () => {
    const [a, b] = await Promise.all([link(), link()]);
    const ra = new SharedReplay(a, 'a');
    const rb = new SharedReplay(b, 'b');
    assert.equal((await ra.claim('CCCC:01', 60_000)).kind, 'claimed');
    assert.equal(await rb.release('CCCC:01'), false);
    assert.equal((await rb.claim('CCCC:01', 60_000)).kind, 'taken');
    assert.equal(await ra.release('CCCC:01'), true);
    assert.equal((await rb.claim('CCCC:01', 60_000)).kind, 'claimed');
  });

  test('a hung Redis (SIGSTOP) makes a claim fail within its bound, not hang', async () => {
    const l = await link(150);
    const r = new SharedReplay(l, 'gw');
    const pid = Number((await l.redis.info('server')).match(/process_id:(\d+)/)?.[1]);
    assert.ok(pid > 0);
    process.kill(pid, 'SIGSTOP');
    try {
      const t0 = process.hrtime.bigint();
      const res = await r.claim('DDDD:01', 60_000);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      assert.equal(res.kind, 'unavailable');
      assert.ok(ms < 1500, `took ${ms} ms`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  test('Redis stopped: claims are unavailable at once; Redis back: the link reconnects by itself', async () => {
    const l = await link(200);
    const r = new SharedReplay(l, 'gw');
    assert.equal(l.status.state, 'up');
    await redis.stop();
    await untilState(l, 'down');
    const t0 = Date.now();
    const res = await r.claim('EEEE:01', 60_000);
    assert.equal(res.kind, 'unavailable');
    assert.ok(Date.now() - t0 < 250);
    await redis.start();
    await untilState(l, 'up');
    assert.deepEqual(await r.claim('EEEE:01', 60_000), { kind: 'claimed' });
  });
});

describe('TLS (rediss://) on a real redis-server', { skip: skip ?? false }, () => {
  test('with the CA file the link is up and claims; without it the certificate is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spa-cluster-tls-'));
    const ssl = (args: string[]): void => {
      const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };
    ssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=spa test CA',
    ]);
    ssl([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'redis.key',
      '-out',
      'redis.csr',
      '-subj',
      '/CN=127.0.0.1',
    ]);
    writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    ssl([
      'x509',
      '-req',
      '-in',
      'redis.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'redis.pem',
      '-days',
      '2',
      '-extfile',
      'san.cnf',
    ]);
    const redis = await startRedis({
      tls: { cert: join(dir, 'redis.pem'), key: join(dir, 'redis.key'), ca: join(dir, 'ca.pem') },
    });
    const opened: ClusterLink[] = [];
    try {
      assert.match(redis.url, /^rediss:/);
      const good = await openLink(
        resolveClusterSettings({ url: redis.url, passwordFile: null, caFile: join(dir, 'ca.pem') }, dir),
      );
      opened.push(good);
      assert.equal(good.status.state, 'up');
      assert.equal((await new SharedReplay(good, 'a').claim('TLS0:01', 1000)).kind, 'claimed');
      const untrusted = await openLink(
        resolveClusterSettings({ url: redis.url, passwordFile: null, caFile: null }, dir),
      );
      opened.push(untrusted);
      assert.notEqual(untrusted.status.state, 'up');
      assert.equal((await new SharedReplay(untrusted, 'b').claim('TLS0:02', 1000)).kind, 'unavailable');
    } finally {
      for (const l of opened) await l.close();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('password file on a real redis-server', { skip: skip ?? false }, () => {
  test('a password from a 0600 file authenticates; without it claims are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spa-cluster-'));
    const redis = await startRedis({ extraArgs: ['--requirepass', 'correct horse battery'] });
    const opened: ClusterLink[] = [];
    try {
      const pw = join(dir, 'cluster.password');
      writeFileSync(pw, 'correct horse battery\n', { mode: 0o600 });
      const good = await openLink(resolveClusterSettings({ url: redis.url, passwordFile: pw }, dir));
      opened.push(good);
      assert.equal((await new SharedReplay(good, 'a').claim('FFFF:01', 1000)).kind, 'claimed');
      const none = await openLink(resolveClusterSettings({ url: redis.url, passwordFile: null }, dir));
      opened.push(none);
      assert.equal((await new SharedReplay(none, 'b').claim('FFFF:02', 1000)).kind, 'unavailable');
      chmodSync(pw, 0o644);
      await assert.rejects(
        openLink(resolveClusterSettings({ url: redis.url, passwordFile: pw }, dir)),
        /cluster password file/,
      );
    } finally {
      for (const l of opened) await l.close();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
