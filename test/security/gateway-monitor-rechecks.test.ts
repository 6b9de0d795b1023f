/**
 * Attack: gateway mode through a compromised (or misconfigured) verifier. The monitor re-checks
 * every forwarding decision against its own allowlist and gateway policy before touching the
 * forwarder, and it alone decides whether a reply goes out: exactly one reply per accepted knock,
 * none for a refused one or a replayed decision, and the reply names the knock's nonce and the
 * granted external port, signed by the server key.
 */
import assert from 'node:assert/strict';
import { before, beforeEach, describe, test } from 'node:test';
import { type Address, parseAddress } from '../../protocol/address.js';
import { openEnvelope, type SignedBytes, signedBytes } from '../../protocol/envelope.js';
import { type Reply, signReply, verifyReply } from '../../protocol/reply.js';
import { memoryAudit } from '../../server/audit.js';
import type { ForwardGrantRequest, Forwarder } from '../../server/firewall/forward.js';
import { encodeLine } from '../../server/ipc.js';
import { Monitor } from '../../server/monitor.js';
import { ReplayStore } from '../../server/replay.js';
import { type PayloadOverrides, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { recordingFirewall } from '../helpers/firewall.js';
import { CLIENT_IP, type Rig, recordFor, rig, usersOf } from './rig.js';

function recordingForwarder(): Forwarder & { grants: ForwardGrantRequest[] } {
  const grants: ForwardGrantRequest[] = [];
  return {
    backend: 'nftables',
    grants,
    init: async () => {},
    grant: async (g) => {
      grants.push(g);
    },
    list: async () => [],
    sweep: async () => 0,
    flush: async () => {},
    healthy: async () => true,
    shutdown: async () => {},
  };
}

describe('gateway decisions are re-checked by the monitor, which alone sends the reply', () => {
  let r: Rig;
  let server: TestKey;
  let alice: TestKey;
  let bob: TestKey;
  const internal = parseAddress('203.0.113.10');
  let forwarder: ReturnType<typeof recordingForwarder>;
  let replies: { reply: Reply; to: { address: string; port: number } }[];
  let monitor: Monitor;
  let replay: ReplayStore;
  let firewall: ReturnType<typeof recordingFirewall>;
  let audit: ReturnType<typeof memoryAudit>;

  before(async () => {
    server = await testKey('gw-server');
    alice = await testKey('gw-alice');
    bob = await testKey('gw-bob');
    r = await rig({ server, records: [] });
  });

  beforeEach(() => {
    forwarder = recordingForwarder();
    replies = [];
    replay = new ReplayStore(null);
    firewall = recordingFirewall();
    audit = memoryAudit();
    const records = [
      recordFor(alice, { forward: ['203.0.113.10:22', 'local:22', 'local:7022'], reply: true }),
      recordFor(bob, { username: 'bob', forward: ['203.0.113.10:22'] }),
    ];
    monitor = new Monitor({
      serverFingerprint: r.identity.fingerprint,
      users: () => usersOf(records),
      replay,
      firewall,
      audit,
      now: () => TEST_NOW.getTime(),
      maxSkewSeconds: 120,
      gateway: { randomPorts: { min: 20000, max: 29999 } },
      forwarder,
      protect: [{ proto: 'tcp', port: 22 }],
      sendReply: async (reply, to) => {
        replies.push({ reply, to });
      },
    });
  });

  async function line(signer: TestKey, p: PayloadOverrides): Promise<string> {
    const s: SignedBytes = signedBytes(
      await openEnvelope(await r.knock(signer, p), { server: r.identity, now: TEST_NOW }),
    );
    return encodeLine({
      t: 'decision',
      source: CLIENT_IP,
      sport: 40123,
      raw: 'cd'.repeat(32),
      literal: Buffer.from(s.literal).toString('base64'),
      signature: Buffer.from(s.signature).toString('base64'),
      receivedAt: process.hrtime.bigint().toString(),
    }).trimEnd();
  }

  const fwd = (port: number, randomPort: boolean, host: Address | 'local' = internal): PayloadOverrides => ({
    access: [{ proto: 'tcp', port }],
    forward: { host, port: 22, randomPort },
    reply: true,
  });

  test('an enrolled random-port forward is granted once and answered once, to the knock source and port', async () => {
    const l = await line(alice, fwd(24680, true));
    assert.deepEqual(await monitor.line(l), { ok: true });
    assert.deepEqual(forwarder.grants, [
      {
        source: CLIENT_IP,
        proto: 'tcp',
        externalPort: 24680,
        host: '203.0.113.10',
        port: 22,
        timeoutSeconds: 30,
      },
    ]);
    assert.equal(replies.length, 1);
    assert.deepEqual(replies[0]?.to, { address: CLIENT_IP, port: 40123 });
    assert.deepEqual(replies[0]?.reply.granted, [{ proto: 'tcp', port: 24680 }]);
    // the same decision again (a replay) gets neither a grant nor a reply
    assert.deepEqual(await monitor.line(l), { ok: false, code: 'REPLAY' });
    assert.equal(forwarder.grants.length, 1);
    assert.equal(replies.length, 1);
    // and what the daemon would sign from it verifies for the client that sent that nonce
    const reply = replies[0]?.reply;
    assert.ok(reply);
    const bytes = await signReply(reply, server.privateKey, TEST_NOW);
    const got = await verifyReply(bytes, {
      serverKey: server.publicKey,
      nonces: [reply.nonce],
      now: TEST_NOW,
      maxSkewSeconds: 120,
    });
    assert.equal(got.forward?.port, 22);
  });

  test('refused by the monitor, with no forward grant and no reply: another host, a port outside the range, a user without --reply', async () => {
    assert.deepEqual(await monitor.line(await line(alice, fwd(24680, true, parseAddress('203.0.113.11')))), {
      ok: false,
      code: 'FORWARD_NOT_ALLOWED',
    });
    assert.deepEqual(await monitor.line(await line(alice, fwd(40000, true))), {
      ok: false,
      code: 'FORWARD_NOT_ALLOWED',
    });
    // the audit line says why: a client drawing from another range than the server's
    assert.ok(
      audit.lines.some(
        (l) =>
          l.event === 'drop' &&
          l.reason === 'FORWARD_NOT_ALLOWED' &&
          l.detail === 'forward: external port 40000 outside 20000-29999',
      ),
      JSON.stringify(audit.lines),
    );
    assert.deepEqual(await monitor.line(await line(bob, { ...fwd(22, false), username: 'bob' })), {
      ok: false,
      code: 'REPLY_NOT_ALLOWED',
    });
    assert.equal(forwarder.grants.length, 0);
    assert.equal(replies.length, 0);
  });

  test('--nat-local to a protected port also opens that port in the input firewall, for that source only', async () => {
    assert.deepEqual(await monitor.line(await line(alice, fwd(23456, true, 'local'))), { ok: true });
    assert.deepEqual(firewall.grants, [
      { source: CLIENT_IP, ports: [{ proto: 'tcp', port: 22 }], timeoutSeconds: 30 },
    ]);
    assert.equal(forwarder.grants[0]?.host, 'local');
    // an unprotected local port needs no input grant
    const l = await line(alice, {
      ...fwd(23457, true),
      forward: { host: 'local', port: 7022, randomPort: true },
    });
    assert.deepEqual(await monitor.line(l), { ok: true });
    assert.equal(firewall.grants.length, 1);
  });

  test('a monitor without gateway mode refuses forwarding even if its verifier passed it', async () => {
    const records = [recordFor(alice, { forward: ['203.0.113.10:22'], reply: true })];
    const m = new Monitor({
      serverFingerprint: r.identity.fingerprint,
      users: () => usersOf(records),
      replay: new ReplayStore(null),
      firewall: recordingFirewall(),
      audit: memoryAudit(),
      now: () => TEST_NOW.getTime(),
      maxSkewSeconds: 120,
      forwarder,
      sendReply: async (reply, to) => {
        replies.push({ reply, to });
      },
    });
    assert.deepEqual(await m.line(await line(alice, fwd(22, false))), {
      ok: false,
      code: 'FORWARD_NOT_ALLOWED',
    });
    assert.equal(forwarder.grants.length, 0);
    assert.equal(replies.length, 0);
  });
});
