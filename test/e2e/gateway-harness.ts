/**
 * Gateway topology: the usual three hosts on one bridge (scripts/netns.ts), plus a fourth,
 * internal host behind the server, which gets a second interface and forwards between them.
 *
 *   client 198.51.100.2 ──┐                         ┌── eth1 203.0.113.1 / 2001:db8:1::1
 *   attacker 198.51.100.3 ┼── bridge ── server eth0 ┤        │ (veth, no bridge)
 *                         │   198.51.100.1          │   internal eth0 203.0.113.10 / 2001:db8:1::10
 *                                                       default route via the server
 *
 * The client and the attacker get routes to the internal networks through the server, so a
 * test can show that routing straight to the internal host (without the knock's DNAT) fails.
 * `destroy()` ends the internal host's processes, deletes its namespace, then the topology.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createTopology, type Host, run, type Topology, waitFor } from '../../scripts/netns.js';
import { startServices } from './firewall-harness.js';

export const INTERNAL4 = '203.0.113.10';
export const INTERNAL6 = '2001:db8:1::10';
export const INTERNAL_NETS = ['203.0.113.0/24', '2001:db8:1::/64'];

export interface GatewayTopology {
  readonly topo: Topology;
  readonly internal: Host;
  /** The internal host's real TCP echo service, on port 22 (and any extra ports asked for). */
  readonly service: ChildProcess;
  destroy(): Promise<void>;
}

async function must(cmd: string, args: readonly string[]): Promise<void> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

export async function createGateway(tcpPorts: readonly number[] = [22]): Promise<GatewayTopology> {
  const topo = await createTopology();
  const ns = `${topo.id}-inner`;
  let made = false;
  let service: ChildProcess | null = null;
  const destroy = async (): Promise<void> => {
    service?.kill('SIGKILL');
    if (made) {
      const pids = await run('ip', ['netns', 'pids', ns]);
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await run('ip', ['netns', 'delete', ns]);
      made = false;
    }
    await topo.destroy();
  };
  try {
    await must('ip', ['netns', 'add', ns]);
    made = true;
    const s = topo.server.ns;
    await must('ip', ['-n', s, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await must('ip', ['-n', s, 'addr', 'add', '203.0.113.1/24', 'dev', 'eth1']);
    await must('ip', ['-n', s, 'addr', 'add', '2001:db8:1::1/64', 'dev', 'eth1', 'nodad']);
    await must('ip', ['-n', s, 'link', 'set', 'eth1', 'up']);
    await must('ip', ['-n', ns, 'addr', 'add', `${INTERNAL4}/24`, 'dev', 'eth0']);
    await must('ip', ['-n', ns, 'addr', 'add', `${INTERNAL6}/64`, 'dev', 'eth0', 'nodad']);
    await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', '203.0.113.1']);
    await must('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', '2001:db8:1::1']);
    await must('ip', ['netns', 'exec', s, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await must('ip', ['netns', 'exec', s, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
    for (const h of [topo.client, topo.attacker]) {
      await must('ip', ['-n', h.ns, 'route', 'add', '203.0.113.0/24', 'via', topo.server.ipv4]);
      await must('ip', ['-n', h.ns, '-6', 'route', 'add', '2001:db8:1::/64', 'via', topo.server.ipv6]);
    }
    const internal: Host = {
      name: 'internal',
      ns,
      ipv4: INTERNAL4,
      ipv6: INTERNAL6,
      exec: (cmd, args = [], opts = {}) => run('ip', ['netns', 'exec', ns, cmd, ...args], opts),
      spawn: (cmd, args = [], opts = {}) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    };
    // The internal host's link-local address is tentative for a moment (DAD), and until then it
    // cannot resolve its IPv6 router: wait until both families route end to end.
    for (const [flag, addr] of [
      ['-4', INTERNAL4],
      ['-6', INTERNAL6],
    ] as const) {
      const up = await waitFor(
        async () => (await topo.client.exec('ping', [flag, '-c1', '-W1', addr])).code === 0,
        10_000,
        100,
      );
      if (!up) throw new Error(`gateway topology: ${addr} unreachable through the gateway`);
    }
    service = await startServices(internal, tcpPorts, []);
    return { topo, internal, service, destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}
