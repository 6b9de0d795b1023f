/**
 * Gateway mode end to end, with the real binaries: spad (monitor + verifier) on a gateway with a
 * second interface, a fourth, internal host behind it running a real TCP service, the real `spa`
 * client and `spa-keys`. Per firewall backend (nftables with pcap capture, iptables with the UDP
 * socket, so both reply paths run):
 * - the client reaches the internal service through a random external port only after its
 *   knock, learns the port from a verified signed reply, and the path closes on time; the
 *   attacker never gets through, before or after, nor routing straight to the internal host;
 * - no reply for a replay, an unenrolled signer, garbage, or a knock refused by policy (a
 *   random port outside the server's `random_ports` included, with the reason in the audit);
 * - `spad fw-list` and `spad status` show the forwarding grant, `spad fw-flush` removes it;
 * - nftables: the path also closes on time after spad was SIGKILLed.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Host, waitFor } from '../../scripts/netns.js';
import { openSession, probe, probeOne } from './firewall-harness.js';
import { unavailable } from './firewall-suite.js';
import { createGateway, INTERNAL4, INTERNAL6, INTERNAL_NETS } from './gateway-harness.js';
import { BIN, type Keys, must, setupKeys, spa, startSpad, type Spad } from './spad-harness.js';

const NODE = process.execPath;

/** Sends `hex` once to the SPA port from a fresh socket and counts what comes back in `ms`. */
const LISTEN = `
const d = require('dgram').createSocket('udp4');
let n = 0;
d.on('message', () => n++);
d.bind(0, () => {
  d.send(Buffer.from(process.argv[1], 'hex'), 62201, process.argv[2]);
  setTimeout(() => { console.log(String(n)); d.close(); }, Number(process.argv[3]));
});`;

async function repliesTo(from: Host, to: string, bytes: Uint8Array, ms = 1500): Promise<number> {
  const r = await from.exec(NODE, ['-e', LISTEN, Buffer.from(bytes).toString('hex'), to, String(ms)]);
  if (r.code !== 0) throw new Error(`listener failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

const RANGE = '40000-40999';
const GRANTED = /^spa: access granted: tcp\/(\d+) -> 203\.0\.113\.10:22 for 3 s$/m;

for (const [kind, capture] of [
  ['nftables', 'pcap'],
  ['iptables', 'udp'],
] as const) {
  const skip = await unavailable(kind);
  describe(`gateway mode end to end (${kind}, ${capture})`, { skip: skip ?? false }, () => {
    test('a random-port forwarding grant with a signed reply; no reply to anything refused; closes on time', async () => {
      const g = await createGateway();
      let keys: Keys | null = null;
      let spad: Spad | null = null;
      try {
        const { server, client, attacker } = g.topo;
        keys = await setupKeys();
        const alice = await keys.enroll('alice', [
          '--open',
          'tcp/22',
          '--forward',
          `${INTERNAL4}:22,[${INTERNAL6}]:22`,
          '--reply',
          '--timeout',
          '3',
        ]);
        const bob = await keys.enroll('bob', ['--open', 'tcp/22', '--forward', `${INTERNAL4}:22`]);
        // a key the server never enrolled, with the real server key imported
        const mallory = join(keys.dir, 'mallory');
        await must('spa-keys', ['gen', '--user', 'mallory', '--home', mallory]);
        await must('spa-keys', ['import', '-', '--home', mallory], {
          input: await must('spa-keys', ['export-server', '--state-dir', keys.stateDir]),
        });
        const config = join(keys.dir, 'spad.json');
        // not the default range: the client must be told it (--rand-port-range)
        writeFileSync(config, JSON.stringify({ gateway: { internal: INTERNAL_NETS, random_ports: RANGE } }));
        const cap = capture === 'pcap' ? ['--interface', 'eth0'] : ['--udp-server'];
        spad = await startSpad(server, keys.stateDir, [
          ...cap,
          '--firewall',
          kind,
          '--protect',
          'tcp/22',
          '--config',
          config,
        ]);

        // before: nothing reaches the inside
        assert.equal(await probeOne(attacker, ['tcp', INTERNAL4, 22]), 'closed');
        assert.equal(await probeOne(client, ['tcp', INTERNAL4, 22]), 'closed');

        const packetFile = join(keys.dir, 'alice-knock.bin');
        const knock = await spa(client, [
          '--home',
          alice.home,
          '-N',
          `${INTERNAL4}:22`,
          '--rand-port',
          '--rand-port-range',
          RANGE,
          '-A',
          'tcp/22',
          '--retries',
          '2',
          '-B',
          packetFile,
          '-v',
          server.ipv4,
        ]);
        assert.equal(knock.code, 0, knock.stderr);
        const m = GRANTED.exec(knock.stderr);
        assert.ok(m, knock.stderr);
        const ext = Number(m[1]);
        assert.ok(ext >= 40000 && ext <= 40999, String(ext));
        const grantedAt = Date.now();
        const latency = /reply after knock (\d+), ([\d.]+) ms/.exec(knock.stderr);
        assert.ok(latency, knock.stderr);
        console.log(`# ${kind}: knock-to-reply ${latency[2]} ms (knock ${latency[1]})`);
        await spad.waitFor((l) => l.event === 'grant' && l.user === 'alice');

        // through the gateway to the internal host's real service: client yes, attacker no
        assert.deepEqual(
          await probe(client, [
            ['tcp', server.ipv4, ext],
            ['tcp', INTERNAL4, 22],
          ]),
          ['open', 'closed'],
        );
        assert.deepEqual(
          await probe(attacker, [
            ['tcp', server.ipv4, ext],
            ['tcp', INTERNAL4, 22],
          ]),
          ['refused', 'closed'],
        );
        const session = await openSession(client, server.ipv4, ext);
        try {
          assert.ok(await session.echo('through-the-gateway'));

          // closes on time; the live session outlasts it
          const closed = await waitFor(
            async () => (await probeOne(client, ['tcp', server.ipv4, ext], 400)) !== 'open',
            9000,
            200,
          );
          const took = Date.now() - grantedAt;
          assert.ok(closed && took < 9000, `still open after ${took} ms (granted for 3 s)`);
          assert.ok(await session.echo('after-close'), 'an established session must outlast its grant');
          // no reply for: the same knock again (from its sender, and from the attacker)
          const { readFileSync } = await import('node:fs');
          const saved = new Uint8Array(readFileSync(packetFile));
          const from = spad.lines.length;
          assert.equal(await repliesTo(client, server.ipv4, saved), 0);
          assert.equal(await repliesTo(attacker, server.ipv4, saved), 0);
          // the same bytes: refused by their digest, before decryption
          await spad.waitFor((l) => l.event === 'drop' && l.reason === 'REPLAY_RAW', 5000, from);
          // garbage
          assert.equal(await repliesTo(attacker, server.ipv4, new Uint8Array(300).fill(0x85)), 0);
          // an unenrolled signer
          const m1 = spad.lines.length;
          const bad = await spa(client, [
            '--home',
            mallory,
            '-N',
            `${INTERNAL4}:22`,
            '-A',
            'tcp/22',
            '--retries',
            '0',
            server.ipv4,
          ]);
          assert.equal(bad.code, 1, bad.stderr);
          assert.match(bad.stderr, /^spa: error: no verified reply from 198\.51\.100\.1 after 1 knock$/m);
          await spad.waitFor((l) => l.event === 'drop' && l.reason === 'SIGNER_UNKNOWN', 5000, m1);
          // refused by policy: bob may not ask for a reply; alice may not reach another host
          const m2 = spad.lines.length;
          const b = await spa(client, [
            '--home',
            bob.home,
            '-N',
            `${INTERNAL4}:22`,
            '-A',
            'tcp/22',
            '--retries',
            '0',
            server.ipv4,
          ]);
          assert.equal(b.code, 1, b.stderr);
          await spad.waitFor((l) => l.event === 'drop' && l.reason === 'REPLY_NOT_ALLOWED', 5000, m2);
          const a = await spa(client, [
            '--home',
            alice.home,
            '-N',
            '203.0.113.11:22',
            '-A',
            'tcp/22',
            '--retries',
            '0',
            server.ipv4,
          ]);
          assert.equal(a.code, 1, a.stderr);
          await spad.waitFor((l) => l.event === 'drop' && l.reason === 'FORWARD_NOT_ALLOWED', 5000, m2);
          // a random port from the client's default range, outside the server's: refused, and said why
          const m3 = spad.lines.length;
          const wrongRange = await spa(client, [
            '--home',
            alice.home,
            '-N',
            `${INTERNAL4}:22`,
            '--rand-port',
            '-A',
            'tcp/22',
            '--retries',
            '0',
            server.ipv4,
          ]);
          assert.equal(wrongRange.code, 1, wrongRange.stderr);
          await spad.waitFor(
            (l) =>
              l.event === 'drop' &&
              l.reason === 'FORWARD_NOT_ALLOWED' &&
              /^forward: external port 2\d{4} outside 40000-40999$/.test(String(l.detail)),
            5000,
            m3,
          );
          assert.ok(!spad.lines.slice(from).some((l) => l.event === 'grant'), 'nothing refused was granted');
        } finally {
          session.close();
        }
        assert.equal(await probeOne(attacker, ['tcp', server.ipv4, ext]), 'refused');

        // ssh's ProxyCommand: spa connect learns the random port from the reply and relays
        const relay = await client.exec(
          NODE,
          [
            BIN.spa,
            'connect',
            '--home',
            alice.home,
            '-N',
            `${INTERNAL4}:22`,
            '--rand-port',
            '--rand-port-range',
            RANGE,
            server.ipv4,
            '22',
          ],
          { input: 'hello-through-connect\n', timeoutMs: 20_000 },
        );
        assert.equal(relay.code, 0, relay.stderr);
        assert.equal(relay.stdout, 'hello-through-connect\n');
        assert.match(relay.stderr, /^spa: access granted: tcp\/40\d{3} -> 203\.0\.113\.10:22 for 3 s$/m);

        // IPv6: the same over the gateway's IPv6 address, reply included
        const v6 = await spa(client, [
          '--home',
          alice.home,
          '-N',
          `[${INTERNAL6}]:22`,
          '--rand-port',
          '--rand-port-range',
          RANGE,
          '-A',
          'tcp/22',
          '--retries',
          '2',
          server.ipv6,
        ]);
        assert.equal(v6.code, 0, `${v6.stderr}\nspad: ${JSON.stringify(spad.lines.slice(-6))}`);
        const m6 = /^spa: access granted: tcp\/(\d+) -> \[2001:db8:1::10\]:22 for 3 s$/m.exec(v6.stderr);
        assert.ok(m6, v6.stderr);
        const ext6 = Number(m6[1]);
        assert.deepEqual(
          await probe(client, [
            ['tcp', server.ipv6, ext6],
            ['tcp', INTERNAL6, 22],
          ]),
          ['open', 'closed'],
        );
        assert.equal(await probeOne(attacker, ['tcp', server.ipv6, ext6]), 'refused');

        // the control commands show the forwarding grant, and fw-flush removes it
        const sd = ['--state-dir', keys.stateDir];
        const listed = JSON.parse(await must('spad', ['fw-list', '--json', ...sd])) as Array<{
          source: string;
          port: number;
          forward?: string;
        }>;
        assert.ok(
          listed.some(
            (l) => l.source === client.ipv6 && l.port === ext6 && l.forward === `[${INTERNAL6}]:22`,
          ),
          JSON.stringify(listed),
        );
        const line = `${client.ipv6} tcp/${ext6} -> [${INTERNAL6}]:22 `;
        assert.ok((await must('spad', ['fw-list', ...sd])).includes(line));
        assert.ok((await must('spad', ['status', ...sd])).includes(`  ${line}`));
        await must('spad', ['fw-flush', '--yes', ...sd]);
        assert.deepEqual(JSON.parse(await must('spad', ['fw-list', '--json', ...sd])), []);
        assert.equal(await probeOne(client, ['tcp', server.ipv6, ext6]), 'refused');

        if (kind === 'nftables') {
          // spad SIGKILLed right after granting: the kernel still closes the path on time
          const again = await spa(client, [
            '--home',
            alice.home,
            '-N',
            `${INTERNAL4}:22`,
            '-A',
            'tcp/22',
            '--retries',
            '2',
            server.ipv4,
          ]);
          assert.equal(again.code, 0, again.stderr);
          await spad.kill();
          const killedAt = Date.now();
          assert.equal(await probeOne(client, ['tcp', server.ipv4, 22]), 'open');
          assert.equal(await probeOne(attacker, ['tcp', server.ipv4, 22]), 'closed');
          const gone = await waitFor(
            async () => (await probeOne(client, ['tcp', server.ipv4, 22], 400)) !== 'open',
            8000,
            200,
          );
          assert.ok(
            gone && Date.now() - killedAt < 8000,
            'nobody is left to close it, and the kernel did not',
          );
        }
      } finally {
        await spad?.stop();
        keys?.cleanup();
        await g.destroy();
      }
    });
  });
}
