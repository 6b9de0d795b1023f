/**
 * Moving from fwknop, as README "Moving from fwknop" describes it: an fwknopd host's GnuPG home
 * (its RSA-2048 server key, made by gpg as fwknopd's docs say, and the users' public keys) and
 * its access.conf (test/e2e/fixtures/fwknop/access.conf, with the awkward cases) become spad's
 * state: fwknopd's server key as spad's, `spa-keys import-fwknop` for the users. Then the users
 * knock with the fwknop client exactly as before (same recipient key, same HMAC key), and spad
 * opens the port.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTopology, isRoot, netnsUnavailable, type Topology, waitFor } from '../../scripts/netns.js';
import { probeOne, startServices } from './firewall-harness.js';
import { FIXTURE, fwknopKnock, fwknopUnavailable, type GpgHome, gpgHome, META } from './fwknop-harness.js';
import { cli, type Keys, must, type Spad, setupKeys, startSpad } from './spad-harness.js';

const skip = !isRoot() ? 'needs root' : ((await netnsUnavailable()) ?? fwknopUnavailable());

describe(
  'import-fwknop, then the imported users knock with the fwknop client',
  { skip: skip ?? false },
  () => {
    let topo: Topology;
    let keys: Keys;
    let spad: Spad | null = null;
    let serverFpr = '';
    const homes: GpgHome[] = [];
    const client: Record<string, GpgHome> = {};
    const children: Array<{ kill(sig?: NodeJS.Signals): unknown }> = [];
    let importRun = { code: -1, stdout: '', stderr: '' };
    const ssh = () => probeOne(topo.client, ['tcp', topo.server.ipv4, 22], 600);

    before(async () => {
      topo = await createTopology();
      keys = await setupKeys();
      // fwknopd's GnuPG home: its server key pair (fwknop.md §2.8) and the users' public keys
      const fwk = gpgHome(join(keys.dir, 'fwknopd', 'gnupg'), []);
      homes.push(fwk);
      const g = (args: readonly string[]) =>
        execFileSync(
          'gpg',
          ['--homedir', fwk.dir, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args],
          {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'ignore'],
          },
        );
      g(['--quick-gen-key', 'fwknop server <fwknopd@example.test>', 'rsa2048', 'default', 'never']);
      serverFpr = /^fpr:+([0-9A-F]{40}):/m.exec(g(['--with-colons', '--list-keys']))?.[1] ?? '';
      assert.ok(serverFpr);
      g(['--quick-add-key', serverFpr, 'rsa2048', 'encr', 'never']);
      for (const u of ['alice', 'bob', 'carol', 'carol-twin']) g(['--import', join(FIXTURE, `${u}.pub.asc`)]);
      // spad takes over fwknopd's server key, so the clients keep their --gpg-recipient-key
      writeFileSync(join(keys.stateDir, 'server.key'), g(['--armor', '--export-secret-keys', serverFpr]), {
        mode: 0o600,
      });
      const serverAsc = join(keys.dir, 'fwknopd-server.asc');
      writeFileSync(join(keys.stateDir, 'server.asc'), g(['--armor', '--export', serverFpr]));
      writeFileSync(serverAsc, g(['--armor', '--export', serverFpr]));
      importRun = await cli('spa-keys', [
        'import-fwknop',
        join(FIXTURE, 'access.conf'),
        '--gpg-home',
        fwk.dir,
        '--state-dir',
        keys.stateDir,
      ]);
      for (const u of ['alice', 'bob', 'carol'] as const) {
        const h = gpgHome(join(keys.dir, `client-${u}`, 'gnupg'), [join(FIXTURE, `${u}.sec.asc`), serverAsc]);
        homes.push(h);
        client[u] = h;
      }
      children.push(await startServices(topo.server, [22], []));
      spad = await startSpad(topo.server, keys.stateDir, [
        '--interface',
        'eth0',
        '--protect',
        'tcp/22',
        '--firewall',
        'nftables',
      ]);
    });

    after(async () => {
      await spad?.stop();
      for (const c of children) c.kill('SIGKILL');
      for (const h of homes) h.kill();
      await topo?.destroy();
      keys?.cleanup();
    });

    test('import-fwknop enrolls alice, bob and carol and refuses the other three stanzas, saying why', async () => {
      assert.equal(importRun.code, 5, importRun.stderr);
      assert.match(importRun.stdout, new RegExp(`${META.alice.fingerprint} +alice +enrolled`));
      assert.match(importRun.stdout, new RegExp(`${META.bob.fingerprint} +bob +enrolled`));
      assert.match(importRun.stdout, new RegExp(`${META.carol.fingerprint} +carol +enrolled`));
      assert.equal((importRun.stdout.match(/ refused /g) ?? []).length, 3, importRun.stdout);
      const list = JSON.parse(
        await must('spa-keys', ['list', '--json', '--state-dir', keys.stateDir]),
      ) as unknown[];
      assert.equal(list.length, 3);
    });

    const knock = (u: 'alice' | 'bob' | 'carol', extra: readonly string[] = [], hmac?: string) =>
      fwknopKnock(topo.client, {
        home: client[u] as GpgHome,
        recipient: serverFpr,
        signer: META[u].fingerprint,
        to: topo.server.ipv4,
        allow: topo.client.ipv4,
        extra,
        ...(hmac ? { hmacBase64: hmac } : {}),
      });
    const s = (): Spad => spad as Spad;

    for (const [u, extra, hmac] of [
      ['alice', [], META.alice.hmac_key_base64],
      ['bob', ['-U', 'bob'], undefined],
      ['carol', [], undefined],
    ] as const) {
      test(`${u} knocks with the fwknop client, unchanged, and the port opens`, async () => {
        const m = s().lines.length;
        const r = await knock(u, extra, hmac);
        assert.equal(r.code, 0, r.stderr);
        const grant = await s().waitFor((l) => l.event === 'grant' || l.event === 'drop', 8000, m);
        assert.equal(grant.event, 'grant', JSON.stringify(grant));
        assert.equal(grant.user, u);
        assert.equal(await ssh(), 'open');
        const flushed = await cli('spad', ['fw-flush', '--yes', '--state-dir', keys.stateDir]);
        assert.equal(flushed.code, 0, flushed.stderr);
        assert.ok(await waitFor(async () => (await ssh()) === 'closed', 10_000, 250));
      });
    }

    test("REQUIRE_USERNAME carried over: bob's knock with another username field is refused", async () => {
      const m = s().lines.length;
      const r = await knock('bob', ['-U', 'root']);
      assert.equal(r.code, 0, r.stderr);
      const drop = await s().waitFor((l) => l.event === 'drop', 8000, m);
      assert.equal(drop.reason, 'USER_MISMATCH');
    });
  },
);
