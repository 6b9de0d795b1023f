/**
 * The fleet's keyring in Redis (server/cluster/keyring.ts) against a real redis-server on
 * loopback: `spa-keys --cluster add|disable` on an admin state dir reaches a gateway's
 * keyring.json through pub/sub within a second; a document whoever can write to Redis forged
 * (another signer, a tampered body, an older revision) is refused and the last good keyring
 * stays; Redis down leaves the local copy alone.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { loadServerKey } from '../../keyring/allowlist.js';
import { type ClusterLink, openLink } from '../../server/cluster/connection.js';
import {
  KEYRING_CHANNEL,
  KEYRING_KEY,
  KEYRING_REV_KEY,
  KeyringSync,
  type SyncResult,
  signKeyringDocument,
} from '../../server/cluster/keyring.js';
import { resolveClusterSettings } from '../../server/cluster/settings.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis.js';
import { makeKey, runKeys, withTmp } from './keyring-helpers.js';

const skip = redisUnavailable();

async function keyringOf(
  stateDir: string,
): Promise<{ keys: Record<string, { username: string; enabled: boolean }> }> {
  return JSON.parse(await readFile(join(stateDir, 'keyring.json'), 'utf8'));
}

/** Resolves with the first result `sync` reports that matches. */
function nextResult(
  results: SyncResult[],
  listeners: Array<(r: SyncResult) => void>,
  kind: SyncResult['kind'],
  ms = 1000,
): Promise<SyncResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no '${kind}' within ${ms} ms: ${JSON.stringify(results)}`)),
      ms,
    );
    listeners.push((r) => {
      if (r.kind !== kind) return;
      clearTimeout(timer);
      resolve(r);
    });
  });
}

describe('the fleet keyring in Redis', { skip: skip ?? false }, () => {
  let redis: TestRedis;
  const links: ClusterLink[] = [];
  const syncs: KeyringSync[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const s of syncs) await s.close();
    for (const l of links) await l.close();
    await redis?.stop();
  });

  /** An admin state dir (spa-keys init) and a gateway state dir holding a copy of its server key. */
  async function fleet(dir: string) {
    const admin = join(dir, 'admin');
    const gw = join(dir, 'gw');
    assert.equal((await runKeys(['--state-dir', admin, 'init'])).code, 0);
    await mkdir(gw, { mode: 0o700 });
    for (const f of ['server.key', 'server.asc', 'keyring.json']) await copyFile(join(admin, f), join(gw, f));
    const link = await openLink(resolveClusterSettings({ url: redis.url, passwordFile: null }, gw));
    links.push(link);
    const key = await loadServerKey(gw);
    const results: SyncResult[] = [];
    const listeners: Array<(r: SyncResult) => void> = [];
    const sync = new KeyringSync(link, gw, key.toPublic(), (r) => {
      results.push(r);
      for (const l of listeners) l(r);
    });
    syncs.push(sync);
    await sync.start();
    return { admin, gw, sync, results, listeners, key, link };
  }

  test('spa-keys --cluster add and disable reach a gateway within 1 s, without a restart', async () => {
    await withTmp(async (dir) => {
      await flush(redis);
      const f = await fleet(dir);
      const alice = await makeKey({ name: 'Alice' });
      await writeFile(join(dir, 'alice.asc'), alice.publicKey);
      const added = nextResult(f.results, f.listeners, 'updated');
      const t0 = Date.now();
      const r = await runKeys([
        '--state-dir',
        f.admin,
        '--cluster',
        redis.url,
        'add',
        '--user',
        'alice',
        '--key',
        join(dir, 'alice.asc'),
        '--open',
        'tcp/22',
        '--yes',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /cluster keyring revision 1 stored/);
      await added;
      assert.ok(Date.now() - t0 < 1000 + 500);
      assert.equal((await keyringOf(f.gw)).keys[alice.fingerprint]?.enabled, true);
      const disabled = nextResult(f.results, f.listeners, 'updated');
      assert.equal(
        (await runKeys(['--state-dir', f.admin, '--cluster', redis.url, 'disable', 'alice'])).code,
        0,
      );
      await disabled;
      assert.equal((await keyringOf(f.gw)).keys[alice.fingerprint]?.enabled, false);
      assert.equal(f.sync.status.revision, 2);
    });
  });

  test('a keyring signed by another key (written by whoever can write to Redis) is refused; the last good one stays', async () => {
    await withTmp(async (dir) => {
      await flush(redis);
      const f = await fleet(dir);
      const mallory = await makeKey({ name: 'Mallory' });
      const forgedKey = await openpgp.readPrivateKey({ armoredKey: mallory.privateKey });
      const before = await readFile(join(f.gw, 'keyring.json'), 'utf8');
      const forged = await signKeyringDocument({ version: 1, keys: {} }, 99, forgedKey, new Date());
      const refused = nextResult(f.results, f.listeners, 'refused');
      await f.link.redis.set(KEYRING_KEY, forged);
      await f.link.redis.set(KEYRING_REV_KEY, '99');
      await f.link.redis.publish(KEYRING_CHANNEL, '99');
      const r = await refused;
      assert.match(r.kind === 'refused' ? r.detail : '', /not signed by this server key/);
      assert.equal(await readFile(join(f.gw, 'keyring.json'), 'utf8'), before);
    });
  });

  test('a body changed after signing, and an older revision put back (a rollback), are refused', async () => {
    await withTmp(async (dir) => {
      await flush(redis);
      const f = await fleet(dir);
      const alice = await makeKey({ name: 'Alice' });
      await writeFile(join(dir, 'alice.asc'), alice.publicKey);
      const add = nextResult(f.results, f.listeners, 'updated');
      assert.equal(
        (
          await runKeys([
            '--state-dir',
            f.admin,
            '--cluster',
            redis.url,
            'add',
            '--user',
            'alice',
            '--key',
            join(dir, 'alice.asc'),
            '--open',
            'tcp/22',
            '--yes',
          ])
        ).code,
        0,
      );
      await add;
      const rev1 = (await f.link.redis.get(KEYRING_KEY)) as string;
      const dis = nextResult(f.results, f.listeners, 'updated');
      assert.equal(
        (await runKeys(['--state-dir', f.admin, '--cluster', redis.url, 'disable', 'alice'])).code,
        0,
      );
      await dis;
      // rollback: revision 1, alice enabled, validly signed
      const rolled = nextResult(f.results, f.listeners, 'refused');
      await f.link.redis.set(KEYRING_KEY, rev1);
      await f.link.redis.set(KEYRING_REV_KEY, '1');
      await f.link.redis.publish(KEYRING_CHANNEL, '1');
      assert.match(((await rolled) as { detail: string }).detail, /older than revision 2/);
      assert.equal((await keyringOf(f.gw)).keys[alice.fingerprint]?.enabled, false);
      // tampered: the body of revision 3 re-enabling alice, under revision 1's signature
      const o = JSON.parse(rev1) as { body: string; signature: string };
      const body = JSON.parse(o.body) as { revision: number };
      body.revision = 3;
      const tampered = nextResult(f.results, f.listeners, 'refused');
      await f.link.redis.set(
        KEYRING_KEY,
        JSON.stringify({ body: JSON.stringify(body), signature: o.signature }),
      );
      await f.link.redis.set(KEYRING_REV_KEY, '3');
      await f.link.redis.publish(KEYRING_CHANNEL, '3');
      assert.match(((await tampered) as { detail: string }).detail, /not signed by this server key/);
      assert.equal((await keyringOf(f.gw)).keys[alice.fingerprint]?.enabled, false);
    });
  });

  test('Redis down: spa-keys --cluster refuses with one line; the gateway keeps its keyring', async () => {
    await withTmp(async (dir) => {
      await flush(redis);
      const f = await fleet(dir);
      const before = await readFile(join(f.gw, 'keyring.json'), 'utf8');
      await redis.stop();
      try {
        const r = await runKeys(['--state-dir', f.admin, '--cluster', redis.url, 'disable', 'nobody']);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /^spa: error: cannot reach the cluster's redis/m);
        assert.equal((await f.sync.sync()).kind, 'unavailable');
        assert.equal(await readFile(join(f.gw, 'keyring.json'), 'utf8'), before);
      } finally {
        await redis.start();
      }
    });
  });
});

async function flush(redis: TestRedis): Promise<void> {
  const l = await openLink(resolveClusterSettings({ url: redis.url, passwordFile: null }, '/x'));
  try {
    await l.redis.flushdb();
  } finally {
    await l.close();
  }
}
