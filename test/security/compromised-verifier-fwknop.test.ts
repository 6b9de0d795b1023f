/**
 * Attack: a compromised verifier forwards fwknop knocks (SPEC.md §11, §7.1) to the monitor with
 * lies around them. The packets are real fwknop-client knocks (test/vectors/fwknop); the
 * verifier holds the server key, so it can extract their signed literal. The monitor must
 * re-parse fwknop's plaintext and re-check the enrollment itself: a genuine knock still opens,
 * every altered decision is refused with its code and the firewall is not touched.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import type { KeyRecord } from '../../keyring/index.js';
import { openEnvelope, serverIdentity, signedBytes, type SignedBytes } from '../../protocol/envelope.js';
import { unwrapFwknop } from '../../protocol/fwknop.js';
import { memoryAudit } from '../../server/audit.js';
import { encodeLine } from '../../server/ipc.js';
import { Monitor, type MonitorOutcome } from '../../server/monitor.js';
import { ReplayStore } from '../../server/replay.js';
import { VECTOR_DIR } from '../helpers/keys.js';
import { recordingFirewall } from '../helpers/firewall.js';
import { fwknopRecordFor, usersOf } from './rig.js';

interface Vector {
  now: string;
  server_key: string;
  packet: string;
  signers: Array<{ fingerprint: string; public_key: string; hmac_key_base64: string | null }>;
}
const load = (n: string) => JSON.parse(readFileSync(`${VECTOR_DIR}fwknop/${n}.json`, 'utf8')) as Vector;

const record = (s: Vector['signers'][number], over: Partial<KeyRecord> = {}): Promise<KeyRecord> =>
  fwknopRecordFor(s, s.hmac_key_base64, over);

describe('a compromised verifier forwarding fwknop knocks', () => {
  const plain = load('ok-access-ecc'); // bob, no HMAC, tcp/22,udp/53 for 198.51.100.2
  const tagged = load('ok-hmac-ecc'); // bob, HMAC
  let signedPlain: SignedBytes;
  let signedTagged: SignedBytes;
  let hmacId = '';

  before(async () => {
    for (const [v, set] of [
      [plain, (s: SignedBytes) => (signedPlain = s)],
      [tagged, (s: SignedBytes) => (signedTagged = s)],
    ] as const) {
      const id = await serverIdentity(await openpgp.readPrivateKey({ armoredKey: v.server_key }));
      const key = v.signers[0]?.hmac_key_base64;
      const u = unwrapFwknop(v.packet, {
        hmacKeys: key ? [{ id: 'X', key: new Uint8Array(Buffer.from(key, 'base64')) }] : [],
        acceptWithoutHmac: !key,
        recipientKeyIds: id.recipientKeyIds,
      });
      set(signedBytes(await openEnvelope(u.binary, { server: id, now: new Date(v.now) })));
    }
    hmacId = tagged.signers[0]?.fingerprint ?? '';
  });

  function monitorFor(v: Vector, records: KeyRecord[]) {
    const firewall = recordingFirewall();
    const audit = memoryAudit();
    const monitor = new Monitor({
      serverFingerprint: 'AB'.repeat(20),
      users: () => usersOf(records),
      replay: new ReplayStore(null),
      firewall,
      audit,
      now: () => Date.parse(v.now),
      maxSkewSeconds: 120,
    });
    return { monitor, firewall, audit };
  }

  const line = (s: SignedBytes, over: Record<string, unknown> = {}) =>
    encodeLine({
      t: 'decision',
      source: '198.51.100.2',
      sport: 40000,
      raw: 'cd'.repeat(32),
      literal: Buffer.from(s.literal).toString('base64'),
      signature: Buffer.from(s.signature).toString('base64'),
      receivedAt: process.hrtime.bigint().toString(),
      ...over,
    }).trimEnd();

  async function refused(
    m: ReturnType<typeof monitorFor>,
    out: Promise<MonitorOutcome | null>,
    code: string,
  ) {
    assert.deepEqual(await out, { ok: false, code });
    assert.equal(m.firewall.calls.length, 0, 'the firewall was touched');
    assert.equal(m.audit.lines.at(-1)?.where, 'monitor');
  }

  test('a genuine fwknop knock, forwarded as one, opens (the baseline)', async () => {
    const m = monitorFor(plain, [await record(plain.signers[0] as Vector['signers'][number])]);
    assert.deepEqual(await m.monitor.line(line(signedPlain, { fwknop: { hmacKeyId: null } })), { ok: true });
    assert.equal(m.firewall.grants.length, 1);
    assert.equal(m.audit.lines.find((l) => l.event === 'grant')?.kind, 'fwknop');
  });

  test('for a user the monitor has not enrolled with --fwknop: FWK_NOT_ENABLED', async () => {
    const rec = await record(plain.signers[0] as Vector['signers'][number]);
    const { fwknop: _gone, ...without } = rec;
    const m = monitorFor(plain, [without]);
    await refused(m, m.monitor.line(line(signedPlain, { fwknop: { hmacKeyId: null } })), 'FWK_NOT_ENABLED');
  });

  test('an fwknop plaintext passed off as a spa knock: not a spa payload', async () => {
    const m = monitorFor(plain, [await record(plain.signers[0] as Vector['signers'][number])]);
    const out = await m.monitor.line(line(signedPlain));
    assert.equal(out?.ok, false);
    assert.equal(m.firewall.calls.length, 0);
  });

  test('an untagged knock for a user with an HMAC key, or a tag claimed for another user: FWK_HMAC_INVALID', async () => {
    const rec = await record(tagged.signers[0] as Vector['signers'][number]);
    const m = monitorFor(tagged, [rec]);
    await refused(m, m.monitor.line(line(signedTagged, { fwknop: { hmacKeyId: null } })), 'FWK_HMAC_INVALID');
    await refused(
      m,
      m.monitor.line(line(signedTagged, { fwknop: { hmacKeyId: 'EF'.repeat(20) } })),
      'FWK_HMAC_INVALID',
    );
    assert.deepEqual(await m.monitor.line(line(signedTagged, { fwknop: { hmacKeyId: hmacId } })), {
      ok: true,
    });
  });

  test('the same fwknop knock forwarded twice: REPLAY', async () => {
    const m = monitorFor(plain, [await record(plain.signers[0] as Vector['signers'][number])]);
    assert.deepEqual(await m.monitor.line(line(signedPlain, { fwknop: { hmacKeyId: null } })), { ok: true });
    const out = await m.monitor.line(
      line(signedPlain, { fwknop: { hmacKeyId: null }, raw: 'ef'.repeat(32) }),
    );
    assert.deepEqual(out, { ok: false, code: 'REPLAY' });
    assert.equal(m.firewall.grants.length, 1);
  });
});
