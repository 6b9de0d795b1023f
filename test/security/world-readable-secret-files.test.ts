/**
 * Attack: secret-bearing files that other local users can read or write. `keys.json` holds the
 * client's secret keys (unencrypted when `spa-keys gen` had no passphrase); passphrase files
 * (`spa --key-passphrase-file`, `spad --passphrase-file`, `spa-keys init|gen --passphrase-file`)
 * hold what unlocks a key. Readable by group or others, they give the key away; writable, they let
 * someone swap the server key a knock is encrypted to. Like ssh with its keys and the spa.rc check,
 * such files are refused with one error line and a `chmod 600` hint.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateOwnKey, importKey, keystorePath } from '../../keyring/keystore.js';
import { gpgAvailable, makeGpgHome } from '../interop/client-gpg-fixtures.js';
import { runKeys } from '../unit/keyring-helpers.js';
import { keys, type Keys, spa } from '../unit/client-fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const spawnNode = (bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, bin), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });

/** Exactly one error line naming `file`, then a hint to chmod it. */
function refusedWithHint(err: string, file: string, what: RegExp): void {
  const lines = err.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^spa: error: [^\n]+$/, err);
  assert.ok((lines[0] ?? '').includes(file), `the error names ${file}: ${err}`);
  assert.match(lines[0] ?? '', what, err);
  assert.ok(
    lines.slice(1).some((l) => l === `spa: hint: fix it with: chmod 600 ${file}`),
    `a chmod hint: ${err}`,
  );
}

let K: Keys;
let root: string;
const PASS = 'pass phrase of the key';

before(async () => {
  K = await keys();
  root = await mkdtemp(join(tmpdir(), 'spa-secret-files-'));
});
after(() => rm(root, { recursive: true, force: true }));

async function freshHome(name: string, own: 'plain' | 'protected'): Promise<string> {
  const home = join(root, name);
  if (own === 'plain') await importKey(home, K.alice.armoredPrivate, { username: 'alice' });
  else await generateOwnKey(home, { username: 'alice', passphrase: PASS });
  await importKey(home, K.server.armoredPublic, { name: 'gw' });
  return home;
}

const dry = (home: string, extra: string[] = []) =>
  spa(['--home', home, '-A', 'tcp/22', ...extra, '--test', '127.0.0.1'], { ask: async () => null });

describe('keys.json that others can read or write is refused', () => {
  test('keys.json with an unencrypted secret key and mode 0644 is refused by spa', async () => {
    const home = await freshHome('readable', 'plain');
    await chmod(keystorePath(home), 0o644);
    const r = await dry(home);
    assert.equal(r.code, 2, r.err);
    refusedWithHint(r.err, keystorePath(home), /readable by others.*unencrypted secret key/);
    assert.equal(r.out, '');
  });

  test('the same keys.json is refused by spa-keys list too', async () => {
    const home = await freshHome('readable-list', 'plain');
    await chmod(keystorePath(home), 0o640);
    const r = await runKeys(['list', '--home', home]);
    assert.equal(r.code, 2, r.stderr);
    refusedWithHint(r.stderr, keystorePath(home), /readable by others/);
  });

  test('keys.json with mode 0620 (group-writable) is refused', async () => {
    const home = await freshHome('writable', 'plain');
    await chmod(keystorePath(home), 0o620);
    const r = await dry(home);
    assert.equal(r.code, 2, r.err);
    refusedWithHint(r.err, keystorePath(home), /writable by others/);
  });

  test('keys.json holding only passphrase-protected secrets may be readable (0644) and still works', async () => {
    const home = await freshHome('protected', 'protected');
    await chmod(keystorePath(home), 0o644);
    await writeFile(join(root, 'pp-protected'), `${PASS}\n`, { mode: 0o600 });
    const r = await dry(home, ['--key-passphrase-file', join(root, 'pp-protected')]);
    assert.equal(r.code, 0, r.err);
  });

  test('keys.json owned by another user is refused', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root to chown');
    const home = await freshHome('foreign', 'plain');
    await chown(keystorePath(home), 65534, 65534);
    const r = await dry(home);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^spa: error: .*keys\.json belongs to another user \(uid 65534\)$/m);
  });

  test('keys.json in a directory that others can write is refused', async () => {
    const home = await freshHome('opendir', 'plain');
    await chmod(home, 0o777);
    const r = await dry(home);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^spa: error: .*opendir is writable by group or others \(mode 777\)/m);
    assert.match(r.err, new RegExp(`^spa: hint: fix it with: chmod go-w ${home}$`, 'm'));
  });

  test('keys.json mode 0600 in a 0700 home works', async () => {
    const home = await freshHome('tidy', 'plain');
    assert.equal((await stat(keystorePath(home))).mode & 0o777, 0o600);
    const r = await dry(home);
    assert.equal(r.code, 0, r.err);
  });
});

describe('key files named by path are checked too', () => {
  test('--gpg-sign ./FILE with an unencrypted secret key and mode 0644 is refused; 0600 works', async () => {
    const home = await freshHome('keyfile-own', 'plain');
    const f = join(root, 'alice-secret.asc');
    await writeFile(f, K.alice.armoredPrivate);
    await chmod(f, 0o644);
    const r = await dry(home, ['--gpg-sign', f]);
    assert.equal(r.code, 2, r.err);
    refusedWithHint(
      r.err,
      f,
      /key file .* readable by others \(mode 644\) and holds an unencrypted secret key/,
    );
    await chmod(f, 0o600);
    const ok = await dry(home, ['--gpg-sign', f]);
    assert.equal(ok.code, 0, ok.err);
  });

  test('--gpg-recv ./FILE that others can write is refused; a 0644 public key file works', async () => {
    const home = await freshHome('keyfile-server', 'plain');
    const f = join(root, 'server-public.asc');
    await writeFile(f, K.server.armoredPublic);
    await chmod(f, 0o666);
    const r = await dry(home, ['--gpg-recv', f]);
    assert.equal(r.code, 2, r.err);
    refusedWithHint(r.err, f, /writable by others \(mode 666\)/);
    await chmod(f, 0o644);
    const ok = await dry(home, ['--gpg-recv', f]);
    assert.equal(ok.code, 0, ok.err);
  });
});

describe('passphrase files that others can read are refused', () => {
  let readable: string;
  let tidy: string;
  before(async () => {
    await mkdir(join(root, 'pp'), { mode: 0o700 });
    readable = join(root, 'pp', 'readable');
    tidy = join(root, 'pp', 'tidy');
    await writeFile(readable, `${PASS}\n`);
    await chmod(readable, 0o644);
    await writeFile(tidy, `${PASS}\n`, { mode: 0o600 });
  });

  test('spa --key-passphrase-file with mode 0644 is refused', async () => {
    const home = await freshHome('pp-spa', 'protected');
    const r = await dry(home, ['--key-passphrase-file', readable]);
    assert.equal(r.code, 2, r.err);
    refusedWithHint(r.err, readable, /passphrase file .* readable by others \(mode 644\)/);
    assert.doesNotMatch(r.err, new RegExp(PASS));
  });

  test('spa --key-passphrase-file with mode 0600 works', async () => {
    const home = await freshHome('pp-spa-ok', 'protected');
    const r = await dry(home, ['--key-passphrase-file', tidy]);
    assert.equal(r.code, 0, r.err);
  });

  test(
    'spa --gpg-home-dir --key-passphrase-file with mode 0644 is refused before gpg reads it',
    { skip: gpgAvailable() ? false : 'gpg is not installed' },
    async () => {
      const G = await makeGpgHome();
      try {
        G.genKey('Bob <bob@example.test>', { passphrase: PASS });
        G.importArmored(K.server.armoredPublic);
        const home = join(root, 'pp-gpg');
        const args = ['--gpg-home-dir', G.dir, '--gpg-recv', K.server.fingerprint, '--key-passphrase-file'];
        const r = await dry(home, [...args, readable]);
        assert.equal(r.code, 2, r.err);
        refusedWithHint(r.err, readable, /passphrase file .* readable by others \(mode 644\)/);
        const ok = await dry(home, [...args, tidy]);
        assert.equal(ok.code, 0, ok.err);
      } finally {
        await G.cleanup();
      }
    },
  );

  test('spa-keys init --passphrase-file with mode 0644 is refused and makes nothing', async () => {
    const state = join(root, 'state-refused');
    const r = await runKeys(['init', '--state-dir', state, '--passphrase-file', readable]);
    assert.equal(r.code, 2, r.stderr);
    refusedWithHint(r.stderr, readable, /readable by others/);
    await assert.rejects(stat(join(state, 'server.key')));
  });

  test('spa-keys gen --passphrase-file with mode 0644 is refused', async () => {
    const home = join(root, 'gen-refused');
    const r = await runKeys(['gen', '--user', 'alice', '--home', home, '--passphrase-file', readable]);
    assert.equal(r.code, 2, r.stderr);
    refusedWithHint(r.stderr, readable, /readable by others/);
  });

  test('spad --passphrase-file with mode 0644 is refused; 0600 works', async () => {
    const state = join(root, 'state-spad');
    const init = await runKeys(['init', '--state-dir', state, '--passphrase-file', tidy]);
    assert.equal(init.code, 0, init.stderr);
    const bad = await spawnNode('server/cli.js', [
      '--check',
      '--udp-server',
      '--state-dir',
      state,
      '--passphrase-file',
      readable,
    ]);
    assert.equal(bad.code, 2, bad.stderr);
    refusedWithHint(bad.stderr, readable, /readable by others/);
    const good = await spawnNode('server/cli.js', [
      '--check',
      '--udp-server',
      '--state-dir',
      state,
      '--passphrase-file',
      tidy,
    ]);
    assert.equal(good.code, 0, good.stderr);
  });
});

describe('spa-keys gen says where an unencrypted key is stored', () => {
  test('gen without a passphrase warns that the key is stored unencrypted, and the file is 0600', async () => {
    const home = join(root, 'gen-plain');
    const old = process.umask(0);
    let r;
    try {
      r = await runKeys(['gen', '--user', 'alice', '--home', home]);
    } finally {
      process.umask(old);
    }
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^spa: warning: the secret key is stored unencrypted in ${keystorePath(home).replace(/[.]/g, '\\.')}`,
        'm',
      ),
    );
    assert.equal((await stat(keystorePath(home))).mode & 0o777, 0o600);
    assert.equal((await stat(home)).mode & 0o777, 0o700);
  });

  test('gen with a passphrase gives no such warning', async () => {
    await writeFile(join(root, 'pp-gen'), `${PASS}\n`, { mode: 0o600 });
    const r = await runKeys([
      'gen',
      '--user',
      'alice',
      '--home',
      join(root, 'gen-protected'),
      '--passphrase-file',
      join(root, 'pp-gen'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /unencrypted/);
  });
});
