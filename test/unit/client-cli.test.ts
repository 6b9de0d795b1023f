/**
 * `spa` run in-process: every flag, the knock a server would accept, and each misuse ending in a
 * one-line error, a hint and the documented exit code. Real datagrams go to a UDP listener on
 * 127.0.0.1 and are opened with protocol's open(), as spad does.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateOwnKey } from '../../keyring/keystore.js';
import { formatAccessList } from '../../protocol/access.js';
import { testKey, testServer } from '../helpers/keys.js';
import { formatAddress } from '../../protocol/address.js';
import {
  type Home,
  type Listener,
  makeHome,
  openKnock,
  parseTestOutput,
  spa,
  udpListener,
  useKnockRig,
} from './client-fixtures.js';
import { slow } from '../helpers/slow.js';

const rig = useKnockRig();

/** `spa --home H ... --test 127.0.0.1` and its parsed output. */
async function dry(args: readonly string[], home = rig.H.home) {
  const r = await spa(['--home', home, ...args, '--test', '127.0.0.1']);
  assert.equal(r.code, 0, r.err);
  return { ...parseTestOutput(r.out), err: r.err };
}

/** One line of `spa: error: ...` plus hints; returns the error line. */
function errorLine(err: string): string {
  const lines = err.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^spa: error: [^\n]+$/);
  for (const l of lines.slice(1)) assert.match(l, /^spa: hint: /);
  return lines[0] ?? '';
}

describe('spa sends one knock that the server accepts', () => {
  test('a knock to 127.0.0.1 arrives as one datagram that open() accepts, naming the server and user', async () => {
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22', '-p', String(rig.L.port), '127.0.0.1']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, '', 'nothing on stdout when sending');
    assert.equal(r.err, '', 'silent without -v');
    const d = await rig.L.next();
    assert.ok(d.msg.length <= 512, `Curve25519 knock fits 512 bytes, got ${d.msg.length}`);
    const opened = await openKnock(d.msg, rig.K.identity, [rig.K.alice]);
    assert.equal(opened.payload.type, 'access');
    assert.equal(opened.payload.username, 'alice');
    assert.equal(opened.payload.serverFingerprint, rig.K.server.fingerprint);
    assert.equal(formatAccessList(opened.payload.access), 'tcp/22');
    assert.equal(opened.payload.timeoutSeconds, 0);
    assert.equal(opened.signer.fingerprint, rig.K.alice.fingerprint);
  });

  test('the default source address is the local address the datagram really comes from', async () => {
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22', '-p', String(rig.L.port), '127.0.0.1']);
    assert.equal(r.code, 0, r.err);
    const d = await rig.L.next();
    const opened = await openKnock(d.msg, rig.K.identity, [rig.K.alice]);
    assert.notEqual(opened.payload.source, 'any');
    assert.equal(
      formatAddress(opened.payload.source as Exclude<typeof opened.payload.source, 'any'>),
      d.rinfo.address,
    );
  });

  test('two knocks carry different nonces', async () => {
    const a = await dry(['-A', 'tcp/22']);
    const b = await dry(['-A', 'tcp/22']);
    assert.notEqual(a.payload.nonce, b.payload.nonce);
    assert.match(String(a.payload.nonce), /^[0-9a-f]{32}$/);
  });

  test('-v says what is sent on stderr and keeps stdout empty', async () => {
    const r = await spa(['--home', rig.H.home, '-v', '-A', 'tcp/22', '-p', String(rig.L.port), '127.0.0.1']);
    assert.equal(r.code, 0, r.err);
    await rig.L.next();
    assert.equal(r.out, '');
    assert.match(r.err, /^spa: server 127\.0\.0\.1 = 127\.0\.0\.1:\d+ \(udp4\)/m);
    assert.match(r.err, new RegExp(`signing key ${rig.K.alice.fingerprint}`));
    assert.match(r.err, /^spa: payload \{"type":"access"/m);
    assert.match(r.err, /^spa: sent \d+ bytes to 127\.0\.0\.1:\d+$/m);
  });

  test('-6 with ::1 sends over IPv6', async (t) => {
    let l6: Listener;
    try {
      l6 = await udpListener('::1');
    } catch {
      t.skip('no IPv6 loopback here');
      return;
    }
    try {
      const r = await spa(['--home', rig.H.home, '-6', '-A', 'tcp/22', '-p', String(l6.port), '::1']);
      assert.equal(r.code, 0, r.err);
      const d = await l6.next();
      const opened = await openKnock(d.msg, rig.K.identity, [rig.K.alice]);
      assert.equal(
        formatAddress(opened.payload.source as Exclude<typeof opened.payload.source, 'any'>),
        '::1',
      );
    } finally {
      l6.close();
    }
  });

  test('a host name is resolved (localhost with -4 reaches 127.0.0.1)', async () => {
    const r = await spa(['--home', rig.H.home, '-4', '-A', 'udp/53', '-p', String(rig.L.port), 'localhost']);
    assert.equal(r.code, 0, r.err);
    const d = await rig.L.next();
    assert.equal(d.rinfo.address, '127.0.0.1');
  });

  test('-D HOST works in place of the HOST argument', async () => {
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22', '-p', String(rig.L.port), '-D', '127.0.0.1']);
    assert.equal(r.code, 0, r.err);
    await rig.L.next();
  });
});

describe('--test prints the decoded payload and the packet size and sends nothing', () => {
  test('one JSON line then "packet bytes: N"', async () => {
    const before = rig.L.received.length;
    const r = await spa([
      '--home',
      rig.H.home,
      '-A',
      'tcp/22',
      '-p',
      String(rig.L.port),
      '--test',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    const { payload, bytes } = parseTestOutput(r.out);
    assert.deepEqual(Object.keys(payload), [
      'type',
      'timestamp',
      'nonce',
      'server',
      'username',
      'source',
      'access',
      'timeout',
      'command',
    ]);
    assert.equal(payload.type, 'access');
    assert.equal(payload.server, rig.K.server.fingerprint);
    assert.equal(payload.username, 'alice');
    assert.equal(payload.source, '127.0.0.1');
    assert.equal(payload.access, 'tcp/22');
    assert.ok(Math.abs(Number(payload.timestamp) - Date.now() / 1000) < 5);
    assert.ok(bytes > 64 && bytes <= 512, `size ${bytes}`);
    await rig.L.settled();
    assert.equal(rig.L.received.length, before, 'no datagram sent');
  });

  test('several -A flags and lists are merged, deduplicated and sorted', async () => {
    const { payload } = await dry(['-A', 'udp/53', '-A', 'tcp/443,tcp/22', '-A', 'tcp/22']);
    assert.equal(payload.access, 'tcp/22,tcp/443,udp/53');
  });

  test('--fw-timeout is carried', async () => {
    const { payload } = await dry(['-A', 'tcp/22', '--fw-timeout', '45']);
    assert.equal(payload.timeout, 45);
  });

  test('--server-cmd makes a command request without ports', async () => {
    const { payload } = await dry(['--server-cmd', 'backup-run home']);
    assert.equal(payload.type, 'command');
    assert.equal(payload.command, 'backup-run home');
    assert.equal(payload.access, null);
    assert.equal(payload.timeout, 0);
  });

  test('-a puts that address in the payload, IPv4-mapped IPv6 folded to IPv4', async () => {
    assert.equal((await dry(['-A', 'tcp/22', '-a', '198.51.100.7'])).payload.source, '198.51.100.7');
    assert.equal((await dry(['-A', 'tcp/22', '-a', '::ffff:198.51.100.7'])).payload.source, '198.51.100.7');
    assert.equal((await dry(['-A', 'tcp/22', '-a', '2001:DB8:0:0::5'])).payload.source, '2001:db8::5');
  });

  test('-s asks for "any"', async () => {
    assert.equal((await dry(['-A', 'tcp/22', '-s'])).payload.source, 'any');
  });

  test('-U overrides the username stored with the key', async () => {
    assert.equal((await dry(['-A', 'tcp/22', '-U', 'bob'])).payload.username, 'bob');
  });
});

describe('choosing keys', () => {
  let two: Home;
  before(async () => {
    two = await makeHome(
      [
        { key: rig.K.alice, username: 'alice' },
        { key: rig.K.bob, username: 'bob' },
      ],
      [
        { key: rig.K.server, name: 'gw' },
        { key: rig.K.other, name: 'lab' },
      ],
    );
  });
  after(() => two.cleanup());

  test('two own keys and no --gpg-sign is an ambiguity error listing both (exit 3)', async () => {
    const r = await spa(['--home', two.home, '-A', 'tcp/22', '--gpg-recv', 'gw', '--test', '127.0.0.1']);
    assert.equal(r.code, 3);
    assert.match(errorLine(r.err), /2 own keys are stored; say which to use/);
    assert.match(r.err, new RegExp(rig.K.alice.fingerprint));
    assert.match(r.err, new RegExp(rig.K.bob.fingerprint));
    assert.match(r.err, /--gpg-sign/);
  });

  test('two server keys and no --gpg-recv is an ambiguity error listing both (exit 3)', async () => {
    const r = await spa(['--home', two.home, '-A', 'tcp/22', '--gpg-sign', 'alice', '--test', '127.0.0.1']);
    assert.equal(r.code, 3);
    assert.match(errorLine(r.err), /2 server keys are stored/);
    assert.match(r.err, new RegExp(rig.K.server.fingerprint));
    assert.match(r.err, new RegExp(rig.K.other.fingerprint));
  });

  test('--gpg-sign takes a full fingerprint, a long key id, a username or user id text', async () => {
    const byFpr = await dry(
      ['-A', 'tcp/22', '--gpg-recv', 'gw', '--gpg-sign', rig.K.bob.fingerprint],
      two.home,
    );
    assert.equal(byFpr.payload.username, 'bob');
    const keyId = rig.K.bob.fingerprint.slice(-16).toLowerCase();
    assert.equal(
      (await dry(['-A', 'tcp/22', '--gpg-recv', 'gw', '--gpg-sign', keyId], two.home)).payload.username,
      'bob',
    );
    assert.equal(
      (await dry(['-A', 'tcp/22', '--gpg-recv', 'gw', '--gpg-sign', 'alice'], two.home)).payload.username,
      'alice',
    );
    const uid = await dry(['-A', 'tcp/22', '--gpg-recv', 'gw', '--gpg-sign', 'bob@example.test'], two.home);
    assert.equal(uid.payload.username, 'bob');
  });

  test('--gpg-recv takes a name, a fingerprint or a subkey long key id, and the payload names the PRIMARY fingerprint', async () => {
    const byName = await dry(['-A', 'tcp/22', '--gpg-sign', 'alice', '--gpg-recv', 'lab'], two.home);
    assert.equal(byName.payload.server, rig.K.other.fingerprint);
    const sub = rig.K.other.publicKey.getSubkeys()[0];
    assert.ok(sub);
    const subId = sub.getKeyID().toHex();
    const bySub = await dry(['-A', 'tcp/22', '--gpg-sign', 'alice', '--gpg-recv', subId], two.home);
    assert.equal(bySub.payload.server, rig.K.other.fingerprint);
  });

  test('--gpg-recv FILE.asc uses a server key that is not in the keystore', async () => {
    const f = join(two.root, 'third.asc');
    const third = (await import('../helpers/keys.js')).testKey('third-server');
    await writeFile(f, (await third).armoredPublic);
    const r = await dry(['-A', 'tcp/22', '--gpg-sign', 'alice', '--gpg-recv', f], two.home);
    assert.equal(r.payload.server, (await third).fingerprint);
  });

  test('an unknown key is KEY_NOT_FOUND with the known keys as hints (exit 3)', async () => {
    const r = await spa([
      '--home',
      two.home,
      '-A',
      'tcp/22',
      '--gpg-recv',
      'gw',
      '--gpg-sign',
      'mallory',
      '--test',
      '1.2.3.4',
    ]);
    assert.equal(r.code, 3);
    assert.match(errorLine(r.err), /no own key matches 'mallory'/);
    assert.match(r.err, /spa: hint: known own keys:/);
  });

  test('a short (8 hex) key id is refused (exit 3)', async () => {
    const short = rig.K.bob.fingerprint.slice(-8);
    const r = await spa([
      '--home',
      two.home,
      '-A',
      'tcp/22',
      '--gpg-recv',
      'gw',
      '--gpg-sign',
      short,
      '--test',
      '1.2.3.4',
    ]);
    assert.equal(r.code, 3);
    assert.match(r.err, /short key id/);
  });

  test('an empty home says how to make or import a key (exit 3)', async () => {
    const r = await spa(['--home', join(two.root, 'nothing'), '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(r.code, 3);
    assert.match(errorLine(r.err), /no own key/);
    assert.match(r.err, /spa-keys gen --user NAME/);
  });

  test('no server key says to import server.asc (exit 3)', async () => {
    const only = await makeHome([{ key: rig.K.alice, username: 'alice' }], []);
    try {
      const r = await spa(['--home', only.home, '-A', 'tcp/22', '--test', '127.0.0.1']);
      assert.equal(r.code, 3);
      assert.match(errorLine(r.err), /no server key/);
      assert.match(r.err, /spa: hint: .*spa-keys import server\.asc/);
    } finally {
      await only.cleanup();
    }
  });

  test('SPA_HOME is used when --home is absent', async () => {
    const saved = process.env.SPA_HOME;
    process.env.SPA_HOME = rig.H.home;
    try {
      const r = await spa(['-A', 'tcp/22', '--test', '127.0.0.1']);
      assert.equal(r.code, 0, r.err);
      assert.equal(parseTestOutput(r.out).payload.username, 'alice');
    } finally {
      if (saved === undefined) delete process.env.SPA_HOME;
      else process.env.SPA_HOME = saved;
    }
  });

  test('a corrupt keystore is exit 4 with the file named', async () => {
    const bad = await makeHome([], []);
    try {
      const { mkdir } = await import('node:fs/promises');
      await mkdir(bad.home, { recursive: true });
      await writeFile(join(bad.home, 'keys.json'), '{"version": 1, "own": {"X": 1}, "servers": {}}');
      const r = await spa(['--home', bad.home, '-A', 'tcp/22', '--test', '127.0.0.1']);
      assert.equal(r.code, 4, r.err);
      assert.match(errorLine(r.err), /keys\.json/);
    } finally {
      await bad.cleanup();
    }
  });
});

describe('passphrase-protected keys', () => {
  let prot: Home;
  let fpr: string;
  const PASS = 'correct horse battery staple';
  before(async () => {
    prot = await makeHome([], [{ key: rig.K.server, name: 'gw' }]);
    fpr = (await generateOwnKey(prot.home, { username: 'carol', passphrase: PASS })).record.fingerprint;
    await writeFile(join(prot.root, 'pass'), `${PASS}\n`, { mode: 0o600 });
    await writeFile(join(prot.root, 'wrong'), 'not it\n', { mode: 0o600 });
  });
  after(() => prot.cleanup());

  test('--key-passphrase-file unlocks the key and the knock verifies', async () => {
    const r = await spa([
      '--home',
      prot.home,
      '--key-passphrase-file',
      join(prot.root, 'pass'),
      '-A',
      'tcp/22',
      '-p',
      String(rig.L.port),
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    const d = await rig.L.next();
    const { readKey } = await import('openpgp');
    const { keystorePath } = await import('../../keyring/keystore.js');
    const ks = JSON.parse(await (await import('node:fs/promises')).readFile(keystorePath(prot.home), 'utf8'));
    const pub = await readKey({ armoredKey: ks.own[fpr].publicKey });
    const { signerMap } = await import('../helpers/keys.js');
    const { open } = await import('../../protocol/envelope.js');
    const opened = await open(d.msg, {
      server: rig.K.identity,
      lookupSigner: signerMap([pub]),
      now: new Date(),
      maxSkewSeconds: 120,
    });
    assert.equal(opened.payload.username, 'carol');
  });

  test('a wrong passphrase file is KEY_PASSPHRASE (exit 3) and the passphrase is never printed', async () => {
    const r = await spa([
      '--home',
      prot.home,
      '--key-passphrase-file',
      join(prot.root, 'wrong'),
      '-A',
      'tcp/22',
      '--test',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 3);
    assert.match(errorLine(r.err), /does not unlock key/);
    assert.doesNotMatch(r.err + r.out, /not it/);
  });

  test('without a file the passphrase is asked for, and a typed one unlocks the key', async () => {
    const asked: string[] = [];
    const r = await spa(['--home', prot.home, '-A', 'tcp/22', '--test', '127.0.0.1'], {
      ask: async (m) => {
        asked.push(m);
        return PASS;
      },
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(asked.length, 1);
    assert.match(asked[0] ?? '', new RegExp(fpr));
    assert.doesNotMatch(r.err + r.out, new RegExp(PASS));
  });

  test('three wrong typed passphrases end in KEY_PASSPHRASE (exit 3)', async () => {
    let n = 0;
    const r = await spa(['--home', prot.home, '-A', 'tcp/22', '--test', '127.0.0.1'], {
      ask: async () => {
        n++;
        return 'guess';
      },
    });
    assert.equal(r.code, 3);
    assert.equal(n, 3);
    assert.match(r.err, /wrong passphrase/);
  });

  test('no terminal and no file is KEY_PASSPHRASE with a hint for --key-passphrase-file', async () => {
    const r = await spa(['--home', prot.home, '-A', 'tcp/22', '--test', '127.0.0.1'], {
      ask: async () => null,
    });
    assert.equal(r.code, 3);
    assert.match(errorLine(r.err), /no terminal to ask on/);
    assert.match(r.err, /spa: hint: .*--key-passphrase-file/);
  });

  test('nobody is asked for a passphrase when the server cannot even be resolved', async () => {
    let n = 0;
    const r = await spa(['--home', prot.home, '-A', 'tcp/22', '-4', '--test', '::1'], {
      ask: async () => {
        n++;
        return PASS;
      },
    });
    assert.equal(r.code, 2);
    assert.equal(n, 0);
  });
});

describe('misuse: one error line, hints, exit code 2 for usage', () => {
  const cases: [string, string[], RegExp][] = [
    ['a port range in -A', ['-A', 'tcp/22-25'], /-A\/--access: .*port ranges are not supported/],
    ['an unknown protocol in -A', ['-A', 'icmp/0'], /-A\/--access: expected proto\/port/],
    ['port 0 in -A', ['-A', 'tcp/0'], /-A\/--access: port must be 1\.\.65535/],
    [
      'more than 16 entries in -A',
      ['-A', Array.from({ length: 17 }, (_, i) => `tcp/${i + 1}`).join(',')],
      /at most 16/,
    ],
    [
      '-A with --server-cmd',
      ['-A', 'tcp/22', '--server-cmd', 'ls'],
      /--server-cmd: a command request cannot also ask for ports/,
    ],
    ['no -A and no --server-cmd', [], /-A\/--access is required/],
    ['a bad -a address', ['-A', 'tcp/22', '-a', '1.2.3'], /-a\/--allow-ip: not an IPv4 or IPv6 address/],
    ['-a with a zone id', ['-A', 'tcp/22', '-a', 'fe80::1%eth0'], /-a\/--allow-ip/],
    ['-a with -s', ['-A', 'tcp/22', '-a', '1.2.3.4', '-s'], /choose one of -a IP, -s and -R URL/],
    ['-s with -R', ['-A', 'tcp/22', '-s', '-R', 'http://127.0.0.1:1/'], /choose one of/],
    [
      '-R with a non-http URL',
      ['-A', 'tcp/22', '-R', 'ftp://example.test/ip'],
      /only http:\/\/ and https:\/\//,
    ],
    [
      '-p out of range',
      ['-A', 'tcp/22', '-p', '70000'],
      /-p\/--server-port: expected a whole number 1\.\.65535/,
    ],
    ['-p not a number', ['-A', 'tcp/22', '-p', '22x'], /-p\/--server-port/],
    [
      '--fw-timeout too long',
      ['-A', 'tcp/22', '--fw-timeout', '86401'],
      /--fw-timeout: expected a whole number 0\.\.86400/,
    ],
    [
      '--fw-timeout with --server-cmd',
      ['--server-cmd', 'ls', '--fw-timeout', '5'],
      /--fw-timeout: a command request carries no firewall timeout/,
    ],
    ['a command with a newline', ['--server-cmd', 'ls\nrm'], /--server-cmd: control characters/],
    ['a bad -U', ['-A', 'tcp/22', '-U', 'Bad Name'], /-U\/--username: must match/],
    ['-4 with -6', ['-A', 'tcp/22', '-4', '-6'], /-4\/--ipv4 and -6\/--ipv6: choose one/],
    [
      '--save-rc-stanza without -n',
      ['-A', 'tcp/22', '--save-rc-stanza'],
      /--save-rc-stanza needs a stanza name/,
    ],
    ['a bad stanza name', ['-A', 'tcp/22', '-n', 'a b'], /-n\/--named-config: stanza names/],
    ['an unknown option', ['-A', 'tcp/22', '--bogus'], /unknown option '--bogus'/],
  ];
  for (const [what, args, re] of cases) {
    test(`${what} is refused`, async () => {
      const r = await spa(['--home', rig.H.home, ...args, '--test', '127.0.0.1']);
      assert.equal(r.code, 2, `${what}: ${r.err}`);
      assert.match(errorLine(r.err), re);
      assert.equal(r.out, '');
    });
  }

  test('no HOST is refused with a hint', async () => {
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22']);
    assert.equal(r.code, 2);
    assert.match(errorLine(r.err), /no server given/);
    assert.match(r.err, /spa: hint: /);
  });

  test('-4 with an IPv6 literal is refused', async () => {
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22', '-4', '--test', '::1']);
    assert.equal(r.code, 2);
    assert.match(errorLine(r.err), /-4: ::1 is an IPv6 address/);
  });

  test('-D and a different HOST are refused', async () => {
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22', '-D', '127.0.0.1', '--test', '127.0.0.2']);
    assert.equal(r.code, 2);
    assert.match(errorLine(r.err), /two servers given/);
  });

  test('a HOST with a port or spaces is refused', async () => {
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22', '--test', 'host name']);
    assert.equal(r.code, 2);
    assert.match(errorLine(r.err), /not a host name or address/);
  });

  test('a name that does not resolve is a runtime error (exit 1)', async () => {
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22', '--test', 'no-such-host.invalid']);
    assert.equal(r.code, 1);
    assert.match(errorLine(r.err), /cannot resolve 'no-such-host\.invalid'/);
  });

  test('--help prints usage, the rc keys and the exit codes, exit 0', async () => {
    const r = await spa(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /Usage: spa \[options\] HOST/);
    assert.match(r.out, /Exit codes:/);
    assert.match(r.out, /connect \[options\] <HOST> <PORT>/);
    assert.match(r.out, /resolve-ip-http/);
  });
});

describe('key types', slow, () => {
  test('v6 (RFC 9580) keys on both sides: the payload names the 64-hex server fingerprint and verifies', async () => {
    const [me, srv] = await Promise.all([
      testKey('v6-client', { kind: 'v6' }),
      testKey('v6-server', { kind: 'v6' }),
    ]);
    const home = await makeHome([{ key: me, username: 'vsix' }], [{ key: srv }]);
    try {
      const r = await spa(['--home', home.home, '-A', 'tcp/22', '-p', String(rig.L.port), '127.0.0.1']);
      assert.equal(r.code, 0, r.err);
      const opened = await openKnock((await rig.L.next()).msg, await testServer(srv), [me]);
      assert.equal(opened.payload.serverFingerprint.length, 64);
      assert.equal(opened.payload.serverFingerprint, srv.fingerprint);
    } finally {
      await home.cleanup();
    }
  });

  test('a knock that would exceed 1400 bytes (RSA-4096 keys, a 512-byte command) is refused before sending', async () => {
    const [me, srv] = await Promise.all([
      testKey('rsa-client', { kind: 'rsa4096' }),
      testKey('rsa-server', { kind: 'rsa4096' }),
    ]);
    const home = await makeHome([{ key: me, username: 'rsa' }], [{ key: srv }]);
    try {
      const before = rig.L.received.length;
      const r = await spa([
        '--home',
        home.home,
        '--server-cmd',
        'x'.repeat(512),
        '-p',
        String(rig.L.port),
        '127.0.0.1',
      ]);
      assert.equal(r.code, 2, r.err);
      assert.match(errorLine(r.err), /^spa: error: knock: \d+ bytes, the server accepts at most 1400$/);
      await rig.L.settled();
      assert.equal(rig.L.received.length, before);
      const small = await spa(['--home', home.home, '-A', 'tcp/22', '-p', String(rig.L.port), '127.0.0.1']);
      assert.equal(small.code, 0, small.err);
      const d = await rig.L.next();
      assert.ok(
        d.msg.length > 1000 && d.msg.length <= 1400,
        `RSA-4096 knock of ${d.msg.length} bytes fits one datagram`,
      );
      await openKnock(d.msg, await testServer(srv), [me]);
    } finally {
      await home.cleanup();
    }
  });
});
