/**
 * Keys made by real GnuPG (the version installed, 2.2 on Debian 12) enroll with `spa-keys add`
 * and import with `spa-keys import`; weak, expired, revoked, sign-less and secret keys from gpg
 * are refused; and a server key made by `spa-keys init` is one GnuPG can import and encrypt to.
 * Each test uses its own GNUPGHOME in a temp dir and stops its gpg-agent afterwards.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';
import { loadAllowlist, loadServerKey, publicKeyOf } from '../../keyring/allowlist.js';
import { EXIT } from '../../cli/conventions.js';
import { openKeystore, resolveOwnKey } from '../../keyring/keystore.js';
import { spawnKeys, withTmp } from '../unit/keyring-helpers.js';

const run = promisify(execFile);

function gpgAvailable(): boolean {
  try {
    execFileSync('gpg', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = gpgAvailable() ? false : 'gpg is not installed';

class Gpg {
  constructor(readonly home: string) {}
  async run(args: string[], input?: string): Promise<string> {
    const p = run('gpg', ['--homedir', this.home, '--batch', '--no-tty', ...args], {
      maxBuffer: 8 << 20,
      env: { ...process.env, GNUPGHOME: this.home },
    });
    if (input !== undefined) p.child.stdin?.end(input);
    return (await p).stdout;
  }
  /** Makes a key; returns its primary fingerprint. */
  async gen(uid: string, algo: string, usage: string, expire: string, extra: string[] = []): Promise<string> {
    await this.run(['--passphrase', '', ...extra, '--quick-gen-key', uid, algo, usage, expire]);
    return this.fpr(uid);
  }
  async fpr(query: string): Promise<string> {
    const out = await this.run(['--with-colons', '--list-keys', query]);
    const m = /^fpr:+([0-9A-F]{40}):/m.exec(out);
    assert.ok(m?.[1], `no fingerprint for ${query}`);
    return m[1];
  }
  exportPublic(fpr: string): Promise<string> {
    return this.run(['--armor', '--export', fpr]);
  }
  async exportBinary(fpr: string): Promise<Uint8Array> {
    const out = await run('gpg', ['--homedir', this.home, '--batch', '--no-tty', '--export', fpr], {
      encoding: 'buffer',
      maxBuffer: 8 << 20,
      env: { ...process.env, GNUPGHOME: this.home },
    });
    return new Uint8Array(out.stdout);
  }
  exportSecret(fpr: string, passphrase = ''): Promise<string> {
    return this.run([
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      passphrase,
      '--armor',
      '--export-secret-keys',
      fpr,
    ]);
  }
  async stop(): Promise<void> {
    await run('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: this.home } }).catch(
      () => {},
    );
  }
}

async function withGpg<T>(fn: (g: Gpg, dir: string) => Promise<T>): Promise<T> {
  return withTmp(async (dir) => {
    const home = join(dir, 'gnupg');
    execFileSync('mkdir', ['-m', '700', home]);
    const g = new Gpg(home);
    try {
      return await fn(g, dir);
    } finally {
      await g.stop();
    }
  });
}

async function initState(dir: string): Promise<string> {
  const s = join(dir, 'state');
  const r = await spawnKeys(['init', '--state-dir', s]);
  assert.equal(r.code, 0, r.stderr);
  return s;
}

async function enroll(state: string, dir: string, user: string, armored: string) {
  const f = join(dir, `${user}.asc`);
  await writeFile(f, armored);
  return spawnKeys(['add', '--state-dir', state, '--user', user, '--key', f, '--open', 'tcp/22', '--yes']);
}

describe('GnuPG keys enroll and import', { skip }, () => {
  it('enrolls a gpg ed25519/cv25519 key with an extra signing subkey and a second user id', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('Alice <alice@example.test>', 'future-default', 'default', 'never');
      await g.run(['--quick-add-uid', fpr, 'Alice Work <alice@work.example>']);
      await g.run(['--passphrase', '', '--quick-add-key', fpr, 'ed25519', 'sign', 'never']);
      const s = await initState(dir);
      const r = await enroll(s, dir, 'alice', await g.exportPublic(fpr));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `enrolled alice ${fpr}\n`);
      const rec = (await loadAllowlist(s)).records.get(fpr);
      assert.ok(rec);
      assert.equal(rec.algorithm, 'ed25519');
      assert.deepEqual([...rec.userIds].sort(), [
        'Alice <alice@example.test>',
        'Alice Work <alice@work.example>',
      ]);
      assert.equal(rec.signingFingerprints.length, 2, 'primary and the signing subkey');
      assert.equal(rec.signingFingerprints[0], fpr);
      const colons = await g.run(['--with-colons', '--list-keys', fpr]);
      const subFprs = [...colons.matchAll(/^fpr:+([0-9A-F]{40}):/gm)].map((m) => m[1]);
      assert.ok(subFprs.includes(rec.signingFingerprints[1]), 'the signing subkey is the one gpg made');
      const pk = await publicKeyOf(rec);
      assert.equal(pk.getFingerprint().toUpperCase(), fpr);
    });
  });

  it('enrolls a gpg RSA 3072 key with an RSA encryption subkey', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('Rob <rob@example.test>', 'rsa3072', 'sign', 'never');
      await g.run(['--passphrase', '', '--quick-add-key', fpr, 'rsa3072', 'encr', 'never']);
      const s = await initState(dir);
      const r = await enroll(s, dir, 'rob', await g.exportPublic(fpr));
      assert.equal(r.code, 0, r.stderr);
      const rec = (await loadAllowlist(s)).records.get(fpr);
      assert.equal(rec?.algorithm, 'rsa3072');
      assert.deepEqual(rec?.signingFingerprints, [fpr]);
    });
  });

  it('enrolls a binary gpg export piped to add --key -', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('Bin <bin@example.test>', 'future-default', 'default', 'never');
      const s = await initState(dir);
      const r = await spawnKeys(
        ['add', '--state-dir', s, '--user', 'bin', '--key', '-', '--open', 'tcp/22'],
        {
          input: await g.exportBinary(fpr),
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await loadAllowlist(s)).records.has(fpr));
    });
  });

  it('imports a gpg secret key without a passphrase as an own key that can sign', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('Carol <carol@example.test>', 'future-default', 'default', 'never');
      const home = join(dir, 'client');
      const r = await spawnKeys(['import', '-', '--home', home], { input: await g.exportSecret(fpr) });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `imported own key ${fpr} for user carol\n`);
      const own = await resolveOwnKey(home, fpr);
      assert.equal(own.key.isDecrypted(), true);
      const pub = await openpgp.readKey({ armoredKey: await g.exportPublic(fpr) });
      const signed = await openpgp.sign({
        message: await openpgp.createMessage({ text: 'knock' }),
        signingKeys: own.key,
        format: 'binary',
      });
      const v = await openpgp.verify({
        message: await openpgp.readMessage({ binaryMessage: signed }),
        verificationKeys: pub,
        expectSigned: true,
      });
      assert.equal(await v.signatures[0]?.verified, true);
    });
  });

  it('imports a passphrase-protected gpg secret key still encrypted, and the passphrase opens it', async () => {
    await withGpg(async (g, dir) => {
      await g.run([
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        'pw',
        '--quick-gen-key',
        'Dan <dan@example.test>',
        'future-default',
        'default',
        'never',
      ]);
      const fpr = await g.fpr('dan@example.test');
      const f = join(dir, 'dan.sec.asc');
      await writeFile(f, await g.exportSecret(fpr, 'pw'));
      const home = join(dir, 'client');
      const r = await spawnKeys(['import', f, '--home', home, '--user', 'daniel']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /for user daniel \(passphrase-protected\)/);
      const stored = (await openKeystore(home)).own.get(fpr);
      assert.ok(stored);
      const key = await openpgp.readPrivateKey({ armoredKey: stored.secretKey });
      assert.equal(key.isDecrypted(), false);
      await assert.rejects(openpgp.decryptKey({ privateKey: key, passphrase: 'wrong' }));
      const dec = await openpgp.decryptKey({ privateKey: key, passphrase: 'pw' });
      assert.equal(dec.isDecrypted(), true);
    });
  });

  it('imports a gpg public key with an encryption subkey as a server key', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('gw <spa@gw.example.test>', 'future-default', 'default', 'never');
      const r = await spawnKeys(['import', '-', '--home', dir, '--name', 'gw'], {
        input: await g.exportPublic(fpr),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await openKeystore(dir)).servers.get(fpr)?.name, 'gw');
    });
  });
});

describe('GnuPG keys that are refused', { skip }, () => {
  it('refuses a gpg secret key given to add, and stores nothing', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('Eve <eve@example.test>', 'future-default', 'default', 'never');
      const s = await initState(dir);
      const r = await enroll(s, dir, 'eve', await g.exportSecret(fpr));
      assert.equal(r.code, EXIT.KEY, r.stderr);
      assert.match(r.stderr, /^spa: error: .* is a SECRET key; it was not stored$/m);
      assert.equal((await loadAllowlist(s)).records.size, 0);
      assert.ok(!(await readFile(join(s, 'keyring.json'), 'utf8')).includes('PRIVATE'));
    });
  });

  it('refuses a gpg RSA 1024 key as weak', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('Weak <weak@example.test>', 'rsa1024', 'default', 'never');
      const s = await initState(dir);
      const r = await enroll(s, dir, 'weak', await g.exportPublic(fpr));
      assert.equal(r.code, EXIT.KEY, r.stderr);
      assert.match(r.stderr, /RSA with 1024 bits; at least 2048 are required/);
    });
  });

  it('refuses a gpg key that expired (made with a faked clock)', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('Old <old@example.test>', 'ed25519', 'default', '1d', [
        '--faked-system-time',
        '20200101T000000!',
      ]);
      const s = await initState(dir);
      const r = await enroll(s, dir, 'old', await g.exportPublic(fpr));
      assert.equal(r.code, EXIT.KEY, r.stderr);
      assert.match(r.stderr, /expired on 2020-01-02/);
    });
  });

  it('refuses a gpg key after its revocation certificate is imported', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('Rev <rev@example.test>', 'future-default', 'default', 'never');
      const revDir = join(g.home, 'openpgp-revocs.d');
      const revFile = (await readdir(revDir)).find((n) => n.startsWith(fpr));
      assert.ok(revFile);
      // gpg stores the certificate with a ':' before the armor header so it is not imported by accident
      const cert = (await readFile(join(revDir, revFile), 'utf8')).replace(/^:-----BEGIN/m, '-----BEGIN');
      await g.run(['--import'], cert);
      const s = await initState(dir);
      const r = await enroll(s, dir, 'rev', await g.exportPublic(fpr));
      assert.equal(r.code, EXIT.KEY, r.stderr);
      assert.match(r.stderr, /is revoked/);
    });
  });

  it('refuses a gpg key whose only subkey encrypts and whose primary only certifies, for a client', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('NoSign <nosign@example.test>', 'ed25519', 'cert', 'never');
      await g.run(['--passphrase', '', '--quick-add-key', fpr, 'cv25519', 'encr', 'never']);
      const s = await initState(dir);
      const r = await enroll(s, dir, 'nosign', await g.exportPublic(fpr));
      assert.equal(r.code, EXIT.KEY, r.stderr);
      assert.match(r.stderr, /has no signing-capable key valid now/);
    });
  });

  it('refuses a gpg sign-only public key as a server key on import', async () => {
    await withGpg(async (g, dir) => {
      const fpr = await g.gen('SignOnly <so@example.test>', 'ed25519', 'sign', 'never');
      const r = await spawnKeys(['import', '-', '--home', dir], { input: await g.exportPublic(fpr) });
      assert.equal(r.code, EXIT.KEY, r.stderr);
      assert.match(r.stderr, /no encryption-capable key valid now, so it cannot be a server key/);
    });
  });
});

describe('spa-keys server keys in GnuPG', { skip }, () => {
  for (const type of ['curve25519', 'rsa4096'] as const) {
    it(`GnuPG imports a ${type} server.asc and encrypts to it, and the server key decrypts`, async () => {
      await withGpg(async (g, dir) => {
        const s = join(dir, 'state');
        const init = await spawnKeys(['init', '--state-dir', s, '--type', type]);
        assert.equal(init.code, 0, init.stderr);
        const fpr = /^fingerprint: ([0-9A-F]{40})$/m.exec(init.stdout)?.[1];
        assert.ok(fpr);
        await g.run(['--import', join(s, 'server.asc')]);
        const enc = await g.run(
          ['--trust-model', 'always', '--armor', '--encrypt', '-r', fpr],
          'hello from gpg',
        );
        const key = await loadServerKey(s);
        const { data } = await openpgp.decrypt({
          message: await openpgp.readMessage({ armoredMessage: enc }),
          decryptionKeys: key,
        });
        assert.equal(data, 'hello from gpg');
      });
    });
  }
});
