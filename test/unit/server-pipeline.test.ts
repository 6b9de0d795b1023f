/**
 * The daemon's pipeline end to end in memory: real openpgp.js packets, a real replay store on
 * disk, a recording firewall (the e2e tests drive the real nftables/iptables). Each test names
 * the attack or behaviour and asserts the exact reason code and what the firewall saw.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { PortSpec } from '../../protocol/access.js';
import { parseAddress, parseCidr } from '../../protocol/address.js';
import { type ServerIdentity, seal } from '../../protocol/envelope.js';
import type { Payload } from '../../protocol/payload.js';
import { compileCommandRegex } from '../../protocol/command.js';
import type { UserPolicy } from '../../protocol/policy.js';
import { memoryAudit } from '../../server/audit.js';
import type { Datagram } from '../../server/capture/types.js';
import { Pipeline, type UserDirectory } from '../../server/pipeline.js';
import { ReplayStore } from '../../server/replay.js';
import { type RecordingFirewall, recordingFirewall } from '../helpers/firewall.js';
import { freshPayload, signerMap, type TestKey, testKey, testServer } from '../helpers/keys.js';

const dir = mkdtempSync(join(tmpdir(), 'spa-pipeline-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const tcp22: PortSpec = { proto: 'tcp', port: 22 };

function alicePolicy(over: Partial<UserPolicy> = {}): UserPolicy {
  return {
    username: 'alice',
    sources: 'any',
    openPorts: [tcp22, { proto: 'udp', port: 53 }],
    requireSourceAddress: true,
    defaultTimeout: 30,
    maxTimeout: 300,
    command: null,
    ...over,
  };
}

interface Rig {
  pipeline: Pipeline;
  firewall: RecordingFirewall;
  audit: ReturnType<typeof memoryAudit>;
  server: ServerIdentity;
  serverKey: TestKey;
  alice: TestKey;
  knock(p?: Partial<Payload>, from?: string): Promise<Datagram>;
}

let n = 0;
async function rig(opts: { policy?: UserPolicy } = {}): Promise<Rig> {
  const serverKey = await testKey('server');
  const alice = await testKey('alice');
  const server = await testServer(serverKey);
  const lookup = signerMap([alice]);
  const policy = opts.policy ?? alicePolicy();
  const users: UserDirectory = {
    lookupSigner: lookup,
    policy: (f) => (f === alice.fingerprint ? policy : undefined),
  };
  const firewall = recordingFirewall();
  const audit = memoryAudit();
  const replay = new ReplayStore(join(dir, `replay-${n++}.jsonl`));
  replay.load(Date.now());
  const pipeline = new Pipeline({
    identity: server,
    users: () => users,
    replay,
    firewall,
    audit,
    now: () => Date.now(),
    maxSkewSeconds: 120,
  });
  const knock = async (p: Partial<Payload> = {}, from = '198.51.100.2'): Promise<Datagram> => {
    const payload = freshPayload({ server: serverKey, ...p });
    const bytes = await seal(payload, {
      signingKey: alice.privateKey,
      serverKey: serverKey.publicKey,
      now: new Date(),
    });
    return datagram(Buffer.from(bytes), from);
  };
  return { pipeline, firewall, audit, server, serverKey, alice, knock };
}

function datagram(payload: Buffer, source = '198.51.100.2'): Datagram {
  return {
    source,
    sourcePort: 40000,
    destination: '198.51.100.1',
    destinationPort: 62201,
    payload,
    length: payload.length,
    oversize: false,
    receivedAt: process.hrtime.bigint(),
  };
}

describe('pipeline', () => {
  test('a valid knock opens exactly the requested port for the packet source with the user default timeout', async () => {
    const r = await rig();
    const out = await r.pipeline.handle(await r.knock());
    assert.equal(out.ok, true);
    assert.deepEqual(r.firewall.grants, [{ source: '198.51.100.2', ports: [tcp22], timeoutSeconds: 30 }]);
    const line = r.audit.lines.find((l) => l.event === 'grant');
    assert.equal(line?.user, 'alice');
    assert.equal(line?.fingerprint, r.alice.fingerprint);
  });

  test('the same datagram sent again is dropped as REPLAY_RAW before decryption', async () => {
    const r = await rig();
    const d = await r.knock();
    await r.pipeline.handle(d);
    const again = await r.pipeline.handle(datagram(d.payload, '198.51.100.3'));
    assert.deepEqual(again, { ok: false, code: 'REPLAY_RAW' });
    assert.equal(r.firewall.grants.length, 1);
  });

  test('a replay re-framed with an old-format packet header is still dropped as REPLAY_RAW before decryption', async () => {
    const r = await rig();
    const d = await r.knock();
    await r.pipeline.handle(d);
    const reframed = Buffer.from(d.payload);
    assert.equal(reframed[0], 0xc1); // new-format PKESK header, one-octet length
    reframed[0] = 0x84; // old-format tag 1, one-octet length: the same packet, other bytes
    assert.deepEqual(await r.pipeline.handle(datagram(reframed, '198.51.100.3')), {
      ok: false,
      code: 'REPLAY_RAW',
    });
    assert.equal(r.firewall.grants.length, 1);
  });

  test('the same signed nonce re-encrypted into a new datagram is dropped as REPLAY', async () => {
    const r = await rig();
    const nonce = new Uint8Array(16).fill(7);
    await r.pipeline.handle(await r.knock({ nonce }));
    const out = await r.pipeline.handle(await r.knock({ nonce }));
    assert.deepEqual(out, { ok: false, code: 'REPLAY' });
    assert.equal(r.firewall.grants.length, 1);
  });

  test('a port the user may not open is refused as PORT_NOT_ALLOWED and the firewall is untouched', async () => {
    const r = await rig();
    const out = await r.pipeline.handle(await r.knock({ access: [{ proto: 'tcp', port: 80 }] }));
    assert.deepEqual(out, { ok: false, code: 'PORT_NOT_ALLOWED' });
    assert.equal(r.firewall.grants.length, 0);
    assert.equal(r.audit.lines.at(-1)?.reason, 'PORT_NOT_ALLOWED');
  });

  test('a payload address that differs from the packet source is refused as SOURCE_MISMATCH', async () => {
    const r = await rig();
    const out = await r.pipeline.handle(await r.knock({ source: parseAddress('203.0.113.9') }));
    assert.deepEqual(out, { ok: false, code: 'SOURCE_MISMATCH' });
  });

  test('a NAT-allowed user gets the payload address opened, and "any" opens the packet source', async () => {
    const r = await rig({ policy: alicePolicy({ requireSourceAddress: false }) });
    await r.pipeline.handle(await r.knock({ source: parseAddress('203.0.113.9') }));
    await r.pipeline.handle(await r.knock({ source: 'any' }, '2001:db8::2'));
    assert.deepEqual(
      r.firewall.grants.map((g) => g.source),
      ['203.0.113.9', '2001:db8::2'],
    );
  });

  test('a packet from outside the user SOURCE CIDRs is refused as SOURCE_NOT_ALLOWED', async () => {
    const r = await rig({ policy: alicePolicy({ sources: [parseCidr('203.0.113.0/24')] }) });
    const out = await r.pipeline.handle(await r.knock());
    assert.deepEqual(out, { ok: false, code: 'SOURCE_NOT_ALLOWED' });
  });

  test('a timeout above the user maximum is refused as TIMEOUT_NOT_ALLOWED', async () => {
    const r = await rig();
    assert.deepEqual(await r.pipeline.handle(await r.knock({ timeoutSeconds: 301 })), {
      ok: false,
      code: 'TIMEOUT_NOT_ALLOWED',
    });
    assert.equal((await r.pipeline.handle(await r.knock({ timeoutSeconds: 300 }))).ok, true);
    assert.equal(r.firewall.grants[0]?.timeoutSeconds, 300);
  });

  test('a knock naming another username than the enrolled one is refused as USER_MISMATCH', async () => {
    const r = await rig();
    assert.deepEqual(await r.pipeline.handle(await r.knock({ username: 'root' })), {
      ok: false,
      code: 'USER_MISMATCH',
    });
  });

  test('a command knock is refused as CMD_NOT_ALLOWED for a user without command policy', async () => {
    const r = await rig();
    const out = await r.pipeline.handle(
      await r.knock({ type: 'command', access: [], command: 'backup-run home' }),
    );
    assert.deepEqual(out, { ok: false, code: 'CMD_NOT_ALLOWED' });
  });

  test('a command that matches only a prefix of the regex is refused as CMD_NO_MATCH', async () => {
    const r = await rig({
      policy: alicePolicy({
        command: {
          regex: compileCommandRegex('backup-run (home|etc)'),
          runAs: 'nobody',
          timeoutSeconds: 5,
          openPorts: [],
        },
      }),
    });
    const out = await r.pipeline.handle(
      await r.knock({ type: 'command', access: [], command: 'backup-run home && id' }),
    );
    assert.deepEqual(out, { ok: false, code: 'CMD_NO_MATCH' });
  });

  test('garbage, oversize and other-recipient datagrams are dropped with their own codes', async () => {
    const r = await rig();
    assert.deepEqual(await r.pipeline.handle(datagram(Buffer.alloc(200, 0x41))), {
      ok: false,
      code: 'PKT_FRAMING',
    });
    assert.deepEqual(await r.pipeline.handle(datagram(Buffer.alloc(10))), {
      ok: false,
      code: 'PKT_TOO_SHORT',
    });
    const big = { ...datagram(Buffer.alloc(0)), length: 3000, oversize: true };
    assert.deepEqual(await r.pipeline.handle(big), { ok: false, code: 'PKT_TOO_LONG' });
    const other = await testKey('other-server');
    const bytes = await seal(freshPayload({ server: other }), {
      signingKey: r.alice.privateKey,
      serverKey: other.publicKey,
      now: new Date(),
    });
    assert.deepEqual(await r.pipeline.handle(datagram(Buffer.from(bytes))), {
      ok: false,
      code: 'PKT_NOT_FOR_US',
    });
    assert.equal(r.firewall.grants.length, 0);
    assert.deepEqual(
      r.audit.lines.map((l) => l.reason),
      ['PKT_FRAMING', 'PKT_TOO_SHORT', 'PKT_TOO_LONG', 'PKT_NOT_FOR_US'],
    );
  });

  test('a source sending many damaged packets for us gets each one decrypted, never rate limited while the pipeline is idle', async () => {
    const r = await rig();
    const good = await r.knock();
    const broken = Buffer.from(good.payload);
    broken[broken.length - 5] = (broken[broken.length - 5] ?? 0) ^ 0xff; // ciphertext damaged, framing intact
    const codes = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const out = await r.pipeline.handle(datagram(broken, '198.51.100.2'));
      if (!out.ok) codes.add(out.code);
    }
    assert.deepEqual([...codes], ['DECRYPT_FAILED']);
    assert.equal((await r.pipeline.handle(good)).ok, true);
  });

  test('submit() drops junk at the framing checks and sheds, beyond the queue bound, the busiest source first', async () => {
    const r = await rig();
    const p = new Pipeline({
      identity: r.server,
      users: () => ({ lookupSigner: () => undefined, policy: () => undefined }),
      replay: new ReplayStore(null),
      firewall: r.firewall,
      audit: r.audit,
      now: () => Date.now(),
      maxSkewSeconds: 120,
      maxQueue: 3,
    });
    const good = await r.knock();
    const broken = Buffer.from(good.payload);
    broken[broken.length - 5] = (broken[broken.length - 5] ?? 0) ^ 0xff;
    for (let i = 0; i < 5; i++) p.submit(datagram(Buffer.alloc(100, 0x41)));
    assert.equal(p.counters.get('PKT_FRAMING'), 5);
    // the first is handled at once; then 6 wait for 3 places: 203.0.113.66 (the busiest) pays
    for (let i = 0; i < 6; i++) p.submit(datagram(broken, '203.0.113.66'));
    p.submit(datagram(broken, '198.51.100.9'));
    await p.idle();
    assert.equal(p.counters.get('RATE_LIMITED'), 3);
    assert.equal(p.counters.get('DECRYPT_FAILED'), 4);
    const shed = r.audit.lines.filter((l) => l.reason === 'RATE_LIMITED').map((l) => l.source);
    assert.deepEqual(new Set(shed), new Set(['203.0.113.66']));
  });

  test('a flood of drops writes at most 20 audit lines per reason per second, then one summary with the rest counted', async () => {
    let now = 1_000_000;
    const audit = memoryAudit();
    const r = await rig();
    const p = new Pipeline({
      identity: r.server,
      users: () => ({ lookupSigner: () => undefined, policy: () => undefined }),
      replay: new ReplayStore(null),
      firewall: r.firewall,
      audit,
      now: () => now,
      maxSkewSeconds: 120,
    });
    for (let i = 0; i < 500; i++) await p.handle(datagram(Buffer.alloc(100, 0x41)));
    assert.equal(p.counters.get('PKT_FRAMING'), 500);
    assert.equal(audit.lines.filter((l) => l.event === 'drop').length, 20);
    now += 1000;
    p.flushDropSummary();
    const summary = audit.lines.filter((l) => l.event === 'drop_summary');
    assert.deepEqual(
      summary.map((l) => [l.reason, l.suppressed]),
      [['PKT_FRAMING', 480]],
    );
  });

  test('after a restart, an address accepted just before it keeps the returning lane and is served ahead of a flood from its own /24', async () => {
    // how many DECRYPT_FAILED junk datagrams were handled before alice's knock was granted
    const junkBeforeGrant = async (restore: boolean): Promise<number> => {
      const r = await rig();
      const good = await r.knock();
      const junk = Buffer.from(good.payload);
      junk[junk.length - 5] = (junk[junk.length - 5] ?? 0) ^ 0xff;
      let seen = -1;
      const grant = r.firewall.grant.bind(r.firewall);
      r.firewall.grant = (g) => {
        seen = r.pipeline.counters.get('DECRYPT_FAILED') ?? 0;
        return grant(g);
      };
      if (restore) {
        const t = Math.floor(Date.now() / 1000) - 60;
        r.pipeline.restoreReturning([
          { key: 'k', raw: 'r', timestamp: t, expiresAt: (t + 240) * 1000, source: '198.51.100.2' },
          { key: 'k2', raw: 'r2', timestamp: t, expiresAt: (t + 240) * 1000, source: 'not an address' },
        ]);
      }
      const knock = await r.knock();
      // all queued at once: the first is taken at once, the rest wait their turn
      for (let i = 10; i < 50; i++) r.pipeline.submit(datagram(junk, `198.51.100.${i}`));
      r.pipeline.submit(knock);
      await r.pipeline.idle();
      assert.equal(r.pipeline.counters.get('DECRYPT_FAILED'), 40);
      assert.equal(r.firewall.grants.length, 1);
      return seen;
    };
    assert.ok((await junkBeforeGrant(true)) <= 2, 'restored: served within the first turns');
    assert.ok(
      (await junkBeforeGrant(false)) >= 39,
      'not restored: one source among 41 of its /24, served last',
    );
  });
});
