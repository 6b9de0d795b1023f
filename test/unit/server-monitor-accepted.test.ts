/**
 * spad's monitor tells its verifier of accepted knocks (the verifier's replay fast path) in
 * batches: held while more decisions wait, sent in one write once the last is handled, at most
 * ACCEPTED_BATCH at a time. Its own replay store has each entry before the grant is reported.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { openEnvelope, type SignedBytes, signedBytes } from '../../protocol/envelope.js';
import { memoryAudit } from '../../server/audit.js';
import { encodeLine, type MonitorMessage } from '../../server/ipc.js';
import { ACCEPTED_BATCH } from '../../server/limits.js';
import { Monitor } from '../../server/monitor.js';
import { ReplayStore } from '../../server/replay.js';
import { TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { recordingFirewall } from '../helpers/firewall.js';
import { CLIENT_IP, type Rig, recordFor, rig, usersOf } from '../security/rig.js';

describe('accepted notices from the monitor to the verifier', () => {
  let r: Rig;
  let alice: TestKey;
  let records: ReturnType<typeof recordFor>[];

  before(async () => {
    alice = await testKey('acc-alice');
    records = [recordFor(alice)];
    r = await rig({ server: await testKey('acc-server'), records });
  });

  function setup(): { monitor: Monitor; writes: MonitorMessage[][]; replay: ReplayStore } {
    const writes: MonitorMessage[][] = [];
    const replay = new ReplayStore(null);
    const audit = memoryAudit();
    const monitor = new Monitor({
      serverFingerprint: r.identity.fingerprint,
      users: () => usersOf(records),
      replay,
      firewall: recordingFirewall(),
      audit,
      now: () => TEST_NOW.getTime(),
      maxSkewSeconds: 120,
      notify: (msgs) => writes.push(msgs),
    });
    return { monitor, writes, replay };
  }

  async function decisions(n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const s: SignedBytes = signedBytes(
        await openEnvelope(await r.knock(alice), { server: r.identity, now: TEST_NOW }),
      );
      out.push(
        encodeLine({
          t: 'decision',
          source: CLIENT_IP,
          sport: 40000 + i,
          raw: i.toString(16).padStart(64, '0'),
          literal: Buffer.from(s.literal).toString('base64'),
          signature: Buffer.from(s.signature).toString('base64'),
          receivedAt: process.hrtime.bigint().toString(),
        }).trimEnd(),
      );
    }
    return out;
  }

  test('one decision: its notice is sent as soon as it is handled', async () => {
    const { monitor, writes } = setup();
    const [line] = await decisions(1);
    assert.deepEqual(await monitor.line(line as string), { ok: true });
    assert.equal(writes.length, 1);
    assert.equal(writes[0]?.length, 1);
    assert.equal(writes[0]?.[0]?.t, 'accepted');
  });

  test('decisions queued together: their notices go in one write after the last, each already in the store', async () => {
    const { monitor, writes, replay } = setup();
    const lines = await decisions(3);
    const outcomes = lines.map((l, i) =>
      monitor.line(l).then((o) => {
        // the authoritative store has it when the grant is reported, whatever the verifier knows
        assert.equal(replay.hasRaw(i.toString(16).padStart(64, '0'), TEST_NOW.getTime()), true);
        assert.equal(writes.length, i === lines.length - 1 ? 1 : 0, 'a notice went before the last');
        return o;
      }),
    );
    assert.deepEqual(await Promise.all(outcomes), [{ ok: true }, { ok: true }, { ok: true }]);
    assert.equal(writes.length, 1, 'one write for the three');
    assert.deepEqual(
      writes[0]?.map((m) => (m.t === 'accepted' ? m.entry.raw : m.t)),
      lines.map((_, i) => i.toString(16).padStart(64, '0')),
    );
    assert.equal(replay.size, 3);
  });

  test(`no more than ${ACCEPTED_BATCH} notices are held while decisions keep coming`, async () => {
    const { monitor, writes } = setup();
    const lines = await decisions(ACCEPTED_BATCH + 2);
    await Promise.all(lines.map((l) => monitor.line(l)));
    assert.deepEqual(
      writes.map((w) => w.length),
      [ACCEPTED_BATCH, 2],
    );
  });
});
