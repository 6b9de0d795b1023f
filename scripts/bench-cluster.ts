/**
 * Cluster benchmark (the bar "with a Redis cluster: <= 1 ms more per knock"): the same spad,
 * the same knocks, in the same run, alone and with `--cluster` on a local Redis (redis-server on
 * the gateway's own loopback, in its namespace). Rounds alternate (alone, cluster, alone, ...) so
 * that the shared machine's noise falls on both. Per mode:
 *  - knock→open: the client namespace sends a knock and times until a TCP connect to the protected
 *    port succeeds (the grant is flushed between knocks);
 *  - server recv→grant: the `ms` of spad's grant line (capture to firewall done, the Redis claim
 *    included);
 *  - spad's CPU per knock (utime + stime from /proc of the monitor, verifier and capture
 *    processes) over the latency loop.
 * and the extra time per knock (cluster − alone) of both medians; then the claim alone, in process
 * (2000 SET NX PX round trips on loopback: wall time and CPU per claim). Wall-clock figures are noisy on
 * a shared machine; the CPU column is the steadier comparison.
 * Usage: node dist/scripts/bench-cluster.js [--knocks 40] [--rounds 2] [--mode pcap|udp]
 * Needs root and /usr/bin/redis-server. Cleans up its namespaces, processes and temp files even
 * when it fails, and on SIGINT/SIGTERM/SIGHUP (scripts/cleanup.ts).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { openLink } from '../server/cluster/connection.js';
import { SharedReplay } from '../server/cluster/replay.js';
import { resolveClusterSettings } from '../server/cluster/settings.js';
import { callControl } from '../server/control.js';
import { startRedis } from '../test/helpers/redis.js';
import { startServices } from '../test/e2e/firewall-harness.js';
import { type Keys, startSpad } from '../test/e2e/spad-harness.js';
import { childPids, cpuMs, pct, sealKnocks, startProbe } from './bench-lib.js';
import { onInterrupt } from './cleanup.js';
import { createTopology, type Topology } from './netns.js';

const { values } = parseArgs({
  options: {
    knocks: { type: 'string', default: '40' },
    rounds: { type: 'string', default: '2' },
    mode: { type: 'string', default: 'pcap' },
  },
});
const KNOCKS = Math.max(1, Math.min(500, Number(values.knocks)));
const ROUNDS = Math.max(1, Math.min(10, Number(values.rounds)));
const MODE = values.mode === 'udp' ? 'udp' : 'pcap';

interface Sample {
  open: number[];
  server: number[];
  cpu: number;
  knocks: number;
  lost: number;
}

async function measure(
  topo: Topology,
  keys: Keys,
  home: string,
  cluster: string | null,
  s: Sample,
): Promise<void> {
  const cfg = `${keys.dir}/bench-cluster.json`;
  writeFileSync(cfg, JSON.stringify(cluster ? { cluster, cluster_timeout_ms: 250 } : {}));
  const spad = await startSpad(topo.server, keys.stateDir, [
    ...(MODE === 'pcap' ? ['--interface', 'eth0'] : ['--udp-server']),
    '--protect',
    'tcp/22',
    '--config',
    cfg,
  ]);
  const sock = `${keys.stateDir}/spad.sock`;
  try {
    if (cluster)
      await spad
        .waitFor((l) => l.event === 'cluster_state' && /up/.test(String(l.detail)), 5000)
        .catch(() => {});
    const pkts = await sealKnocks(home, KNOCKS, {
      user: 'alice',
      source: topo.client.ipv4,
      serverFingerprint: keys.serverFingerprint,
    });
    const probe = startProbe(topo.client, topo.server.ipv4);
    const mark = spad.lines.length;
    // every spad process: the monitor, its verifier and capture children (privilege separation)
    const pids = [spad.proc.pid as number, ...childPids(spad.proc.pid as number)];
    const cpuAll = (): number => pids.reduce((sum, p) => sum + cpuMs(p), 0);
    const cpu0 = cpuAll();
    for (const p of pkts) {
      const ms = await probe.measure(p);
      if (ms === null) s.lost++;
      else s.open.push(ms);
      await callControl(sock, 'fw-flush');
    }
    s.cpu += cpuAll() - cpu0;
    probe.close();
    const grants = spad.lines.slice(mark).filter((l) => l.event === 'grant');
    s.knocks += grants.length;
    s.server.push(...grants.map((l) => Number(l.ms)));
  } finally {
    await spad.stop();
  }
}

/**
 * The claim alone, in this process, on a redis-server on the host's loopback: `n` sequential
 * SET NX PX round trips; median wall time and this process's CPU per claim (steadier than the
 * end-to-end figures on a loaded machine).
 */
async function claimCost(n: number): Promise<{ medianMs: number; p90Ms: number; cpuMs: number }> {
  const redis = await startRedis();
  const link = await openLink(resolveClusterSettings({ url: redis.url, passwordFile: null }, '/nonexistent'));
  try {
    const sr = new SharedReplay(link, 'bench');
    const ms: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      const r = await sr.claim(`BENCH:${i.toString(16).padStart(32, '0')}`, 60_000);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (r.kind !== 'claimed') throw new Error(`claim ${i}: ${r.kind}`);
    }
    const cpu = process.cpuUsage(cpu0);
    return { medianMs: pct(ms, 50), p90Ms: pct(ms, 90), cpuMs: (cpu.user + cpu.system) / 1000 / n };
  } finally {
    await link.close();
    await redis.stop();
  }
}

async function main(): Promise<void> {
  const topo = await createTopology();
  const keys = await (await import('../test/e2e/spad-harness.js')).setupKeys();
  const service = await startServices(topo.server, [22], []);
  const redis = await startRedis({ in: topo.server, bind: '127.0.0.1' });
  const cleanup = onInterrupt(async () => {
    await redis.stop();
    service.kill('SIGKILL');
    await topo.destroy();
    keys.cleanup();
  });
  try {
    const alice = await keys.enroll('alice', ['--open', 'tcp/22', '--timeout', '30']);
    const alone: Sample = { open: [], server: [], cpu: 0, knocks: 0, lost: 0 };
    const withCluster: Sample = { open: [], server: [], cpu: 0, knocks: 0, lost: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      await measure(topo, keys, alice.home, null, alone);
      await measure(topo, keys, alice.home, redis.url, withCluster);
    }
    const row = (name: string, s: Sample) => ({
      spad: name,
      'knock→open median ms': pct(s.open, 50).toFixed(2),
      'p90 ms': pct(s.open, 90).toFixed(2),
      'server recv→grant median ms': pct(s.server, 50).toFixed(3),
      'cpu ms/knock': (s.cpu / Math.max(1, s.knocks)).toFixed(3),
      granted: `${s.knocks}/${KNOCKS * ROUNDS}`,
      lost: s.lost,
    });
    console.log(
      `spa cluster benchmark: ${MODE}, ${KNOCKS} knocks x ${ROUNDS} rounds per mode, local redis-server, ${new Date().toISOString()}`,
    );
    console.table([row('alone', alone), row('--cluster (local Redis)', withCluster)]);
    const d = (f: (s: Sample) => number) => (f(withCluster) - f(alone)).toFixed(3);
    console.log(
      `extra per knock with the cluster: knock→open ${d((s) => pct(s.open, 50))} ms, ` +
        `server recv→grant ${d((s) => pct(s.server, 50))} ms, ` +
        `cpu ${d((s) => s.cpu / Math.max(1, s.knocks))} ms (goal: <= 1 ms)`,
    );
    const c = await claimCost(2000);
    console.log(
      `the claim alone (2000 SET NX PX on loopback, in process): median ${c.medianMs.toFixed(3)} ms, ` +
        `p90 ${c.p90Ms.toFixed(3)} ms, client CPU ${c.cpuMs.toFixed(3)} ms per claim`,
    );
  } finally {
    await cleanup();
  }
}

await main();
