/**
 * Attack: an attacker scans the SPA port (udp/62201) to learn that spad is there. With pcap
 * capture nothing listens on the port, so without a rule of ours the kernel answers every probe
 * with ICMP (or ICMPv6) port unreachable, which tells the scanner the host is up and the port
 * is "closed" rather than filtered. spad's own table/chain must drop the port for everyone, so a
 * probe gets no answer of any kind, while libpcap (which sees frames before netfilter) still
 * reads the knocks.
 *
 *   <id>-client 198.51.100.2 / 2001:db8::2 ──┐
 *   <id>-attacker 198.51.100.3 / 2001:db8::3 ─┼── bridge ── <id>-server 198.51.100.1 / 2001:db8::1
 *     probes udp/62201 and listens on raw     │               spad --interface eth0, tcp/22 echo,
 *     ICMP/ICMPv6 sockets for any reply      ┘               always_allow: the attacker
 *
 * The listener is a small python3 script (raw sockets need no extra package): it sends a
 * bounded number of UDP probes over IPv4 and IPv6 and reports every ICMP/ICMPv6 message and
 * every UDP datagram that came back from the server (neighbour discovery left out).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTopology, type Host, netnsUnavailable, type Topology } from '../../scripts/netns.js';
import { probeOne, startServices } from './firewall-harness.js';
import { callControl } from '../../server/control.js';
import { type Keys, NODE, SENDER, type Spad, spa, setupKeys, startSpad } from './spad-harness.js';

const LISTENER = `
import json, select, socket, sys, time
s4, s6, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), min(int(sys.argv[4]), 50)
r4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
r6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
seen = []
def drain(seconds):
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([r4, r6, u4, u6], [], [], left)
        for s in ready:
            data, addr = s.recvfrom(65535)
            if s is r4:
                if addr[0] != s4:
                    continue
                ihl = (data[0] & 15) * 4
                seen.append({'kind': 'icmp', 'from': addr[0], 'type': data[ihl], 'code': data[ihl + 1]})
            elif s is r6:
                if data[0] in (133, 134, 135, 136, 137):
                    continue
                seen.append({'kind': 'icmp6', 'from': addr[0], 'type': data[0], 'code': data[1]})
            else:
                seen.append({'kind': 'udp', 'from': addr[0], 'bytes': len(data)})
for i in range(count):
    u4.sendto(b'probe %d' % i, (s4, port))
    u6.sendto(b'probe %d' % i, (s6, port))
    drain(0.05)
drain(1.5)
print(json.dumps(seen))
`;

interface Reply {
  kind: 'icmp' | 'icmp6' | 'udp';
  from: string;
  type?: number;
  code?: number;
}

/** Probes `port` on the server `count` times per family from `from`; returns every reply. */
async function probeForReplies(from: Host, server: Host, port: number, count: number): Promise<Reply[]> {
  const r = await from.exec(
    'python3',
    ['-c', LISTENER, server.ipv4, server.ipv6, String(port), String(count)],
    {
      timeoutMs: 20_000,
    },
  );
  if (r.code !== 0) throw new Error(`listener failed (${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as Reply[];
}

const skip = await netnsUnavailable();

for (const backend of ['nftables', 'iptables'] as const) {
  describe(
    `a probe of the SPA port gets no answer of any kind (${backend}, pcap capture)`,
    { skip: skip ?? false },
    () => {
      let topo: Topology;
      let keys: Keys;
      let alice: { home: string };
      let spad: Spad | null = null;
      const children: Array<{ kill(sig?: NodeJS.Signals): unknown }> = [];

      before(async () => {
        topo = await createTopology();
        keys = await setupKeys();
        alice = await keys.enroll('alice', ['--open', 'tcp/22', '--timeout', '5', '--max-timeout', '30']);
        children.push(await startServices(topo.server, [22], []));
        // The attacker is even always allowed: the drop of the SPA port comes before that.
        const config = join(keys.dir, 'spad.json');
        writeFileSync(
          config,
          JSON.stringify({ always_allow: [`${topo.attacker.ipv4}/32`, `${topo.attacker.ipv6}/128`] }),
        );
        spad = await startSpad(topo.server, keys.stateDir, [
          '--interface',
          'eth0',
          '--protect',
          'tcp/22',
          '--firewall',
          backend,
          '--config',
          config,
        ]);
      });

      after(async () => {
        await spad?.stop();
        for (const c of children) c.kill('SIGKILL');
        await topo?.destroy();
        keys?.cleanup();
      });

      test('the listener does hear the port-unreachable answer for another closed UDP port', async () => {
        const replies = await probeForReplies(topo.attacker, topo.server, 62202, 3);
        assert.ok(
          replies.some((r) => r.kind === 'icmp' && r.type === 3 && r.code === 3),
          `no ICMP port unreachable for udp/62202: ${JSON.stringify(replies)}`,
        );
        assert.ok(
          replies.some((r) => r.kind === 'icmp6' && r.type === 1 && r.code === 4),
          `no ICMPv6 port unreachable for udp/62202: ${JSON.stringify(replies)}`,
        );
      });

      test('UDP probes of 62201 over IPv4 and IPv6 from the attacker get no ICMP, ICMPv6 or UDP reply, although it is always allowed', async () => {
        const replies = await probeForReplies(topo.attacker, topo.server, 62201, 10);
        assert.deepEqual(replies, []);
      });

      /** The client knocks over IPv4, then IPv6; `check` runs after each grant line. */
      const knockBoth = async (check: (to: string, mark: number) => Promise<void>): Promise<void> => {
        const s = spad as Spad;
        for (const [to, src] of [
          [topo.server.ipv4, topo.client.ipv4],
          [topo.server.ipv6, topo.client.ipv6],
        ] as const) {
          const mark = s.lines.length;
          const r = await spa(topo.client, ['-A', 'tcp/22', '-a', src, '--home', alice.home, to]);
          assert.equal(r.code, 0, r.stderr);
          const grant = await s.waitFor((l) => l.event === 'grant', 5000, mark);
          assert.equal(grant.source, src);
          await check(to, mark);
        }
      };

      test('a valid knock from the client is still captured and opens the protected port, over IPv4 and IPv6', async () => {
        await knockBoth(async (to) => {
          assert.equal(await probeOne(topo.client, ['tcp', to, 22], 600), 'open');
          assert.equal(await probeOne(topo.attacker, ['tcp', to, 22], 600), 'open', 'always_allow');
        });
      });

      // The returning lane (nftables only, server/firewall/nft-ruleset.ts): the client knocked
      // validly above, so its datagrams to 62201 now also reach the monitor's socket there.
      const counters = async (): Promise<Record<string, number>> => {
        // the verifier reports its counters once a second
        await new Promise((r) => setTimeout(r, 1300));
        const st = (await callControl(join(keys.stateDir, 'spad.sock'), 'status')) as {
          counters: Record<string, number>;
        };
        return st.counters;
      };
      const delta = (a: Record<string, number>, b: Record<string, number>, k: string): number =>
        (b[k] ?? 0) - (a[k] ?? 0);

      test(
        backend === 'nftables'
          ? "a returning client's knock arrives through libpcap and the returning lane, and is handled once"
          : 'with iptables there is no returning lane: knocks come through libpcap only',
        async () => {
          const before = await counters();
          await knockBoth(async (_to, mark) => {
            await new Promise((r) => setTimeout(r, 300));
            const after = (spad as Spad).lines.slice(mark);
            assert.equal(after.filter((l) => l.event === 'grant').length, 1, JSON.stringify(after));
            assert.deepEqual(
              after.filter((l) => l.event === 'drop'),
              [],
              'the second copy is no REPLAY drop',
            );
          });
          const now = await counters();
          if (backend === 'nftables') {
            assert.equal(delta(before, now, 'LANE'), 2, JSON.stringify(now));
            assert.equal(delta(before, now, 'LANE_DUPLICATE'), 2, JSON.stringify(now));
          } else {
            assert.equal(now.LANE ?? 0, 0, JSON.stringify(now));
          }
        },
      );

      test('probes of 62201 from a returning client get no ICMP, ICMPv6 or UDP reply either', async () => {
        const replies = await probeForReplies(topo.client, topo.server, 62201, 10);
        assert.deepEqual(replies, []);
      });

      if (backend === 'nftables') {
        test("attack: 300 datagrams from a returning source's address reach the monitor's socket at most 10 a second", async () => {
          const before = await counters();
          const started = Date.now();
          const r = await topo.client.exec(NODE, [
            SENDER,
            '--to',
            topo.server.ipv4,
            '--port',
            '62201',
            '--count',
            '300',
            '--payload-hex',
            'c1'.repeat(64),
          ]);
          assert.equal(r.code, 0, r.stderr);
          const seconds = (Date.now() - started) / 1000;
          const now = await counters();
          const lane = delta(before, now, 'LANE');
          // burst 10, then 10 a second while it lasts
          assert.ok(lane >= 10 && lane <= 10 + Math.ceil(10 * seconds) + 2, `lane ${lane} in ${seconds} s`);
        });
      }
    },
  );
}
