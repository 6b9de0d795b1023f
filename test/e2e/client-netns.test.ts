/**
 * The client across a real (namespaced) network: `spa` runs in the client namespace and knocks on
 * a UDP recorder in the server namespace, over IPv4 and IPv6. The default
 * source address in the payload must be the client's own address on that network (what the
 * server sees as the datagram's source), not loopback, and -s/-a must be carried as given.
 *
 *   client 198.51.100.2 / 2001:db8::2  ──udp──►  server 198.51.100.1 / 2001:db8::1 (recorder)
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatAddress } from '../../protocol/address.js';
import { createTopology, netnsUnavailable, type Topology } from '../../scripts/netns.js';
import { type Home, type Keys, keys as loadKeys, makeHome, openKnock } from '../unit/client-fixtures.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'client', 'cli.js');
const PORT = 62201;

/** A UDP recorder: one JSON line per datagram on stdout. Listens on :: (IPv4 and IPv6). */
const RECORDER = `
const s = require('node:dgram').createSocket({ type: 'udp6', ipv6Only: false });
s.on('message', (m, r) => process.stdout.write(JSON.stringify({ from: r.address, hex: m.toString('hex') }) + '\\n'));
s.bind(${PORT}, '::', () => process.stdout.write('ready\\n'));
setTimeout(() => process.exit(0), 120000).unref();
`;

const why = await netnsUnavailable();

describe('spa between network namespaces', { skip: why ?? false }, () => {
  let topo: Topology;
  let K: Keys;
  let H: Home;
  let recorder: ChildProcess;
  const lines: { from: string; hex: string }[] = [];

  before(async () => {
    K = await loadKeys();
    H = await makeHome([{ key: K.alice, username: 'alice' }], [{ key: K.server, name: 'gw' }]);
    topo = await createTopology();
    recorder = topo.server.spawn(process.execPath, ['-e', RECORDER], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      const t = setTimeout(() => reject(new Error('recorder did not start')), 10_000);
      recorder.stdout?.on('data', (c: Buffer) => {
        buf += c.toString();
        for (;;) {
          const i = buf.indexOf('\n');
          if (i < 0) break;
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === 'ready') {
            clearTimeout(t);
            resolve();
          } else lines.push(JSON.parse(line) as { from: string; hex: string });
        }
      });
    });
  });
  after(async () => {
    recorder?.kill('SIGTERM');
    await topo?.destroy();
    await H?.cleanup();
  });

  async function knockFromClient(args: string[]): Promise<{ from: string; bytes: Uint8Array }> {
    const before = lines.length;
    const r = await topo.client.exec(process.execPath, [CLI, '--home', H.home, ...args], {
      timeoutMs: 20_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const deadline = Date.now() + 5000;
    while (lines.length === before && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    const got = lines[before];
    assert.ok(got, 'the knock reached the server namespace');
    return { from: got.from.replace(/^::ffff:/, ''), bytes: Buffer.from(got.hex, 'hex') };
  }

  test('over IPv4 the default source is the client address the server sees', async () => {
    const k = await knockFromClient(['-A', 'tcp/22', topo.server.ipv4]);
    assert.equal(k.from, topo.client.ipv4);
    const opened = await openKnock(k.bytes, K.identity, [K.alice]);
    assert.equal(
      formatAddress(opened.payload.source as Exclude<typeof opened.payload.source, 'any'>),
      topo.client.ipv4,
    );
  });

  test('over IPv6 the default source is the client IPv6 address the server sees', async () => {
    const k = await knockFromClient(['-A', 'tcp/22', topo.server.ipv6]);
    assert.equal(k.from, topo.client.ipv6);
    const opened = await openKnock(k.bytes, K.identity, [K.alice]);
    assert.equal(
      formatAddress(opened.payload.source as Exclude<typeof opened.payload.source, 'any'>),
      topo.client.ipv6,
    );
  });

  test('-s sends "any" and -a sends the given address, whatever the route', async () => {
    const any = await openKnock(
      (await knockFromClient(['-A', 'tcp/22', '-s', topo.server.ipv4])).bytes,
      K.identity,
      [K.alice],
    );
    assert.equal(any.payload.source, 'any');
    const given = await openKnock(
      (await knockFromClient(['-A', 'tcp/22', '-a', '203.0.113.50', topo.server.ipv4])).bytes,
      K.identity,
      [K.alice],
    );
    assert.equal(
      formatAddress(given.payload.source as Exclude<typeof given.payload.source, 'any'>),
      '203.0.113.50',
    );
  });

  test('an unreachable server address is a runtime error (exit 1) naming it', async () => {
    const r = await topo.client.exec(
      process.execPath,
      [CLI, '--home', H.home, '-A', 'tcp/22', '203.0.113.1'],
      {
        timeoutMs: 20_000,
      },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^spa: error: cannot reach 203\.0\.113\.1: network unreachable$/m);
    assert.match(r.stderr, /^spa: hint: check the route to the server: ip route get 203\.0\.113\.1$/m);
  });
});
