/**
 * Gateway mode in protocol/: the payload extension block (SPEC.md §4.6), forwarding destination
 * text, the forwarding and reply policy (§9.6, §9.7), and the signed reply (§12).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseAddress } from '../../protocol/address.js';
import { SpaError } from '../../protocol/errors.js';
import { formatForwardRule, parseForwardList, parseForwardTarget } from '../../protocol/forward.js';
import { decodePayload, encodePayload, type Payload } from '../../protocol/payload.js';
import { decide, type UserPolicy } from '../../protocol/policy.js';
import { encodeReplyBody, type Reply, signReply, verifyReply } from '../../protocol/reply.js';
import { freshPayload, TEST_NOW, vectorKey } from '../helpers/keys.js';

const code = (c: string) => (e: unknown) => e instanceof SpaError && e.code === c;
const internal = parseAddress('203.0.113.10');

describe('payload extension block', () => {
  test('a knock without reply or forward encodes exactly as before (no extension byte)', () => {
    const p = freshPayload();
    const bytes = encodePayload(p);
    assert.equal(bytes.length, encodePayload({ ...p, reply: false }).length);
    assert.deepEqual(decodePayload(bytes), p);
  });

  test('reply and forward survive encode then decode, and re-encode to the same bytes', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.constantFrom<Payload['forward']>(
          undefined,
          { host: internal, port: 22, randomPort: false },
          { host: 'local', port: 22, randomPort: true },
          { host: parseAddress('2001:db8:1::10'), port: 443, randomPort: true },
        ),
        fc.integer({ min: 1, max: 65535 }),
        (reply, forward, port) => {
          const p = freshPayload({
            access: [{ proto: 'tcp', port }],
            ...(reply ? { reply } : {}),
            ...(forward ? { forward } : {}),
          });
          const bytes = encodePayload(p);
          const back = decodePayload(bytes);
          assert.deepEqual(back, p);
          assert.deepEqual(encodePayload(back), bytes);
        },
      ),
    );
  });

  test('the extension block is laid out as the spec says', () => {
    const p = freshPayload({ reply: true, forward: { host: internal, port: 2222, randomPort: true } });
    const bytes = encodePayload(p);
    assert.deepEqual([...bytes.subarray(bytes.length - 8)], [0x07, 4, 203, 0, 113, 10, 0x08, 0xae]);
  });

  test('refused: flags 0, unknown bits, random port without forward, truncation, trailing bytes', () => {
    const base = encodePayload(freshPayload());
    const withExt = (...b: number[]) => Uint8Array.from([...base, ...b]);
    for (const bad of [
      withExt(0),
      withExt(0x08),
      withExt(0x04),
      withExt(0x02, 4, 203, 0, 113),
      withExt(0x02, 5, 0, 22),
      withExt(0x02, 0, 0, 22, 0),
      withExt(0x01, 0),
      withExt(0x02, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 10, 0, 22),
    ]) {
      assert.throws(
        () => decodePayload(bad),
        code('PAYLOAD_MALFORMED'),
        `bytes ${[...bad.subarray(base.length)]}`,
      );
    }
  });

  test('makePayload refuses forward with two ports, forward or reply on a command, port 0', () => {
    assert.throws(
      () =>
        freshPayload({
          access: [
            { proto: 'tcp', port: 22 },
            { proto: 'tcp', port: 80 },
          ],
          forward: { host: internal, port: 22, randomPort: false },
        }),
      code('PAYLOAD_MALFORMED'),
    );
    assert.throws(
      () => freshPayload({ type: 'command', command: 'uptime', access: [], reply: true }),
      code('PAYLOAD_MALFORMED'),
    );
    assert.throws(
      () => freshPayload({ forward: { host: internal, port: 0, randomPort: false } }),
      code('PAYLOAD_MALFORMED'),
    );
  });
});

describe('forwarding destination text', () => {
  test('host:port, [v6]:port, local:port and udp/ prefix, canonical out', () => {
    assert.equal(
      formatForwardRule({ proto: 'tcp', ...parseForwardTarget('203.0.113.10:22') }),
      '203.0.113.10:22',
    );
    assert.deepEqual(
      parseForwardList('203.0.113.10:22,udp/[2001:DB8:1:0::10]:53,local:22,203.0.113.10:22').map(
        formatForwardRule,
      ),
      ['203.0.113.10:22', 'udp/[2001:db8:1::10]:53', 'local:22'],
    );
  });
  test('refused: names, bare v6, ports 0 and 65536, leading zeros, mapped v4, zone ids', () => {
    for (const bad of [
      'gw.example:22',
      '2001:db8::1:22',
      'local:0',
      '203.0.113.10:65536',
      '203.0.113.10:022',
      '[::ffff:203.0.113.10]:22',
      '[fe80::1%eth0]:22',
      '203.0.113.10',
    ]) {
      assert.throws(() => parseForwardTarget(bad), code('ADDRESS_INVALID'), bad);
    }
  });
});

describe('forwarding and reply policy', () => {
  const policy: UserPolicy = {
    username: 'alice',
    sources: 'any',
    openPorts: [{ proto: 'tcp', port: 22 }],
    requireSourceAddress: true,
    defaultTimeout: 30,
    maxTimeout: 300,
    command: null,
    forward: parseForwardList('203.0.113.10:22,local:22'),
    reply: true,
  };
  const from = parseAddress('198.51.100.2');
  const gw = { randomPorts: { min: 20000, max: 29999 } };
  const fwd = (
    port: number,
    randomPort: boolean,
    host: Payload['forward'] extends infer F ? (F extends { host: infer H } ? H : never) : never = internal,
  ) => freshPayload({ access: [{ proto: 'tcp', port }], forward: { host, port: 22, randomPort } });

  test('an enrolled destination on an open port is granted as asked', () => {
    const d = decide(fwd(22, false), policy, from, gw);
    assert.equal(d.kind, 'access');
    assert.deepEqual(d.kind === 'access' && d.forward, {
      target: { host: internal, port: 22 },
      randomPort: false,
    });
  });
  test('a random port inside the range is granted even though it is not in open_ports', () => {
    const d = decide(fwd(25000, true, 'local'), policy, from, gw);
    assert.deepEqual(d.kind === 'access' && d.ports, [{ proto: 'tcp', port: 25000 }]);
  });
  test('refused: no gateway configured, destination not enrolled, random port outside range, non-random port not open, udp for a tcp entry', () => {
    assert.throws(() => decide(fwd(22, false), policy, from, null), code('FORWARD_NOT_ALLOWED'));
    assert.throws(
      () => decide(fwd(22, false, parseAddress('203.0.113.11')), policy, from, gw),
      code('FORWARD_NOT_ALLOWED'),
    );
    assert.throws(() => decide(fwd(30000, true), policy, from, gw), code('FORWARD_NOT_ALLOWED'));
    assert.throws(() => decide(fwd(2222, false), policy, from, gw), code('PORT_NOT_ALLOWED'));
    const udp = freshPayload({
      access: [{ proto: 'udp', port: 22 }],
      forward: { host: internal, port: 22, randomPort: false },
    });
    assert.throws(
      () => decide(udp, { ...policy, openPorts: [{ proto: 'udp', port: 22 }] }, from, gw),
      code('FORWARD_NOT_ALLOWED'),
    );
  });
  test('an IPv6 client cannot be forwarded to an IPv4 host (no NAT64)', () => {
    const p = freshPayload({
      source: parseAddress('2001:db8::2'),
      forward: { host: internal, port: 22, randomPort: false },
    });
    assert.throws(() => decide(p, policy, parseAddress('2001:db8::2'), gw), code('FORWARD_NOT_ALLOWED'));
  });
  test('a reply is refused for a user not enrolled with --reply, allowed otherwise', () => {
    assert.throws(
      () => decide(freshPayload({ reply: true }), { ...policy, reply: false }, from),
      code('REPLY_NOT_ALLOWED'),
    );
    const d = decide(freshPayload({ reply: true }), policy, from);
    assert.equal(d.kind === 'access' && d.reply, true);
  });
});

describe('signed reply', () => {
  const now = TEST_NOW;
  const issued = Math.floor(now.getTime() / 1000);
  const nonce = Uint8Array.from({ length: 16 }, (_, i) => i);

  async function setup() {
    const server = await vectorKey('server-ecc');
    const other = await vectorKey('server2-ecc');
    const reply: Reply = {
      issued,
      nonce,
      serverFingerprint: server.fingerprint,
      timeoutSeconds: 30,
      granted: [{ proto: 'tcp', port: 25000 }],
      forward: { host: internal, port: 22 },
    };
    return { server, other, reply };
  }

  test('a reply signed by the server key verifies and decodes to what was signed', async () => {
    const { server, reply } = await setup();
    const bytes = await signReply(reply, server.privateKey, now);
    assert.ok(bytes.length <= 1024);
    const got = await verifyReply(bytes, {
      serverKey: server.publicKey,
      nonces: [nonce],
      now,
      maxSkewSeconds: 120,
    });
    assert.deepEqual(got, reply);
  });

  test('rejected: another server key signed it (forged), with its fingerprint or ours in the body', async () => {
    const { server, other, reply } = await setup();
    const forged = await signReply({ ...reply, serverFingerprint: other.fingerprint }, other.privateKey, now);
    await assert.rejects(
      verifyReply(forged, { serverKey: server.publicKey, nonces: [nonce], now, maxSkewSeconds: 120 }),
      code('REPLY_INVALID'),
    );
    // our body, their signature spliced on
    const ours = encodeReplyBody(reply);
    const theirs = await signReply({ ...reply, serverFingerprint: other.fingerprint }, other.privateKey, now);
    const theirSig = theirs.subarray(
      encodeReplyBody({ ...reply, serverFingerprint: other.fingerprint }).length,
    );
    const spliced = Uint8Array.from([...ours, ...theirSig]);
    await assert.rejects(
      verifyReply(spliced, { serverKey: server.publicKey, nonces: [nonce], now, maxSkewSeconds: 120 }),
      code('REPLY_INVALID'),
    );
  });

  test('rejected: a replayed reply (nonce of a knock not sent in this run), a stale one, any flipped byte', async () => {
    const { server, reply } = await setup();
    const bytes = await signReply(reply, server.privateKey, now);
    const opts = { serverKey: server.publicKey, nonces: [nonce], now, maxSkewSeconds: 120 };
    await assert.rejects(
      verifyReply(bytes, { ...opts, nonces: [new Uint8Array(16)] }),
      code('REPLY_INVALID'),
    );
    await assert.rejects(
      verifyReply(bytes, { ...opts, now: new Date(now.getTime() + 600_000) }),
      code('REPLY_INVALID'),
    );
    for (let i = 0; i < bytes.length; i += 7) {
      const t = Uint8Array.from(bytes);
      t[i] = (t[i] ?? 0) ^ 0x01;
      await assert.rejects(verifyReply(t, opts), (e: unknown) => e instanceof SpaError, `byte ${i}`);
    }
    await assert.rejects(verifyReply(Uint8Array.from([...bytes, 0]), opts), code('REPLY_INVALID'));
  });
});
