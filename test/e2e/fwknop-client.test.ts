/**
 * Moving from fwknop (SPEC.md §11): the unmodified Debian fwknop client knocks spad, in network
 * namespaces, with GnuPG keys: alice RSA-2048 with an HMAC key, bob Ed25519/Curve25519 (whose
 * knocks fwknopd itself cannot decrypt), to spad's default Curve25519 server key. The refusals
 * are checked by their reason codes in spad's audit log and by the port staying closed.
 * Capture: pcap on eth0, then the same knock through `--udp-server`.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTopology, isRoot, netnsUnavailable, type Topology, waitFor } from '../../scripts/netns.js';
import { probeOne, startServices } from './firewall-harness.js';
import { FIXTURE, fwknopKnock, fwknopUnavailable, type GpgHome, gpgHome, META } from './fwknop-harness.js';
import { must, type Spad, sendRaw, setupKeys, spa, startSpad, type Keys } from './spad-harness.js';

const skip = !isRoot() ? 'needs root' : ((await netnsUnavailable()) ?? fwknopUnavailable());

describe('the fwknop client knocks spad', { skip: skip ?? false }, () => {
  let topo: Topology;
  let keys: Keys;
  let spad: Spad | null = null;
  const homes: GpgHome[] = [];
  const children: Array<{ kill(sig?: NodeJS.Signals): unknown }> = [];
  const home: Record<string, GpgHome> = {};
  let carolSpaHome = '';
  const args = ['--interface', 'eth0', '--protect', 'tcp/22', '--firewall', 'nftables'];
  const ssh = (h: Topology['client']) => probeOne(h, ['tcp', topo.server.ipv4, 22], 600);
  const alice = META.alice;

  before(async () => {
    topo = await createTopology();
    keys = await setupKeys();
    const serverAsc = join(keys.dir, 'server.asc');
    writeFileSync(serverAsc, await must('spa-keys', ['export-server', '--state-dir', keys.stateDir]));
    const hmacFile = join(keys.dir, 'alice.hmac');
    writeFileSync(hmacFile, `${alice.hmac_key_base64}\n`, { mode: 0o600 });
    const add = (user: string, extra: readonly string[]) =>
      must('spa-keys', [
        'add',
        '--state-dir',
        keys.stateDir,
        '--user',
        user,
        '--key',
        join(FIXTURE, `${user}.pub.asc`),
        '--open',
        'tcp/22',
        '--timeout',
        '3',
        '--yes',
        ...extra,
      ]);
    await add('alice', ['--fwknop', '--fwknop-hmac-key-base64', hmacFile]);
    await add('bob', ['--fwknop']);
    await add('carol', []); // enrolled for spa knocks only
    for (const u of ['alice', 'bob', 'carol', 'carol-twin'] as const) {
      const h = gpgHome(join(keys.dir, `fwknop-${u}`, 'gnupg'), [join(FIXTURE, `${u}.sec.asc`), serverAsc]);
      homes.push(h);
      home[u] = h;
    }
    carolSpaHome = join(keys.dir, 'carol-spa');
    await must('spa-keys', [
      'import',
      join(FIXTURE, 'carol.sec.asc'),
      '--home',
      carolSpaHome,
      '--user',
      'carol',
    ]);
    await must('spa-keys', ['import', serverAsc, '--home', carolSpaHome]);
    children.push(await startServices(topo.server, [22], []));
    spad = await startSpad(topo.server, keys.stateDir, args);
  });

  after(async () => {
    await spad?.stop();
    for (const c of children) c.kill('SIGKILL');
    for (const h of homes) h.kill();
    await topo?.destroy();
    keys?.cleanup();
  });

  const s = (): Spad => spad as Spad;
  const knock = (u: keyof typeof home, over: Partial<Parameters<typeof fwknopKnock>[1]> = {}) =>
    fwknopKnock(topo.client, {
      home: home[u] as GpgHome,
      recipient: keys.serverFingerprint,
      signer: META[u as 'alice'].fingerprint,
      to: topo.server.ipv4,
      allow: topo.client.ipv4,
      ...over,
    });
  /** The first drop line after `mark`. */
  const dropAfter = (mark: number, ms = 8000) => s().waitFor((l) => l.event === 'drop', ms, mark);
  const closed = () => waitFor(async () => (await ssh(topo.client)) === 'closed', 10_000, 250);

  test('the protected port is closed before any knock', async () => {
    assert.equal(await ssh(topo.client), 'closed');
  });

  test('Ed25519/Curve25519: bob knocks with the fwknop client and the port opens, for him only', async () => {
    const mark = s().lines.length;
    const r = await knock('bob');
    assert.equal(r.code, 0, r.stderr);
    const grant = await s().waitFor((l) => l.event === 'grant', 8000, mark);
    assert.equal(grant.user, 'bob');
    assert.equal(grant.kind, 'fwknop');
    assert.equal(grant.source, topo.client.ipv4);
    assert.equal(await ssh(topo.client), 'open');
    assert.equal(await probeOne(topo.attacker, ['tcp', topo.server.ipv4, 22], 600), 'closed');
    assert.ok(await closed(), 'access did not close after its 3 s timeout');
  });

  test('RSA-2048 with HMAC: alice knocks and the port opens; her packet replayed from another namespace, and after a restart, is refused', async () => {
    const saved = join(keys.dir, 'alice.pkt');
    const mark = s().lines.length;
    const r = await knock('alice', { hmacBase64: alice.hmac_key_base64, save: saved });
    assert.equal(r.code, 0, r.stderr);
    const grant = await s().waitFor((l) => l.event === 'grant', 8000, mark);
    assert.equal(grant.user, 'alice');
    assert.equal(grant.kind, 'fwknop');
    assert.equal(await ssh(topo.client), 'open');
    assert.ok(await closed());

    const bytes = new Uint8Array(Buffer.from(readFileSync(saved, 'utf8').trim(), 'latin1'));
    let m = s().lines.length;
    await sendRaw(topo.attacker, topo.server.ipv4, bytes);
    const replay = await dropAfter(m);
    assert.equal(replay.reason, 'REPLAY_RAW');
    assert.equal(replay.source, topo.attacker.ipv4);
    assert.equal(await probeOne(topo.attacker, ['tcp', topo.server.ipv4, 22], 600), 'closed');

    await s().stop();
    spad = await startSpad(topo.server, keys.stateDir, args);
    m = s().lines.length;
    await sendRaw(topo.client, topo.server.ipv4, bytes);
    const again = await dropAfter(m);
    assert.equal(again.reason, 'REPLAY_RAW', 'the replay record did not survive the restart');
    assert.equal(await ssh(topo.client), 'closed');
  });

  const refusals: Array<[string, keyof typeof home, Partial<Parameters<typeof fwknopKnock>[1]>, string]> = [
    ['a user with no enrollment (no stanza)', 'carol-twin', {}, 'SIGNER_UNKNOWN'],
    ['an unsigned knock', 'bob', { signer: null }, 'SIG_MISSING'],
    [
      'a stale knock (--time-offset-minus 5min)',
      'bob',
      { extra: ['--time-offset-minus', '5min'] },
      'TS_TOO_OLD',
    ],
    ['a broken HMAC', 'alice', { hmacBase64: Buffer.alloc(64, 1).toString('base64') }, 'FWK_HMAC_INVALID'],
    ['an HMAC user knocking without it', 'alice', {}, 'FWK_HMAC_INVALID'],
    [
      "a wrong signer (bob signs with alice's HMAC key)",
      'bob',
      { hmacBase64: alice.hmac_key_base64 },
      'FWK_HMAC_INVALID',
    ],
    ['a user enrolled without --fwknop', 'carol', {}, 'FWK_NOT_ENABLED'],
    ['NAT access (-N)', 'bob', { extra: ['-N', '192.0.2.10,22'] }, 'FWK_NAT_UNSUPPORTED'],
    ['an allow-IP other than the source', 'bob', { allow: '198.51.100.77' }, 'SOURCE_MISMATCH'],
  ];
  for (const [what, user, over, code] of refusals) {
    test(`refused with ${code}: ${what}`, async () => {
      const m = s().lines.length;
      const r = await knock(user, over);
      assert.equal(r.code, 0, r.stderr);
      const drop = await dropAfter(m);
      assert.equal(drop.reason, code, JSON.stringify(drop));
      assert.equal(drop.kind, 'fwknop');
      assert.equal(await ssh(topo.client), 'closed');
    });
  }

  test('carol, enrolled without --fwknop, still knocks with spa', async () => {
    const m = s().lines.length;
    const r = await spa(topo.client, [
      '-A',
      'tcp/22',
      '-a',
      topo.client.ipv4,
      '--home',
      carolSpaHome,
      topo.server.ipv4,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const grant = await s().waitFor((l) => l.event === 'grant', 8000, m);
    assert.equal(grant.user, 'carol');
    assert.equal(grant.kind, undefined);
    assert.equal(await ssh(topo.client), 'open');
    assert.ok(await closed());
  });

  test('--udp-server: bob knocks with the fwknop client and the port opens', async () => {
    await s().stop();
    spad = await startSpad(topo.server, keys.stateDir, [
      '--udp-server',
      '--protect',
      'tcp/22',
      '--firewall',
      'nftables',
    ]);
    const m = s().lines.length;
    const r = await knock('bob');
    assert.equal(r.code, 0, r.stderr);
    const grant = await s().waitFor((l) => l.event === 'grant', 8000, m);
    assert.equal(grant.user, 'bob');
    assert.equal(grant.kind, 'fwknop');
    assert.equal(await ssh(topo.client), 'open');
  });
});
