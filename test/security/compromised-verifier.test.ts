/**
 * Attack: the verifier process (the unprivileged half of spad that parses network data) is fully
 * compromised and speaks to the monitor's pipe directly. It holds the server key, so it can
 * decrypt any knock, but it cannot sign as an enrolled user. Every decision it invents or alters
 * is refused by the monitor with the step's code and an audit line, and the firewall is not
 * touched; a genuine fresh signed knock still opens.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { openEnvelope, type SignedBytes, signedBytes } from '../../protocol/envelope.js';
import { memoryAudit } from '../../server/audit.js';
import { encodeLine, LineSplitter, MAX_LINE_BYTES } from '../../server/ipc.js';
import { Monitor, type MonitorOutcome } from '../../server/monitor.js';
import { ReplayStore } from '../../server/replay.js';
import { type PayloadOverrides, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { recordingFirewall } from '../helpers/firewall.js';
import { CLIENT_IP, type Rig, recordFor, rig, usersOf } from './rig.js';

describe('a compromised verifier speaking to the monitor', () => {
  let r: Rig;
  let alice: TestKey;
  let bob: TestKey;
  let mallory: TestKey;
  const firewall = recordingFirewall();
  const audit = memoryAudit();
  let monitor: Monitor;

  before(async () => {
    alice = await testKey('sec-alice');
    bob = await testKey('sec-bob');
    mallory = await testKey('sec-mallory');
    // alice: tcp/22 and udp/53 for at most 300 s; bob is enrolled but disabled; mallory is not enrolled
    const records = [recordFor(alice), recordFor(bob, { username: 'bob', enabled: false })];
    r = await rig({ server: await testKey('sec-server'), records });
    monitor = new Monitor({
      serverFingerprint: r.identity.fingerprint,
      users: () => usersOf(records),
      replay: new ReplayStore(null),
      firewall,
      audit,
      now: () => TEST_NOW.getTime(),
      maxSkewSeconds: 120,
    });
  });

  /** What a verifier holding the server key extracts from a knock sealed by `signer`. */
  async function signedOf(signer: TestKey, p: PayloadOverrides = {}): Promise<SignedBytes> {
    const bytes = await r.knock(signer, p);
    return signedBytes(await openEnvelope(bytes, { server: r.identity, now: TEST_NOW }));
  }

  function decisionLine(s: SignedBytes, over: Record<string, unknown> = {}): string {
    return encodeLine({
      t: 'decision',
      source: CLIENT_IP,
      sport: 40000,
      raw: 'ab'.repeat(32),
      literal: Buffer.from(s.literal).toString('base64'),
      signature: Buffer.from(s.signature).toString('base64'),
      receivedAt: process.hrtime.bigint().toString(),
      ...over,
    }).trimEnd();
  }

  async function refused(out: Promise<MonitorOutcome | null> | MonitorOutcome, code: string): Promise<void> {
    const before = firewall.calls.length;
    const o = await out;
    assert.deepEqual(o, { ok: false, code });
    assert.equal(firewall.calls.length, before, 'the firewall was touched');
    const last = audit.lines.at(-1);
    assert.equal(last?.event, 'drop');
    assert.equal(last?.reason, code);
    assert.equal(last?.where, 'monitor');
  }

  test('a decision for a key that is not enrolled is refused as SIGNER_UNKNOWN', async () => {
    await refused(monitor.line(decisionLine(await signedOf(mallory))), 'SIGNER_UNKNOWN');
  });

  test('a decision for a disabled user is refused as KEY_DISABLED', async () => {
    await refused(monitor.line(decisionLine(await signedOf(bob, { username: 'bob' }))), 'KEY_DISABLED');
  });

  test('a decision for a port outside the policy is refused as PORT_NOT_ALLOWED', async () => {
    const s = await signedOf(alice, { access: [{ proto: 'tcp', port: 443 }] });
    await refused(monitor.line(decisionLine(s)), 'PORT_NOT_ALLOWED');
  });

  test('a decision for a timeout over the maximum is refused as TIMEOUT_NOT_ALLOWED', async () => {
    const s = await signedOf(alice, { timeoutSeconds: 3600 });
    await refused(monitor.line(decisionLine(s)), 'TIMEOUT_NOT_ALLOWED');
  });

  test('a forged signature (the literal altered after signing) is refused as SIG_INVALID', async () => {
    const s = await signedOf(alice);
    const literal = Uint8Array.from(s.literal);
    literal[literal.length - 1] = (literal.at(-1) ?? 0) ^ 0x01; // a byte of the payload: the signed data
    await refused(monitor.line(decisionLine({ literal, signature: s.signature })), 'SIG_INVALID');
  });

  test('a signature packet swapped for another packet type is refused as MSG_STRUCTURE', async () => {
    const s = await signedOf(alice);
    await refused(monitor.line(decisionLine({ literal: s.literal, signature: s.literal })), 'MSG_STRUCTURE');
  });

  test('a decision for a knock meant for another server is refused as DEST_MISMATCH', async () => {
    await refused(
      monitor.line(decisionLine(await signedOf(alice, { server: 'F'.repeat(40) }))),
      'DEST_MISMATCH',
    );
  });

  test('a replayed nonce (the same valid decision twice) is granted once, then refused as REPLAY', async () => {
    const s = await signedOf(alice);
    const grants = firewall.grants.length;
    assert.deepEqual(await monitor.line(decisionLine(s)), { ok: true });
    assert.equal(firewall.grants.length, grants + 1);
    await refused(monitor.line(decisionLine(s, { raw: 'cd'.repeat(32) })), 'REPLAY');
  });

  test('a malformed JSON line is refused as IPC_INVALID', async () => {
    await refused(monitor.line('{"t":"decision",'), 'IPC_INVALID');
  });

  test('a decision with an unknown field or a bad source is refused as IPC_INVALID', async () => {
    const s = await signedOf(alice);
    await refused(monitor.line(decisionLine(s, { ports: 'tcp/1-65535' })), 'IPC_INVALID');
    await refused(monitor.line(decisionLine(s, { source: '198.51.100.002' })), 'IPC_INVALID');
    await refused(monitor.line(encodeLine({ t: 'grant', source: CLIENT_IP }).trimEnd()), 'IPC_INVALID');
  });

  test('an oversized line is refused as IPC_INVALID and never buffered whole', async () => {
    const outcomes: MonitorOutcome[] = [];
    const seen: string[] = [];
    const split = new LineSplitter(
      MAX_LINE_BYTES,
      (l) => seen.push(l),
      (n) => outcomes.push(monitor.oversize(n)),
    );
    const before = firewall.calls.length;
    const big = Buffer.alloc(1024 * 1024, 0x61);
    for (let i = 0; i < 4; i++) split.push(big);
    split.push(Buffer.from('\n{"t":"ready"}\n'));
    assert.deepEqual(outcomes, [{ ok: false, code: 'IPC_INVALID' }]);
    assert.deepEqual(seen, ['{"t":"ready"}'], 'the stream recovers at the next line');
    assert.equal(firewall.calls.length, before);
    assert.equal(audit.lines.at(-1)?.reason, 'IPC_INVALID');
  });

  test('a genuine fresh signed knock forwarded as is opens the firewall', async () => {
    const s = await signedOf(alice);
    assert.deepEqual(await monitor.line(decisionLine(s)), { ok: true });
    const g = firewall.grants.at(-1);
    assert.equal(g?.source, CLIENT_IP);
    assert.equal(audit.lines.at(-1)?.event, 'grant');
  });
});
