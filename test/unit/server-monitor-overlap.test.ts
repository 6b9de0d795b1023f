/**
 * spad's monitor verifies the next decisions while the firewall takes a grant, so that grants in
 * a burst share one firewall transaction (server/firewall/nftables.ts). The replay rule must not
 * move: a copy of a knock whose grant is still with the firewall waits for it, and is refused as
 * REPLAY once it is recorded, or acted on if the firewall refused the first (FW_ERROR leaves a
 * knock usable).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { openEnvelope, signedBytes } from '../../protocol/envelope.js';
import { memoryAudit } from '../../server/audit.js';
import type { Firewall, GrantRequest } from '../../server/firewall/types.js';
import { encodeLine } from '../../server/ipc.js';
import { Monitor } from '../../server/monitor.js';
import { ReplayStore } from '../../server/replay.js';
import { TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { recordingFirewall } from '../helpers/firewall.js';
import { CLIENT_IP, type Rig, recordFor, rig, usersOf } from '../security/rig.js';

/** A firewall whose grants wait until the test settles them. */
function gatedFirewall(): Firewall & {
  grants: GrantRequest[];
  settle(i: number, ok: boolean): void;
} {
  const grants: GrantRequest[] = [];
  const gates: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  return {
    ...recordingFirewall(),
    grants,
    grant: (g) =>
      new Promise<void>((resolve, reject) => {
        grants.push(g);
        gates.push({ resolve, reject });
      }),
    settle(i, ok) {
      const gate = gates[i];
      if (!gate) throw new Error(`no grant ${i} yet`);
      if (ok) gate.resolve();
      else gate.reject(new Error('nft: refused'));
    },
  };
}

const ticks = async (n = 20): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** Waits (at most 5 s) until `n` grants reached the firewall, then a little longer. */
async function grantsReach(fw: { grants: unknown[] }, n: number): Promise<void> {
  const until = Date.now() + 5000;
  while (fw.grants.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
}

describe('the monitor overlaps verification with the firewall, and replay still holds', () => {
  let r: Rig;
  let alice: TestKey;
  let records: ReturnType<typeof recordFor>[];

  before(async () => {
    alice = await testKey('ovl-alice');
    records = [recordFor(alice)];
    r = await rig({ server: await testKey('ovl-server'), records });
  });

  function setup(): { monitor: Monitor; fw: ReturnType<typeof gatedFirewall>; replay: ReplayStore } {
    const fw = gatedFirewall();
    const replay = new ReplayStore(null);
    const monitor = new Monitor({
      serverFingerprint: r.identity.fingerprint,
      users: () => usersOf(records),
      replay,
      firewall: fw,
      audit: memoryAudit(),
      now: () => TEST_NOW.getTime(),
      maxSkewSeconds: 120,
    });
    return { monitor, fw, replay };
  }

  async function decision(sport: number, knock?: Uint8Array): Promise<{ line: string; knock: Uint8Array }> {
    const k = knock ?? (await r.knock(alice));
    const s = signedBytes(await openEnvelope(k, { server: r.identity, now: TEST_NOW }));
    const line = encodeLine({
      t: 'decision',
      source: CLIENT_IP,
      sport,
      raw: sport.toString(16).padStart(64, '0'),
      literal: Buffer.from(s.literal).toString('base64'),
      signature: Buffer.from(s.signature).toString('base64'),
      receivedAt: process.hrtime.bigint().toString(),
    }).trimEnd();
    return { line, knock: k };
  }

  test('while one grant is with the firewall, the next knocks are verified and reach it too', async () => {
    const { monitor, fw } = setup();
    const lines = await Promise.all([40001, 40002, 40003].map(async (p) => (await decision(p)).line));
    const outcomes = lines.map((l) => monitor.line(l));
    await grantsReach(fw, 3);
    assert.equal(fw.grants.length, 3, 'all three grants are waiting together');
    for (let i = 0; i < 3; i++) fw.settle(i, true);
    assert.deepEqual(await Promise.all(outcomes), [{ ok: true }, { ok: true }, { ok: true }]);
    await monitor.idle();
  });

  test('a copy of a knock whose grant is still with the firewall waits for it, then is refused as REPLAY', async () => {
    const { monitor, fw, replay } = setup();
    const first = await decision(40001);
    const copy = await decision(40002, first.knock);
    const a = monitor.line(first.line);
    const b = monitor.line(copy.line);
    await grantsReach(fw, 2);
    assert.equal(fw.grants.length, 1, 'the copy did not reach the firewall');
    fw.settle(0, true);
    assert.deepEqual(await a, { ok: true });
    assert.deepEqual(await b, { ok: false, code: 'REPLAY' });
    assert.equal(fw.grants.length, 1);
    assert.equal(replay.size, 1);
  });

  test('when the firewall refused the first, the copy is acted on (FW_ERROR leaves the knock usable)', async () => {
    const { monitor, fw } = setup();
    const first = await decision(40001);
    const copy = await decision(40002, first.knock);
    const a = monitor.line(first.line);
    const b = monitor.line(copy.line);
    await grantsReach(fw, 1);
    fw.settle(0, false);
    assert.deepEqual(await a, { ok: false, code: 'FW_ERROR' });
    await grantsReach(fw, 2);
    assert.equal(fw.grants.length, 2, 'the copy got its own grant');
    fw.settle(1, true);
    assert.deepEqual(await b, { ok: true });
  });

  test('idle() waits for grants still with the firewall', async () => {
    const { monitor, fw } = setup();
    const { line } = await decision(40001);
    void monitor.line(line);
    await grantsReach(fw, 1);
    let idle = false;
    const waiting = monitor.idle().then(() => {
      idle = true;
    });
    await ticks();
    assert.equal(idle, false);
    fw.settle(0, true);
    await waiting;
    assert.equal(idle, true);
  });
});
