/**
 * spa-keys server commands, in-process (scripted prompts stand in for the terminal) and as the
 * real binary for the output format and exit codes.
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { allowlistPath, loadAllowlist, loadServerKey, serverPublicKeyPath } from '../../keyring/allowlist.js';
import { EXIT, exitCodeFor, formatMessage, printError } from '../../cli/conventions.js';
import { inspectKey } from '../../keyring/inspect.js';
import type { KeyRecord } from '../../keyring/schema.js';
import { ConfigError } from '../../protocol/errors.js';
import { makeKey, runKeys, ScriptedPrompter, spawnKeys, stderrLinesOk, withTmp } from './keyring-helpers.js';

const mode = async (p: string) => (await stat(p)).mode & 0o777;

async function initDir(dir: string): Promise<string> {
  const s = join(dir, 'state');
  const r = await runKeys(['init', '--state-dir', s]);
  assert.equal(r.code, 0, r.stderr);
  return s;
}

async function keyFile(dir: string, name: string, opts: Parameters<typeof makeKey>[0] = {}) {
  const k = await makeKey({ name, email: `${name.toLowerCase()}@example.test`, ...opts });
  const path = join(dir, `${name}.asc`);
  await writeFile(path, k.publicKey);
  const sec = join(dir, `${name}.sec.asc`);
  await writeFile(sec, k.privateKey);
  return { ...k, path, sec };
}

async function records(state: string): Promise<KeyRecord[]> {
  return [...(await loadAllowlist(state)).records.values()];
}

describe('cli/conventions', () => {
  it('prints one error line, lowercase, without trailing period, then the hint lines', () => {
    let out = '';
    printError(
      new ConfigError('KEY_NOT_FOUND', 'No key matches x.', { hint: 'known keys:\n  AAAA  alice' }),
      (s) => {
        out += s;
      },
    );
    assert.equal(out, 'spa: error: no key matches x\nspa: hint: known keys:\nspa: hint:   AAAA  alice\n');
    assert.equal(formatMessage('RSA keys are weak.'), 'RSA keys are weak');
    assert.equal(formatMessage('two\nlines'), 'two; lines');
  });

  it('maps error codes to the documented exit codes', () => {
    assert.equal(exitCodeFor('USAGE'), EXIT.USAGE);
    assert.equal(exitCodeFor('ACCESS_SPEC'), EXIT.USAGE);
    assert.equal(exitCodeFor('KEY_WEAK'), EXIT.KEY);
    assert.equal(exitCodeFor('KEY_SECRET_REFUSED'), EXIT.KEY);
    assert.equal(exitCodeFor('KEY_AMBIGUOUS'), EXIT.KEY);
    assert.equal(exitCodeFor('KEYRING_CORRUPT'), EXIT.STATE);
    assert.equal(exitCodeFor('KEYRING_LOCKED'), EXIT.STATE);
    assert.equal(exitCodeFor('EXISTS'), EXIT.REFUSED);
    assert.equal(exitCodeFor('NOT_CONFIRMED'), EXIT.REFUSED);
    assert.equal(exitCodeFor('IO'), EXIT.ERROR);
  });
});

describe('spa-keys init', () => {
  it('creates a 0700 state dir, server.key 0600, server.asc 0644, an empty 0600 allowlist, and prints the fingerprint', async () => {
    await withTmp(async (dir) => {
      const s = join(dir, 'state');
      const r = await runKeys(['init', '--state-dir', s]);
      assert.equal(r.code, 0, r.stderr);
      const fpr = /^fingerprint: ([0-9A-F]{40})$/m.exec(r.stdout)?.[1];
      assert.ok(fpr, r.stdout);
      assert.match(r.stdout, new RegExp(`^public key: ${serverPublicKeyPath(s)}$`, 'm'));
      assert.equal(await mode(s), 0o700);
      assert.equal(await mode(join(s, 'server.key')), 0o600);
      assert.equal(await mode(join(s, 'server.asc')), 0o644);
      assert.equal(await mode(join(s, 'keyring.json')), 0o600);
      const info = await inspectKey(await readFile(join(s, 'server.asc'), 'utf8'));
      assert.equal(info.fingerprint, fpr);
      assert.equal(info.version, 4, 'v4 so GnuPG 2.2 can use it');
      assert.equal(info.algorithm, 'ed25519');
      assert.deepEqual(
        info.subkeys.map((k) => k.algorithm),
        ['cv25519'],
      );
      assert.equal((await records(s)).length, 0);
      const key = await loadServerKey(s);
      assert.equal(key.getFingerprint().toUpperCase(), fpr);
    });
  });

  it('refuses to overwrite an initialised state dir and leaves the key as it was', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const before = await readFile(join(s, 'server.key'), 'utf8');
      const r = await runKeys(['init', '--state-dir', s]);
      assert.equal(r.code, EXIT.REFUSED);
      assert.match(r.stderr, /^spa: error: .*server\.key already exists; refusing to overwrite$/m);
      assert.equal(await readFile(join(s, 'server.key'), 'utf8'), before);
    });
  });

  it('protects server.key with the passphrase file, and loading it needs that passphrase', async () => {
    await withTmp(async (dir) => {
      await writeFile(join(dir, 'pw'), 'correct horse\n', { mode: 0o600 });
      const s = join(dir, 'state');
      const r = await runKeys(['init', '--state-dir', s, '--passphrase-file', join(dir, 'pw')]);
      assert.equal(r.code, 0, r.stderr);
      await assert.rejects(
        loadServerKey(s),
        (e: unknown) => e instanceof ConfigError && e.code === 'KEY_PASSPHRASE',
      );
      await assert.rejects(
        loadServerKey(s, 'wrong'),
        (e: unknown) => e instanceof ConfigError && e.code === 'KEY_PASSPHRASE',
      );
      const key = await loadServerKey(s, 'correct horse');
      assert.equal(key.isDecrypted(), true);
    });
  });

  it('makes an RSA 4096 server key with --type rsa4096 and a v6 key with --type curve25519-v6', async () => {
    await withTmp(async (dir) => {
      const a = await runKeys(['init', '--state-dir', join(dir, 'a'), '--type', 'rsa4096']);
      assert.equal(a.code, 0, a.stderr);
      const ia = await inspectKey(await readFile(join(dir, 'a', 'server.asc'), 'utf8'));
      assert.equal(ia.algorithm, 'rsa4096');
      assert.equal(ia.canEncrypt, true);
      const b = await runKeys(['init', '--state-dir', join(dir, 'b'), '--type', 'curve25519-v6']);
      assert.equal(b.code, 0, b.stderr);
      assert.match(b.stdout, /^fingerprint: [0-9A-F]{64}$/m);
      const bad = await runKeys(['init', '--state-dir', join(dir, 'c'), '--type', 'dsa']);
      assert.equal(bad.code, EXIT.USAGE);
      assert.match(bad.stderr, /^spa: error: option '--type <type>' argument 'dsa' is invalid/m);
    });
  });
});

describe('spa-keys add (scripted)', () => {
  it('enrolls a key with every flag and stores exactly the canonical values', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Alice');
      const r = await runKeys([
        'add',
        '--state-dir',
        s,
        '--user',
        'alice',
        '--key',
        k.path,
        '--source',
        '198.51.100.7,2001:DB8::/32',
        '--open',
        'tcp/22,udp/53,tcp/22',
        '--timeout',
        '60',
        '--max-timeout',
        '600',
        '--cmd-regex',
        'backup-run (home|etc)',
        '--cmd-user',
        'nobody',
        '--cmd-timeout',
        '120',
        '--expires',
        '2099-12-31',
        '--no-require-source',
        '--yes',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `enrolled alice ${k.fingerprint}\n`);
      const [rec] = await records(s);
      assert.ok(rec);
      assert.equal(rec.fingerprint, k.fingerprint);
      assert.equal(rec.username, 'alice');
      assert.deepEqual(rec.sources, ['198.51.100.7/32', '2001:db8::/32']);
      assert.deepEqual(rec.openPorts, ['tcp/22', 'udp/53']);
      assert.equal(rec.defaultTimeout, 60);
      assert.equal(rec.maxTimeout, 600);
      assert.equal(rec.requireSourceAddress, false);
      assert.equal(rec.enabled, true);
      assert.equal(rec.expiresAt, '2099-12-31T00:00:00.000Z');
      assert.deepEqual(rec.command, {
        regex: 'backup-run (home|etc)',
        runAs: 'nobody',
        timeoutSeconds: 120,
        openPorts: [],
      });
      assert.deepEqual(rec.signingFingerprints, [k.fingerprint]);
      assert.deepEqual(rec.userIds, ['Alice <alice@example.test>']);
      assert.equal(rec.algorithm, 'ed25519');
      assert.match(rec.publicKey, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
      assert.match(r.stderr, new RegExp(`fingerprint  ${k.fingerprint}`));
    });
  });

  it('--forward and --reply are stored canonically; without them the record has neither field', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const a = await keyFile(dir, 'Alice');
      const b = await keyFile(dir, 'Bob');
      const base = ['add', '--state-dir', s, '--open', 'tcp/22', '--yes'];
      const r = await runKeys([
        ...base,
        '--user',
        'alice',
        '--key',
        a.path,
        '--forward',
        '203.0.113.10:22,udp/[2001:DB8:1::10]:53,203.0.113.10:22',
        '--reply',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await runKeys([...base, '--user', 'bob', '--key', b.path])).code, 0);
      const recs = await records(s);
      const alice = recs.find((x) => x.username === 'alice');
      const bob = recs.find((x) => x.username === 'bob');
      assert.deepEqual(alice?.forward, ['203.0.113.10:22', 'udp/[2001:db8:1::10]:53']);
      assert.equal(alice?.reply, true);
      assert.ok(bob && !('forward' in bob) && !('reply' in bob));
      const bad = await runKeys([...base, '--user', 'bob', '--key', b.path, '--forward', 'gw.example:22']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /^spa: error: --forward: 'gw\.example:22' /m);
    });
  });

  it('uses the defaults for what is not given: any source, source address required, 30/300 s, no command, no expiry', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Bob');
      const r = await runKeys([
        'add',
        '--state-dir',
        s,
        '--user',
        'bob',
        '--key',
        k.path,
        '--open',
        'tcp/22',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const [rec] = await records(s);
      assert.equal(rec?.sources, 'any');
      assert.equal(rec?.requireSourceAddress, true);
      assert.equal(rec?.defaultTimeout, 30);
      assert.equal(rec?.maxTimeout, 300);
      assert.equal(rec?.command, null);
      assert.equal(rec?.expiresAt, null);
    });
  });

  it('reads the key from stdin with --key -', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await makeKey({ name: 'Carol' });
      const r = await runKeys(
        ['add', '--state-dir', s, '--user', 'carol', '--key', '-', '--open', 'tcp/22'],
        {
          stdin: k.publicKey,
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await records(s))[0]?.fingerprint, k.fingerprint);
    });
  });

  it('without a terminal, names every missing required flag in one error and stores nothing', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const r = await runKeys(['add', '--state-dir', s]);
      assert.equal(r.code, EXIT.USAGE);
      assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('spa: error:')).length, 1);
      assert.match(r.stderr, /^spa: error: missing required flags: --user, --key, --open$/m);
      const r2 = await runKeys([
        'add',
        '--state-dir',
        s,
        '--user',
        'x',
        '--key',
        'k',
        '--open',
        'tcp/22',
        '--cmd-regex',
        'a',
      ]);
      assert.match(r2.stderr, /^spa: error: missing required flag: --cmd-user$/m);
      assert.equal((await records(s)).length, 0);
    });
  });

  it('refuses a secret key without storing any of it', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Eve');
      const r = await runKeys(['add', '--state-dir', s, '--user', 'eve', '--key', k.sec, '--open', 'tcp/22']);
      assert.equal(r.code, EXIT.KEY);
      assert.match(r.stderr, /^spa: error: .*is a SECRET key; it was not stored$/m);
      const text = await readFile(allowlistPath(s), 'utf8');
      assert.ok(!text.includes('PRIVATE'));
      assert.equal((await records(s)).length, 0);
    });
  });

  it('refuses the same key twice with a hint to show or remove it', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Dave');
      const args = ['add', '--state-dir', s, '--user', 'dave', '--key', k.path, '--open', 'tcp/22'];
      assert.equal((await runKeys(args)).code, 0);
      const again = await runKeys([...args.slice(0, 4), 'dave2', ...args.slice(5)]);
      assert.equal(again.code, EXIT.REFUSED);
      assert.match(again.stderr, /already enrolled for dave/);
      assert.match(again.stderr, new RegExp(`^spa: hint: .*spa-keys remove ${k.fingerprint}$`, 'm'));
    });
  });

  it('refuses bad flag values before reading the key, naming the flag', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Fred');
      const base = ['add', '--state-dir', s, '--user', 'fred', '--key', k.path];
      const cases: [string[], RegExp][] = [
        [['--open', 'tcp/99999'], /--open: port must be 1\.\.65535/],
        [['--open', 'tcp/20-22'], /port ranges are not supported/],
        [['--open', 'tcp/22', '--source', '10.0.0.1/8'], /--source: host bits set/],
        [['--open', 'tcp/22', '--timeout', '400'], /--timeout 400 exceeds --max-timeout 300/],
        [['--open', 'tcp/22', '--timeout', '0'], /--timeout: expected whole seconds/],
        [['--open', 'tcp/22', '--expires', '2001-01-01'], /--expires: .* is not in the future/],
        [
          ['--open', 'tcp/22', '--cmd-regex', 'a(', '--cmd-user', 'nobody'],
          /--cmd-regex: regex does not compile/,
        ],
        [
          ['--open', 'tcp/22', '--cmd-regex', 'uptime)|(reboot', '--cmd-user', 'nobody'],
          /--cmd-regex: regex does not compile on its own .*Unmatched '\)'/,
        ],
        [
          ['--open', 'tcp/22', '--cmd-regex', '(home|etc) \\1', '--cmd-user', 'nobody'],
          /--cmd-regex: regex uses what the linear-time engine cannot run/,
        ],
        [
          ['--open', 'tcp/22', '--cmd-regex', 'a', '--cmd-user', 'Root User'],
          /--cmd-user: 'Root User' is not a valid unix user name/,
        ],
      ];
      for (const [extra, re] of cases) {
        const r = await runKeys([...base, ...extra]);
        assert.equal(r.code, EXIT.USAGE, `${extra.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, re);
      }
      const bad = await runKeys([
        'add',
        '--state-dir',
        s,
        '--user',
        'Fred!',
        '--key',
        k.path,
        '--open',
        'tcp/22',
      ]);
      assert.equal(bad.code, EXIT.USAGE);
      assert.match(bad.stderr, /--user: 'Fred!' is not a valid user name/);
      assert.equal((await records(s)).length, 0);
    });
  });

  it('warns that a broad command regex lets the key holder pass any argument', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Gina');
      const r = await runKeys([
        ...['add', '--state-dir', s, '--user', 'gina', '--key', k.path, '--open', 'tcp/22'],
        ...['--cmd-regex', 'backup-run .*', '--cmd-user', 'nobody'],
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^spa: warning: --cmd-regex contains \.\*: a key holder may pass any text/m);
      assert.match(r.stderr, /^spa: warning: --cmd-regex matches "backup-run x; rm -rf \/"/m);
    });
  });

  it('accepts --cmd-user root only as the explicit choice it is, with a loud warning', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Hank');
      const r = await runKeys([
        ...['add', '--state-dir', s, '--user', 'hank', '--key', k.path, '--open', 'tcp/22'],
        ...['--cmd-regex', 'backup-run (home|etc)', '--cmd-user', 'root'],
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /^spa: warning: --cmd-user root: every command this regex allows will run with full root privileges/m,
      );
      const [rec] = await records(s);
      assert.equal(rec?.command?.runAs, 'root');
    });
  });

  it('refuses keys that cannot sign knocks: RSA 1024 is weak, expired is invalid', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const weak = await keyFile(dir, 'Weak', { type: 'rsa', rsaBits: 1024 });
      const old = await keyFile(dir, 'Old', {
        date: new Date(Date.now() - 5 * 86_400_000),
        keyExpirationTime: 86_400,
      });
      const w = await runKeys([
        'add',
        '--state-dir',
        s,
        '--user',
        'w',
        '--key',
        weak.path,
        '--open',
        'tcp/22',
      ]);
      assert.equal(w.code, EXIT.KEY);
      assert.match(w.stderr, /RSA with 1024 bits; at least 2048 are required/);
      const o = await runKeys([
        'add',
        '--state-dir',
        s,
        '--user',
        'o',
        '--key',
        old.path,
        '--open',
        'tcp/22',
      ]);
      assert.equal(o.code, EXIT.KEY);
      assert.match(o.stderr, /expired on/);
      assert.equal((await records(s)).length, 0);
    });
  });
});

describe('spa-keys add (interactive, scripted answers)', () => {
  it('asks for everything missing, re-asks after each invalid answer, and stores the answers', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Alice');
      const p = new ScriptedPrompter([
        join(dir, 'missing.asc'), // key: no such file, re-asked
        k.sec, // key: a secret key, re-asked
        k.path,
        true, // fingerprint confirmed
        'Bad User!', // re-asked
        'alice',
        '', // sources: default any
        'tcp/99999', // re-asked
        'tcp/22,udp/53',
        false, // NAT allowed
        '', // default timeout 30
        '10', // max below default: re-asked
        '600',
        true, // command allowed
        'a(', // does not compile: re-asked
        'backup-run [a-z]+',
        'no body', // not a user name: re-asked
        'nobody',
        '', // 60 s
        false, // no fwknop knocks
        'yesterday', // re-asked
        '2099-12-31',
        'gw.example:22', // forward: names are not resolved, re-asked
        '203.0.113.10:22,local:22',
        true, // signed reply
      ]);
      const r = await runKeys(['add', '--state-dir', s], { prompter: p });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(p.remaining, 0);
      assert.deepEqual(
        p.rejected.map((x) => x.answer),
        [
          join(dir, 'missing.asc'),
          k.sec,
          'Bad User!',
          'tcp/99999',
          '10',
          'a(',
          'no body',
          'yesterday',
          'gw.example:22',
        ],
      );
      assert.match(p.rejected[1]?.reason ?? '', /SECRET key/);
      assert.match(p.rejected[2]?.reason ?? '', /not a valid user name/);
      const [rec] = await records(s);
      assert.ok(rec);
      assert.equal(rec.username, 'alice');
      assert.equal(rec.sources, 'any');
      assert.deepEqual(rec.openPorts, ['tcp/22', 'udp/53']);
      assert.equal(rec.requireSourceAddress, false);
      assert.equal(rec.defaultTimeout, 30);
      assert.equal(rec.maxTimeout, 600);
      assert.deepEqual(rec.command, {
        regex: 'backup-run [a-z]+',
        runAs: 'nobody',
        timeoutSeconds: 60,
        openPorts: [],
      });
      assert.equal(rec.expiresAt, '2099-12-31T00:00:00.000Z');
      assert.deepEqual(rec.forward, ['203.0.113.10:22', 'local:22']);
      assert.equal(rec.reply, true);
    });
  });

  it('takes a pasted key, suggests the username from the e-mail, and asks only for what no flag gave', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await makeKey({ name: 'Hugo', email: 'hugo@example.test' });
      const p = new ScriptedPrompter(['-', k.publicKey, true, '', '', true, '', false, false, '', '', false]);
      const r = await runKeys(['add', '--state-dir', s, '--open', 'tcp/2222', '--timeout', '45'], {
        prompter: p,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(p.remaining, 0);
      assert.ok(!p.asked.some((m) => /Ports to open/.test(m)), 'no question for a flag given');
      assert.ok(!p.asked.some((m) => /Default firewall timeout/.test(m)));
      const [rec] = await records(s);
      assert.equal(rec?.username, 'hugo');
      assert.deepEqual(rec?.openPorts, ['tcp/2222']);
      assert.equal(rec?.defaultTimeout, 45);
      assert.equal(rec?.maxTimeout, 300);
    });
  });

  it('stores nothing when the fingerprint is not confirmed', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Ivan');
      const p = new ScriptedPrompter([false]);
      const r = await runKeys(
        ['add', '--state-dir', s, '--user', 'ivan', '--key', k.path, '--open', 'tcp/22'],
        {
          prompter: p,
        },
      );
      assert.equal(r.code, EXIT.REFUSED);
      assert.match(r.stderr, /^spa: error: fingerprint not confirmed; nothing was stored$/m);
      assert.equal((await records(s)).length, 0);
    });
  });

  it('asks nothing but the fingerprint when all required flags are given on a terminal, and nothing with --yes', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const k = await keyFile(dir, 'Jane');
      const p = new ScriptedPrompter([true]);
      const args = ['add', '--state-dir', s, '--user', 'jane', '--key', k.path, '--open', 'tcp/22'];
      assert.equal((await runKeys(args, { prompter: p })).code, 0);
      assert.equal(p.asked.length, 1);
      const k2 = await keyFile(dir, 'June');
      const p2 = new ScriptedPrompter([]);
      const r2 = await runKeys(
        ['add', '--state-dir', s, '--user', 'june', '--key', k2.path, '--open', 'tcp/22', '--yes'],
        {
          prompter: p2,
        },
      );
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(p2.asked.length, 0);
    });
  });
});

describe('spa-keys list, show, disable, enable, remove, export-server', () => {
  async function twoUsers(dir: string) {
    const s = await initDir(dir);
    const a1 = await keyFile(dir, 'Ann1');
    const a2 = await keyFile(dir, 'Ann2');
    const b = await keyFile(dir, 'Ben');
    for (const [u, k, extra] of [
      ['ann', a1, []],
      ['ann', a2, ['--expires', '2099-01-01']],
      ['ben', b, ['--source', '198.51.100.0/24']],
    ] as const) {
      const r = await runKeys([
        'add',
        '--state-dir',
        s,
        '--user',
        u,
        '--key',
        k.path,
        '--open',
        'tcp/22',
        ...extra,
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    return { s, a1, a2, b };
  }

  it('lists a table and JSON of every record', async () => {
    await withTmp(async (dir) => {
      const { s, a1, a2, b } = await twoUsers(dir);
      const t = await runKeys(['list', '--state-dir', s]);
      assert.equal(t.code, 0, t.stderr);
      const lines = t.stdout.trimEnd().split('\n');
      assert.match(lines[0] ?? '', /^USER\s+FINGERPRINT\s+ENABLED\s+EXPIRES\s+PORTS\s+SOURCES$/);
      assert.equal(lines.length, 4);
      assert.match(
        t.stdout,
        new RegExp(`^ann\\s+${a2.fingerprint}\\s+yes\\s+2099-01-01\\s+tcp/22\\s+any$`, 'm'),
      );
      assert.match(
        t.stdout,
        new RegExp(`^ben\\s+${b.fingerprint}\\s+yes\\s+never\\s+tcp/22\\s+198\\.51\\.100\\.0/24$`, 'm'),
      );
      const j = await runKeys(['list', '--json'], { env: { SPA_STATE_DIR: s } });
      const parsed = JSON.parse(j.stdout) as KeyRecord[];
      assert.deepEqual(
        parsed.map((r) => r.fingerprint).sort(),
        [a1.fingerprint, a2.fingerprint, b.fingerprint].sort(),
      );
    });
  });

  it('shows records by username, fingerprint and long key id, and refuses short key ids', async () => {
    await withTmp(async (dir) => {
      const { s, a1, b } = await twoUsers(dir);
      const byUser = await runKeys(['show', 'ann', '--state-dir', s, '--json']);
      assert.equal((JSON.parse(byUser.stdout) as KeyRecord[]).length, 2);
      const byFpr = await runKeys(['show', a1.fingerprint.toLowerCase(), '--state-dir', s]);
      assert.match(byFpr.stdout, new RegExp(`^ann  ${a1.fingerprint}$`, 'm'));
      const byId = await runKeys(['show', b.fingerprint.slice(-16), '--state-dir', s]);
      assert.match(byId.stdout, /^ben {2}/m);
      assert.match(byId.stdout, /sources {10}198\.51\.100\.0\/24/);
      const short = await runKeys(['show', b.fingerprint.slice(-8), '--state-dir', s]);
      assert.equal(short.code, EXIT.KEY);
      assert.match(short.stderr, /short key id, which is not accepted/);
      const none = await runKeys(['show', 'zed', '--state-dir', s]);
      assert.equal(none.code, EXIT.KEY);
      assert.match(none.stderr, /^spa: error: no enrolled key matches 'zed'$/m);
      assert.match(none.stderr, new RegExp(`^spa: hint:   ${b.fingerprint}  ben`, 'm'));
    });
  });

  it('disables every key of a username and enables one by fingerprint', async () => {
    await withTmp(async (dir) => {
      const { s, a1, a2, b } = await twoUsers(dir);
      const d = await runKeys(['disable', 'ann', '--state-dir', s]);
      assert.equal(d.code, 0, d.stderr);
      assert.equal(d.stdout.trim().split('\n').length, 2);
      let al = await loadAllowlist(s);
      assert.equal(al.records.get(a1.fingerprint)?.enabled, false);
      assert.equal(al.records.get(a2.fingerprint)?.enabled, false);
      assert.equal(al.records.get(b.fingerprint)?.enabled, true);
      const e = await runKeys(['enable', a2.fingerprint, '--state-dir', s]);
      assert.equal(e.stdout, `enabled ann ${a2.fingerprint}\n`);
      al = await loadAllowlist(s);
      assert.equal(al.records.get(a1.fingerprint)?.enabled, false);
      assert.equal(al.records.get(a2.fingerprint)?.enabled, true);
      const t = await runKeys(['list', '--state-dir', s]);
      assert.match(t.stdout, new RegExp(`^ann\\s+${a1.fingerprint}\\s+no\\s`, 'm'));
    });
  });

  it('refuses to remove by a username that has several keys, listing the fingerprints', async () => {
    await withTmp(async (dir) => {
      const { s, a1, a2 } = await twoUsers(dir);
      const r = await runKeys(['remove', 'ann', '--yes', '--state-dir', s]);
      assert.equal(r.code, EXIT.KEY);
      assert.match(r.stderr, /^spa: error: 'ann' matches 2 enrolled keys; name one by fingerprint$/m);
      assert.match(r.stderr, new RegExp(`^spa: hint:   ${a1.fingerprint}  ann`, 'm'));
      assert.match(r.stderr, new RegExp(`^spa: hint:   ${a2.fingerprint}  ann`, 'm'));
      assert.equal((await records(s)).length, 3);
    });
  });

  it('removes only after confirmation: refused without a terminal, asked on one, skipped with --yes', async () => {
    await withTmp(async (dir) => {
      const { s, a1, b } = await twoUsers(dir);
      const noTty = await runKeys(['remove', 'ben', '--state-dir', s]);
      assert.equal(noTty.code, EXIT.REFUSED);
      assert.match(noTty.stderr, /^spa: hint: run it on a terminal to be asked, or pass --yes$/m);
      const no = await runKeys(['remove', 'ben', '--state-dir', s], {
        prompter: new ScriptedPrompter([false]),
      });
      assert.equal(no.code, EXIT.REFUSED);
      assert.equal((await records(s)).length, 3);
      const yes = await runKeys(['remove', 'ben', '--state-dir', s], {
        prompter: new ScriptedPrompter([true]),
      });
      assert.equal(yes.code, 0, yes.stderr);
      assert.equal(yes.stdout, `removed ben ${b.fingerprint}\n`);
      const flag = await runKeys(['remove', a1.fingerprint, '--yes', '--state-dir', s]);
      assert.equal(flag.code, 0);
      assert.equal((await records(s)).length, 1);
    });
  });

  it('prints server.asc with export-server and explains a missing one', async () => {
    await withTmp(async (dir) => {
      const s = await initDir(dir);
      const r = await runKeys(['export-server', '--state-dir', s]);
      assert.equal(r.stdout, await readFile(join(s, 'server.asc'), 'utf8'));
      const none = await runKeys(['export-server', '--state-dir', join(dir, 'nothing')]);
      assert.equal(none.code, EXIT.ERROR);
      assert.match(none.stderr, /^spa: hint: create the server key with: spa-keys init/m);
    });
  });
});

describe('the spa-keys binary', () => {
  it('prints help and exits 0', async () => {
    const r = await spawnKeys(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: spa-keys/);
  });

  it('reports usage errors, refusals and corrupt state in the spa: error format with the documented exit codes', async () => {
    await withTmp(async (dir) => {
      const s = join(dir, 'state');
      assert.equal((await spawnKeys(['init', '--state-dir', s])).code, 0);
      const k = await keyFile(dir, 'Kim');
      const cases: [string[], number, RegExp, string?][] = [
        [['frobnicate'], EXIT.USAGE, /^spa: error: unknown command 'frobnicate'$/m],
        [['add', '--state-dir', s, '--bogus'], EXIT.USAGE, /^spa: error: unknown option '--bogus'$/m],
        [
          ['add', '--state-dir', s],
          EXIT.USAGE,
          /^spa: error: missing required flags: --user, --key, --open$/m,
        ],
        [
          ['add', '--state-dir', s, '--user', 'kim', '--key', k.sec, '--open', 'tcp/22'],
          EXIT.KEY,
          /SECRET key/,
        ],
        [
          ['add', '--state-dir', s, '--user', 'kim', '--key', '-', '--open', 'tcp/22'],
          EXIT.OK,
          /key to enroll/,
          k.publicKey,
        ],
        [
          ['add', '--state-dir', s, '--user', 'kim', '--key', k.path, '--open', 'tcp/22'],
          EXIT.REFUSED,
          /already enrolled/,
        ],
        [['remove', 'kim', '--state-dir', s], EXIT.REFUSED, /without confirmation/],
        [['show', 'nobody-here', '--state-dir', s], EXIT.KEY, /no enrolled key matches/],
      ];
      for (const [argv, code, re, input] of cases) {
        const r = await spawnKeys(argv, input !== undefined ? { input } : {});
        assert.equal(r.code, code, `${argv.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, re);
        assert.ok(stderrLinesOk(r.stderr), `stderr format: ${r.stderr}`);
        assert.ok(!r.stderr.includes('    at '), 'no stack trace');
      }
      await writeFile(allowlistPath(s), '{"version":1,"keys":{"X":{}}}');
      const bad = await spawnKeys(['list', '--state-dir', s]);
      assert.equal(bad.code, EXIT.STATE);
      assert.match(bad.stderr, /^spa: error: .*keyring\.json: keys\.X\.fingerprint: /m);
      assert.match(bad.stderr, /^spa: hint: .*left as it is/m);
    });
  });
});
