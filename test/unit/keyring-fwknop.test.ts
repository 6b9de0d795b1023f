/**
 * Enrolling users for fwknop knocks: `spa-keys add --fwknop [--fwknop-hmac-key(-base64) FILE]`
 * and `spa-keys import-fwknop` on test/e2e/fixtures/fwknop/access.conf (a realistic file with
 * the awkward cases), its keys put in a real GnuPG home. The fwknop client then knocks with
 * these enrollments in test/e2e/fwknop-client.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAllowlist } from '../../keyring/allowlist.js';
import { parseAccessConf } from '../../keyring/fwknop-access-conf.js';
import { makeKey, runKeys, stderrLinesOk, withTmp } from './keyring-helpers.js';

export const FWKNOP_FIXTURE = fileURLToPath(new URL('../../../test/e2e/fixtures/fwknop/', import.meta.url));
const META = JSON.parse(readFileSync(join(FWKNOP_FIXTURE, 'keys.json'), 'utf8')) as Record<
  'alice' | 'bob' | 'carol' | 'carol-twin',
  { fingerprint: string; short_id?: string; hmac_key_base64?: string }
>;

async function initState(dir: string): Promise<string> {
  const s = join(dir, 'state');
  assert.equal((await runKeys(['init', '--state-dir', s])).code, 0);
  return s;
}

/** A GnuPG home holding the fixture's public keys, as fwknopd's server keyring would. */
export function fixtureGpgHome(dir: string): string {
  const home = join(dir, 'gnupg');
  execFileSync('mkdir', ['-m', '0700', '-p', home]);
  for (const k of ['alice', 'bob', 'carol', 'carol-twin']) {
    execFileSync(
      'gpg',
      ['--homedir', home, '--batch', '--quiet', '--import', join(FWKNOP_FIXTURE, `${k}.pub.asc`)],
      {
        stdio: 'ignore',
      },
    );
  }
  return home;
}

function killAgent(home: string): void {
  try {
    execFileSync('gpgconf', ['--homedir', home, '--kill', 'all'], { stdio: 'ignore' });
  } catch {
    // no agent was started
  }
}

describe('spa-keys add --fwknop', () => {
  test('off by default; --fwknop enrolls without HMAC and warns about it', async () => {
    await withTmp(async (dir) => {
      const s = await initState(dir);
      const a = await makeKey({ name: 'a' });
      const b = await makeKey({ name: 'b' });
      await mkdir(join(dir, 'k'));
      writeFileSync(join(dir, 'k/a.asc'), a.publicKey);
      writeFileSync(join(dir, 'k/b.asc'), b.publicKey);
      const base = ['add', '--state-dir', s, '--open', 'tcp/22', '--yes'];
      assert.equal((await runKeys([...base, '--user', 'aa', '--key', join(dir, 'k/a.asc')])).code, 0);
      const r = await runKeys([...base, '--user', 'bb', '--key', join(dir, 'k/b.asc'), '--fwknop']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /spa: warning: fwknop knocks without an HMAC/);
      const recs = (await loadAllowlist(s)).records;
      assert.equal(recs.get(a.fingerprint)?.fwknop, undefined);
      assert.deepEqual(recs.get(b.fingerprint)?.fwknop, { hmacKey: null, requireUsername: null });
    });
  });

  test('--fwknop-hmac-key-base64 stores the key; list and show never print it', async () => {
    await withTmp(async (dir) => {
      const s = await initState(dir);
      const a = await makeKey({ name: 'a' });
      writeFileSync(join(dir, 'a.asc'), a.publicKey);
      const hmac = Buffer.alloc(64, 9).toString('base64');
      writeFileSync(join(dir, 'hmac'), `${hmac}\n`, { mode: 0o600 });
      const r = await runKeys([
        'add',
        '--state-dir',
        s,
        '--open',
        'tcp/22',
        '--yes',
        '--user',
        'aa',
        '--key',
        join(dir, 'a.asc'),
        '--fwknop',
        '--fwknop-hmac-key-base64',
        join(dir, 'hmac'),
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await loadAllowlist(s)).records.get(a.fingerprint)?.fwknop?.hmacKey, hmac);
      for (const argv of [
        ['show', 'aa', '--state-dir', s],
        ['show', 'aa', '--json', '--state-dir', s],
        ['list', '--json', '--state-dir', s],
      ]) {
        const out = await runKeys(argv);
        assert.equal(out.code, 0);
        assert.ok(!out.stdout.includes(hmac.slice(0, 20)), `${argv.join(' ')} printed the HMAC key`);
      }
      assert.match(
        (await runKeys(['show', 'aa', '--state-dir', s])).stdout,
        /fwknop knocks +yes \(HMAC key set\)/,
      );
    });
  });

  test('raw --fwknop-hmac-key text; too short, world-readable, or without --fwknop refused', async () => {
    await withTmp(async (dir) => {
      const s = await initState(dir);
      const a = await makeKey({ name: 'a' });
      writeFileSync(join(dir, 'a.asc'), a.publicKey);
      const base = [
        'add',
        '--state-dir',
        s,
        '--open',
        'tcp/22',
        '--yes',
        '--user',
        'aa',
        '--key',
        join(dir, 'a.asc'),
      ];
      writeFileSync(join(dir, 'short'), 'too short\n', { mode: 0o600 });
      writeFileSync(join(dir, 'open'), 'a long enough raw hmac key text\n', { mode: 0o644 });
      writeFileSync(join(dir, 'raw'), 'a long enough raw hmac key text\n', { mode: 0o600 });
      const short = await runKeys([...base, '--fwknop', '--fwknop-hmac-key', join(dir, 'short')]);
      assert.equal(short.code, 3);
      assert.match(short.stderr, /16\.\.128/);
      const open = await runKeys([...base, '--fwknop', '--fwknop-hmac-key', join(dir, 'open')]);
      assert.notEqual(open.code, 0);
      assert.match(open.stderr, /readable/);
      const alone = await runKeys([...base, '--fwknop-hmac-key', join(dir, 'raw')]);
      assert.equal(alone.code, 2);
      assert.match(alone.stderr, /needs --fwknop/);
      assert.equal((await loadAllowlist(s)).records.size, 0, 'nothing stored by the refused runs');
      const ok = await runKeys([...base, '--fwknop', '--fwknop-hmac-key', join(dir, 'raw')]);
      assert.equal(ok.code, 0, ok.stderr);
      const stored = (await loadAllowlist(s)).records.get(a.fingerprint)?.fwknop?.hmacKey ?? '';
      assert.equal(Buffer.from(stored, 'base64').toString(), 'a long enough raw hmac key text');
    });
  });
});

describe('spa-keys import-fwknop', () => {
  test('the access.conf parser keeps stanzas, lines and the last value of a directive', () => {
    const c = parseAccessConf(
      '# c\nOPEN_PORTS tcp/1\nSOURCE ANY;\n  OPEN_PORTS tcp/22 ;\nOPEN_PORTS tcp/23\n%include x.conf\nSOURCE 10.0.0.0/8\n',
    );
    assert.equal(c.stanzas.length, 2);
    assert.equal(c.stanzas[0]?.vars.get('SOURCE')?.value, 'ANY');
    assert.deepEqual(c.stanzas[0]?.vars.get('OPEN_PORTS'), { value: 'tcp/23', line: 5 });
    assert.match(c.notes[0] ?? '', /before the first SOURCE/);
    assert.match(c.stanzas[0]?.notes[0] ?? '', /%INCLUDE x\.conf is not followed/);
  });

  test('converts the fixture: three users enrolled, three stanzas refused with reasons, warnings per stanza', async () => {
    await withTmp(async (dir) => {
      const s = await initState(dir);
      const home = fixtureGpgHome(dir);
      try {
        const conf = join(FWKNOP_FIXTURE, 'access.conf');
        const dry = await runKeys(['import-fwknop', conf, '--gpg-home', home, '--dry-run', '--state-dir', s]);
        assert.equal(dry.code, 5, dry.stderr);
        assert.match(dry.stdout, /would enroll/);
        assert.equal((await loadAllowlist(s)).records.size, 0, '--dry-run wrote nothing');

        const r = await runKeys(['import-fwknop', conf, '--gpg-home', home, '--state-dir', s]);
        assert.equal(r.code, 5, r.stderr);
        assert.ok(stderrLinesOk(r.stderr), r.stderr);
        const line = (stanza: number) =>
          r.stdout.split('\n').filter((l) => new RegExp(`^${stanza} +\\d+ `).test(l));
        assert.match(line(1).join(), new RegExp(`${META.alice.fingerprint} +alice +enrolled`));
        assert.match(line(2).join(), new RegExp(`${META.bob.fingerprint} +bob +enrolled`));
        assert.match(line(3).join(), new RegExp(`${META.carol.fingerprint} +carol +enrolled`));
        assert.match(line(4).join(), /refused .*matches 2 keys/);
        assert.match(line(5).join(), /refused .*Rijndael/);
        assert.match(line(6).join(), /refused .*FORCE_NAT/);
        for (const w of [
          /stanza 2 \(line \d+\): line \d+: DESTINATION has no spa equivalent/,
          /stanza 2 .*RESTRICT_PORTS removes tcp\/8080/,
          /stanza 2 .*ENABLE_CMD_EXEC: fwknopd runs any command/,
          /stanza 2 .*GPG_REMOTE_ID [0-9A-F]{8}: a 32-bit id; enrolled by the full fingerprint/,
          /stanza 2 .*REQUIRE_SOURCE_ADDRESS is not Y/,
          /stanza 3 .*no HMAC_KEY/,
        ])
          assert.match(r.stderr, w);
        assert.match(r.stderr, /spa: error: 3 of 6 stanzas were not fully imported/);

        const recs = (await loadAllowlist(s)).records;
        assert.equal(recs.size, 3);
        const alice = recs.get(META.alice.fingerprint);
        assert.deepEqual(alice?.fwknop, { hmacKey: META.alice.hmac_key_base64, requireUsername: null });
        assert.equal(alice?.requireSourceAddress, true);
        assert.equal(alice?.maxTimeout, 120);
        assert.equal(alice?.sources, 'any');
        const bob = recs.get(META.bob.fingerprint);
        assert.deepEqual(bob?.openPorts, ['tcp/22', 'udp/53']);
        assert.deepEqual(bob?.sources, ['198.51.100.0/24', '203.0.113.0/24']);
        assert.equal(bob?.requireSourceAddress, false);
        assert.equal(bob?.defaultTimeout, 20);
        assert.equal(bob?.expiresAt, '2099-12-31T00:00:00.000Z');
        assert.equal(bob?.command, null);
        assert.deepEqual(bob?.fwknop, { hmacKey: null, requireUsername: 'bob' });
        assert.equal(
          recs.has(META['carol-twin'].fingerprint),
          false,
          'the ambiguous short id enrolled nobody',
        );

        // a second run changes nothing and says why
        const again = await runKeys(['import-fwknop', conf, '--gpg-home', home, '--state-dir', s]);
        assert.match(again.stdout, /skipped +already enrolled for alice/);
        assert.equal((await loadAllowlist(s)).records.size, 3);
        assert.ok((await readFile(join(s, 'keyring.json'), 'utf8')).includes('"fwknop"'));
      } finally {
        killAgent(home);
      }
    });
  });
});
