/**
 * Attack: a key file planted in the current directory. Someone who controls a checkout the user
 * runs `spa` (or ssh with `ProxyCommand spa connect ...`) from drops a file named like the key the
 * user asks for, `./server` or `./server.asc`, holding the attacker's own key. If `--gpg-recv
 * server` read that file, the knock would be encrypted to the attacker (who learns what it asks
 * for, and the real server drops it); `--gpg-sign alice` would sign with a key the attacker chose.
 *
 * The rule: a key argument is a path only when written as one (it contains a `/`, or starts with
 * `file:`); anything else is looked up in the keystore (or in GnuPG with --gpg-home-dir).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseTestOutput, spa, useKnockRig } from '../unit/client-fixtures.js';
import { gpgAvailable, type GpgHome, makeGpgHome } from '../interop/client-gpg-fixtures.js';

describe('attack: a key file planted in the current directory', () => {
  const rig = useKnockRig(null); // the stored server key has no name; its user id is "server <...>"

  let cwd: string;
  let oldCwd: string;

  before(async () => {
    oldCwd = process.cwd();
    cwd = await mkdtemp(join(tmpdir(), 'spa-planted-'));
    // the attacker's files, named like what the user types
    await writeFile(join(cwd, 'server'), rig.K.other.armoredPublic);
    await writeFile(join(cwd, 'server.asc'), rig.K.other.armoredPublic);
    await writeFile(join(cwd, 'alice'), rig.K.bob.armoredPrivate);
    process.chdir(cwd);
  });
  after(async () => {
    process.chdir(oldCwd);
    await rm(cwd, { recursive: true, force: true });
  });

  async function dry(args: readonly string[]) {
    return spa(['--home', rig.H.home, '-A', 'tcp/22', ...args, '--test', '127.0.0.1']);
  }

  describe('a key file in the current directory never replaces a stored key', () => {
    test('--gpg-recv server encrypts to the stored server key, not to a planted ./server', async () => {
      const r = await dry(['--gpg-recv', 'server']);
      assert.equal(r.code, 0, r.err);
      assert.equal(parseTestOutput(r.out).payload.server, rig.K.server.fingerprint);
    });

    test('--gpg-sign alice signs with the stored key of alice, not with a planted ./alice', async () => {
      const r = await spa([
        '--home',
        rig.H.home,
        '-v',
        '-A',
        'tcp/22',
        '--gpg-sign',
        'alice',
        '--test',
        '127.0.0.1',
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, new RegExp(`signing key ${rig.K.alice.fingerprint}`));
      assert.doesNotMatch(r.err, new RegExp(rig.K.bob.fingerprint));
    });

    test('--gpg-recv server.asc is a name too: not found, with a hint to write it as a path', async () => {
      const r = await dry(['--gpg-recv', 'server.asc']);
      assert.equal(r.code, 3, r.err);
      assert.match(r.err, /^spa: error: no server key matches 'server\.asc'$/m);
      assert.match(r.err, /^spa: hint: .*\.\/server\.asc/m);
    });

    test('--gpg-recv ./server reads the file, because it is written as a path', async () => {
      const r = await dry(['--gpg-recv', './server']);
      assert.equal(r.code, 0, r.err);
      assert.equal(parseTestOutput(r.out).payload.server, rig.K.other.fingerprint);
    });

    test('--gpg-recv file:server.asc reads the file, because it says so', async () => {
      const r = await dry(['--gpg-recv', 'file:server.asc']);
      assert.equal(r.code, 0, r.err);
      assert.equal(parseTestOutput(r.out).payload.server, rig.K.other.fingerprint);
    });
  });

  describe(
    'with --gpg-home-dir, a planted key file is not read either',
    {
      skip: gpgAvailable() ? false : 'gpg is not installed',
    },
    () => {
      let G: GpgHome;
      before(async () => {
        G = await makeGpgHome();
        G.genKey('Bob <bob@example.test>');
        G.importArmored(rig.K.server.armoredPublic);
      });
      after(() => G.cleanup());

      test('--gpg-recv server.asc is looked up in GnuPG, not read from ./server.asc', async () => {
        const r = await dry(['--gpg-home-dir', G.dir, '--gpg-recv', 'server.asc']);
        assert.equal(r.code, 3, r.err);
        assert.match(r.err, /^spa: error: no server key in the gpg home .* matches 'server\.asc'$/m);
      });

      test('--gpg-recv ./server.asc reads the file', async () => {
        const r = await dry(['--gpg-home-dir', G.dir, '--gpg-recv', './server.asc']);
        assert.equal(r.code, 0, r.err);
        assert.equal(parseTestOutput(r.out).payload.server, rig.K.other.fingerprint);
      });
    },
  );
});
