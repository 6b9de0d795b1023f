/**
 * `spa --gpg-home-dir DIR`: the knock is signed and encrypted by the real gpg binary from a real
 * GnuPG home (keys made by `gpg --quick-gen-key`), and the server side, openpgp.js with keys
 * exported from gpg, accepts it exactly as it accepts openpgp.js knocks.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatAccessList } from '../../protocol/access.js';
import { type TestKey, testKey, testServer } from '../helpers/keys.js';
import {
  type Home,
  type Listener,
  makeHome,
  openKnock,
  parseTestOutput,
  spa,
  udpListener,
} from '../unit/client-fixtures.js';
import { type GpgHome, gpgAvailable, makeGpgHome, readPublic } from './client-gpg-fixtures.js';

const skip = gpgAvailable() ? false : 'gpg is not installed';

describe('spa --gpg-home-dir signs and encrypts with gpg', { skip }, () => {
  let G: GpgHome;
  let H: Home;
  let L: Listener;
  let server: TestKey;
  let other: TestKey;
  let bobFpr: string;
  let bobPublic: Awaited<ReturnType<typeof readPublic>>;

  before(async () => {
    [server, other] = await Promise.all([testKey('server'), testKey('other-server')]);
    G = await makeGpgHome();
    bobFpr = G.genKey('Bob <bob@example.test>');
    G.importArmored(server.armoredPublic);
    bobPublic = await readPublic(G.exportPublic(bobFpr));
    H = await makeHome([], []);
    L = await udpListener();
  });
  after(async () => {
    L.close();
    await H.cleanup();
    await G.cleanup();
  });

  const base = () => ['--home', H.home, '--gpg-home-dir', G.dir, '-p', String(L.port)];

  test('with --gpg-recv FPR and no --gpg-sign, the only secret key signs; open() accepts it', async () => {
    const r = await spa([...base(), '--gpg-recv', server.fingerprint, '-A', 'tcp/22,udp/53', '127.0.0.1']);
    assert.equal(r.code, 0, r.err);
    const d = await L.next();
    const opened = await openKnock(d.msg, await testServer(server), [bobPublic]);
    assert.equal(
      opened.payload.serverFingerprint,
      server.fingerprint,
      'payload names the server PRIMARY fingerprint',
    );
    assert.equal(opened.payload.username, 'bob', 'username from the user id e-mail');
    assert.equal(opened.signer.fingerprint, bobFpr);
    assert.equal(formatAccessList(opened.payload.access), 'tcp/22,udp/53');
    assert.ok(d.msg.length <= 512, `gpg knock of ${d.msg.length} bytes`);
  });

  test('keys named by fingerprint, long key id and user id text work, and -U sets the username', async () => {
    const serverKeyId = server.fingerprint.slice(-16);
    const r = await spa([
      ...base(),
      '--gpg-sign',
      'bob@example.test',
      '--gpg-recv',
      serverKeyId,
      '-U',
      'robert',
      '-A',
      'tcp/22',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await L.next()).msg, await testServer(server), [bobPublic]);
    assert.equal(opened.payload.username, 'robert');
    const r2 = await spa([
      ...base(),
      '--gpg-sign',
      bobFpr,
      '--gpg-recv',
      server.fingerprint,
      '-A',
      'tcp/22',
      '127.0.0.1',
    ]);
    assert.equal(r2.code, 0, r2.err);
    await openKnock((await L.next()).msg, await testServer(server), [bobPublic]);
  });

  test('--gpg-recv FILE.asc encrypts to a key that is not in the gpg home', async () => {
    const f = join(H.root, 'other.asc');
    await writeFile(f, other.armoredPublic);
    const r = await spa([...base(), '--gpg-recv', f, '-A', 'tcp/22', '127.0.0.1']);
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await L.next()).msg, await testServer(other), [bobPublic]);
    assert.equal(opened.payload.serverFingerprint, other.fingerprint);
  });

  test('a command request made by gpg is accepted', async () => {
    const r = await spa([
      ...base(),
      '--gpg-recv',
      server.fingerprint,
      '--server-cmd',
      'backup-run home',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await L.next()).msg, await testServer(server), [bobPublic]);
    assert.equal(opened.payload.type, 'command');
    assert.equal(opened.payload.command, 'backup-run home');
  });

  test('--test in gpg mode prints the payload and size and sends nothing', async () => {
    const before = L.received.length;
    const r = await spa([...base(), '--gpg-recv', server.fingerprint, '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(r.code, 0, r.err);
    const { payload, bytes } = parseTestOutput(r.out);
    assert.equal(payload.server, server.fingerprint);
    assert.ok(bytes > 64 && bytes <= 512);
    await L.settled();
    assert.equal(L.received.length, before);
  });

  test('an unknown --gpg-sign is KEY_NOT_FOUND (exit 3)', async () => {
    const r = await spa([
      ...base(),
      '--gpg-sign',
      'mallory@example.test',
      '-A',
      'tcp/22',
      '--test',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 3);
    assert.match(
      r.err,
      /^spa: error: no secret signing key in the gpg home .* matches 'mallory@example\.test'$/m,
    );
  });

  test('an unknown --gpg-recv is KEY_NOT_FOUND with an import hint (exit 3)', async () => {
    const r = await spa([
      ...base(),
      '--gpg-recv',
      'nobody@example.test',
      '-A',
      'tcp/22',
      '--test',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 3);
    assert.match(r.err, /^spa: error: no server key in the gpg home/m);
    assert.match(r.err, /^spa: hint: import the server's public key: gpg --homedir .* --import server\.asc/m);
  });

  test('a missing gpg binary is a runtime error with a hint (exit 1)', async () => {
    const r = await spa([...base(), '--gpg-exe', '/nonexistent/gpg', '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(r.code, 1);
    assert.match(r.err, /^spa: error: cannot run \/nonexistent\/gpg: not found$/m);
    assert.match(r.err, /^spa: hint: install GnuPG/m);
  });
});

describe('spa --gpg-home-dir with several keys and with passphrases', { skip }, () => {
  let G: GpgHome;
  let H: Home;
  let L: Listener;
  let server: TestKey;
  const PASS = 'gpg pass phrase';
  let carolFpr: string;

  before(async () => {
    [server] = await Promise.all([testKey('server'), testKey('other-server')]);
    G = await makeGpgHome();
    carolFpr = G.genKey('Carol <carol@example.test>', { passphrase: PASS });
    G.genKey('Dan <dan@example.test>');
    G.importArmored(server.armoredPublic);
    G.importArmored((await testKey('other-server')).armoredPublic);
    H = await makeHome([], []);
    L = await udpListener();
    await writeFile(join(H.root, 'pass'), `${PASS}\n`, { mode: 0o600 });
    await writeFile(join(H.root, 'wrong'), 'nope\n', { mode: 0o600 });
  });
  after(async () => {
    L.close();
    await H.cleanup();
    await G.cleanup();
  });

  const base = () => ['--home', H.home, '--gpg-home-dir', G.dir, '-p', String(L.port)];

  test('two secret keys and no --gpg-sign is KEY_AMBIGUOUS listing both (exit 3)', async () => {
    const r = await spa([...base(), '--gpg-recv', server.fingerprint, '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(r.code, 3);
    assert.match(r.err, /^spa: error: 2 candidate secret signing keys in the gpg home/m);
    assert.match(r.err, new RegExp(carolFpr));
    assert.match(r.err, /Dan <dan@example\.test>/);
  });

  test('no --gpg-recv is a usage error (exit 2) listing the keys that could be meant', async () => {
    const r = await spa([...base(), '--gpg-sign', 'dan@example.test', '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^spa: error: --gpg-home-dir needs --gpg-recv/m);
    assert.match(
      r.err,
      new RegExp(`^spa: hint: +${server.fingerprint}  server <server@example\\.test>$`, 'm'),
    );
  });

  // wrong first: gpg-agent caches a passphrase once it has worked
  test('a wrong --key-passphrase-file for a protected gpg key is KEY_PASSPHRASE (exit 3)', async () => {
    const r = await spa([
      ...base(),
      '--gpg-sign',
      carolFpr,
      '--gpg-recv',
      server.fingerprint,
      '--key-passphrase-file',
      join(H.root, 'wrong'),
      '-A',
      'tcp/22',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, /^spa: error: gpg: wrong passphrase for /m);
    assert.doesNotMatch(r.err, /nope/);
  });

  test('the right --key-passphrase-file unlocks a protected gpg key and the knock verifies', async () => {
    const r = await spa([
      ...base(),
      '--gpg-sign',
      carolFpr,
      '--gpg-recv',
      server.fingerprint,
      '--key-passphrase-file',
      join(H.root, 'pass'),
      '-A',
      'tcp/22',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    const carol = await readPublic(G.exportPublic(carolFpr));
    const opened = await openKnock((await L.next()).msg, await testServer(server), [carol]);
    assert.equal(opened.payload.username, 'carol');
  });
});
