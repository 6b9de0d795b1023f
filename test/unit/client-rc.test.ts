/**
 * Named stanzas: the rc format, saving one stanza without disturbing the rest (0600, atomic),
 * loading with -n, the [default] stanza, and flags overriding stanza values group by group.
 */
import assert from 'node:assert/strict';
import { chmod, chown, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseRc, readRc, replaceStanza, saveStanza } from '../../client/rc.js';
import { mergeLayers, resolveSettings } from '../../client/settings.js';
import { isSpaError } from '../../protocol/errors.js';
import { type Home, makeHome, openKnock, parseTestOutput, spa, useKnockRig } from './client-fixtures.js';

function code(e: unknown): string {
  return isSpaError(e) ? e.code : `not a SpaError: ${String(e)}`;
}

describe('rc file format', () => {
  test('stanzas, comments, blank lines and values with spaces and # are read', () => {
    const rc = parseRc(
      '# top comment\n\n[work]\nhost = gw.example.test\naccess=tcp/22,udp/53\n; other comment\nserver-cmd = backup-run home # not a comment\n[lab]\nsource-any = yes\n',
      '/x/spa.rc',
    );
    assert.deepEqual([...rc.stanzas.keys()], ['work', 'lab']);
    assert.deepEqual(rc.stanzas.get('work')?.values, {
      host: 'gw.example.test',
      access: 'tcp/22,udp/53',
      'server-cmd': 'backup-run home # not a comment',
    });
    assert.deepEqual(rc.stanzas.get('lab')?.values, { 'source-any': 'yes' });
  });

  const bad: [string, string, RegExp][] = [
    ['an unknown key', '[a]\nhots = x\n', /unknown key 'hots'/],
    ['a key before any stanza', 'host = x\n', /before the first \[name\]/],
    ['a stanza twice', '[a]\n[a]\n', /appears twice/],
    ['a key twice', '[a]\nhost = x\nhost = y\n', /given twice/],
    ['a bad stanza name', '[a b]\n', /bad stanza name/],
    ['a stray line', '[a]\njust words\n', /expected \[name\] or key = value/],
  ];
  for (const [what, text, re] of bad) {
    test(`${what} is a CONFIG_INVALID error naming the line`, () => {
      assert.throws(
        () => parseRc(text, '/x/spa.rc'),
        (e: unknown) =>
          code(e) === 'CONFIG_INVALID' &&
          re.test((e as Error).message) &&
          /spa\.rc line \d+/.test((e as Error).message),
      );
    });
  }

  test('replacing a stanza keeps every other line, comments included', () => {
    const text = '# mine\n[a]\nhost = one\n\n# about b\n[b]\nhost = two\n';
    const out = replaceStanza(parseRc(text, 'spa.rc'), 'a', { host: 'three', access: 'tcp/22' });
    assert.equal(out, '# mine\n[a]\nhost = three\naccess = tcp/22\n\n# about b\n[b]\nhost = two\n');
    const added = replaceStanza(parseRc(text, 'spa.rc'), 'c', { host: 'four' });
    assert.equal(added, `${text}\n[c]\nhost = four\n`);
  });

  test('a value with a newline cannot be saved', () => {
    assert.throws(
      () => replaceStanza(parseRc('', 'spa.rc'), 'a', { 'server-cmd': 'ls\nrm -rf /' }),
      (e: unknown) => code(e) === 'CONFIG_INVALID',
    );
  });
});

describe('saving a stanza', () => {
  let dir: Home;
  before(async () => {
    dir = await makeHome([], []);
  });
  after(() => dir.cleanup());

  test('the file is created with mode 0600 and no temporary file is left behind', async () => {
    const path = join(dir.root, 'new', 'spa.rc');
    await saveStanza(path, 'work', { host: '198.51.100.1', access: 'tcp/22' });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(join(dir.root, 'new')), ['spa.rc']);
    const rc = await readRc(path);
    assert.deepEqual(rc.stanzas.get('work')?.values, { host: '198.51.100.1', access: 'tcp/22' });
  });

  test('an existing 0644 file becomes 0600 when a stanza is saved', async () => {
    const path = join(dir.root, 'loose.rc');
    await writeFile(path, '[old]\nhost = x\n', { mode: 0o644 });
    await saveStanza(path, 'new', { host: 'y' });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual([...(await readRc(path)).stanzas.keys()], ['old', 'new']);
  });
});

describe('an rc file someone else could write is refused', () => {
  let dir: Home;
  before(async () => {
    dir = await makeHome([], []);
  });
  after(() => dir.cleanup());

  test('a group- or world-writable rc file is CONFIG_INVALID with a chmod hint', async () => {
    const path = join(dir.root, 'open.rc');
    await writeFile(path, '[a]\nhost = x\n');
    await chmod(path, 0o666);
    await assert.rejects(
      readRc(path),
      (e: unknown) =>
        code(e) === 'CONFIG_INVALID' &&
        /writable by others \(mode 666\)/.test((e as Error).message) &&
        /chmod 600/.test((e as { hint?: string }).hint ?? ''),
    );
    await chmod(path, 0o620);
    await assert.rejects(readRc(path), (e: unknown) => code(e) === 'CONFIG_INVALID');
  });

  test(
    'an rc file owned by another user is refused',
    { skip: process.getuid?.() !== 0 ? 'needs root to chown' : false },
    async () => {
      const path = join(dir.root, 'theirs.rc');
      await writeFile(path, '[a]\nhost = x\n', { mode: 0o600 });
      await chown(path, 4242, 4242);
      await assert.rejects(
        readRc(path),
        (e: unknown) => code(e) === 'CONFIG_INVALID' && /belongs to another user/.test((e as Error).message),
      );
    },
  );

  test('spa refuses to run with such a file (exit 2)', async () => {
    const path = join(dir.root, 'open2.rc');
    await writeFile(path, '[a]\nhost = 127.0.0.1\naccess = tcp/22\n');
    await chmod(path, 0o646);
    const r = await spa(['--home', dir.home, '--rc-file', path, '-n', 'a', '--test']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^spa: error: .*open2\.rc is writable by others/m);
  });
});

describe('layers: [default], then -n NAME, then flags', () => {
  const layer = (label: string, values: Record<string, string>) => ({ label, values });

  test('a flag in a group replaces the whole group from the stanza', () => {
    const s = resolveSettings(
      mergeLayers([
        layer('spa.rc [w]', { 'allow-ip': '198.51.100.9', access: 'tcp/22', ipv4: 'yes' }),
        layer('command line', { 'source-any': 'yes', 'server-cmd': 'backup', ipv6: 'yes' }),
      ]),
    );
    assert.equal(s.source.kind, 'any');
    assert.equal(s.access, undefined);
    assert.equal(s.serverCmd, 'backup');
    assert.equal(s.family, 6);
  });

  test('a bad stanza value names the file, the stanza and the key', () => {
    assert.throws(
      () => resolveSettings(mergeLayers([layer('spa.rc [w]', { access: 'tcp/99999' })])),
      (e: unknown) => code(e) === 'ACCESS_SPEC' && /^spa\.rc \[w\] access: /.test((e as Error).message),
    );
    assert.throws(
      () => resolveSettings(mergeLayers([layer('spa.rc [w]', { 'source-any': 'maybe' })])),
      (e: unknown) =>
        code(e) === 'USAGE' && /spa\.rc \[w\] source-any: expected yes or no/.test((e as Error).message),
    );
  });

  test('defaults: port 62201, timeout 0, connect timeout 5 s, gpg on PATH', () => {
    const s = resolveSettings(mergeLayers([]));
    assert.equal(s.serverPort, 62201);
    assert.equal(s.fwTimeout, 0);
    assert.equal(s.connectTimeout, 5);
    assert.equal(s.gpgExe, 'gpg');
    assert.equal(s.source.kind, 'auto');
  });
});

describe('spa -n NAME and --save-rc-stanza', () => {
  const rig = useKnockRig();

  test('--save-rc-stanza writes the stanza (0600) and also knocks, as fwknop does', async () => {
    const r = await spa([
      '--home',
      rig.H.home,
      '-n',
      'work',
      '--save-rc-stanza',
      '-A',
      'tcp/22',
      '-p',
      String(rig.L.port),
      '--fw-timeout',
      '60',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /saved stanza \[work\]/);
    const path = join(rig.H.home, 'spa.rc');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const text = await readFile(path, 'utf8');
    assert.match(
      text,
      /^\[work\]\nhost = 127\.0\.0\.1\naccess = tcp\/22\nserver-port = \d+\nfw-timeout = 60$/m,
    );
    const opened = await openKnock((await rig.L.next()).msg, rig.K.identity, [rig.K.alice]);
    assert.equal(opened.payload.timeoutSeconds, 60);
  });

  test('-n NAME alone knocks with the saved settings (HOST comes from the stanza)', async () => {
    const r = await spa(['--home', rig.H.home, '-n', 'work']);
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await rig.L.next()).msg, rig.K.identity, [rig.K.alice]);
    assert.equal(opened.payload.timeoutSeconds, 60);
  });

  test('flags override the stanza', async () => {
    const r = await spa([
      '--home',
      rig.H.home,
      '-n',
      'work',
      '-A',
      'udp/53',
      '--fw-timeout',
      '30',
      '-s',
      '--test',
    ]);
    assert.equal(r.code, 0, r.err);
    const { payload } = parseTestOutput(r.out);
    assert.equal(payload.access, 'udp/53');
    assert.equal(payload.timeout, 30);
    assert.equal(payload.source, 'any');
  });

  test('--save-rc-stanza with --test saves but sends nothing, and replaces the stanza', async () => {
    const before = rig.L.received.length;
    const r = await spa(['--home', rig.H.home, '-n', 'work', '--save-rc-stanza', '-A', 'tcp/443', '--test']);
    assert.equal(r.code, 0, r.err);
    await rig.L.settled();
    assert.equal(rig.L.received.length, before);
    const rc = await readRc(join(rig.H.home, 'spa.rc'));
    assert.equal(rc.stanzas.get('work')?.values.access, 'tcp/443');
    assert.equal(rc.stanzas.get('work')?.values['fw-timeout'], '60', 'kept from the old stanza');
  });

  test('a [default] stanza applies under every run', async () => {
    const path = join(rig.H.home, 'spa.rc');
    const text = await readFile(path, 'utf8');
    await writeFile(path, `[default]\nusername = bob\n\n${text}`);
    const r = await spa(['--home', rig.H.home, '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(r.code, 0, r.err);
    assert.equal(parseTestOutput(r.out).payload.username, 'bob');
    const withFlag = await spa(['--home', rig.H.home, '-A', 'tcp/22', '-U', 'alice', '--test', '127.0.0.1']);
    assert.equal(parseTestOutput(withFlag.out).payload.username, 'alice');
  });

  test('an unknown stanza is an error listing the ones there (exit 2)', async () => {
    const r = await spa(['--home', rig.H.home, '-n', 'nope', '--test']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^spa: error: no stanza \[nope\] in .*spa\.rc$/m);
    assert.match(r.err, /^spa: hint: stanzas there: work$/m);
  });

  test('a bad value in the stanza is an error naming it (exit 2)', async () => {
    const path = join(rig.H.home, 'bad.rc');
    await writeFile(path, '[b]\nhost = 127.0.0.1\naccess = tcp/22-23\n');
    const r = await spa(['--home', rig.H.home, '--rc-file', path, '-n', 'b', '--test']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^spa: error: bad\.rc \[b\] access: /m);
  });

  test('an rc file with an unknown key is an error even without -n (exit 2)', async () => {
    const path = join(rig.H.home, 'typo.rc');
    await writeFile(path, '[b]\nacess = tcp/22\n');
    const r = await spa(['--home', rig.H.home, '--rc-file', path, '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown key 'acess'/);
  });
});
