/**
 * Client side: `spa-keys gen`, `spa-keys import`, `spa-keys list --client`, and the lookups the
 * `spa` client uses (resolveOwnKey, resolveServerKey).
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as openpgp from 'openpgp';
import { EXIT } from '../../cli/conventions.js';
import { inspectKey } from '../../keyring/inspect.js';
import { keystorePath, openKeystore, resolveOwnKey, resolveServerKey } from '../../keyring/keystore.js';
import { ConfigError } from '../../protocol/errors.js';
import { makeKey, runKeys, withTmp } from './keyring-helpers.js';

const mode = async (p: string) => (await stat(p)).mode & 0o777;

function code(c: string) {
  return (e: unknown) => e instanceof ConfigError && e.code === c;
}

describe('spa-keys gen', () => {
  it('makes a key pair, stores it in a 0600 keystore in a 0700 home, and prints only the public key on stdout', async () => {
    await withTmp(async (dir) => {
      const home = join(dir, 'home');
      const r = await runKeys(['gen', '--user', 'alice', '--home', home]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /^-----BEGIN PGP PUBLIC KEY BLOCK-----\n[\s\S]*-----END PGP PUBLIC KEY BLOCK-----\n$/,
      );
      assert.ok(!r.stdout.includes('PRIVATE'));
      assert.match(r.stderr, /^spa-keys: made curve25519 key [0-9A-F]{40} for alice/m);
      assert.equal(await mode(home), 0o700);
      assert.equal(await mode(keystorePath(home)), 0o600);
      const info = await inspectKey(r.stdout);
      const ks = await openKeystore(home);
      assert.equal(ks.own.get(info.fingerprint)?.username, 'alice');
      const own = await resolveOwnKey(home);
      assert.equal(own.record.fingerprint, info.fingerprint);
      assert.equal(own.key.isDecrypted(), true);
    });
  });

  it('protects the stored secret key with --passphrase-file and keeps it encrypted', async () => {
    await withTmp(async (dir) => {
      await writeFile(join(dir, 'pw'), 's3cret\n', { mode: 0o600 });
      const r = await runKeys(['gen', '--user', 'bob', '--home', dir, '--passphrase-file', join(dir, 'pw')]);
      assert.equal(r.code, 0, r.stderr);
      const own = await resolveOwnKey(dir, 'bob');
      assert.equal(own.key.isDecrypted(), false);
      const dec = await openpgp.decryptKey({ privateKey: own.key, passphrase: 's3cret' });
      assert.equal(dec.isDecrypted(), true);
    });
  });

  it('takes the home from SPA_HOME, requires --user and refuses an invalid one', async () => {
    await withTmp(async (dir) => {
      const r = await runKeys(['gen', '--user', 'carol'], { env: { SPA_HOME: dir } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await openKeystore(dir)).own.size, 1);
      const none = await runKeys(['gen', '--home', dir]);
      assert.equal(none.code, EXIT.USAGE);
      assert.match(none.stderr, /^spa: error: required option '--user <name>' not specified$/m);
      const bad = await runKeys(['gen', '--user', 'Carol Smith', '--home', dir]);
      assert.equal(bad.code, EXIT.USAGE);
    });
  });
});

describe('spa-keys import', () => {
  it("imports a server's public key as a server key, refuses it twice", async () => {
    await withTmp(async (dir) => {
      const s = join(dir, 'state');
      assert.equal((await runKeys(['init', '--state-dir', s])).code, 0);
      const asc = join(s, 'server.asc');
      const r = await runKeys(['import', asc, '--home', dir, '--name', 'gw1']);
      assert.equal(r.code, 0, r.stderr);
      const info = await inspectKey(await readFile(asc, 'utf8'));
      assert.equal(r.stdout, `imported server key ${info.fingerprint} as gw1\n`);
      const again = await runKeys(['import', asc, '--home', dir]);
      assert.equal(again.code, EXIT.REFUSED);
    });
  });

  it('imports an own secret key, deriving the username from the e-mail, keeping its passphrase protection', async () => {
    await withTmp(async (dir) => {
      const k = await makeKey({ name: 'Dora', email: 'dora@example.test', passphrase: 'pw' });
      const r = await runKeys(['import', '-', '--home', dir], { stdin: k.privateKey });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `imported own key ${k.fingerprint} for user dora (passphrase-protected)\n`);
      assert.match(r.stderr, /username 'dora' taken from the user id/);
      const own = await resolveOwnKey(dir, 'dora');
      assert.equal(own.key.isDecrypted(), false, 'stored still encrypted');
    });
  });

  it('asks for --user when no username can be derived from the user id', async () => {
    await withTmp(async (dir) => {
      const k = await makeKey({ name: 'No Email Here' });
      await writeFile(join(dir, 'k.asc'), k.privateKey);
      const r = await runKeys(['import', join(dir, 'k.asc'), '--home', dir]);
      assert.equal(r.code, EXIT.USAGE);
      assert.match(r.stderr, /^spa: hint: give one: spa-keys import FILE --user NAME$/m);
      const ok = await runKeys(['import', join(dir, 'k.asc'), '--home', dir, '--user', 'erin']);
      assert.equal(ok.code, 0, ok.stderr);
    });
  });

  it('refuses a public key that cannot encrypt, since only a server key is imported public', async () => {
    await withTmp(async (dir) => {
      const k = await makeKey({ subkeys: [] });
      const r = await runKeys(['import', '-', '--home', dir], { stdin: k.publicKey });
      assert.equal(r.code, EXIT.KEY);
      assert.match(r.stderr, /no encryption-capable key valid now, so it cannot be a server key/);
    });
  });

  it('refuses weak and expired keys on import too', async () => {
    await withTmp(async (dir) => {
      const weak = await makeKey({ type: 'rsa', rsaBits: 1024 });
      const w = await runKeys(['import', '-', '--home', dir], { stdin: weak.publicKey });
      assert.equal(w.code, EXIT.KEY);
      assert.match(w.stderr, /1024 bits/);
      const old = await makeKey({
        email: 'old@example.test',
        date: new Date(Date.now() - 3 * 86_400_000),
        keyExpirationTime: 3600,
      });
      const o = await runKeys(['import', '-', '--home', dir], { stdin: old.privateKey });
      assert.equal(o.code, EXIT.KEY);
      assert.match(o.stderr, /expired/);
    });
  });
});

describe('client lookups', () => {
  it('finds server keys by fingerprint, long key id of a subkey, name, user id substring and file path', async () => {
    await withTmp(async (dir) => {
      const a = await makeKey({ name: 'spa server alpha' });
      const b = await makeKey({ name: 'spa server beta' });
      for (const [k, name] of [
        [a, 'alpha'],
        [b, 'beta'],
      ] as const) {
        assert.equal(
          (await runKeys(['import', '-', '--home', dir, '--name', name], { stdin: k.publicKey })).code,
          0,
        );
      }
      const subId = (await inspectKey(b.publicKey)).subkeys[0]?.fingerprint.slice(-16) ?? '';
      assert.equal((await resolveServerKey(dir, a.fingerprint)).record.name, 'alpha');
      assert.equal((await resolveServerKey(dir, subId)).record.fingerprint, b.fingerprint);
      assert.equal((await resolveServerKey(dir, 'beta')).record.fingerprint, b.fingerprint);
      assert.equal((await resolveServerKey(dir, 'server alp')).record.fingerprint, a.fingerprint);
      await assert.rejects(resolveServerKey(dir, 'spa server'), (e: unknown) => {
        return code('KEY_AMBIGUOUS')(e) && (e as ConfigError).hint?.includes(a.fingerprint) === true;
      });
      await assert.rejects(resolveServerKey(dir, 'gamma'), code('KEY_NOT_FOUND'));
      const c = await makeKey({ name: 'spa server gamma' });
      await writeFile(join(dir, 'gamma.asc'), c.publicKey);
      const viaFile = await resolveServerKey(dir, join(dir, 'gamma.asc'));
      assert.equal(viaFile.record.fingerprint, c.fingerprint);
      assert.equal((await openKeystore(dir)).servers.size, 2, 'a key given by path is not stored');
    });
  });

  it('finds own keys: the only one without a query, and refuses to guess among several', async () => {
    await withTmp(async (dir) => {
      await assert.rejects(
        resolveOwnKey(dir),
        (e: unknown) => code('KEY_NOT_FOUND')(e) && /spa-keys gen/.test((e as ConfigError).hint ?? ''),
      );
      assert.equal((await runKeys(['gen', '--user', 'fay', '--home', dir])).code, 0);
      assert.equal((await resolveOwnKey(dir)).record.username, 'fay');
      assert.equal((await runKeys(['gen', '--user', 'gus', '--home', dir])).code, 0);
      await assert.rejects(resolveOwnKey(dir), code('KEY_AMBIGUOUS'));
      assert.equal((await resolveOwnKey(dir, 'gus')).record.username, 'gus');
      const k = await makeKey({ name: 'File Key', email: 'filekey@example.test' });
      await writeFile(join(dir, 'mine.asc'), k.privateKey, { mode: 0o600 });
      const f = await resolveOwnKey(dir, join(dir, 'mine.asc'));
      assert.equal(f.record.fingerprint, k.fingerprint);
      assert.equal(f.record.username, 'filekey');
      await writeFile(join(dir, 'pub.asc'), k.publicKey);
      await assert.rejects(resolveOwnKey(dir, join(dir, 'pub.asc')), code('KEY_INVALID'));
    });
  });

  it('lists own and server keys with list --client, never printing a secret key', async () => {
    await withTmp(async (dir) => {
      assert.equal((await runKeys(['gen', '--user', 'hal', '--home', dir])).code, 0);
      const srv = await makeKey({ name: 'gw' });
      assert.equal(
        (await runKeys(['import', '-', '--home', dir, '--name', 'gw'], { stdin: srv.publicKey })).code,
        0,
      );
      const t = await runKeys(['list', '--client', '--home', dir]);
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout, /^KIND\s+FINGERPRINT\s+NAME\s+USER ID$/m);
      assert.match(t.stdout, /^own\s+[0-9A-F]{40}\s+hal\s+hal \(spa\)$/m);
      assert.match(t.stdout, new RegExp(`^server\\s+${srv.fingerprint}\\s+gw\\s+gw$`, 'm'));
      const j = await runKeys(['list', '--json', '--client'], { env: { SPA_HOME: dir } });
      assert.equal(j.code, 0, j.stderr);
      assert.ok(!j.stdout.includes('PRIVATE'));
      const parsed = JSON.parse(j.stdout) as { own: unknown[]; servers: unknown[] };
      assert.equal(parsed.own.length, 1);
      assert.equal(parsed.servers.length, 1);
    });
  });
});
