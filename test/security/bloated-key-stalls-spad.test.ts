/**
 * Attack: a public key bloated in transit. Anyone relaying a user's key to the admin can append
 * garbage copies of its self-signature; the fingerprint does not change, so the admin's
 * out-of-band check passes. openpgp.js re-verifies every self-signature whenever it judges a key
 * and remembers only the ones that verified, so each datagram naming that key (anyone can send
 * one: a forged signature with the key's fingerprint in its issuer subpacket) costs a second of
 * CPU. Enrollment must refuse or strip such a key, the daemon must never hold one (a keyring
 * hand-edited or written by an older version may still contain one), and a datagram naming it
 * must cost about what one naming a clean key costs.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { loadAllowlist, publicKeyOf } from '../../keyring/allowlist.js';
import { minimalKey, selfSignatureCount } from '../../keyring/minimize.js';
import { encodePayload } from '../../protocol/payload.js';
import { encryptPackets, forgedIssuerPackets } from '../helpers/craft.js';
import { bloatedKey } from '../helpers/keycraft.js';
import { freshPayload, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { runKeys, withTmp } from '../unit/keyring-helpers.js';
import { ATTACKER_IP, granted, type Rig, recordFor, rig } from './rig.js';

const EXIT_KEY = 3;

async function enroll(state: string, dir: string, name: string, armored: string) {
  const file = join(dir, `${name}.asc`);
  await writeFile(file, armored);
  const t0 = process.hrtime.bigint();
  const r = await runKeys(
    ['add', '--state-dir', state, '--user', name, '--key', file, '--open', 'tcp/22', '--yes'],
    { now: TEST_NOW },
  );
  return { ...r, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

describe('a public key with garbage self-signatures appended', () => {
  let alice: TestKey;
  let bob: TestKey;
  let carol: TestKey;
  let mallory: TestKey;
  let server: TestKey;
  let bloated800: openpgp.PublicKey;
  before(async () => {
    [alice, bob, carol, mallory, server] = await Promise.all([
      testKey('bloat-alice'),
      testKey('bloat-bob'),
      testKey('bloat-carol'),
      testKey('bloat-mallory'),
      testKey('bloat-server'),
    ]);
    bloated800 = await bloatedKey(bob.publicKey, 800);
  });

  test('keeps its fingerprint (so the out-of-band check passes)', () => {
    assert.equal(bloated800.getFingerprint().toUpperCase(), bob.fingerprint);
    assert.equal(selfSignatureCount(bloated800), 801 + bob.publicKey.subkeys.length);
  });

  for (const n of [800, 3000]) {
    test(`spa-keys add refuses the key with ${n} garbage self-signatures quickly, naming the limit and how to export a minimal key`, async () => {
      const armored = (await bloatedKey(bob.publicKey, n)).armor();
      await withTmp(async (dir) => {
        const state = join(dir, 'state');
        assert.equal((await runKeys(['init', '--state-dir', state])).code, 0);
        const r = await enroll(state, dir, 'bob', armored);
        console.log(
          `# spa-keys add with ${n} garbage self-signatures: exit ${r.code} in ${r.ms.toFixed(0)} ms`,
        );
        assert.equal(r.code, EXIT_KEY, r.stderr);
        assert.match(r.stderr, /spa: error: .* has \d+ self-signatures; at most 256 are accepted/);
        assert.match(r.stderr, /spa: hint: .*gpg --armor --export-options export-minimal --export/);
        assert.equal((await loadAllowlist(state)).records.size, 0);
      });
    });
  }

  test('spa-keys add strips a key below the limit to its newest valid self-signature, same fingerprint', async () => {
    const armored = (await bloatedKey(bob.publicKey, 200)).armor();
    await withTmp(async (dir) => {
      const state = join(dir, 'state');
      assert.equal((await runKeys(['init', '--state-dir', state])).code, 0);
      const r = await enroll(state, dir, 'bob', armored);
      assert.equal(r.code, 0, r.stderr);
      const rec = (await loadAllowlist(state)).records.get(bob.fingerprint);
      assert.ok(rec, 'the key was enrolled under its own fingerprint');
      const stored = await openpgp.readKey({ armoredKey: rec.publicKey });
      assert.equal(stored.getFingerprint().toUpperCase(), bob.fingerprint);
      assert.equal(selfSignatureCount(stored), 1 + bob.publicKey.subkeys.length);
      assert.deepEqual(rec.signingFingerprints, [bob.fingerprint]);
    });
  });

  test('the minimal key verifies exactly like the original (a clean key is left as it is)', async () => {
    const min = await minimalKey(bob.publicKey, TEST_NOW);
    assert.equal(min.armor(), bob.publicKey.armor());
  });

  test('minimal forms of v6 keys and of keys with a signing subkey still verify their knocks', async () => {
    const v6 = await testKey('bloat-v6', { kind: 'v6' });
    const sub = await testKey('bloat-sub', { signingSubkey: true });
    for (const k of [v6, sub]) {
      const min = await minimalKey(k.publicKey, TEST_NOW);
      assert.equal(min.armor(), k.publicKey.armor(), 'a clean key is already minimal');
    }
    const r = await rig({
      server,
      records: [
        recordFor(v6, { username: 'alice' }),
        recordFor(sub, { username: 'alice', publicKey: (await bloatedKey(sub.publicKey, 50)).armor() }),
      ],
    });
    await granted(r, await r.knock(v6));
    await granted(r, await r.knock(sub));
  });

  describe('in the keyring the daemon loads (hand-edited, or written before enrollment checked)', () => {
    let r: Rig;
    before(async () => {
      r = await rig({
        server,
        records: [
          recordFor(alice),
          recordFor(bob, { username: 'bob', publicKey: bloated800.armor() }),
          recordFor(carol, {
            username: 'carol',
            publicKey: (await bloatedKey(carol.publicKey, 200)).armor(),
          }),
        ],
      });
    });

    const forged = async (victim: TestKey) => {
      const payload = encodePayload(freshPayload({ server, now: new Date(r.clock) }));
      const inner = await forgedIssuerPackets(
        payload,
        mallory.privateKey,
        victim.publicKey,
        new Date(r.clock),
      );
      return encryptPackets(inner, server.publicKey, { now: new Date(r.clock) });
    };

    /** CPU (user + system) per datagram, in ms, over `n` datagrams after one warm-up. */
    const cpuPerDatagram = async (victim: TestKey, n: number) => {
      const packets = await Promise.all(Array.from({ length: n + 1 }, () => forged(victim)));
      const codes = new Set<string>();
      const first = await r.send(packets[0] as Uint8Array, ATTACKER_IP);
      if (!first.ok) codes.add(first.code);
      const t0 = process.cpuUsage();
      for (const p of packets.slice(1)) {
        const out = await r.send(p, ATTACKER_IP);
        assert.equal(out.ok, false);
        if (!out.ok) codes.add(out.code);
      }
      const d = process.cpuUsage(t0);
      return { ms: (d.user + d.system) / 1000 / n, codes: [...codes] };
    };

    for (const [who, n] of [
      ['bob', 800],
      ['carol', 200],
    ] as const) {
      test(`a forged datagram naming the key with ${n} garbage self-signatures costs within a small factor of one naming a clean key`, async () => {
        const victim = who === 'bob' ? bob : carol;
        const clean = await cpuPerDatagram(alice, 5);
        const bloated = await cpuPerDatagram(victim, 5);
        console.log(
          `# CPU per forged datagram: clean key ${clean.ms.toFixed(2)} ms (${clean.codes.join(',')}), ` +
            `${n}-garbage-signature key ${bloated.ms.toFixed(2)} ms (${bloated.codes.join(',')})`,
        );
        assert.deepEqual(clean.codes, ['SIG_INVALID']);
        assert.equal(bloated.codes.length, 1);
        assert.ok(
          bloated.ms < Math.max(5 * clean.ms, 20),
          `bloated ${bloated.ms.toFixed(1)} ms vs clean ${clean.ms.toFixed(1)} ms per datagram`,
        );
      });
    }

    test('the bloated record is refused at load with KEY_INVALID, and the refusal is remembered', async () => {
      const rec = [...r.users().records.values()].find((x) => x.username === 'bob');
      assert.ok(rec);
      const first = publicKeyOf(rec);
      await assert.rejects(
        first,
        (e: Error & { code?: string }) => e.code === 'KEY_INVALID' && /self-signatures/.test(e.message),
      );
      assert.equal(publicKeyOf(rec), first, 'a second lookup parses nothing again');
    });

    test('the clean key enrolled beside it still gets in', async () => {
      await granted(r, await r.knock(alice));
    });
  });
});
