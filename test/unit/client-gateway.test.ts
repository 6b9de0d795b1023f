/**
 * The client's gateway flags and reply handling, in-process against a fake server on loopback:
 * -N/--rand-port/--nat-local/--retries in the knock (SPEC.md §4.6), fresh knocks per retry, a
 * forged or replayed reply ignored, a reply to an earlier knock of the same run accepted, and
 * the one-line result or a non-zero exit.
 */
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openEnvelope } from '../../protocol/envelope.js';
import { decodePayload, type Payload } from '../../protocol/payload.js';
import {
  type Home,
  type Keys,
  keys,
  makeHome,
  parseTestOutput,
  signedReply,
  spa,
} from './client-fixtures.js';

describe('spa gateway flags and the signed reply', () => {
  let K: Keys;
  let home: Home;
  before(async () => {
    K = await keys();
    home = await makeHome([{ key: K.alice, username: 'alice' }], [{ key: K.server }]);
  });
  after(() => home.cleanup());

  test('-N, --rand-port and --retries go into the knock; the random port is in the server range', async () => {
    const r = await spa([
      '--home',
      home.home,
      '-N',
      '203.0.113.10:22',
      '--rand-port',
      '-A',
      'tcp/22',
      '--retries',
      '1',
      '--test',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    const { payload } = parseTestOutput(r.out);
    assert.equal(payload.forward, '203.0.113.10:22');
    assert.equal(payload.random_port, true);
    assert.equal(payload.reply, true);
    const port = Number(String(payload.access).split('/')[1]);
    assert.ok(port >= 20000 && port <= 29999, String(payload.access));
    const local = parseTestOutput(
      (await spa(['--home', home.home, '--nat-local', '-A', 'tcp/22', '--test', '127.0.0.1'])).out,
    );
    assert.equal(local.payload.forward, 'local:22');
    assert.equal(local.payload.reply, undefined);
  });

  test('--rand-port-range draws the random port from that range, also from an rc stanza', async () => {
    const ports = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const r = await spa([
        '--home',
        home.home,
        '-N',
        '203.0.113.10:22',
        '--rand-port',
        '--rand-port-range',
        '40000-40003',
        '-A',
        'tcp/22',
        '--test',
        '127.0.0.1',
      ]);
      assert.equal(r.code, 0, r.err);
      ports.add(Number(String(parseTestOutput(r.out).payload.access).split('/')[1]));
    }
    for (const port of ports) assert.ok(port >= 40000 && port <= 40003, String(port));
    const rc = join(home.home, 'range.rc');
    writeFileSync(rc, '[default]\nrand-port-range = 45000-45000\n', { mode: 0o600 });
    const viaRc = await spa([
      '--home',
      home.home,
      '--rc-file',
      rc,
      '-N',
      '203.0.113.10:22',
      '--rand-port',
      '-A',
      'tcp/22',
      '--test',
      '127.0.0.1',
    ]);
    assert.equal(viaRc.code, 0, viaRc.err);
    assert.equal(parseTestOutput(viaRc.out).payload.access, 'tcp/45000');
    // a [default] range is only a setting: a knock without --rand-port ignores it
    const plain = await spa(['--home', home.home, '--rc-file', rc, '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(plain.code, 0, plain.err);
    assert.equal(parseTestOutput(plain.out).payload.access, 'tcp/22');
  });

  test('usage errors: --rand-port without -N, two -A entries with -N, --nat-local with another host, --retries out of range', async () => {
    for (const [args, re] of [
      [['--rand-port', '-A', 'tcp/22'], /--rand-port: a random external port needs a forwarding request/],
      [['-N', '203.0.113.10:22', '-A', 'tcp/22,tcp/80'], /one external port/],
      [['-N', '203.0.113.10:22', '--nat-local', '-A', 'tcp/22'], /choose one/],
      [['-A', 'tcp/22', '--retries', '11'], /--retries: expected a whole number 0\.\.10/],
      [['-N', 'gw.example:22', '-A', 'tcp/22'], /-N\/--nat-access: 'gw\.example:22'/],
      [
        ['-N', '203.0.113.10:22', '--rand-port', '--rand-port-range', '30000-20000', '-A', 'tcp/22'],
        /--rand-port-range: expected LOW-HIGH within 1\.\.65535/,
      ],
      [['-N', '203.0.113.10:22', '--rand-port-range', '20000-20010', '-A', 'tcp/22'], /needs --rand-port/],
    ] as const) {
      const r = await spa(['--home', home.home, ...args, '--test', '127.0.0.1']);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, re);
    }
  });

  /** A fake server: answers knock n (1-based) with what `answer` returns. */
  async function fakeServer(answer: (n: number, p: Payload, to: RemoteInfo) => Promise<Uint8Array[]>) {
    const sock = createSocket('udp4');
    const payloads: Payload[] = [];
    const raw: Buffer[] = [];
    sock.on('message', (msg, rinfo) => {
      raw.push(msg);
      void (async () => {
        const s = await openEnvelope(new Uint8Array(msg), { server: K.identity, now: new Date() });
        const bytes = (s.literal as unknown as { getBytes(): Uint8Array }).getBytes();
        const p = decodePayload(bytes);
        payloads.push(p);
        for (const d of await answer(payloads.length, p, rinfo)) sock.send(d, rinfo.port, rinfo.address);
      })();
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    return { port: sock.address().port, payloads, raw, close: () => sock.close() };
  }

  const reply = (p: Payload, key = K.server, over: { port?: number } = {}) => signedReply(p, key, over);

  /** `spa -A tcp/22 --retries N` to the fake server on loopback. */
  const knockTo = (port: number, retries: string, ...extra: string[]) =>
    spa([
      '--home',
      home.home,
      '-p',
      String(port),
      '-A',
      'tcp/22',
      '--retries',
      retries,
      ...extra,
      '127.0.0.1',
    ]);

  test('ignores a forged reply and garbage, knocks again with a fresh nonce, and accepts the real reply', async () => {
    const first: Payload[] = [];
    const srv = await fakeServer(async (n, p) => {
      if (n === 1) {
        first.push(p);
        return [new Uint8Array(200).fill(7), await reply(p, K.other)];
      }
      // the second knock is answered with the real reply to the FIRST knock: same run, accepted
      return [await reply(first[0] as Payload)];
    });
    try {
      const r = await spa([
        '--home',
        home.home,
        '-p',
        String(srv.port),
        '-N',
        '203.0.113.10:22',
        '-A',
        'tcp/22',
        '--retries',
        '2',
        '-v',
        '127.0.0.1',
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /^spa: access granted: tcp\/22 -> 203\.0\.113\.10:22 for 30 s$/m);
      assert.match(r.err, /ignored a 200-byte datagram/);
      assert.equal(srv.payloads.length, 2);
      assert.notDeepEqual(srv.payloads[0]?.nonce, srv.payloads[1]?.nonce, 'each retry is a fresh knock');
    } finally {
      srv.close();
    }
  });

  test('--save-packet with retries saves every knock sent, FILE then FILE.2, exactly as sent', async () => {
    const srv = await fakeServer(async (n, p) => (n === 1 ? [] : [await reply(p)]));
    const file = join(home.home, 'knocks.bin');
    try {
      const r = await knockTo(srv.port, '2', '-B', file);
      assert.equal(r.code, 0, r.err);
      assert.equal(srv.raw.length, 2);
      assert.deepEqual(readFileSync(file), srv.raw[0]);
      assert.deepEqual(readFileSync(`${file}.2`), srv.raw[1]);
      assert.equal(existsSync(`${file}.3`), false, 'no file for a knock never sent');
    } finally {
      srv.close();
    }
  });

  test('a replayed reply (to another run) is ignored: after all retries, exit 1 with one clear line', async () => {
    let old: Payload | null = null;
    const srv = await fakeServer(async (_n, p) => {
      old ??= p;
      return old === p ? [] : [await reply(old)];
    });
    try {
      // run 1 leaves a knock the server remembers; run 2 gets only replies to that knock
      await knockTo(srv.port, '0');
      const r = await knockTo(srv.port, '1');
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, /^spa: error: no verified reply from 127\.0\.0\.1 after 2 knocks$/m);
      assert.equal(srv.payloads.length, 3);
    } finally {
      srv.close();
    }
  });
});
